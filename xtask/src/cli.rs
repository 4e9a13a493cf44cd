//! The clap command tree. Each subcommand's doc comment is its `--help` text; its arguments are the
//! `Args` struct of the task module that runs it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::ExitStatus;

/// The typed pipeline of the event-sourced CQRS API: config -> templates -> plan -> change set -> stack.
///
/// With no `--env`, commands target the `local` environment: a local AWS endpoint, function host,
/// HTTP gateway and stream poller on 127.0.0.1, no AWS account needed.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, propagate_version = true)]
pub struct Cli {
    /// Print debug logs of the tool itself (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every environment-bound command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvArgs {
    /// Environment to act on: the stem of a file in `config/` (`local`, `dev`, `staging`, `prod`).
    #[arg(long = "env", short = 'e', default_value = "local", env = "XTASK_ENV")]
    pub env: String,
    /// Directory holding the per-environment YAML files.
    #[arg(long, default_value_os_t = default_config_dir(), env = "XTASK_CONFIG_DIR")]
    pub config_dir: PathBuf,
}

/// Whose AWS credentials an `aws` environment is reached with (every command; ignored for `local`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AccessArgs {
    /// Take AWS credentials from this named profile of ~/.aws/config (an SSO profile, say) instead of the
    /// standard chain's default (AWS_PROFILE, environment variables, ...).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Deploy as yourself: use the credentials as they are instead of assuming the config's `role_arn` (the CI
    /// role, which trusts only GitHub). The credentials must still belong to the config's `account_id`.
    #[arg(long, global = true)]
    pub no_assume_role: bool,
}

impl From<&AccessArgs> for deployer::aws::Access {
    fn from(a: &AccessArgs) -> Self {
        deployer::aws::Access {
            profile: a.profile.clone(),
            own_credentials: a.no_assume_role,
        }
    }
}

/// How long `deploy`, `promote` and `teardown` wait for CloudFormation.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitArgs {
    /// Give up waiting for a CloudFormation operation after this many minutes, naming the stack and its state
    /// (the operation itself goes on).
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), env = "XTASK_WAIT_TIMEOUT")]
    pub wait_timeout: u64,
}

impl WaitArgs {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait_timeout * 60)
    }
}

