//! `cargo xtask drift` (`deployer::drift`) against recorded CloudFormation exchanges (`StaticReplayClient`).
//!
//! The local endpoint (moto) does not implement drift detection (`DetectStackDrift`,
//! `DescribeStackDriftDetectionStatus`, `DescribeStackResourceDrifts`), so these exchanges could not be
//! recorded from it: the answers are written in the query protocol's XML with the element names of the SDK's
//! own model (the deserializers of `aws-sdk-cloudformation`), values as CloudFormation documents them (JSON
//! Pointer property paths, JSON-encoded values, `ADD`/`REMOVE`/`NOT_EQUAL`). The SDK parses every answer, so
//! an element it does not know would be lost and the assertions below would fail.
//!
//! Covered: a stack in sync, a drifted one (a modified property and a deleted resource, over two pages), a
//! detection that failed for part of the stack, a stack that does not exist, and a detection still running at
//! the deadline. Each test asserts the exact requests sent, in order, and what is reported.

use std::path::PathBuf;
use std::time::Duration;

use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use deployer::drift::{Detection, DriftReport, DriftedResource, PropertyDifference};
use deployer::stackops::Polling;
use deployer::ui::{Confirmation, RecordingUi};

#[allow(dead_code)] // the stack and event answers are the other replay tests'.
mod recorded;

use recorded::{STACK, error_body, ok_body as ok};

const URI: &str = "https://cloudformation.eu-west-1.amazonaws.com/";
const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:111111111111:stack/cqrs-dev/4e5f0a10-d0b1-11f0-9c2e-0a1b2c3d4e5f";
const DETECTION: &str = "b78ac9b0-dec1-11f0-a451-50a68a3a2a5b";

/// One exchange: the form-encoded request the SDK must send, and the recorded answer.
fn exchange(request_body: String, status: u16, response_body: String) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::builder()
            .method("POST")
            .uri(URI)
            .body(SdkBody::from(request_body))
            .unwrap(),
        http::Response::builder()
            .status(status)
            .header("content-type", "text/xml")
            .body(SdkBody::from(response_body))
            .unwrap(),
    )
}

fn detect() -> ReplayEvent {
    exchange(
        format!("Action=DetectStackDrift&Version=2010-05-15&StackName={STACK}"),
        200,
        ok(
            "DetectStackDrift",
            &format!("<StackDriftDetectionId>{DETECTION}</StackDriftDetectionId>"),
        ),
    )
}

/// `DescribeStackDriftDetectionStatus` answering `detection` (and, once it ended, the stack's drift status,
/// the drifted resource count and the reason CloudFormation gives).
fn status(detection: &str, stack: Option<(&str, u32)>, reason: Option<&str>) -> ReplayEvent {
    let drift = stack
        .map(|(s, n)| {
            format!(
                "<StackDriftStatus>{s}</StackDriftStatus><DriftedStackResourceCount>{n}</DriftedStackResourceCount>"
            )
        })
        .unwrap_or_default();
    let reason = reason
        .map(|r| format!("<DetectionStatusReason>{r}</DetectionStatusReason>"))
        .unwrap_or_default();
    exchange(
        format!(
            "Action=DescribeStackDriftDetectionStatus&Version=2010-05-15&StackDriftDetectionId={DETECTION}"
        ),
        200,
        ok(
            "DescribeStackDriftDetectionStatus",
            &format!(
                "<StackId>{STACK_ID}</StackId><StackDriftDetectionId>{DETECTION}</StackDriftDetectionId>{drift}<DetectionStatus>{detection}</DetectionStatus>{reason}<Timestamp>2026-12-03T10:00:07.512Z</Timestamp>"
            ),
        ),
    )
}

