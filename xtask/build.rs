//! Build script of xtask: embeds the fingerprint of the sources this binary is built from, so that at run time
//! the tool can tell whether it carries the code of the checkout it runs in (see `src/sources.rs` for why a
//! shared target directory makes that question necessary).

#[path = "src/sources.rs"]
#[allow(dead_code)] // `differences` is for the run-time check
mod sources;

fn main() {
    let manifest_dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR")
            .expect("cargo sets CARGO_MANIFEST_DIR for build scripts"),
    );
    let root = manifest_dir
        .parent()
        .expect("xtask lives one level below the workspace root");
    // Each file, not its directory: cargo would also compare the directories' own times, and a fresh clone's
    // directories are always new (a needless rebuild of this crate in every clone). A file added to `src/`
    // only compiles once an existing file names it (`mod`, `include_str!`), which changes that file; a removed
    // one is missing, which cargo counts as a change. Relative to the package root on purpose: cargo stores
    // such paths relative and looks them up in the checkout it builds, whereas an absolute path outside the
    // package would keep pointing at the first clone.
    for path in sources::list(root) {
        println!("cargo::rerun-if-changed=../{path}");
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("sources.txt"), sources::fingerprint(root))
        .expect("the build script writes into OUT_DIR");
}
