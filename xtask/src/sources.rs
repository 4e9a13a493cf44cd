//! Which checkout's code this binary carries: a fingerprint of every source compiled into the xtask, taken by
//! the build script when it builds the binary and again at run time in the checkout the tool runs in.
//!
//! Why: cargo decides that a workspace crate is up to date by comparing file *times*, and stores its artifacts
//! under names that do not depend on the checkout's path. With one target directory shared by two clones (a
//! common setting: `CARGO_TARGET_DIR`, or `build.target-dir`), cargo reuses clone A's build in clone B as long
//! as B's files are older than A's build, even when they differ (another commit checked out earlier). The tool
//! would then run A's code in B. Comparing paths (what an earlier version did) refused every second clone,
//! also when both hold the same code, and its advice (touch `xtask/src/main.rs`) did not rebuild the crate
//! that held the path. Comparing contents is the honest check: it passes whenever the code is the same, and
//! when it is not, it names the files that differ; touching them makes cargo rebuild exactly what is stale.
//!
//! This file is also compiled into the build script (`xtask/build.rs`, through `#[path]`), so both sides list
//! and hash the files the same way; its only dependency, `sha2`, is a build dependency too.

use std::path::{Path, PathBuf};

/// The sources compiled into xtask, relative to the workspace root: each crate's manifest and `src/` (`.rs`
/// files only, so an editor's swap file is not a change), and the templates the `stack` and `deployer` crates
/// embed with `include_str!`. Paths use `/` and are sorted.
pub fn list(root: &Path) -> Vec<String> {
    let mut files = vec!["xtask/build.rs".to_string()];
    for krate in CRATES {
        files.push(format!("{krate}/Cargo.toml"));
        walk(root, &format!("{krate}/src"), "rs", &mut files);
    }
    walk(root, "templates", "hbs", &mut files);
    files.retain(|f| root.join(f).is_file());
    files.sort();
    files
}

/// The workspace crates the xtask binary is built from (itself and its path dependencies).
pub const CRATES: [&str; 6] = [
    "xtask",
    "xtask/deployer",
    "xtask/local-engine",
    "stack",
    "functions/domain",
    "functions/service",
];

/// One line per file, `<hash> <path>`, in [`list`] order: what the build script embeds and what the run-time
/// check recomputes.
pub fn fingerprint(root: &Path) -> String {
    let mut out = String::new();
    for file in list(root) {
        let hash = std::fs::read(root.join(&file))
            .map(|bytes| hash(&bytes))
            .unwrap_or_else(|_| "unreadable".into());
        out.push_str(&hash);
        out.push(' ');
        out.push_str(&file);
        out.push('\n');
    }
    out
}

/// The files whose content differs between two fingerprints (changed, added or removed), sorted.
pub fn differences(built: &str, running: &str) -> Vec<String> {
    let parse = |text: &str| -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(hash, path)| (path.to_string(), hash.to_string()))
            .collect()
    };
    let (built, running) = (parse(built), parse(running));
    let mut paths: Vec<String> = built
        .keys()
        .chain(running.keys())
        .filter(|p| built.get(*p) != running.get(*p))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// SHA-256 of a file's bytes, hex. The xtask is a debug build and computes this on every start; `sha2` is
/// compiled optimized even in debug builds (see the workspace's profile), which keeps the megabyte of sources
/// to a few milliseconds, where a hand-written unoptimized loop took tens.
fn hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn walk(root: &Path, dir: &str, ext: &str, into: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let rel = format!("{dir}/{name}");
        let path: PathBuf = entry.path();
        if path.is_dir() {
            walk(root, &rel, ext, into);
        } else if path.extension().is_some_and(|e| e == ext) {
            into.push(rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_added_or_removed_source_is_named_and_other_files_are_not_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("xtask/Cargo.toml", "[package]");
        write("xtask/src/main.rs", "fn main() {}");
        write("stack/src/lib.rs", "//! one");
        write("templates/stack.yaml.hbs", "Resources: {}");
        let before = fingerprint(root);
        assert_eq!(
            list(root),
            [
                "stack/src/lib.rs",
                "templates/stack.yaml.hbs",
                "xtask/Cargo.toml",
                "xtask/src/main.rs"
            ]
        );
        // An editor's swap file and a README are not compiled in, so they are no difference.
        write("stack/src/.lib.rs.swp", "x");
        write("stack/README.md", "x");
        assert_eq!(fingerprint(root), before);

        write("stack/src/lib.rs", "//! two");
        write("functions/domain/src/lib.rs", "//! new");
        std::fs::remove_file(root.join("templates/stack.yaml.hbs")).unwrap();
        assert_eq!(
            differences(&before, &fingerprint(root)),
            [
                "functions/domain/src/lib.rs",
                "stack/src/lib.rs",
                "templates/stack.yaml.hbs"
            ]
        );
    }
}
