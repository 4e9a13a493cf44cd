//! `cargo xtask bench ...`: runs the benchmarks, which live in their own crate (`bench/`), not in the tool.
//!
//! The arguments go unchanged to the `bench` binary, so `cargo xtask bench --help` lists the benchmarks and the
//! commands in docs/benchmarks.md keep working, while the xtask, the deployer and the local engine carry no
//! benchmark code.
//!
//! The binary is built with `cargo build -p xtask -p bench --bin bench`, the way `deployer::build` builds the
//! functions: cargo unifies dependency features over the packages of one invocation, and the bench crate's
//! dependencies are the xtask's, so it reuses every dependency the xtask build compiled instead of compiling the
//! AWS SDK again with a narrower feature set.

use std::ffi::OsString;

use anyhow::Context as _;

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask bench`: everything after `bench`, passed through.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The benchmark and its options (`cargo xtask bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let root = crate::cli::repo_root();
    let mut build: tokio::process::Command =
        deployer::cargo::command(deployer::cargo::cargo_path()).into();
    build.current_dir(&root).args([
        "build", "--quiet", "-p", "xtask", "-p", "bench", "--bin", "bench",
    ]);
    if root.join("Cargo.lock").exists() {
        build.arg("--locked");
    }
    // Our stdout may be the benchmark's JSON document: cargo's output goes to stderr.
    build.stdout(std::process::Stdio::null());
    let built = build
        .status()
        .await
        .context("starting `cargo build --package bench` (is cargo on PATH?)")?;
    anyhow::ensure!(
        built.success(),
        "building the benchmarks failed ({built}); cargo's errors are above"
    );
    let exe = deployer::build::default_target_dir(&root)
        .join("debug")
        .join("bench");
    let mut bench: tokio::process::Command = deployer::cargo::command(&exe).into();
    let status = bench
        .current_dir(&root)
        .args(&args.args)
        .status()
        .await
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok(if status.success() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}
