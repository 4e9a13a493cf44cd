//! Clones that share one target directory (`CARGO_TARGET_DIR`, or `build.target-dir`, which many developers set
//! for all their checkouts) can use the tool in any order; a binary whose code differs from the checkout it runs
//! in is still refused, naming the files.
//!
//! cargo names a workspace crate's artifacts by its path *relative to the workspace* and judges freshness by
//! file times, so in the second clone it reuses what the first built. The tool used to compare the checkout's
//! path with one compiled in and refused every second clone (exit 3); it now compares source contents.
//!
//! The clones are copies of this checkout's files (tracked and untracked, as `git ls-files` lists them) with
//! their modification times kept, rather than `git clone`s: a clone holds the last commit, not the working tree
//! under test, and building it into the shared target directory would leave this checkout's crates built from
//! other sources (cargo's file-time check would not notice). With equal sources and times, both clones reuse the
//! xtask this test run built, as the second clone did, and the test compiles nothing of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tests::cli::{clone_checkout, output_text, xtask_binary};
use tests::repo_root;

/// The target directory of this test run (`<target>/debug/xtask`).
fn target_dir() -> PathBuf {
    xtask_binary()
        .ancestors()
        .nth(2)
        .expect("the xtask binary lives in <target>/debug")
        .to_path_buf()
}

/// `cargo xtask <args>` in `checkout`, as a user runs it there, with this run's target directory.
fn cargo_xtask(checkout: &Path, args: &[&str]) -> Output {
    deployer::cargo::command(env!("CARGO"))
        .arg("xtask")
        .args(args)
        .current_dir(checkout)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("XTASK_CONFIG_DIR")
        .env_remove("XTASK_STATE_DIR")
        .env_remove("XTASK_ENV")
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs")
}

#[test]
fn two_clones_sharing_a_target_directory_both_run_the_tool() {
    // This run's xtask is up to date with this checkout before the clones reuse it.
    xtask_binary();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    clone_checkout(&a);
    clone_checkout(&b);
    for clone in [&a, &b] {
        let out = cargo_xtask(clone, &["validate", "--env", "local"]);
        assert!(
            out.status.success(),
            "`cargo xtask validate` in {}:\n{}",
            clone.display(),
            output_text(&out)
        );
        // It acted on the clone it runs in (its own config), not on another checkout.
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(&repo_root().display().to_string()),
            "{}",
            output_text(&out)
        );
    }
}

#[test]
fn a_clone_whose_sources_differ_is_refused_and_the_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    clone_checkout(&c);
    // Another version of one source compiled into xtask, as in a clone checked out at another commit.
    let edited = c.join("stack/src/lib.rs");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, text + "\n// another version\n").unwrap();
    // The binary this run built (from this checkout), started in the clone as `cargo run` would start a
    // stale build there: nothing is compiled, so the shared target directory is left as it is.
    let out = Command::new(xtask_binary())
        .args(["validate", "--env", "local"])
        .current_dir(&c)
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("XTASK_CONFIG_DIR")
        .env_remove("XTASK_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("these files differ: stack/src/lib.rs.")
            && err.contains(&format!("cd {} && touch stack/src/lib.rs", c.display())),
        "the refusal names the file and the command that rebuilds it:\n{}",
        output_text(&out)
    );
}
