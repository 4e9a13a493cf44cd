//! The `xtask` library: the clap command tree and one module per task (`deploy.rs`, `teardown.rs`, ...).
//!
//! Task modules translate CLI arguments into calls on the library crates (`stack`, `deployer`,
//! `local-engine`) and map their outcomes to the documented exit codes in [`exit`].

pub mod cli;
pub mod exit;

pub mod bench;
pub mod bench_release;
pub mod build;
pub mod deploy;
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
