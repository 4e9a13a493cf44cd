//! The benchmarks: figures printed on this machine for `docs/benchmarks.md`. Speed goals live here, never in
//! tests, and none of this code ships in the product: the production crates (`xtask`, `deployer`,
//! `local-engine`, the functions) carry no benchmark. `cargo xtask bench <what>` runs this crate's binary.
//!
//! Each benchmark is a function with a size (rounds, samples, history lengths) that returns its figures as a
//! value (`Serialize` for `--output json`, `Display` for people), so the suite runs every one of them at a tiny
//! size (`bench/tests/figures.rs`) and a benchmark cannot rot unnoticed. No benchmark edits the checkout:
//! `bench dev` edits a scratch copy of the workspace.
//!
//! The benchmarks drive the domain through the registry (`domain::registry()`, each aggregate's `example()`),
//! so they run unchanged on a user's own domain.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

use std::path::PathBuf;

use serde::Serialize;

pub mod cli;
pub mod deploy;
pub mod dev;
pub mod inspector;
pub mod local;
pub mod release;
pub mod startup;
pub mod store;

/// `cargo xtask bench` (this binary's command line).
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench",
    bin_name = "cargo xtask bench",
    about = "Benchmark figures printed on this machine (see docs/benchmarks.md)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub what: What,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The local engine: gateway vs direct invoke latency (p50/p99) and projection lag.
    /// Needs a deployed local stack (`cargo xtask deploy`).
    Local(local::Args),
    /// `deploy --hotswap` of 1 and of 3 functions vs a full CloudFormation update of the same change, on a
    /// fresh local endpoint of its own (the figures are wall times on this machine).
    Hotswap(deploy::HotswapArgs),
    /// Full deploy, no-op deploy and teardown wall times on a fresh local endpoint of its own.
    Deploy(deploy::DeployArgs),
    /// The user's view: whole `cargo xtask` processes as typed at a shell (deploy, no-op deploy, status,
    /// teardown; `--cold` adds a fresh clone's first deploy), beside the in-process figures.
    Cli(cli::Args),
    /// Edit to live: `cargo xtask dev` spawned as a user runs it vs `cargo lambda watch`, timed from saving a
    /// behaviour change of one function to the first answer showing it. Edits a scratch copy of the
    /// workspace, never the checkout.
    Dev(dev::Args),
    /// The release build of an AWS deploy (cargo-lambda): each binary's size, zip size, glibc floor and
    /// process start-to-ready time (spawn -> first Runtime API poll).
    Release(release::Args),
    /// Event store cost: DynamoDB requests and capacity units per append at 10, 1,000 and 10,000 events
    /// of history, per batch append and per projected batch, on a fresh local endpoint of its own.
    Store(store::Args),
    /// The local inspector: opening an aggregate of 10,000 events (first open with its full replay, next
    /// open, a page deep in the history), on a fresh local endpoint of its own.
    Inspector(inspector::Args),
}

/// How a benchmark prints its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

pub async fn run(what: What) -> anyhow::Result<()> {
    match what {
        What::Local(a) => print(a.output, &local::run(&a).await?),
        What::Hotswap(a) => print(a.output, &deploy::hotswap_figures(a.rounds).await?),
        What::Deploy(a) => print(a.output, &deploy::deploy_figures(a.rounds).await?),
        What::Cli(a) => print(a.output, &cli::run(&a).await?),
        What::Dev(a) => print(a.output, &dev::run(&a).await?),
        What::Release(a) => print(a.output, &release::run(&a).await?),
        What::Store(a) => print(a.output, &store::run(&a).await?),
        What::Inspector(a) => print(a.output, &inspector::run(&a).await?),
    }
}

/// Prints `figures` on stdout (progress goes to stderr, so `--output json` is one clean document).
fn print(
    format: OutputFormat,
    figures: &(impl Serialize + std::fmt::Display),
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(figures)?),
        OutputFormat::Text => print!("{figures}"),
    }
    Ok(())
}

/// The checkout the benchmarks act on: the tool's own answer (resolved at run time).
pub fn repo_root() -> PathBuf {
    local_engine::state::repo_root()
}

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Milliseconds since `t`.
pub fn ms(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The first registered aggregate's example (`(event_type, data)` in order): how a benchmark writes events
/// of whatever domain the workspace holds, as `cargo xtask smoke` does.
pub fn example() -> Vec<(&'static str, serde_json::Map<String, serde_json::Value>)> {
    domain::registry()
        .kinds()
        .next()
        .expect("the registry refuses a domain without aggregates")
        .example()
}
