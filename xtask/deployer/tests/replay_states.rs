//! Stack states the local endpoint never reaches, replayed from recorded HTTP exchanges (`StaticReplayClient`):
//! a deploy that finds the stack in a state CloudFormation accepts no change set in stops with the exact
//! recovery command (and sends nothing else); every wait gives up at its deadline naming the stack and state; a
//! first create that rolled back is retried only for a transient cause, after looking for retained tables again.
//! Each test asserts the exact operations sent, in order, and the message (every `StackFailed` exits 1).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_cloudformation::types::ChangeSetType;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use deployer::aws::Clients;
use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest, DeployResult};
use deployer::manifest::ReleaseManifest;
use deployer::stackops::{self, ChangeSetInput, Polling};
use deployer::ui::{Confirmation, RecordingUi};

mod recorded;

use recorded::STACK;

const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:111111111111:stack/cqrs-dev/1";
const STACK_ID_2: &str = "arn:aws:cloudformation:eu-west-1:111111111111:stack/cqrs-dev/2";
const CS_ID: &str = "arn:aws:cloudformation:eu-west-1:111111111111:changeSet/xtask-1/2";
const BUCKET: &str = "cqrs-dev-artifacts-111111111111";

/// A template with the two tables (what the import and the diff read); the rest of the stack does not matter.
const TEMPLATE: &str = "Resources:\n  EventsTable:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n    Properties:\n      TableName: cqrs-dev-events\n  ProjectionsTable:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n    Properties:\n      TableName: cqrs-dev-projections\n";

/// Any request (the replay answers in order); what was sent is checked with [`operations`].
fn reply(status: u16, content_type: &str, body: String) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::builder()
            .uri("https://recorded.invalid/")
            .body(SdkBody::empty())
            .unwrap(),
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(SdkBody::from(body))
            .unwrap(),
    )
}

fn cfn(action: &str, result: &str) -> ReplayEvent {
    reply(200, "text/xml", recorded::ok_body(action, result))
}

fn cfn_error(code: &str, message: &str) -> ReplayEvent {
    reply(400, "text/xml", recorded::error_body(code, message))
}

fn stacks(id: &str, status: &str) -> ReplayEvent {
    cfn_reply(recorded::stacks_body(id, status))
}

/// Events, newest first as the API lists them: (id, logical id, type, status, reason).
fn events(list: &[(&str, &str, &str, &str, &str)]) -> ReplayEvent {
    cfn_reply(recorded::events_body(STACK_ID, list, |_| 0))
}

fn cfn_reply(body: String) -> ReplayEvent {
    reply(200, "text/xml", body)
}

fn change_set(status: &str, changes: &str) -> ReplayEvent {
    cfn(
        "DescribeChangeSet",
        &format!(
            "<ChangeSetName>xtask-1</ChangeSetName><ChangeSetId>{CS_ID}</ChangeSetId><StackId>{STACK_ID}</StackId><StackName>{STACK}</StackName><Status>{status}</Status><ExecutionStatus>AVAILABLE</ExecutionStatus><Changes>{changes}</Changes>"
        ),
    )
}

fn add(logical: &str) -> String {
    format!(
        "<member><Type>Resource</Type><ResourceChange><Action>Add</Action><LogicalResourceId>{logical}</LogicalResourceId><ResourceType>AWS::DynamoDB::Table</ResourceType></ResourceChange></member>"
    )
}

fn s3_ok() -> ReplayEvent {
    reply(200, "application/xml", String::new())
}

fn table(found: bool, name: &str) -> ReplayEvent {
    if found {
        reply(
            200,
            "application/x-amz-json-1.0",
            format!(r#"{{"Table":{{"TableName":"{name}","TableStatus":"ACTIVE"}}}}"#),
        )
    } else {
        reply(
            400,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#.into(),
        )
    }
}

/// What each request was: the CloudFormation `Action` (with `ChangeSetType` where there is one), the DynamoDB
/// target and table, or the S3 method and path (query included).
fn operations(replay: &StaticReplayClient) -> Vec<String> {
    replay
        .actual_requests()
        .map(|r| {
            let body = std::str::from_utf8(r.body().bytes().unwrap_or_default()).unwrap_or("");
            if let Some(target) = r.headers().get("x-amz-target") {
                let table = serde_json::from_str::<serde_json::Value>(body).unwrap()["TableName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return format!("{} {table}", target.split('.').next_back().unwrap());
            }
            if r.uri().contains("cloudformation") {
                let form: BTreeMap<String, String> = body
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), decode(v)))
                    .collect();
                let mut op = form["Action"].clone();
                if let Some(kind) = form.get("ChangeSetType") {
                    op.push_str(&format!(" {kind}"));
                }
                if let Some(name) = form.get("StackName") {
                    op.push_str(&format!(" {name}"));
                }
                return op;
            }
            let uri: http::Uri = r.uri().parse().unwrap();
            format!(
                "S3 {} {}",
                r.method(),
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            )
        })
        .collect()
}

