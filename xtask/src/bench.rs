//! `cargo xtask bench`: benchmark figures printed on this machine (speed goals live here, never in tests).

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The local engine: gateway vs direct invoke latency (p50/p99) and projection lag.
    /// Needs a deployed local stack (`cargo xtask deploy`).
    Local(LocalArgs),
}

/// Arguments of `cargo xtask bench local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// Requests per latency figure.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    match args.what {
        What::Local(a) => local(a).await,
    }
}

async fn local(args: LocalArgs) -> anyhow::Result<ExitStatus> {
    let plan = stack::config::load(&args.env.config_dir, &args.env.env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(local) = &plan.local else {
        anyhow::bail!("`bench local` needs a local environment; `{}` is not one", plan.env);
    };
    let endpoint_url = format!("http://127.0.0.1:{}", local.endpoint_port);
    let tools = crate::cli::repo_root().join(".local/tools");
    let report = local_engine::bench::run(&plan, &endpoint_url, &crate::serve::dist_dir(&plan), args.samples.max(1), &tools)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}; deploy the local stack first with `cargo xtask deploy`"))?;
    match args.output {
        crate::cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::cli::OutputFormat::Text => print!("{report}"),
    }
    Ok(ExitStatus::Success)
}
