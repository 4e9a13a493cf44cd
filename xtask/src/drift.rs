//! `cargo xtask drift --env <aws env>`: runs CloudFormation's drift detection on the environment's stack
//! (`deployer::drift`) and shows what changed outside the pipeline. A local environment is refused with the
//! reason: its endpoint (moto) does not implement drift detection.

use std::sync::Arc;

use anyhow::Context as _;
use deployer::drift::{Detection, DriftReport};
use deployer::stackops::Polling;
use deployer::ui::ConsoleUi;
use stack::EnvKind;

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{InvalidInput, connect, load, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask drift`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Exit with 5 instead of 0 when something changed outside the pipeline.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub wait: crate::cli::WaitArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(drift(args).await)
}

async fn drift(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    if plan.kind == EnvKind::Local {
        anyhow::bail!(InvalidInput(format!(
            "`{}` is a local environment: drift detection needs CloudFormation on AWS, and the local endpoint (moto) does not implement it; \
             locally every change goes through `cargo xtask deploy` or `dev`, and `cargo xtask status` shows code swapped in by a hotswap. \
             Run it for an AWS environment: `cargo xtask drift --env dev`",
            plan.env
        )));
    }
    let env = connect(&plan, None).await?;
    let poll = Polling {
        interval: std::time::Duration::from_secs(2),
        timeout: args.wait.duration(),
    };
    let ui = Arc::new(ConsoleUi::new(false));
    let report = deployer::drift::detect(&env.clients.cfn, &plan, poll, ui.as_ref())
        .await
        .with_context(|| match &env.endpoint_override {
            // moto, say: it answers CloudFormation but has no drift detection.
            Some(url) => format!(
                "detecting drift of `{}` through the overridden AWS endpoint {url} (AWS_ENDPOINT_URL or a profile's endpoint_url); emulators such as moto do not implement drift detection",
                plan.env
            ),
            None => format!("detecting drift of `{}`", plan.env),
        })?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{report}"),
    }
    Ok(exit_status(&report, args.detailed_exitcode))
}

/// 1 when CloudFormation could not check every resource (the answer is incomplete, whatever it found); 5 for
/// drift with `--detailed-exitcode`; otherwise 0.
pub(crate) fn exit_status(report: &DriftReport, detailed_exitcode: bool) -> ExitStatus {
    if report.detection == Detection::Failed {
        ExitStatus::Failed
    } else if report.drifted() && detailed_exitcode {
        ExitStatus::Drifted
    } else {
        ExitStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deployer::drift::DriftedResource;

    fn report(detection: Detection, drifted: bool) -> DriftReport {
        DriftReport {
            env: "dev".into(),
            stack_name: "cqrs-dev".into(),
            region: "eu-west-1".into(),
            detection_id: "d".into(),
            detection,
            detection_reason: None,
            stack_drift_status: if drifted { "DRIFTED" } else { "IN_SYNC" }.into(),
            checked_at: None,
            resources: if drifted {
                vec![DriftedResource {
                    logical_id: "EventsTable".into(),
                    physical_id: None,
                    resource_type: "AWS::DynamoDB::Table".into(),
                    status: "DELETED".into(),
                    differences: Vec::new(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn drift_exits_5_only_with_detailed_exitcode_and_a_failed_detection_exits_1() {
        use ExitStatus::*;
        let cases = [
            (Detection::Complete, false, false, Success),
            (Detection::Complete, false, true, Success),
            (Detection::Complete, true, false, Success),
            (Detection::Complete, true, true, Drifted),
            (Detection::Failed, false, false, Failed),
            (Detection::Failed, true, true, Failed),
        ];
        for (detection, drifted, detailed, want) in cases {
            assert_eq!(
                exit_status(&report(detection, drifted), detailed),
                want,
                "{detection:?} drifted={drifted} --detailed-exitcode={detailed}"
            );
        }
        assert_eq!(Drifted.code(), 5);
    }

    #[tokio::test]
    async fn a_local_environment_is_refused_as_invalid_input_before_anything_is_contacted() {
        let args = Args {
            env: EnvArgs {
                env: "local".into(),
                config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config"),
            },
            output: OutputFormat::Text,
            detailed_exitcode: true,
            wait: crate::cli::WaitArgs { wait_timeout: 1 },
        };
        let err = drift(args).await.expect_err("local has no drift detection");
        assert_eq!(
            crate::deploy::exit_status_of(&err),
            ExitStatus::InvalidInput
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("`local` is a local environment: drift detection needs CloudFormation on AWS, and the local endpoint (moto) does not implement it"),
            "{msg}"
        );
        assert!(msg.ends_with("`cargo xtask drift --env dev`"), "{msg}");
    }
}
