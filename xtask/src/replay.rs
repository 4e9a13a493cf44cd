//! `cargo xtask replay`: rebuilds read models from the event log of an environment (every aggregate or one),
//! through the `deployer::replay` library. Safe while traffic continues; see that module for why.

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{connect, load, report_errors};
use crate::exit::ExitStatus;
use deployer::ui::ConsoleUi;

/// Arguments of `cargo xtask replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Replay only this aggregate (default: every aggregate of the events table).
    #[arg(long, conflicts_with = "projection")]
    pub aggregate: Option<String>,
    /// Rebuild one named projection: `read_models` (each aggregate's state, the default) or one of the
    /// domain's views. A view is rebuilt at its newest declared version beside the live one, and reads
    /// switch to it only when every aggregate folded.
    #[arg(long)]
    pub projection: Option<String>,
    /// Parallel Scan segments used to list the aggregates.
    #[arg(long, default_value_t = deployer::replay::DEFAULT_SEGMENTS, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub segments: i32,
    /// Aggregates replayed at the same time.
    #[arg(long, default_value_t = deployer::replay::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Also rewrite read models that are at the replayed version but hold another state (repairs a read
    /// model left wrong by a projector bug). Each rewrite is conditional on the read model just read, so it
    /// is safe while traffic continues.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// With --force: refuse (exit 3) instead of waiting while another command changes the environment.
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

/// Exit 0 when every aggregate replayed (or was already current), 1 when some events could not be applied
/// (they are listed; the other aggregates were still replayed).
pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(replay(args).await)
}

async fn replay(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    // A forced replay rewrites read models: it changes the environment, so it waits for (or refuses, with
    // --no-wait) a deploy or teardown in progress. A plain replay only fills gaps, safely beside anything.
    let lock = match args.force {
        true => Some(crate::deploy::lock_env(&plan, args.lock).await?),
        false => None,
    };
    let env = connect(&plan, lock.as_ref()).await?;
    let ui = ConsoleUi::new(true);
    if let Some(name) = args.projection.as_deref().filter(|p| *p != READ_MODELS) {
        return replay_view(&plan, &env, name, &args, &ui).await;
    }
    let request = deployer::replay::ReplayRequest {
        events_table: plan.events_table.table_name.clone(),
        projections_table: plan.projections_table.table_name.clone(),
        aggregate: args.aggregate.clone(),
        segments: args.segments,
        concurrency: args.concurrency,
        force: args.force,
    };
    // The console UI hides its progress bar when stderr is not a terminal.
    let outcome = deployer::replay::replay(&env.clients.dynamodb, &request, &ui).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        OutputFormat::Text => print!("{outcome}"),
    }
    Ok(if outcome.failures.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// The `--projection` name of the per-aggregate read models.
const READ_MODELS: &str = "read_models";

/// `replay --projection <view>`: rebuilds the view at its newest declared version and switches reads to it.
async fn replay_view(
    plan: &stack::Plan,
    env: &crate::deploy::Connected,
    name: &str,
    args: &Args,
    ui: &ConsoleUi,
) -> anyhow::Result<ExitStatus> {
    let registry = domain::registry();
    let Some(view) = registry.view(name) else {
        let mut known: Vec<String> = registry.views().into_iter().map(|v| v.name).collect();
        known.insert(0, READ_MODELS.to_string());
        return Err(crate::deploy::InvalidInput(format!(
            "`--projection {name}` names no projection of this build's domain; known: {}",
            known.join(", ")
        ))
        .into());
    };
    let Some(views_table) = &plan.views_table else {
        anyhow::bail!(
            "the plan has no views table although the domain declares views; deploy first"
        );
    };
    let tables = deployer::views::ViewTables {
        events_table: plan.events_table.table_name.clone(),
        projections_table: plan.projections_table.table_name.clone(),
        views_table: views_table.table_name.clone(),
    };
    let outcome = deployer::views::rebuild(
        &env.clients.dynamodb,
        &tables,
        &view,
        view.target(),
        args.concurrency,
        ui,
    )
    .await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        OutputFormat::Text => print!("{outcome}"),
    }
    Ok(if outcome.switched {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}
