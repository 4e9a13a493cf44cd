//! `cargo xtask status`: the deployed stack (status, last update, release digest from its parameters) next to
//! the local build, and the stack's outputs and API endpoint; what serves each function (the `live` alias on
//! AWS, the running engine's binaries locally, with the split during a traffic shift).

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{connect_if_running, load, report_errors};
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
    let root = crate::cli::repo_root();
    let target = deployer::build::default_target_dir(&root);
    let local = deployer::build::load_local_manifest(&target, &root, &plan.env);
    // Locally, no endpoint of ours running means nothing is deployed: say so instead of starting one.
    let Some(env) = connect_if_running(&plan).await? else {
        eprintln!(
            "the local AWS endpoint of `{}` is not running (`cargo xtask deploy` starts it)",
            plan.env
        );
        let report = deployer::status::StatusReport {
            env: plan.env.clone(),
            stack_name: plan.stack_name.clone(),
            status: None,
            last_updated: None,
            deployed_digest: None,
            deployed_code_keys: Default::default(),
            local_digest: local.as_ref().map(|m| m.digest()),
            in_sync: None,
            outputs: Default::default(),
            api: None,
            api_url: None,
            drift: None,
            live: Default::default(),
            live_source: None,
            history: Vec::new(),
        };
        match args.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => print!("{report}"),
        }
        return Ok(ExitStatus::Success);
    };
    let mut report = deployer::status::status(&env.clients, &plan, local.as_ref()).await?;
    if let (Some(local), Some(_)) = (&plan.local, &report.status) {
        report.api_url = Some(format!("http://127.0.0.1:{}", local.gateway_port));
        engine_serving(&plan, &mut report).await;
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{report}"),
    }
    Ok(ExitStatus::Success)
}

/// Locally, what the running engine serves of each function, with the split while a deploy's traffic shift runs
/// (`local_engine::canary`). Nothing when no engine answers.
async fn engine_serving(plan: &stack::Plan, report: &mut deployer::status::StatusReport) {
    let state_dir = local_engine::state::state_dir(&plan.env);
    let Ok(serving) = local_engine::control::request_serving(&state_dir).await else {
        return;
    };
    let short = |sha: &str| format!("sha256:{}", &sha[..sha.len().min(12)]);
    report.live = serving
        .into_iter()
        .map(|(name, s)| {
            let additional = s
                .canary
                .map(|(sha, percent)| (short(&sha), f64::from(percent) / 100.0));
            let alias = deployer::rollback::LiveAlias {
                version: short(&s.binary_sha256),
                additional,
            };
            (name, alias)
        })
        .collect();
    report.live_source =
        Some("the local engine's binaries; a canary during a deploy's traffic shift".into());
}
