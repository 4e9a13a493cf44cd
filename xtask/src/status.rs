//! `cargo xtask status`: the deployed stack (status, last update, release digest from its parameters) next to
//! the local build, and the stack's outputs and API endpoint.

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{connect, load, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(status(args).await)
}

async fn status(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    let env = connect(&plan).await?;
    let target = deployer::build::default_target_dir(&crate::cli::repo_root());
    let local = deployer::build::load_local_manifest(&target, &plan.env);
    let mut report = deployer::status::status(&env.clients, &plan, local.as_ref()).await?;
    if let (Some(local), Some(_)) = (&plan.local, &report.status) {
        report.api_url = Some(format!("http://127.0.0.1:{}", local.gateway_port));
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{report}"),
    }
    Ok(ExitStatus::Success)
}