/// What a command that changes an environment does when another command is changing it (see
/// `local_engine::lock`): wait for it by default, or refuse.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LockArgs {
    /// Refuse (exit 3) instead of waiting when another command (`deploy`, `dev`, `teardown`, ...) is changing
    /// this environment; the message names it (command and pid).
    #[arg(long)]
    pub no_wait: bool,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout (for CI).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render an environment's CloudFormation template (stdout or --out).
    Render(crate::render::Args),
    /// Validate one environment's config and rendered template, or all of them.
    Validate(crate::validate::Args),
    /// Write the API document (functions/openapi.yaml) generated from the routes and the domain's registry.
    Openapi(crate::openapi::Args),
    /// Build, zip reproducibly and hash the function binaries; write the release manifest.
    Build(crate::build::Args),
    /// Build, upload and deploy the stack through a change set (local engine when no --env).
    Deploy(crate::deploy::Args),
    /// Deploy locally if needed, then watch functions/, config/, templates/, stack/, Cargo.toml and Cargo.lock and
    /// apply each change: changed functions are rebuilt and swapped into the running local engine (the data
    /// stays), config changes go through the deploy path, template and stack/ changes rebuild xtask and restart.
    /// Ctrl-C stops watching (after the change in progress); the engine keeps serving until `teardown`.
    Dev(crate::dev::Args),
    /// Delete the stack (and, for local, stop the host and the endpoint).
    Teardown(crate::teardown::Args),
    /// Preview what a deploy would change (the change set is deleted afterwards).
    Diff(crate::diff::Args),
    /// Show stack status, last deploy, deployed digests vs the local build, outputs; on AWS each function's live
    /// version, the traffic split and the release history.
    Status(crate::status::Args),
    /// Run CloudFormation drift detection on the stack (AWS) and show what changed outside the pipeline: each
    /// modified or deleted resource and its property differences. CloudFormation checks the properties the
    /// template sets, on resource types that support drift detection. `--detailed-exitcode`: exit 5 on drift.
    Drift(crate::drift::Args),
    /// Put the previous release live again by moving each function's `live` alias back (AWS; seconds, no
    /// CloudFormation update), and record it in the release history.
    Rollback(crate::rollback::Args),
    /// Rebuild read models from the event log.
    Replay(crate::replay::Args),
    /// Show the functions' logs.
    Logs(crate::logs::Args),
    /// Print the URL of the local inspector (a read-only page over the event log, read models vs replay, the
    /// pipeline and the functions) and open it in a browser when one is available. Local environments only.
    Inspect(crate::inspect::Args),
    /// Check the prerequisites of the local engine and list how it differs from AWS.
    Doctor(crate::doctor::Args),
    /// Deploy the release recorded in one environment to the next, without rebuilding.
    Promote(crate::promote::Args),
    /// Run the smoke test against a deployed environment and record the result.
    Smoke(crate::smoke::Args),
    /// Print benchmark figures (`cargo xtask bench --help` lists them; see docs/benchmarks.md). Runs the
    /// benchmarks' own crate (`bench/`): the tool carries no benchmark code.
    Bench(crate::bench::Args),
    /// Run the local engine (function host, HTTP gateway, stream poller) in the foreground.
    /// `deploy` starts this in the background; you rarely run it yourself.
    #[command(hide = true)]
    Serve(crate::serve::Args),
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    crate::deploy::set_access((&cli.access).into());
    match cli.command {
        Command::Render(a) => crate::render::run(a).await,
        Command::Validate(a) => crate::validate::run(a).await,
        Command::Openapi(a) => crate::openapi::run(a).await,
        Command::Build(a) => crate::build::run(a).await,
        Command::Deploy(a) => crate::deploy::run(a).await,
        Command::Dev(a) => crate::dev::run(a).await,
        Command::Teardown(a) => crate::teardown::run(a).await,
        Command::Diff(a) => crate::diff::run(a).await,
        Command::Status(a) => crate::status::run(a).await,
        Command::Drift(a) => crate::drift::run(a).await,
        Command::Rollback(a) => crate::rollback::run(a).await,
        Command::Replay(a) => crate::replay::run(a).await,
        Command::Logs(a) => crate::logs::run(a).await,
        Command::Inspect(a) => crate::inspect::run(a).await,
        Command::Doctor(a) => crate::doctor::run(a).await,
        Command::Promote(a) => crate::promote::run(a).await,
        Command::Smoke(a) => crate::smoke::run(a).await,
        Command::Bench(a) => crate::bench::run(a).await,
        Command::Serve(a) => crate::serve::run(a).await,
    }
}

/// The checkout the tool acts on, resolved at run time (`cargo xtask` runs in it), not the one the binary
/// was compiled in: see [`local_engine::state::resolve_repo_root`], which `main` checks before anything else.
pub fn repo_root() -> PathBuf {
    local_engine::state::repo_root()
}

/// This command line after `cargo xtask` (`deploy --env local --yes`), as the lock records its holder.
pub fn invocation() -> String {
    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
}

fn default_config_dir() -> PathBuf {
    repo_root().join("config")
}

/// Logs of the tool itself go to stderr so stdout stays clean for `--output json`.
pub fn init_tracing(verbose: u8) {
    // By default only the tool's own warnings: a dependency's (aws-config's "provider failed to provide
    // credentials", say) repeat what the tool's error says better. `-v` shows them.
    let level = match verbose {
        0 => "error,xtask=warn,deployer=warn,local_engine=warn,stack=warn",
        1 => "info,xtask=debug,deployer=debug,local_engine=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
