//! Failure paths the local endpoint cannot produce, replayed from recorded CloudFormation HTTP exchanges
//! (`StaticReplayClient`): per-resource failures reported root cause first, a rolled-back first create that is
//! retried only for a transient cause, `UPDATE_ROLLBACK_FAILED` with its recovery command, throttling retried by the SDK, a
//! canary that CodeDeploy stops and rolls back (moto has no CodeDeploy), and a change set that would replace the events
//! table refused. Each test asserts the exact requests sent and what
//! was printed.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::ChangeSetType;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use deployer::aws::Clients;
use deployer::deploy::{AfterFailure, DeployOptions};
use deployer::preview::Preview;
use deployer::stackops::{self, ChangeSetInput};
use deployer::ui::{Confirmation, RecordingUi};

mod recorded;

use recorded::{STACK, ok_body as ok};

const URI: &str = "https://cloudformation.us-east-1.amazonaws.com/";
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:111111111111:stack/cqrs-dev/1";
const CS_ID: &str = "arn:aws:cloudformation:us-east-1:111111111111:changeSet/xtask-1/2";

/// One recorded exchange: the form-encoded request body we expect, and the response.
fn exchange(request_body: &str, status: u16, response_body: String) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::builder()
            .method("POST")
            .uri(URI)
            .body(SdkBody::from(request_body.to_string()))
            .unwrap(),
        http::Response::builder()
            .status(status)
            .header("content-type", "text/xml")
            .body(SdkBody::from(response_body))
            .unwrap(),
    )
}

fn stacks(status: &str) -> String {
    recorded::stacks_body(STACK_ID, status)
}

/// Events, newest first as the API lists them: (id, logical id, type, status, reason).
fn events(list: &[(&str, &str, &str, &str, &str)]) -> String {
    recorded::events_body(STACK_ID, list, |id| id.len() % 10)
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

fn describe_stacks_req(name: &str) -> String {
    format!(
        "Action=DescribeStacks&Version=2010-05-15&StackName={}",
        enc(name)
    )
}

fn events_req() -> String {
    format!(
        "Action=DescribeStackEvents&Version=2010-05-15&StackName={}",
        enc(STACK_ID)
    )
}

async fn clients(replay: &StaticReplayClient) -> Clients {
    Clients::from_sdk_config(&recorded::sdk_config(replay, "us-east-1").await)
}

fn opts() -> DeployOptions {
    DeployOptions {
        allow_data_loss: false,
        confirm: false,
        poll_interval: Duration::from_millis(1),
        wait_timeout: Duration::from_secs(60),
        apply_with_stack_calls: false,
        read_back_api: false,
    }
}

fn input(params: &BTreeMap<String, String>, kind: ChangeSetType) -> ChangeSetInput<'_> {
    ChangeSetInput {
        stack: STACK,
        name: "xtask-1".into(),
        kind,
        template_body: "Resources: {}\n",
        parameters: params,
        tags: params,
        imports: vec![],
    }
}

fn change_set(kind: ChangeSetType) -> stackops::ChangeSet {
    stackops::ChangeSet {
        name: "xtask-1".into(),
        id: CS_ID.into(),
        kind,
        changes: vec![],
        empty: false,
    }
}

/// The stack id exchange `execute` starts with, then the initial (already seen) event page.
fn execute_prelude(status_before: &str) -> Vec<ReplayEvent> {
    vec![
        exchange(&describe_stacks_req(STACK), 200, stacks(status_before)),
        exchange(
            &events_req(),
            200,
            events(&[(
                "e0",
                STACK,
                "AWS::CloudFormation::Stack",
                status_before,
                "User Initiated",
            )]),
        ),
        exchange(
            &format!(
                "Action=ExecuteChangeSet&Version=2010-05-15&ChangeSetName={}&StackName={STACK}",
                enc(CS_ID)
            ),
            200,
            ok("ExecuteChangeSet", ""),
        ),
    ]
}