/// One page of `DescribeStackResourceDrifts`, asked with the MODIFIED and DELETED filters (and `next_token`
/// for a later page), holding `members` and pointing to `more`.
fn drifts(next_token: Option<&str>, members: &[String], more: Option<&str>) -> ReplayEvent {
    let token = next_token
        .map(|t| format!("&NextToken={t}"))
        .unwrap_or_default();
    let more = more
        .map(|t| format!("<NextToken>{t}</NextToken>"))
        .unwrap_or_default();
    exchange(
        format!(
            "Action=DescribeStackResourceDrifts&Version=2010-05-15&StackName={STACK}\
             &StackResourceDriftStatusFilters.member.1=MODIFIED&StackResourceDriftStatusFilters.member.2=DELETED{token}"
        ),
        200,
        ok(
            "DescribeStackResourceDrifts",
            &format!(
                "<StackResourceDrifts>{}</StackResourceDrifts>{more}",
                members.concat()
            ),
        ),
    )
}

/// A `StackResourceDrift` member: (path, expected, actual, difference type) per property difference.
fn resource(
    logical: &str,
    physical: &str,
    kind: &str,
    status: &str,
    expected: &str,
    actual: Option<&str>,
    differences: &[(&str, &str, &str, &str)],
) -> String {
    let actual = actual
        .map(|a| format!("<ActualProperties>{}</ActualProperties>", xml(a)))
        .unwrap_or_default();
    let differences = if differences.is_empty() {
        String::new()
    } else {
        let members: String = differences
            .iter()
            .map(|(path, e, a, t)| {
                format!(
                    "<member><PropertyPath>{path}</PropertyPath><ExpectedValue>{}</ExpectedValue><ActualValue>{}</ActualValue><DifferenceType>{t}</DifferenceType></member>",
                    xml(e),
                    xml(a)
                )
            })
            .collect();
        format!("<PropertyDifferences>{members}</PropertyDifferences>")
    };
    format!(
        "<member><StackId>{STACK_ID}</StackId><LogicalResourceId>{logical}</LogicalResourceId><PhysicalResourceId>{physical}</PhysicalResourceId><ResourceType>{kind}</ResourceType><ExpectedProperties>{}</ExpectedProperties>{actual}{differences}<StackResourceDriftStatus>{status}</StackResourceDriftStatus><Timestamp>2026-12-03T10:00:06.120Z</Timestamp></member>",
        xml(expected)
    )
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn plan() -> stack::Plan {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    stack::config::load(&dir, "dev").expect("config/dev.yaml loads")
}

fn poll(timeout: Duration) -> Polling {
    Polling {
        interval: Duration::from_millis(1),
        timeout,
    }
}

async fn run(
    replay: &StaticReplayClient,
    timeout: Duration,
) -> (deployer::Result<DriftReport>, String) {
    let sdk = recorded::sdk_config(replay, "eu-west-1").await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let ui = RecordingUi::new(Confirmation::No);
    let result = deployer::drift::detect(&cfn, &plan(), poll(timeout), &ui).await;
    (result, ui.text())
}

const STARTED: &str = "detecting drift of stack `cqrs-dev`: CloudFormation reads each resource and compares it with the template (a minute or so)";

#[tokio::test]
async fn a_stack_in_sync_reports_nothing_changed() {
    let replay = StaticReplayClient::new(vec![
        detect(),
        status("DETECTION_IN_PROGRESS", None, None),
        status("DETECTION_COMPLETE", Some(("IN_SYNC", 0)), None),
        drifts(None, &[], None),
    ]);
    let (result, printed) = run(&replay, Duration::from_secs(60)).await;
    replay.assert_requests_match(&[]);
    assert_eq!(replay.actual_requests().count(), 4);
    assert_eq!(printed, STARTED);
    let report = result.expect("in sync");
    assert_eq!(
        report,
        DriftReport {
            env: "dev".into(),
            stack_name: STACK.into(),
            region: "eu-west-1".into(),
            detection_id: DETECTION.into(),
            detection: Detection::Complete,
            detection_reason: None,
            stack_drift_status: "IN_SYNC".into(),
            checked_at: Some("2026-12-03T10:00:07.512Z".into()),
            resources: vec![],
        }
    );
    assert!(!report.drifted());
    assert_eq!(
        report.to_string(),
        format!(
            "stack `cqrs-dev` (dev) is in sync with its template: nothing changed outside the pipeline, checked 2026-12-03T10:00:07.512Z\n\
             drift detection {DETECTION} (region eu-west-1)\n"
        )
    );
}

#[tokio::test]
async fn a_modified_property_and_a_deleted_resource_are_reported_from_every_page() {
    let function = resource(
        "CommandFunction",
        "cqrs-dev-command",
        "AWS::Lambda::Function",
        "MODIFIED",
        r#"{"FunctionName":"cqrs-dev-command","MemorySize":256,"Environment":{"Variables":{"RUST_LOG":"info"}}}"#,
        Some(
            r#"{"FunctionName":"cqrs-dev-command","MemorySize":1024,"Environment":{"Variables":{"RUST_LOG":"debug"}}}"#,
        ),
        &[
            ("/MemorySize", "256", "1024", "NOT_EQUAL"),
            (
                "/Environment/Variables/RUST_LOG",
                "info",
                "debug",
                "NOT_EQUAL",
            ),
        ],
    );
    let queue = resource(
        "ProjectorDeadLetterQueue",
        "https://sqs.eu-west-1.amazonaws.com/111111111111/cqrs-dev-projector-dlq",
        "AWS::SQS::Queue",
        "DELETED",
        r#"{"QueueName":"cqrs-dev-projector-dlq","MessageRetentionPeriod":1209600}"#,
        None,
        &[],
    );
    let replay = StaticReplayClient::new(vec![
        detect(),
        status("DETECTION_IN_PROGRESS", None, None),
        status("DETECTION_IN_PROGRESS", None, None),
        status("DETECTION_COMPLETE", Some(("DRIFTED", 2)), None),
        // The queue on the first page, the function on the second: the report orders by logical id.
        drifts(None, &[queue], Some("page-2")),
        drifts(Some("page-2"), &[function], None),
    ]);
    let (result, _) = run(&replay, Duration::from_secs(60)).await;
    replay.assert_requests_match(&[]);
    assert_eq!(replay.actual_requests().count(), 6);
    let report = result.expect("drift is a report, not an error");
    assert!(report.drifted());
    assert_eq!(report.detection, Detection::Complete);
    assert_eq!(report.stack_drift_status, "DRIFTED");
    assert_eq!(
        report.resources,
        vec![
            DriftedResource {
                logical_id: "CommandFunction".into(),
                physical_id: Some("cqrs-dev-command".into()),
                resource_type: "AWS::Lambda::Function".into(),
                status: "MODIFIED".into(),
                differences: vec![
                    PropertyDifference {
                        path: "/MemorySize".into(),
                        expected: "256".into(),
                        actual: "1024".into(),
                        difference: "NOT_EQUAL".into(),
                    },
                    PropertyDifference {
                        path: "/Environment/Variables/RUST_LOG".into(),
                        expected: "info".into(),
                        actual: "debug".into(),
                        difference: "NOT_EQUAL".into(),
                    },
                ],
            },
            DriftedResource {
                logical_id: "ProjectorDeadLetterQueue".into(),
                physical_id: Some(
                    "https://sqs.eu-west-1.amazonaws.com/111111111111/cqrs-dev-projector-dlq"
                        .into()
                ),
                resource_type: "AWS::SQS::Queue".into(),
                status: "DELETED".into(),
                differences: vec![],
            },
        ]
    );
    assert_eq!(
        report.to_string(),
        format!(
            "stack `cqrs-dev` (dev) has drifted: 2 resources changed outside the pipeline, checked 2026-12-03T10:00:07.512Z\n  \
             ~ CommandFunction (AWS::Lambda::Function) MODIFIED `cqrs-dev-command`\n      \
             /MemorySize: expected 256, actual 1024 (NOT_EQUAL)\n      \
             /Environment/Variables/RUST_LOG: expected info, actual debug (NOT_EQUAL)\n  \
             - ProjectorDeadLetterQueue (AWS::SQS::Queue) DELETED: `https://sqs.eu-west-1.amazonaws.com/111111111111/cqrs-dev-projector-dlq` no longer exists\n\
             a deploy does not undo this (CloudFormation updates only what the template changes): change it back by hand, or make the config say what you want and run `cargo xtask deploy --env dev`\n\
             drift detection {DETECTION} (region eu-west-1)\n"
        )
    );
    // `--output json`: the same facts, for CI.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["detection"], "complete");
    assert_eq!(
        json["resources"][0]["differences"][0]["path"],
        "/MemorySize"
    );
    assert_eq!(json["resources"][1]["status"], "DELETED");
}

#[tokio::test]
async fn a_failed_detection_reports_its_reason_and_the_drift_of_what_was_checked() {
    let reason = "Failed to detect drift on resource [CommandRole]: User: arn:aws:sts::111111111111:assumed-role/cqrs-deploy-dev/xtask is not authorized to perform: iam:GetRole on resource: role cqrs-dev-command";
    let table = resource(
        "EventsTable",
        "cqrs-dev-events",
        "AWS::DynamoDB::Table",
        "MODIFIED",
        r#"{"TableName":"cqrs-dev-events","BillingMode":"PAY_PER_REQUEST"}"#,
        Some(
            r#"{"TableName":"cqrs-dev-events","BillingMode":"PAY_PER_REQUEST","DeletionProtectionEnabled":true}"#,
        ),
        &[("/DeletionProtectionEnabled", "", "true", "ADD")],
    );
    let replay = StaticReplayClient::new(vec![
        detect(),
        status("DETECTION_FAILED", Some(("DRIFTED", 1)), Some(reason)),
        drifts(None, &[table], None),
    ]);
    let (result, _) = run(&replay, Duration::from_secs(60)).await;
    replay.assert_requests_match(&[]);
    let report = result.expect("a partial result is still reported");
    assert_eq!(report.detection, Detection::Failed);
    assert_eq!(report.detection_reason.as_deref(), Some(reason));
    assert_eq!(report.resources.len(), 1);
    let text = report.to_string();
    assert!(
        text.starts_with(
            "stack `cqrs-dev` (dev) has drifted: 1 resource changed outside the pipeline, checked 2026-12-03T10:00:07.512Z\n  \
             ~ EventsTable (AWS::DynamoDB::Table) MODIFIED `cqrs-dev-events`\n      \
             /DeletionProtectionEnabled: expected (none), actual true (ADD)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\ndrift detection failed for part of the stack: {reason}\n"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_stack_that_does_not_exist_is_an_error_that_says_so() {
    let replay = StaticReplayClient::new(vec![exchange(
        format!("Action=DetectStackDrift&Version=2010-05-15&StackName={STACK}"),
        400,
        error_body("ValidationError", "Stack with id cqrs-dev does not exist"),
    )]);
    let (result, printed) = run(&replay, Duration::from_secs(60)).await;
    replay.assert_requests_match(&[]);
    assert_eq!(
        replay.actual_requests().count(),
        1,
        "nothing after the refusal"
    );
    assert_eq!(printed, STARTED);
    let err = result.expect_err("no stack, nothing to compare");
    assert!(
        matches!(err, deployer::Error::Aws { .. }),
        "exit 1: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        "detecting drift of stack `cqrs-dev`: the stack does not exist in eu-west-1: nothing is deployed to compare with its template (`cargo xtask deploy --env dev` creates it)"
    );
}

#[tokio::test]
async fn a_detection_still_running_at_the_deadline_names_its_id_and_how_to_follow_it() {
    // A zero deadline: the first poll that finds the detection running is past it.
    let replay =
        StaticReplayClient::new(vec![detect(), status("DETECTION_IN_PROGRESS", None, None)]);
    let (result, _) = run(&replay, Duration::ZERO).await;
    replay.assert_requests_match(&[]);
    assert_eq!(replay.actual_requests().count(), 2);
    let err = result.expect_err("the deadline passed");
    assert!(
        matches!(err, deployer::Error::StackFailed(_)),
        "exit 1: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "gave up waiting after 0 s (the wait limit; raise it with --wait-timeout): drift detection `{DETECTION}` of stack `cqrs-dev` is still DETECTION_IN_PROGRESS; \
             CloudFormation carries on by itself: follow it with `aws cloudformation describe-stack-drift-detection-status --stack-drift-detection-id {DETECTION} --region eu-west-1`, \
             or run the command again later"
        )
    );
}
