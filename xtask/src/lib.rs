//! The `xtask` library: the clap command tree and one module per task (`deploy.rs`, `teardown.rs`, ...).
//!
//! Task modules translate CLI arguments into calls on the library crates (`stack`, `deployer`,
//! `local-engine`) and map their outcomes to the documented exit codes in [`exit`].

pub mod cli;
pub mod exit;

pub mod bench;
pub mod bench_cli;
pub mod bench_dev;
pub mod bench_release;
pub mod build;
pub mod deploy;
pub mod dev;
pub mod diff;
pub mod doctor;
pub mod logs;
pub mod promote;
pub mod render;
pub mod replay;
pub mod serve;
pub mod smoke;
pub mod status;
pub mod teardown;
pub mod validate;

/// Parses the command line, runs the task and returns its exit code.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    // Before anything reads a path: with a shared CARGO_TARGET_DIR, this binary may have been built from
    // another clone than the one it runs in, and would otherwise act on (start, stop) that clone's engine.
    if let Err(e) = local_engine::state::resolve_repo_root() {
        eprintln!("error: {e}");
        return exit::ExitStatus::Refused.into();
    }
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::ExitStatus::Failed.into()
        }
    }
}
