//! The benchmark binary, started by `cargo xtask bench ...` (or `cargo run -p bench -- ...`): parses the
//! command line and hands it to the library, where each benchmark lives and where the suite's tests call it.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = bench::Cli::parse();
    match bench::run(cli.what).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