/// Percent-decoding of one form value.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn clients(replay: &StaticReplayClient) -> Clients {
    let sdk = recorded::sdk_config(replay, "eu-west-1").await;
    // Path-style S3 (as against an endpoint override), so the bucket shows in the path.
    let mut clients = Clients::from_sdk_config(&sdk);
    clients.s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    clients
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

fn plan() -> stack::Plan {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut plan = stack::config::load(&dir, "dev").expect("config/dev.yaml loads");
    plan.stack_name = STACK.into();
    plan.events_table.table_name = "cqrs-dev-events".into();
    plan.projections_table.table_name = "cqrs-dev-projections".into();
    plan
}

/// A release without functions: only its manifest is uploaded (and here, already there).
fn release() -> Release {
    Release {
        manifest: ReleaseManifest {
            schema: deployer::manifest::SCHEMA,
            env: "dev".into(),
            git_revision: "abc".into(),
            git_dirty: false,
            rustc: "rustc".into(),
            cargo_lock_sha256: None,
            template_sha256: "t".into(),
            functions: BTreeMap::new(),
        },
        dist_dir: PathBuf::from("/nonexistent"),
    }
}

async fn deploy(
    replay: &StaticReplayClient,
    opts: &DeployOptions,
) -> (deployer::Result<DeployResult>, String) {
    let clients = clients(replay).await;
    let plan = plan();
    let release = release();
    let ui = RecordingUi::new(Confirmation::Yes);
    let result = deployer::deploy::deploy(
        &clients,
        DeployRequest {
            plan: &plan,
            template_body: TEMPLATE,
            release: &release,
            bucket: BUCKET,
        },
        opts,
        &ui,
    )
    .await
    .map(|o| o.result);
    (result, ui.text())
}

/// Finds the stack in `status` with these events since its last operation began, and returns the error.
async fn deploy_into(
    status: &str,
    recorded: &[(&str, &str, &str, &str, &str)],
) -> (String, Vec<String>) {
    let replay = StaticReplayClient::new(vec![stacks(STACK_ID, status), events(recorded)]);
    let (result, _) = deploy(&replay, &opts()).await;
    let err = result.expect_err("a stack that needs a person is not deployed to");
    assert!(
        matches!(err, deployer::Error::StackFailed(_)),
        "exit 1: {err:?}"
    );
    (err.to_string(), operations(&replay))
}

const STACK_TYPE: &str = "AWS::CloudFormation::Stack";
const LAMBDA: &str = "AWS::Lambda::Function";

#[tokio::test]
async fn update_rollback_failed_gets_continue_update_rollback_with_the_resources_to_skip() {
    let (msg, ops) = deploy_into(
        "UPDATE_ROLLBACK_FAILED",
        &[
            (
                "e4",
                STACK,
                STACK_TYPE,
                "UPDATE_ROLLBACK_FAILED",
                "The following resource(s) failed to update: [QueryFunction].",
            ),
            (
                "e3",
                "QueryFunction",
                LAMBDA,
                "UPDATE_FAILED",
                "Function not found",
            ),
            (
                "e2",
                "QueryFunction",
                LAMBDA,
                "UPDATE_FAILED",
                "Memory size 20000 exceeds the maximum",
            ),
            (
                "e1",
                STACK,
                STACK_TYPE,
                "UPDATE_IN_PROGRESS",
                "User Initiated",
            ),
            (
                "e0",
                "Older",
                LAMBDA,
                "UPDATE_FAILED",
                "from an earlier operation",
            ),
        ],
    )
    .await;
    // Nothing but the two reads: no change set CloudFormation would reject.
    assert_eq!(
        ops,
        [
            format!("DescribeStacks {STACK}"),
            format!("DescribeStackEvents {STACK_ID}")
        ]
    );
    assert_eq!(
        msg,
        "stack `cqrs-dev` ended in UPDATE_ROLLBACK_FAILED\n\
         root cause: QueryFunction (AWS::Lambda::Function) UPDATE_FAILED: Memory size 20000 exceeds the maximum\n\
         then:\n  QueryFunction (AWS::Lambda::Function) UPDATE_FAILED: Function not found\n  \
         cqrs-dev (AWS::CloudFormation::Stack) UPDATE_ROLLBACK_FAILED: The following resource(s) failed to update: [QueryFunction].\n\
         the stack is in UPDATE_ROLLBACK_FAILED and needs a person: fix the cause above, then run\n  \
         aws cloudformation continue-update-rollback --stack-name cqrs-dev --region eu-west-1\n\
         if a resource cannot be rolled back, skip it (it is then left as is):\n  \
         aws cloudformation continue-update-rollback --stack-name cqrs-dev --region eu-west-1 --resources-to-skip QueryFunction\n\
         then run `cargo xtask deploy --env dev` again"
    );
}