#[tokio::test]
async fn a_failed_create_reports_the_root_cause_first_and_is_retried_only_for_a_transient_cause() {
    let mut recorded = execute_prelude("REVIEW_IN_PROGRESS");
    recorded.extend([
        exchange(
            &describe_stacks_req(STACK_ID),
            200,
            stacks("ROLLBACK_IN_PROGRESS"),
        ),
        exchange(
            &events_req(),
            200,
            events(&[
                (
                    "e5",
                    "CommandFunction",
                    "AWS::Lambda::Function",
                    "CREATE_FAILED",
                    "Resource creation cancelled",
                ),
                (
                    "e4",
                    "EventsTable",
                    "AWS::DynamoDB::Table",
                    "CREATE_FAILED",
                    "Table already exists: cqrs-dev-events",
                ),
                (
                    "e3",
                    "CommandFunction",
                    "AWS::Lambda::Function",
                    "CREATE_IN_PROGRESS",
                    "",
                ),
                (
                    "e2",
                    "EventsTable",
                    "AWS::DynamoDB::Table",
                    "CREATE_IN_PROGRESS",
                    "",
                ),
                (
                    "e0",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    "REVIEW_IN_PROGRESS",
                    "User Initiated",
                ),
            ]),
        ),
        exchange(
            &describe_stacks_req(STACK_ID),
            200,
            stacks("ROLLBACK_COMPLETE"),
        ),
        exchange(
            &events_req(),
            200,
            events(&[
                (
                    "e6",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    "ROLLBACK_COMPLETE",
                    "",
                ),
                (
                    "e5",
                    "CommandFunction",
                    "AWS::Lambda::Function",
                    "CREATE_FAILED",
                    "Resource creation cancelled",
                ),
            ]),
        ),
    ]);
    let replay = StaticReplayClient::new(recorded);
    let clients = clients(&replay).await;
    let ui = RecordingUi::new(Confirmation::Yes);
    let no_params = BTreeMap::new();
    let (status, events, stack_id) = deployer::deploy::execute(
        &clients.cfn,
        &input(&no_params, ChangeSetType::Create),
        &change_set(ChangeSetType::Create),
        true,
        &opts(),
        &ui,
    )
    .await
    .unwrap();
    assert_eq!(status, "ROLLBACK_COMPLETE");
    assert_eq!(stack_id, STACK_ID);
    replay.assert_requests_match(&[]);

    // Each event was printed once, oldest first.
    let printed = ui.text();
    let table_failed = printed.find("EventsTable").unwrap();
    assert!(
        printed.find("ROLLBACK_COMPLETE").unwrap() > table_failed,
        "{printed}"
    );
    assert_eq!(
        printed.matches("Resource creation cancelled").count(),
        1,
        "{printed}"
    );

    // A name already taken fails the same way again: not retried, and the report leads with the root cause.
    let AfterFailure::Fail(err) =
        deployer::deploy::after_failure(STACK, "us-east-1", "dev", &status, &events, true, 1)
    else {
        panic!("a create that failed for good is not retried")
    };
    let report = err.to_string();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "stack `cqrs-dev` ended in ROLLBACK_COMPLETE");
    assert_eq!(
        lines[1],
        "root cause: EventsTable (AWS::DynamoDB::Table) CREATE_FAILED: Table already exists: cqrs-dev-events"
    );
    assert_eq!(lines[2], "then:");
    assert!(
        lines[3].contains("CommandFunction") && lines[3].contains("Resource creation cancelled"),
        "{report}"
    );
    assert_eq!(
        lines[4],
        "the cause is not transient, so it was not retried: fix the cause, then run `cargo xtask deploy --env dev` again (it deletes the empty stack left in ROLLBACK_COMPLETE and creates it anew)"
    );

    // The same rollback caused by throttling is retried once, and only once.
    let throttled: Vec<stackops::EventLine> = events
        .iter()
        .cloned()
        .map(|mut e| {
            if e.logical_id == "EventsTable" && e.status == "CREATE_FAILED" {
                e.reason = Some("Rate exceeded (Service: DynamoDb, Status Code: 400)".into());
            }
            e
        })
        .collect();
    let AfterFailure::RetryCreate(report) =
        deployer::deploy::after_failure(STACK, "us-east-1", "dev", &status, &throttled, true, 1)
    else {
        panic!("a throttled first create is retried")
    };
    assert!(
        report.contains(
            "root cause: EventsTable (AWS::DynamoDB::Table) CREATE_FAILED: Rate exceeded"
        ),
        "{report}"
    );
    let AfterFailure::Fail(err) =
        deployer::deploy::after_failure(STACK, "us-east-1", "dev", &status, &throttled, true, 2)
    else {
        panic!("only one retry")
    };
    assert!(
        err.to_string().ends_with("it failed again after one retry: fix the cause, then run `cargo xtask deploy --env dev` again (it deletes the empty stack left in ROLLBACK_COMPLETE and creates it anew)"),
        "{err}"
    );
}

