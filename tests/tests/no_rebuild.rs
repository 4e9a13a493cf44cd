//! The tool's nested cargo builds and the user's own `cargo xtask` build never rebuild each other's
//! dependencies. This test binary runs under `cargo test`, so it has `CARGO_MANIFEST_DIR` and `CARGO_PKG_*` in its
//! environment exactly as the xtask binary has under `cargo run`; the builds it starts go through the same
//! `deployer::cargo::command` as the tool's. Asserted on cargo's own report (`"fresh"` per artifact), not on time.

use std::process::Command;

use deployer::build::{BuildRequest, host_build_command};
use serde_json::Value;
use stack::{Architecture, EnvKind};

fn function_build() -> Command {
    let repo = tests::repo_root();
    let req = BuildRequest {
        target_dir: deployer::build::default_target_dir(&repo),
        env: "no-rebuild".into(),
        kind: EnvKind::Local,
        architecture: Architecture::X86_64,
        template_sha256: "0".repeat(64),
        cargo: env!("CARGO").into(),
        tools_dir: repo.join(".local/tools"),
        checkout: repo.clone(),
        repo_root: repo,
    };
    host_build_command(&req)
}

fn xtask_build() -> Command {
    let mut cmd = deployer::cargo::command(env!("CARGO"));
    cmd.current_dir(tests::repo_root())
        .args(["build", "--locked", "-p", "xtask", "--bin", "xtask"]);
    cmd
}

/// Runs a build with `--message-format=json` and returns the names of the crates cargo compiled (not fresh).
fn compiled(mut cmd: Command, what: &str) -> Vec<String> {
    let out = cmd
        .arg("--message-format=json")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let artifacts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .collect();
    assert!(!artifacts.is_empty(), "{what} reported no artifacts");
    artifacts
        .iter()
        .filter(|v| v["fresh"] == false)
        .map(|v| v["target"]["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn the_function_build_and_the_xtask_build_never_rebuild_each_other() {
    // The environment this process inherited from cargo is what caused the ping-pong; make sure it is there.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());

    // Bring both up to date (this may compile: the suite's own build unifies features differently).
    compiled(xtask_build(), "the xtask build");
    compiled(function_build(), "the function build");

    // Each one again, alternating: nothing may be compiled.
    let after_functions = compiled(xtask_build(), "the xtask build after the function build");
    assert!(
        after_functions.is_empty(),
        "building the xtask after the tool's function build recompiled {after_functions:?}"
    );
    let after_xtask = compiled(function_build(), "the function build after the xtask build");
    assert!(
        after_xtask.is_empty(),
        "the tool's function build after the xtask build recompiled {after_xtask:?}"
    );
}
