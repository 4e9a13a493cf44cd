//! `cargo xtask diff`: what a deploy would change (a change set, previewed and then deleted) and whether it
//! would pass the data-loss guard.

use std::sync::Arc;

use deployer::deploy::{DeployOptions, DeployRequest};
use deployer::ui::ConsoleUi;

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{connect_and_build, load, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(diff(args).await)
}

async fn diff(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, template) = load(&args.env)?;
    let (env, release) = connect_and_build(
        &crate::cli::repo_root(),
        &plan,
        &template,
        Arc::new(ConsoleUi::new(false)),
        None,
    )
    .await?;
    let bucket = deployer::artifacts::bucket_name(&plan, env.account.as_deref());
    let req = DeployRequest {
        plan: &plan,
        template_body: &template.body,
        release: &release,
        bucket: &bucket,
    };
    let preview =
        deployer::deploy::diff(&env.clients, req, &DeployOptions::for_plan(&plan)).await?;
    let risks = preview.data_loss_risks();
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({ "preview": preview, "data_loss_risks": risks })
        ),
        OutputFormat::Text => {
            println!("stack `{}` ({}):", plan.stack_name, plan.env);
            print!("{preview}");
            for r in &risks {
                println!("data-loss risk (deploy needs --allow-data-loss): {r}");
            }
        }
    }
    Ok(ExitStatus::Success)
}
