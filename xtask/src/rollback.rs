//! `cargo xtask rollback --env <aws env>`: puts the previous release live again by moving each function's `live`
//! alias back to the versions the release history recorded before the current ones (`deployer::rollback`), and
//! records the rollback in that history. A local environment has no aliases (the local engine serves the deployed
//! release itself), so it is refused with what to do instead.

use anyhow::Context as _;
use stack::EnvKind;

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{InvalidInput, connect, load, lock_env, refuse_placeholders, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(rollback(args).await)
}

async fn rollback(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    if plan.kind == EnvKind::Local {
        anyhow::bail!(InvalidInput(format!(
            "`{}` is a local environment: its engine serves the deployed release directly and has no `live` alias to move; deploy the release you want (`cargo xtask deploy`)",
            plan.env
        )));
    }
    refuse_placeholders(&plan)?;
    let lock = lock_env(&plan, args.lock).await?;
    let env = connect(&plan, Some(&lock)).await?;
    let bucket = deployer::artifacts::bucket_name(&plan, env.account.as_deref());
    let outcome = deployer::rollback::rollback(&env.clients, &plan, &bucket)
        .await
        .with_context(|| format!("rolling back `{}`", plan.env))?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        OutputFormat::Text => print!("{outcome}"),
    }
    Ok(ExitStatus::Success)
}