#[tokio::test]
async fn the_rolled_back_stack_is_deleted_before_the_retry() {
    let replay = StaticReplayClient::new(vec![
        exchange(&events_req(), 200, events(&[("e6", STACK, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", "")])),
        exchange(&format!("Action=DeleteStack&Version=2010-05-15&StackName={}", enc(STACK_ID)), 200, "<DeleteStackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteStackResponse>".into()),
        exchange(&describe_stacks_req(STACK_ID), 200, stacks("DELETE_COMPLETE")),
        exchange(&events_req(), 200, events(&[("e7", STACK, "AWS::CloudFormation::Stack", "DELETE_COMPLETE", "")])),
    ]);
    let clients = clients(&replay).await;
    let ui = RecordingUi::new(Confirmation::Yes);
    let polling = stackops::Polling {
        interval: Duration::from_millis(1),
        timeout: Duration::from_secs(60),
    };
    let status = stackops::delete_and_wait(&clients.cfn, STACK_ID, &ui, polling)
        .await
        .unwrap();
    assert_eq!(status, "DELETE_COMPLETE");
    replay.assert_requests_match(&[]);
    assert!(
        ui.text().contains("deleting: DELETE_COMPLETE"),
        "{}",
        ui.text()
    );
}

/// A canary (`deployment.strategy: canary`) whose new version fires its errors alarm: CloudFormation hands the
/// live alias's update to CodeDeploy, which stops the shift and rolls back; the alias update fails and the stack
/// rolls back. The shift is reported as it goes (in progress, stopped, previous version again) and the deploy
/// fails (non-zero exit) saying the previous version serves all traffic. The event sequence and statuses are
/// CloudFormation's for an alias under `CodeDeployLambdaAliasUpdate`; the reason text is illustrative.
#[tokio::test]
async fn a_canary_rolled_back_by_codedeploy_is_reported_as_it_goes_and_fails_the_deploy() {
    let mut recorded = execute_prelude("UPDATE_COMPLETE");
    let reason = "CodeDeploy deployment d-7QZ1X2Y3A failed: the deployment was stopped because alarm cqrs-dev-CommandNewVersionErrorsAlarm-1A2B3C went into ALARM";
    recorded.extend([
        exchange(
            &describe_stacks_req(STACK_ID),
            200,
            stacks("UPDATE_IN_PROGRESS"),
        ),
        exchange(
            &events_req(),
            200,
            events(&[
                (
                    "e12",
                    "CommandLiveAlias",
                    "AWS::Lambda::Alias",
                    "UPDATE_IN_PROGRESS",
                    "",
                ),
                (
                    "e1",
                    "CommandVersion",
                    "AWS::Lambda::Version",
                    "CREATE_COMPLETE",
                    "",
                ),
            ]),
        ),
        exchange(
            &describe_stacks_req(STACK_ID),
            200,
            stacks("UPDATE_ROLLBACK_COMPLETE"),
        ),
        exchange(
            &events_req(),
            200,
            events(&[
                (
                    "e123456",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    "",
                ),
                (
                    "e12345",
                    "CommandLiveAlias",
                    "AWS::Lambda::Alias",
                    "UPDATE_COMPLETE",
                    "",
                ),
                (
                    "e1234",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_IN_PROGRESS",
                    "The following resource(s) failed to update: [CommandLiveAlias].",
                ),
                (
                    "e123",
                    "CommandLiveAlias",
                    "AWS::Lambda::Alias",
                    "UPDATE_FAILED",
                    reason,
                ),
                (
                    "e12",
                    "CommandLiveAlias",
                    "AWS::Lambda::Alias",
                    "UPDATE_IN_PROGRESS",
                    "",
                ),
                (
                    "e1",
                    "CommandVersion",
                    "AWS::Lambda::Version",
                    "CREATE_COMPLETE",
                    "",
                ),
            ]),
        ),
    ]);
    let replay = StaticReplayClient::new(recorded);
    let clients = clients(&replay).await;
    let ui = RecordingUi::new(Confirmation::Yes);
    let no_params = BTreeMap::new();
    let (status, events, _) = deployer::deploy::execute(
        &clients.cfn,
        &input(&no_params, ChangeSetType::Update),
        &change_set(ChangeSetType::Update),
        false,
        &opts(),
        &ui,
    )
    .await
    .unwrap();
    replay.assert_requests_match(&[]);
    assert_eq!(status, "UPDATE_ROLLBACK_COMPLETE");
    let shift: Vec<String> = ui
        .lines()
        .into_iter()
        .filter(|l| l.contains("traffic shift:"))
        .collect();
    assert_eq!(
        shift,
        [
            "  traffic shift: Command is moving to its new version (with a canary or linear deployment, CodeDeploy shifts it step by step and watches its alarms)",
            "  traffic shift: Command stopped and rolled back to its previous version",
            "  traffic shift: Command serves its previous version again",
        ],
        "{}",
        ui.text()
    );
    let AfterFailure::Fail(err) =
        deployer::deploy::after_failure(STACK, "us-east-1", "dev", &status, &events, false, 1)
    else {
        panic!("not retried")
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "root cause: CommandLiveAlias (AWS::Lambda::Alias) UPDATE_FAILED: {reason}"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("traffic shift stopped: CodeDeploy rolled `CommandLiveAlias` back, so the previous version serves all traffic again"),
        "{msg}"
    );
}

#[tokio::test]
async fn update_rollback_failed_prints_the_exact_recovery_command() {
    let mut recorded = execute_prelude("UPDATE_COMPLETE");
    recorded.extend([
        exchange(
            &describe_stacks_req(STACK_ID),
            200,
            stacks("UPDATE_ROLLBACK_FAILED"),
        ),
        exchange(
            &events_req(),
            200,
            events(&[
                (
                    "e9",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_FAILED",
                    "The following resource(s) failed to update: [QueryFunction].",
                ),
                (
                    "e8",
                    "QueryFunction",
                    "AWS::Lambda::Function",
                    "UPDATE_FAILED",
                    "Resource handler returned message: \"Function not found\"",
                ),
                (
                    "e7",
                    "CommandFunction",
                    "AWS::Lambda::Function",
                    "UPDATE_FAILED",
                    "Memory size 20000 exceeds the maximum",
                ),
            ]),
        ),
    ]);
    let replay = StaticReplayClient::new(recorded);
    let clients = clients(&replay).await;
    let ui = RecordingUi::new(Confirmation::Yes);
    let no_params = BTreeMap::new();
    let (status, events, _) = deployer::deploy::execute(
        &clients.cfn,
        &input(&no_params, ChangeSetType::Update),
        &change_set(ChangeSetType::Update),
        false,
        &opts(),
        &ui,
    )
    .await
    .unwrap();
    replay.assert_requests_match(&[]);
    let AfterFailure::Fail(err) =
        deployer::deploy::after_failure(STACK, "us-east-1", "dev", &status, &events, false, 1)
    else {
        panic!("not retried")
    };
    let msg = err.to_string();
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(
        lines[1],
        "root cause: CommandFunction (AWS::Lambda::Function) UPDATE_FAILED: Memory size 20000 exceeds the maximum"
    );
    assert!(msg.contains("\n  aws cloudformation continue-update-rollback --stack-name cqrs-dev --region us-east-1\n"), "{msg}");
    assert!(
        msg.contains("--resources-to-skip CommandFunction QueryFunction"),
        "{msg}"
    );
    assert!(
        msg.ends_with("\nthen run `cargo xtask deploy --env dev` again"),
        "{msg}"
    );
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let throttled = recorded::error_body("Throttling", "Rate exceeded");
    let replay = StaticReplayClient::new(vec![
        exchange(&describe_stacks_req(STACK), 400, throttled.clone()),
        exchange(&describe_stacks_req(STACK), 400, throttled),
        exchange(&describe_stacks_req(STACK), 200, stacks("UPDATE_COMPLETE")),
    ]);
    let clients = clients(&replay).await;
    let stack = stackops::describe(&clients.cfn, STACK)
        .await
        .expect("throttling is retried")
        .expect("the stack exists");
    assert_eq!(stackops::status_of(&stack), "UPDATE_COMPLETE");
    replay.assert_requests_match(&[]);
    assert_eq!(replay.actual_requests().count(), 3);
}

#[tokio::test]
async fn a_change_set_replacing_the_events_table_is_refused_and_deleted() {
    let described = ok(
        "DescribeChangeSet",
        &format!(
            "<ChangeSetName>xtask-1</ChangeSetName><ChangeSetId>{CS_ID}</ChangeSetId><StackId>{STACK_ID}</StackId><StackName>{STACK}</StackName><Status>CREATE_COMPLETE</Status><ExecutionStatus>AVAILABLE</ExecutionStatus><Changes><member><Type>Resource</Type><ResourceChange><Action>Modify</Action><LogicalResourceId>EventsTable</LogicalResourceId><PhysicalResourceId>cqrs-dev-events</PhysicalResourceId><ResourceType>AWS::DynamoDB::Table</ResourceType><Replacement>True</Replacement><Scope><member>Properties</member></Scope><Details><member><Target><Attribute>Properties</Attribute><Name>KeySchema</Name><RequiresRecreation>Always</RequiresRecreation></Target><Evaluation>Static</Evaluation><ChangeSource>DirectModification</ChangeSource></member></Details></ResourceChange></member></Changes>"
        ),
    );
    let body = "Resources: {}\n";
    let params: BTreeMap<String, String> =
        [("ReleaseDigest".to_string(), "abc".to_string())].into();
    let tags: BTreeMap<String, String> = [("app".to_string(), "cqrs".to_string())].into();
    let replay = StaticReplayClient::new(vec![
        exchange(
            &format!(
                "Action=CreateChangeSet&Version=2010-05-15&StackName={STACK}&TemplateBody=Resources%3A%20%7B%7D%0A&Parameters.member.1.ParameterKey=ReleaseDigest&Parameters.member.1.ParameterValue=abc&Capabilities.member.1=CAPABILITY_IAM&Capabilities.member.2=CAPABILITY_NAMED_IAM&Tags.member.1.Key=app&Tags.member.1.Value=cqrs&ChangeSetName=xtask-1&Description=cargo%20xtask%20deploy&ChangeSetType=UPDATE"
            ),
            200,
            ok(
                "CreateChangeSet",
                &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID}</StackId>"),
            ),
        ),
        exchange(
            &format!(
                "Action=DescribeChangeSet&Version=2010-05-15&ChangeSetName={}&StackName={STACK}",
                enc(CS_ID)
            ),
            200,
            described,
        ),
        exchange(
            &format!(
                "Action=DeleteChangeSet&Version=2010-05-15&ChangeSetName={}&StackName={STACK}",
                enc(CS_ID)
            ),
            200,
            ok("DeleteChangeSet", ""),
        ),
    ]);
    let clients = clients(&replay).await;
    let cs = stackops::create_change_set(
        &clients.cfn,
        ChangeSetInput {
            stack: STACK,
            name: "xtask-1".into(),
            kind: ChangeSetType::Update,
            template_body: body,
            parameters: &params,
            tags: &tags,
            imports: vec![],
        },
        stackops::Polling {
            interval: Duration::from_millis(1),
            timeout: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    let preview = Preview {
        changes: deployer::preview::merge(cs.changes.clone(), vec![]),
        parameters: vec![],
    };
    assert!(
        preview.to_string().contains("EventsTable") && preview.to_string().contains("REPLACEMENT"),
        "{preview}"
    );
    let plan = sample_plan();
    let ui = RecordingUi::new(Confirmation::Yes);
    let err = deployer::deploy::review(&clients.cfn, &plan, &cs, &preview, &opts(), &ui)
        .await
        .unwrap_err();
    assert!(matches!(err, deployer::Error::Refused(_)));
    assert_eq!(
        err.to_string(),
        "refusing to deploy: this change can lose data:\n  - EventsTable would be replaced (a new, empty table)\n  - EventsTable would change KeySchema\nthe change set was deleted; rerun with --allow-data-loss if this is intended"
    );
    replay.assert_requests_match(&[]);
}

fn sample_plan() -> stack::Plan {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut plan = stack::config::load(&dir, "dev").expect("config/dev.yaml loads");
    plan.stack_name = STACK.into();
    plan
}