#[tokio::test]
async fn rollback_failed_gets_delete_stack() {
    let (msg, ops) = deploy_into(
        "ROLLBACK_FAILED",
        &[
            (
                "e3",
                STACK,
                STACK_TYPE,
                "ROLLBACK_FAILED",
                "The following resource(s) failed to delete: [EventsTable].",
            ),
            (
                "e2",
                "EventsTable",
                "AWS::DynamoDB::Table",
                "DELETE_FAILED",
                "Table is being created",
            ),
            (
                "e1",
                "CommandFunction",
                LAMBDA,
                "CREATE_FAILED",
                "Resource handler returned message: \"Invalid role\"",
            ),
            (
                "e0",
                STACK,
                STACK_TYPE,
                "CREATE_IN_PROGRESS",
                "User Initiated",
            ),
        ],
    )
    .await;
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(msg.starts_with("stack `cqrs-dev` ended in ROLLBACK_FAILED\nroot cause: CommandFunction (AWS::Lambda::Function) CREATE_FAILED: Resource handler returned message: \"Invalid role\"\n"), "{msg}");
    assert!(msg.ends_with(
        "the first create failed and so did its rollback; the stack can only be deleted: fix the cause above, then run\n  \
         aws cloudformation delete-stack --stack-name cqrs-dev --region eu-west-1\n\
         then run `cargo xtask deploy --env dev` again"
    ), "{msg}");
}

#[tokio::test]
async fn delete_failed_gets_teardown_or_delete_stack_retaining_what_is_stuck() {
    let (msg, ops) = deploy_into(
        "DELETE_FAILED",
        &[
            (
                "e3",
                STACK,
                STACK_TYPE,
                "DELETE_FAILED",
                "The following resource(s) failed to delete: [ProjectorDeadLetterQueue].",
            ),
            (
                "e2",
                "ProjectorDeadLetterQueue",
                "AWS::SQS::Queue",
                "DELETE_FAILED",
                "Access denied",
            ),
            (
                "e1",
                STACK,
                STACK_TYPE,
                "DELETE_IN_PROGRESS",
                "User Initiated",
            ),
        ],
    )
    .await;
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(
        msg.contains(
            "root cause: ProjectorDeadLetterQueue (AWS::SQS::Queue) DELETE_FAILED: Access denied"
        ),
        "{msg}"
    );
    assert!(msg.ends_with(
        "the stack could not be deleted: fix the cause above and run `cargo xtask teardown --env dev` again, or delete the stack but keep what could not be deleted (remove it by hand later):\n  \
         aws cloudformation delete-stack --stack-name cqrs-dev --region eu-west-1 --retain-resources ProjectorDeadLetterQueue"
    ), "{msg}");
}

#[tokio::test]
async fn failed_states_with_rollback_disabled_get_rollback_stack() {
    for status in ["UPDATE_FAILED", "CREATE_FAILED"] {
        let (msg, ops) = deploy_into(
            status,
            &[
                (
                    "e2",
                    "QueryFunction",
                    LAMBDA,
                    status,
                    "Memory size 20000 exceeds the maximum",
                ),
                (
                    "e1",
                    STACK,
                    STACK_TYPE,
                    "UPDATE_IN_PROGRESS",
                    "User Initiated",
                ),
            ],
        )
        .await;
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert!(msg.ends_with(&format!(
            "the stack is in {status} with rollback disabled (not by this tool); roll it back first:\n  \
             aws cloudformation rollback-stack --stack-name cqrs-dev --region eu-west-1\n\
             then run `cargo xtask deploy --env dev` again"
        )), "{msg}");
    }
}

