//! `cargo xtask teardown`: delete the stack; keep retained tables unless `--delete-data`; remove the artifact
//! bucket the tool created. For `local`, the local engine stops first and the local endpoint last; when no
//! endpoint of this tool runs, nothing is deployed and none is started just to find that out.

use std::sync::Arc;

use anyhow::Context as _;
use deployer::teardown::TeardownOptions;
use deployer::ui::ConsoleUi;
use local_engine::process::Stopped;
use stack::EnvKind;

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{connect_if_running, load, report_errors, state_dir};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask teardown`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Tear down without asking (CI). Without a terminal and without --yes, teardown refuses.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the tables the stack retains. Refused when the config protects the data.
    #[arg(long)]
    pub delete_data: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub wait: crate::cli::WaitArgs,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(teardown(args).await)
}

async fn teardown(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    let ui = Arc::new(ConsoleUi::new(args.yes));
    let _lock = crate::deploy::lock_env(&plan, args.lock).await?;
    if plan.kind == EnvKind::Local {
        stop_local_engine(&plan)
            .await
            .context("stopping the local engine")?;
    }
    // Locally, no endpoint of ours running means nothing is deployed: say so instead of starting one.
    let Some(env) = connect_if_running(&plan).await? else {
        let stopped = local_engine::endpoint::Endpoint::stop_background(&state_dir(&plan)).await;
        if let Stopped::Stale { .. } = stopped {
            eprintln!("local AWS endpoint: {stopped}");
        }
        eprintln!(
            "nothing is deployed: the local AWS endpoint of `{}` is not running (it keeps the stack in memory)",
            plan.env
        );
        let outcome = deployer::teardown::TeardownOutcome {
            env: plan.env.clone(),
            stack_name: plan.stack_name.clone(),
            stack_deleted: false,
            retained_tables: Vec::new(),
            deleted_tables: Vec::new(),
            deleted_bucket: None,
            elapsed_ms: 0,
        };
        match args.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
            OutputFormat::Text => print!("{outcome}"),
        }
        return Ok(ExitStatus::Success);
    };
    let bucket = deployer::artifacts::bucket_name(&plan, env.account.as_deref());
    let opts = TeardownOptions {
        delete_data: args.delete_data,
        confirm: plan.kind == EnvKind::Aws,
        poll_interval: deployer::deploy::poll_interval(&plan),
        wait_timeout: args.wait.duration(),
    };
    let outcome = deployer::teardown::teardown(&env.clients, &plan, &bucket, &opts, ui.as_ref())
        .await
        .with_context(|| format!("tearing down stack `{}`", plan.stack_name))?;
    if plan.kind == EnvKind::Local {
        let stopped = local_engine::endpoint::Endpoint::stop_background(&state_dir(&plan)).await;
        if let Stopped::Stale { .. } = stopped {
            eprintln!("local AWS endpoint: {stopped}");
        }
        // The local events are gone with the endpoint: so is the record of the schemas they were written with.
        let _ = std::fs::remove_file(deployer::domain_guard::local_copy(&state_dir(&plan)));
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        OutputFormat::Text => print!("{outcome}"),
    }
    Ok(ExitStatus::Success)
}

/// Stops the local function host, gateway and poller (the local engine's `serve` module owns this).
async fn stop_local_engine(plan: &stack::Plan) -> anyhow::Result<()> {
    crate::serve::stop_background(plan).await.map(|_| ())
}
