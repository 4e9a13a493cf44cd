//! The `xtask` library: the clap command tree and one module per task (`deploy.rs`, `teardown.rs`, ...).
//!
//! Task modules translate CLI arguments into calls on the library crates (`stack`, `deployer`,
//! `local-engine`) and map their outcomes to the documented exit codes in [`exit`].

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod cli;
pub mod exit;

pub mod bench;
pub mod build;
pub mod deploy;
pub mod dev;
pub mod diff;
pub mod doctor;
pub mod drift;
pub mod inspect;
pub mod logs;
pub mod openapi;
pub mod promote;
pub mod render;
pub mod replay;
pub mod rollback;
pub mod serve;
pub mod shift;
pub mod smoke;
pub mod sources;
pub mod status;
pub mod teardown;
pub mod validate;

/// The fingerprint of the sources this binary was built from (written by `build.rs`, see [`sources`]).
const BUILT_FROM: &str = include_str!(concat!(env!("OUT_DIR"), "/sources.txt"));

/// Parses the command line, runs the task and returns its exit code.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    // Before anything reads a path: the checkout this runs in, and whether this binary carries its code.
    let root = match local_engine::state::resolve_repo_root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ExitStatus::Refused.into();
        }
    };
    // `serve` is only ever started by a checked xtask, from its own executable (`deploy` starts the engine):
    // checking it again would refuse an engine restart in `dev` after an edit of a source the running xtask
    // was built from (`functions/service`), which `dev` rebuilds as a function, not as the tool.
    if std::env::args().nth(1).as_deref() != Some("serve")
        && let Err(e) = check_sources(&root)
    {
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

/// Refuses to run when this binary was built from other sources than the checkout it runs in. That happens
/// when clones share a target directory and cargo, which judges freshness by file times, reused another
/// clone's build (see [`sources`]). Identical sources pass, whichever clone built the binary.
fn check_sources(root: &std::path::Path) -> anyhow::Result<()> {
    // `dev --workspace` (tests, `bench dev`) rebuilds xtask from a scratch copy and restarts into it; that copy
    // is what the binary must match.
    let checkout = std::env::var_os("XTASK_SOURCE_CHECKOUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.to_path_buf());
    let running = sources::fingerprint(&checkout);
    if running == BUILT_FROM {
        return Ok(());
    }
    let differ = sources::differences(BUILT_FROM, &running);
    anyhow::bail!(
        "this xtask binary was built from other sources than the checkout it runs in ({}); these files differ: {}. \
         This happens when clones share one target directory (CARGO_TARGET_DIR or build.target-dir): cargo judges \
         freshness by file times, so it reused a build made in another clone. Make cargo rebuild them from this \
         checkout, then run the command again: cd {} && touch {} && cargo xtask ...",
        checkout.display(),
        differ.join(", "),
        checkout.display(),
        differ.join(" ")
    )
}