#[tokio::test]
async fn failed_imports_get_delete_stack_and_a_new_import() {
    for status in ["IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE"] {
        let (msg, ops) = deploy_into(
            status,
            &[
                (
                    "e2",
                    "EventsTable",
                    "AWS::DynamoDB::Table",
                    "IMPORT_FAILED",
                    "Resource cqrs-dev-events does not match the template",
                ),
                (
                    "e1",
                    STACK,
                    STACK_TYPE,
                    "IMPORT_IN_PROGRESS",
                    "User Initiated",
                ),
            ],
        )
        .await;
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert!(msg.contains("root cause: EventsTable (AWS::DynamoDB::Table) IMPORT_FAILED: Resource cqrs-dev-events does not match the template"), "{msg}");
        assert!(msg.ends_with(&format!(
            "adopting the retained tables into the stack failed ({status}); the tables are untouched (imported tables are retained). Fix the cause above, then delete the stack that holds nothing else:\n  \
             aws cloudformation delete-stack --stack-name cqrs-dev --region eu-west-1\n\
             then run `cargo xtask deploy --env dev` again (it imports the tables again)"
        )), "{msg}");
    }
}

#[tokio::test]
async fn a_wait_gives_up_at_its_deadline_naming_the_stack_and_its_state() {
    let replay = StaticReplayClient::new(vec![
        stacks(STACK_ID, "UPDATE_IN_PROGRESS"),
        events(&[(
            "e1",
            STACK,
            STACK_TYPE,
            "UPDATE_IN_PROGRESS",
            "User Initiated",
        )]),
    ]);
    let clients = clients(&replay).await;
    let ui = RecordingUi::new(Confirmation::Yes);
    let mut watcher = stackops::Watcher::fresh(STACK_ID);
    let err = watcher
        .wait(
            &clients.cfn,
            &ui,
            "updating",
            Polling {
                interval: Duration::from_millis(1),
                timeout: Duration::ZERO,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, deployer::Error::StackFailed(_)));
    assert_eq!(
        err.to_string(),
        "gave up waiting after 0 s (the wait limit; raise it with --wait-timeout): updating stack `cqrs-dev` is still UPDATE_IN_PROGRESS; \
         CloudFormation carries on by itself: follow it with `aws cloudformation describe-stack-events --stack-name cqrs-dev` \
         and run the command again once the stack has settled"
    );
    assert_eq!(
        operations(&replay),
        [
            format!("DescribeStacks {STACK_ID}"),
            format!("DescribeStackEvents {STACK_ID}")
        ]
    );
}

#[tokio::test]
async fn a_change_set_that_never_settles_gives_up_at_the_deadline() {
    let replay = StaticReplayClient::new(vec![
        cfn(
            "CreateChangeSet",
            &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID}</StackId>"),
        ),
        change_set("CREATE_IN_PROGRESS", ""),
    ]);
    let clients = clients(&replay).await;
    let none = BTreeMap::new();
    let err = stackops::create_change_set(
        &clients.cfn,
        ChangeSetInput {
            stack: STACK,
            name: "xtask-1".into(),
            kind: ChangeSetType::Update,
            template_body: TEMPLATE,
            parameters: &none,
            tags: &none,
            imports: vec![],
        },
        Polling {
            interval: Duration::from_millis(1),
            timeout: Duration::ZERO,
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().starts_with("gave up waiting after 0 s (the wait limit; raise it with --wait-timeout): change set `xtask-1` of stack `cqrs-dev` is still CREATE_IN_PROGRESS;"),
        "{err}"
    );
    assert_eq!(
        operations(&replay),
        [
            format!("CreateChangeSet UPDATE {STACK}"),
            format!("DescribeChangeSet {STACK}")
        ]
    );
}

/// The artifact bucket exists and already holds the release's manifest.
fn artifacts() -> Vec<ReplayEvent> {
    vec![s3_ok(), s3_ok(), s3_ok(), s3_ok(), s3_ok(), s3_ok()]
}

fn artifact_operations() -> Vec<String> {
    let digest = release().manifest.digest();
    vec![
        format!("S3 HEAD /{BUCKET}/"),
        format!("S3 PUT /{BUCKET}/?versioning"),
        format!("S3 PUT /{BUCKET}/?encryption"),
        format!("S3 PUT /{BUCKET}/?lifecycle"),
        format!("S3 PUT /{BUCKET}/?publicAccessBlock"),
        format!("S3 HEAD /{BUCKET}/releases/{digest}.json"),
    ]
}

/// A first create whose root cause is throttling: deleted and retried once, and before the retry the tables
/// are looked up again. The rolled-back create retained the events table (`DeletionPolicy: Retain`), so the
/// retry adopts it by import instead of failing on "already exists".
#[tokio::test]
async fn a_transient_first_create_failure_is_retried_after_looking_for_retained_tables_again() {
    let mut recorded = vec![cfn_error(
        "ValidationError",
        "Stack with id cqrs-dev does not exist",
    )];
    recorded.extend(artifacts());
    recorded.extend([
        // Attempt 1: no tables yet; CREATE change set, executed, rolled back for throttling.
        table(false, "cqrs-dev-events"),
        table(false, "cqrs-dev-projections"),
        table(false, "cqrs-dev-views"),
        cfn(
            "CreateChangeSet",
            &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID}</StackId>"),
        ),
        change_set(
            "CREATE_COMPLETE",
            &(add("EventsTable") + &add("ProjectionsTable")),
        ),
        stacks(STACK_ID, "REVIEW_IN_PROGRESS"),
        events(&[(
            "e0",
            STACK,
            STACK_TYPE,
            "REVIEW_IN_PROGRESS",
            "User Initiated",
        )]),
        cfn("ExecuteChangeSet", ""),
        stacks(STACK_ID, "ROLLBACK_COMPLETE"),
        events(&[
            ("e4", STACK, STACK_TYPE, "ROLLBACK_COMPLETE", ""),
            (
                "e3",
                "ProjectionsTable",
                "AWS::DynamoDB::Table",
                "CREATE_FAILED",
                "Resource creation cancelled",
            ),
            (
                "e2",
                "EventsTable",
                "AWS::DynamoDB::Table",
                "CREATE_FAILED",
                "Rate exceeded (Service: DynamoDb, Status Code: 400, Request ID: x)",
            ),
            (
                "e1",
                STACK,
                STACK_TYPE,
                "CREATE_IN_PROGRESS",
                "User Initiated",
            ),
            (
                "e0",
                STACK,
                STACK_TYPE,
                "REVIEW_IN_PROGRESS",
                "User Initiated",
            ),
        ]),
        // The empty stack is deleted.
        events(&[("e4", STACK, STACK_TYPE, "ROLLBACK_COMPLETE", "")]),
        cfn("DeleteStack", ""),
        stacks(STACK_ID, "DELETE_COMPLETE"),
        events(&[
            ("e5", STACK, STACK_TYPE, "DELETE_COMPLETE", ""),
            ("e4", STACK, STACK_TYPE, "ROLLBACK_COMPLETE", ""),
        ]),
        // Attempt 2: the events table survived the rollback; it is imported first.
        table(true, "cqrs-dev-events"),
        table(false, "cqrs-dev-projections"),
        table(false, "cqrs-dev-views"),
        cfn(
            "CreateChangeSet",
            &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID_2}</StackId>"),
        ),
        change_set("CREATE_COMPLETE", ""),
        cfn("ExecuteChangeSet", ""),
        stacks(STACK_ID_2, "IMPORT_COMPLETE"),
        events(&[("i1", STACK, STACK_TYPE, "IMPORT_COMPLETE", "")]),
        stacks(STACK_ID_2, "IMPORT_COMPLETE"),
        // ... then the rest is added by an ordinary update.
        // What the import left: the events table alone.
        cfn(
            "GetTemplate",
            r#"<TemplateBody>{"Resources":{"EventsTable":{"Type":"AWS::DynamoDB::Table","DeletionPolicy":"Retain","Properties":{"TableName":"cqrs-dev-events"}}}}</TemplateBody>"#,
        ),
        cfn(
            "CreateChangeSet",
            &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID_2}</StackId>"),
        ),
        change_set("CREATE_COMPLETE", &add("ProjectionsTable")),
        stacks(STACK_ID_2, "IMPORT_COMPLETE"),
        events(&[("i1", STACK, STACK_TYPE, "IMPORT_COMPLETE", "")]),
        cfn("ExecuteChangeSet", ""),
        stacks(STACK_ID_2, "UPDATE_COMPLETE"),
        events(&[
            ("u1", STACK, STACK_TYPE, "UPDATE_COMPLETE", ""),
            ("i1", STACK, STACK_TYPE, "IMPORT_COMPLETE", ""),
        ]),
        stacks(STACK_ID_2, "UPDATE_COMPLETE"),
    ]);
    let replay = StaticReplayClient::new(recorded);
    let (result, printed) = deploy(&replay, &opts()).await;
    assert_eq!(
        result.unwrap_or_else(|e| panic!("{e}\n{printed}")),
        DeployResult::Updated
    );
    let mut expected = vec![format!("DescribeStacks {STACK}")];
    expected.extend(artifact_operations());
    expected.extend([
        "DescribeTable cqrs-dev-events".to_string(),
        "DescribeTable cqrs-dev-projections".into(),
        "DescribeTable cqrs-dev-views".into(),
        format!("CreateChangeSet CREATE {STACK}"),
        format!("DescribeChangeSet {STACK}"),
        format!("DescribeStacks {STACK}"),
        format!("DescribeStackEvents {STACK_ID}"),
        format!("ExecuteChangeSet {STACK}"),
        format!("DescribeStacks {STACK_ID}"),
        format!("DescribeStackEvents {STACK_ID}"),
        format!("DescribeStackEvents {STACK_ID}"),
        format!("DeleteStack {STACK_ID}"),
        format!("DescribeStacks {STACK_ID}"),
        format!("DescribeStackEvents {STACK_ID}"),
        "DescribeTable cqrs-dev-events".into(),
        "DescribeTable cqrs-dev-projections".into(),
        "DescribeTable cqrs-dev-views".into(),
        format!("CreateChangeSet IMPORT {STACK}"),
        format!("DescribeChangeSet {STACK}"),
        format!("ExecuteChangeSet {STACK}"),
        format!("DescribeStacks {STACK}"),
        format!("DescribeStackEvents {STACK}"),
        format!("DescribeStacks {STACK}"),
        format!("GetTemplate {STACK}"),
        format!("CreateChangeSet UPDATE {STACK}"),
        format!("DescribeChangeSet {STACK}"),
        format!("DescribeStacks {STACK}"),
        format!("DescribeStackEvents {STACK_ID_2}"),
        format!("ExecuteChangeSet {STACK}"),
        format!("DescribeStacks {STACK_ID_2}"),
        format!("DescribeStackEvents {STACK_ID_2}"),
        format!("DescribeStacks {STACK}"),
    ]);
    assert_eq!(operations(&replay), expected, "{printed}");
    // The import carried only the table that survived.
    let import = replay
        .actual_requests()
        .filter_map(|r| {
            std::str::from_utf8(r.body().bytes().unwrap_or_default())
                .ok()
                .map(decode)
        })
        .find(|b| b.contains("ChangeSetType=IMPORT"))
        .unwrap();
    assert!(
        import.contains("ResourcesToImport.member.1.LogicalResourceId=EventsTable"),
        "{import}"
    );
    assert!(!import.contains("ResourcesToImport.member.2"), "{import}");
    assert!(
        printed.contains(
            "root cause: EventsTable (AWS::DynamoDB::Table) CREATE_FAILED: Rate exceeded"
        ),
        "{printed}"
    );
    assert!(printed.contains("failed for a transient reason and left an empty stack in ROLLBACK_COMPLETE; deleting it and retrying once"), "{printed}");
    assert!(
        printed.contains(
            "adopting retained resources cqrs-dev-events into a new stack `cqrs-dev` (import)"
        ),
        "{printed}"
    );
}

/// The same failure with a cause that will not pass by itself (a name taken outside the stack): no retry, the
/// empty stack is left for the next deploy, and the message says so.
#[tokio::test]
async fn a_first_create_that_failed_for_good_is_not_retried() {
    let mut recorded = vec![cfn_error(
        "ValidationError",
        "Stack with id cqrs-dev does not exist",
    )];
    recorded.extend(artifacts());
    recorded.extend([
        table(false, "cqrs-dev-events"),
        table(false, "cqrs-dev-projections"),
        table(false, "cqrs-dev-views"),
        cfn("CreateChangeSet", &format!("<Id>{CS_ID}</Id><StackId>{STACK_ID}</StackId>")),
        change_set("CREATE_COMPLETE", &add("EventsTable")),
        stacks(STACK_ID, "REVIEW_IN_PROGRESS"),
        events(&[("e0", STACK, STACK_TYPE, "REVIEW_IN_PROGRESS", "User Initiated")]),
        cfn("ExecuteChangeSet", ""),
        stacks(STACK_ID, "ROLLBACK_COMPLETE"),
        events(&[
            ("e3", STACK, STACK_TYPE, "ROLLBACK_COMPLETE", ""),
            ("e2", "CommandFunction", LAMBDA, "CREATE_FAILED", "cqrs-dev-command already exists in stack arn:aws:cloudformation:eu-west-1:111111111111:stack/other/9"),
            ("e0", STACK, STACK_TYPE, "REVIEW_IN_PROGRESS", "User Initiated"),
        ]),
    ]);
    let replay = StaticReplayClient::new(recorded);
    let (result, printed) = deploy(&replay, &opts()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, deployer::Error::StackFailed(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "stack `cqrs-dev` ended in ROLLBACK_COMPLETE\n\
         root cause: CommandFunction (AWS::Lambda::Function) CREATE_FAILED: cqrs-dev-command already exists in stack arn:aws:cloudformation:eu-west-1:111111111111:stack/other/9\n\
         the cause is not transient, so it was not retried: fix the cause, then run `cargo xtask deploy --env dev` again (it deletes the empty stack left in ROLLBACK_COMPLETE and creates it anew)"
    );
    let ops = operations(&replay);
    assert_eq!(
        ops.last().unwrap(),
        &format!("DescribeStackEvents {STACK_ID}"),
        "{printed}"
    );
    assert!(!ops.iter().any(|o| o.starts_with("DeleteStack")), "{ops:?}");
}

#[test]
fn only_transient_causes_are_retried() {
    for reason in [
        "Rate exceeded",
        "Throttling: Rate exceeded (Service: Lambda, Status Code: 429)",
        "We encountered an internal error. Please try again.",
        "InternalFailure",
        "Service Unavailable (Service: AmazonDynamoDBv2; Status Code: 503)",
        "The role defined for the function cannot be assumed by Lambda.",
        CANNOT_ACCESS_STREAM,
    ] {
        assert!(stackops::is_transient(reason), "{reason}");
    }
    for reason in [
        "Table already exists: cqrs-dev-events",
        "Memory size 20000 exceeds the maximum",
        "User: arn:aws:sts::1:assumed-role/x is not authorized to perform: lambda:CreateFunction",
        "Resource creation cancelled",
    ] {
        assert!(!stackops::is_transient(reason), "{reason}");
    }
}

/// What CloudFormation records when it creates the stream mapping before IAM has propagated the projector role's
/// grant on the stream (the role and its policy are created moments earlier in the same stack).
const CANNOT_ACCESS_STREAM: &str = "Resource handler returned message: \"Invalid request provided: Cannot access stream arn:aws:dynamodb:eu-west-1:111111111111:table/cqrs-dev-events/stream/2026-01-01T00:00:00.000. Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your stream in IAM. (Service: Lambda, Status Code: 400, Request ID: x)\" (RequestToken: t, HandlerErrorCode: InvalidRequest)";

/// A first create whose stream mapping failed because IAM had not yet propagated the stream grant is deleted and
/// retried once, like a role Lambda cannot assume yet; a second such failure is given up with the reason.
#[test]
fn a_first_create_whose_stream_mapping_could_not_read_the_stream_yet_is_retried_once() {
    let failed = [
        stackops::EventLine {
            logical_id: STACK.into(),
            resource_type: STACK_TYPE.into(),
            status: "ROLLBACK_COMPLETE".into(),
            reason: None,
            timestamp: "2026-01-01T00:00:02Z".into(),
        },
        stackops::EventLine {
            logical_id: "ProjectorEventSourceMapping".into(),
            resource_type: "AWS::Lambda::EventSourceMapping".into(),
            status: "CREATE_FAILED".into(),
            reason: Some(CANNOT_ACCESS_STREAM.into()),
            timestamp: "2026-01-01T00:00:01Z".into(),
        },
    ];
    let decide = |attempt| {
        deployer::deploy::after_failure(
            STACK,
            "eu-west-1",
            "dev",
            "ROLLBACK_COMPLETE",
            &failed,
            true,
            attempt,
        )
    };
    match decide(1) {
        deployer::deploy::AfterFailure::RetryCreate(report) => assert!(
            report.contains("root cause: ProjectorEventSourceMapping (AWS::Lambda::EventSourceMapping) CREATE_FAILED: Resource handler returned message: \"Invalid request provided: Cannot access stream"),
            "{report}"
        ),
        other => panic!("not retried: {other:?}"),
    }
    match decide(2) {
        deployer::deploy::AfterFailure::Fail(err) => {
            assert!(
                err.to_string().contains("it failed again after one retry"),
                "{err}"
            )
        }
        other => panic!("retried twice: {other:?}"),
    }
}

/// `DescribeStacks`: the stack, complete and running this release (so the deploy finds it up to date), with its
/// termination protection as given.
fn deployed_stack(protected: bool) -> ReplayEvent {
    let digest = release().digest();
    cfn(
        "DescribeStacks",
        &format!(
            "<Stacks><member><StackId>{STACK_ID}</StackId><StackName>{STACK}</StackName><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>UPDATE_COMPLETE</StackStatus><EnableTerminationProtection>{protected}</EnableTerminationProtection><Parameters><member><ParameterKey>ArtifactBucket</ParameterKey><ParameterValue>{BUCKET}</ParameterValue></member><member><ParameterKey>ReleaseDigest</ParameterKey><ParameterValue>{digest}</ParameterValue></member></Parameters></member></Stacks>"
        ),
    )
}

async fn deploy_plan(
    replay: &StaticReplayClient,
    plan: &stack::Plan,
) -> (deployer::Result<DeployResult>, String) {
    let clients = clients(replay).await;
    let release = release();
    let ui = RecordingUi::new(Confirmation::Yes);
    let result = deployer::deploy::deploy(
        &clients,
        DeployRequest {
            plan,
            template_body: TEMPLATE,
            release: &release,
            bucket: BUCKET,
        },
        &opts(),
        &ui,
    )
    .await
    .map(|o| o.result);
    (result, ui.text())
}

/// A protected environment's stack ends every deploy with termination protection on: a stack without it (one
/// deployed before, or just created: a change set cannot carry the flag) gets `UpdateTerminationProtection`; a
/// stack that has it gets no call; a non-protected environment's stack is left as it is. moto does not implement
/// `UpdateTerminationProtection`, hence recorded answers.
#[tokio::test]
async fn a_protected_environment_s_stack_gets_termination_protection_once() {
    let mut protected = plan();
    protected.protected = true;
    let up_to_date = [
        format!("DescribeStacks {STACK}"),
        format!("GetTemplate {STACK}"),
    ];

    let replay = StaticReplayClient::new(vec![
        deployed_stack(false),
        cfn(
            "GetTemplate",
            &format!("<TemplateBody>{TEMPLATE}</TemplateBody>"),
        ),
        deployed_stack(false),
        cfn(
            "UpdateTerminationProtection",
            &format!("<StackId>{STACK_ID}</StackId>"),
        ),
    ]);
    let (result, printed) = deploy_plan(&replay, &protected).await;
    assert_eq!(
        result.unwrap_or_else(|e| panic!("{e}\n{printed}")),
        DeployResult::UpToDate
    );
    let mut expected = up_to_date.to_vec();
    expected.extend([
        format!("DescribeStacks {STACK}"),
        format!("UpdateTerminationProtection {STACK}"),
    ]);
    assert_eq!(operations(&replay), expected, "{printed}");
    let body = replay
        .actual_requests()
        .last()
        .map(|r| decode(std::str::from_utf8(r.body().bytes().unwrap()).unwrap()))
        .unwrap();
    assert!(body.contains("EnableTerminationProtection=true"), "{body}");
    assert!(
        printed.contains("turned on termination protection of stack `cqrs-dev`"),
        "{printed}"
    );

    // Already on: looked at, not set again.
    let replay = StaticReplayClient::new(vec![
        deployed_stack(true),
        cfn(
            "GetTemplate",
            &format!("<TemplateBody>{TEMPLATE}</TemplateBody>"),
        ),
        deployed_stack(true),
    ]);
    let (result, printed) = deploy_plan(&replay, &protected).await;
    assert_eq!(result.unwrap(), DeployResult::UpToDate, "{printed}");
    let mut expected = up_to_date.to_vec();
    expected.push(format!("DescribeStacks {STACK}"));
    assert_eq!(operations(&replay), expected, "{printed}");

    // Not protected: nothing beyond the deploy's own reads.
    let replay = StaticReplayClient::new(vec![
        deployed_stack(false),
        cfn(
            "GetTemplate",
            &format!("<TemplateBody>{TEMPLATE}</TemplateBody>"),
        ),
    ]);
    let (result, printed) = deploy_plan(&replay, &plan()).await;
    assert_eq!(result.unwrap(), DeployResult::UpToDate, "{printed}");
    assert_eq!(operations(&replay), up_to_date, "{printed}");
}

/// Teardown refuses a stack with termination protection before asking anything, says how to lift it, and
/// deletes nothing; it reads the flag from the stack, so lifting it by hand is the way through.
#[tokio::test]
async fn teardown_refuses_a_stack_with_termination_protection_and_says_how_to_lift_it() {
    let replay = StaticReplayClient::new(vec![deployed_stack(true)]);
    let clients = clients(&replay).await;
    let mut protected = plan();
    protected.protected = true;
    let ui = RecordingUi::new(Confirmation::Yes);
    let err = deployer::teardown::teardown(
        &clients,
        &protected,
        BUCKET,
        &deployer::teardown::TeardownOptions {
            delete_data: false,
            confirm: true,
            poll_interval: Duration::from_millis(1),
            wait_timeout: Duration::from_secs(60),
        },
        &ui,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, deployer::Error::Refused(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "refusing to tear down `cqrs-dev`: the stack has termination protection (`dev` is a protected environment, so every deploy turns it on) and nothing was deleted; \
         if it really must go, turn the protection off by hand, `aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name cqrs-dev --region eu-west-1`, \
         then run `cargo xtask teardown --env dev` again (its tables are retained either way)"
    );
    assert_eq!(operations(&replay), [format!("DescribeStacks {STACK}")]);
    assert!(ui.questions().is_empty(), "asked {:?}", ui.questions());
}
