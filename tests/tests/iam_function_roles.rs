//! Every function role grants exactly what that function does: nothing missing, nothing unused.
//!
//! "What the function does" is recorded from the code itself, not declared: each function's handlers run
//! against moto (the local AWS endpoint, started through `local_engine::endpoint`) with an SDK interceptor on
//! the DynamoDB client that records every operation as the IAM actions and table (or index) it needs, down to
//! the items of a transaction. The command goes through every command route (one event, a batch, an
//! idempotent retry, a conflict) and its failure paths (a write whose answer is lost, a throttled read, appends
//! that lose the race for a version; the recorder injects the first two after moto answered), the query through every query route (with pagination), the projector through
//! a batch with duplicates and a gap it must catch up on. Added to that is what the platform does with the
//! function's role ([`PLATFORM`]: logs, the stream mapping's polling and its on-failure queue). The result is
//! compared with the role in every environment's rendered template, as (action, resource) pairs.
//!
//! Seeded mistakes (an action dropped from a role, an unused one added, an operation the role lacks) must
//! make the comparison fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use domain::StoredEvent;
use serde_json::json;
use service::aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use service::aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use service::aws_sdk_dynamodb::error::BoxError;
use service::aws_sdk_dynamodb::operation;
use service::aws_sdk_dynamodb::{Client, Config as SdkConfig};
use service::testing::{create_tables, request, stream_event, stream_record};
use service::{Config, EventStore};
use stack::{FunctionName, Plan};
use tests::iam;

/// (action, resource) with resources as the template names them: `EventsTable`, `EventsTable/index/I`,
/// `EventsTable.StreamArn`, `ProjectionsTable`, `ProjectorDeadLetterQueue`, `CommandLogGroup`.
type Grants = BTreeSet<(String, String)>;

/// What the platform does with a function's role, beyond the function's own calls.
const PLATFORM: &[(Option<FunctionName>, &str, &str, &str)] = &[
    (
        None,
        "logs:CreateLogStream",
        "LogGroup",
        "the Lambda runtime writes the function's logs with its role",
    ),
    (
        None,
        "logs:PutLogEvents",
        "LogGroup",
        "the Lambda runtime writes the function's logs with its role",
    ),
    (
        Some(FunctionName::Projector),
        "dynamodb:DescribeStream",
        "EventsTable.StreamArn",
        "the event source mapping polls the stream with the function's role",
    ),
    (
        Some(FunctionName::Projector),
        "dynamodb:GetRecords",
        "EventsTable.StreamArn",
        "the event source mapping polls the stream",
    ),
    (
        Some(FunctionName::Projector),
        "dynamodb:GetShardIterator",
        "EventsTable.StreamArn",
        "the event source mapping polls the stream",
    ),
    (
        Some(FunctionName::Projector),
        "dynamodb:ListStreams",
        "EventsTable.StreamArn",
        "the event source mapping polls the stream",
    ),
    (
        Some(FunctionName::Projector),
        "sqs:SendMessage",
        "ProjectorDeadLetterQueue",
        "the mapping's on-failure destination is written with the function's role",
    ),
];

/// A failure the recorder puts in place of DynamoDB's answer to the next attempt of one operation, after
/// DynamoDB has carried the request out: the code's failure paths then run against the real endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The request was applied but its answer is lost (HTTP 500): the SDK sends it again, and for a write the
    /// retry finds its own transaction already applied (the append's ambiguous-write path).
    LostAnswer,
    /// `ProvisionedThroughputExceededException`: the SDK backs off and retries.
    Throttled,
}

/// Records each DynamoDB operation as the IAM actions and resources it needs, counts each operation's attempts,
/// and injects [`Fault`]s.
#[derive(Debug, Clone)]
struct Recorder {
    events_table: String,
    projections_table: String,
    views_table: String,
    seen: Arc<Mutex<Grants>>,
    /// Attempts sent, by operation name (`TransactWriteItems`).
    attempts: Arc<Mutex<BTreeMap<String, usize>>>,
    /// Faults still to inject, each for the next attempt of its operation.
    faults: Arc<Mutex<Vec<(&'static str, Fault)>>>,
}

impl Recorder {
    fn resource(&self, table: Option<&str>, index: Option<&str>) -> String {
        let table = match table {
            Some(t) if t == self.events_table => "EventsTable".to_string(),
            Some(t) if t == self.projections_table => "ProjectionsTable".to_string(),
            Some(t) if t == self.views_table => "ViewsTable".to_string(),
            other => format!("unknown table {other:?}"),
        };
        match index {
            Some(i) => format!("{table}/index/{i}"),
            None => table,
        }
    }

    fn record(&self, action: &str, table: Option<&str>, index: Option<&str>) {
        self.seen
            .lock()
            .unwrap()
            .insert((format!("dynamodb:{action}"), self.resource(table, index)));
    }

    fn take(&self) -> Grants {
        std::mem::take(&mut self.seen.lock().unwrap())
    }

    fn attempts(&self, operation: &str) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    fn inject(&self, operation: &'static str, fault: Fault) {
        self.faults.lock().unwrap().push((operation, fault));
    }

    fn pending_faults(&self) -> Vec<(&'static str, Fault)> {
        self.faults.lock().unwrap().clone()
    }
}

fn operation_name(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_string())
        .unwrap_or_default()
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-recorder"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self
            .attempts
            .lock()
            .unwrap()
            .entry(operation_name(cfg))
            .or_default() += 1;
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_name(cfg);
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            let Some(i) = faults.iter().position(|(op, _)| *op == operation) else {
                return Ok(());
            };
            faults.remove(i).1
        };
        let (status, kind) = match fault {
            Fault::LostAnswer => (500, "InternalServerError"),
            Fault::Throttled => (400, "ProvisionedThroughputExceededException"),
        };
        let response = context.response_mut();
        *response.status_mut() = StatusCode::try_from(status).expect("a valid status");
        *response.body_mut() = SdkBody::from(format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the IAM recorder"}}"#
        ));
        Ok(())
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        if let Some(i) = input.downcast_ref::<operation::query::QueryInput>() {
            self.record("Query", i.table_name(), i.index_name());
        } else if let Some(i) = input.downcast_ref::<operation::scan::ScanInput>() {
            self.record("Scan", i.table_name(), i.index_name());
        } else if let Some(i) = input.downcast_ref::<operation::get_item::GetItemInput>() {
            self.record("GetItem", i.table_name(), None);
        } else if let Some(i) = input.downcast_ref::<operation::put_item::PutItemInput>() {
            self.record("PutItem", i.table_name(), None);
        } else if let Some(i) = input.downcast_ref::<operation::update_item::UpdateItemInput>() {
            self.record("UpdateItem", i.table_name(), None);
        } else if let Some(i) = input.downcast_ref::<operation::delete_item::DeleteItemInput>() {
            self.record("DeleteItem", i.table_name(), None);
        } else if let Some(i) =
            input.downcast_ref::<operation::transact_write_items::TransactWriteItemsInput>()
        {
            // IAM authorizes a transaction item by item, with the item's own action.
            for item in i.transact_items() {
                if let Some(p) = item.put() {
                    self.record("PutItem", Some(p.table_name()), None);
                }
                if let Some(u) = item.update() {
                    self.record("UpdateItem", Some(u.table_name()), None);
                }
                if let Some(d) = item.delete() {
                    self.record("DeleteItem", Some(d.table_name()), None);
                }
                if let Some(c) = item.condition_check() {
                    self.record("ConditionCheckItem", Some(c.table_name()), None);
                }
            }
        } else if let Some(i) =
            input.downcast_ref::<operation::transact_get_items::TransactGetItemsInput>()
        {
            for item in i.transact_items() {
                if let Some(g) = item.get() {
                    self.record("GetItem", Some(g.table_name()), None);
                }
            }
        } else if let Some(i) = input.downcast_ref::<operation::batch_get_item::BatchGetItemInput>()
        {
            for table in i.request_items().into_iter().flat_map(|m| m.keys()) {
                self.record("BatchGetItem", Some(table), None);
            }
        } else if let Some(i) =
            input.downcast_ref::<operation::batch_write_item::BatchWriteItemInput>()
        {
            for table in i.request_items().into_iter().flat_map(|m| m.keys()) {
                self.record("BatchWriteItem", Some(table), None);
            }
        } else {
            // Unknown to this recorder: record it so the comparison fails and names it.
            self.seen.lock().unwrap().insert((
                format!("dynamodb:<unmapped operation {:?}>", input),
                "teach Recorder::read_before_execution this operation".into(),
            ));
        }
        Ok(())
    }
}

/// What each function's code did, recorded once against moto.
struct Recorded {
    command: Grants,
    query: Grants,
    projector: Grants,
}

async fn record() -> Recorded {
    let moto = tests::moto::shared().await;
    let sdk = moto.endpoint.sdk_config().await;
    let config = Config {
        events_table: "iam-events".into(),
        projections_table: "iam-projections".into(),
    };
    let plain = Client::new(&sdk);
    create_tables(&plain, &config.events_table, &config.projections_table)
        .await
        .expect("tables are created");
    let recorder = Recorder {
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        views_table: service::testing::views_table(&config.projections_table),
        seen: Arc::default(),
        attempts: Arc::default(),
        faults: Arc::default(),
    };
    let client = Client::from_conf(
        SdkConfig::from(&sdk)
            .to_builder()
            .interceptor(recorder.clone())
            .build(),
    );
    let store = service::testing::store(client, config.clone());
    let setup = service::testing::store(plain, config.clone());
    let status =
        |r: service::lambda_http::Response<service::lambda_http::Body>| r.status().as_u16();

    // The command function, through every command route and its paths: new aggregate, batch, idempotent
    // retry, stale expected version.
    let mut covered: BTreeSet<(&'static str, &'static str)> = BTreeSet::new();
    let mut cmd = |method: &str, path: &str, body: serde_json::Value| {
        covered.insert(route_of(service::routes::Function::Command, method, path));
        request(method, path, Some(&body.to_string()))
    };
    let one = json!({"aggregateId": "a", "eventType": "user_created", "eventData": {"name": "Ann"}, "commandId": "c1"});
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", "/events", one.clone())).await),
        200
    );
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", "/events", one)).await),
        200
    );
    let batch = json!({"events": [
        {"eventType": "user_created", "eventData": {"name": "Bo"}},
        {"eventType": "user_updated", "eventData": {"name": "Bob"}}
    ], "expectedVersion": 0, "commandId": "c2"});
    let path = "/aggregates/b/events";
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", path, batch.clone())).await),
        201
    );
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", path, batch)).await),
        201
    );
    let stale =
        json!({"eventType": "user_updated", "eventData": {"name": "B"}, "expectedVersion": 1});
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", path, stale)).await),
        409
    );
    // An aggregate written before appends kept a head item (events only): the command folds its log once
    // (a Query) and writes the head with its next append.
    let mut legacy = setup.read_events("a", 0, None, true).await.unwrap().0;
    for e in &mut legacy {
        e.aggregate_id = "legacy".into();
        e.command_id = None;
    }
    setup.write_events(&legacy).await.unwrap();
    let next =
        json!({"aggregateId": "legacy", "eventType": "user_updated", "eventData": {"name": "Lee"}});
    assert_eq!(
        status(service::http::handle_command(&store, cmd("POST", "/events", next)).await),
        200
    );
    command_failure_paths(&recorder, &store, &setup).await;
    let command = recorder.take();

    // The projector: a batch delivered twice (duplicates are skipped), and an aggregate whose first record is
    // missing (it catches up from the log).
    let a = setup.read_events("a", 0, None, true).await.unwrap().0;
    let b = setup.read_events("b", 0, None, true).await.unwrap().0;
    let records: Vec<StoredEvent> = a.iter().chain(b.iter().skip(1)).cloned().collect();
    let mut delivery: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:021}", i + 1), e))
        .collect();
    delivery.extend(delivery.clone());
    let response = service::projector::handle(&store, stream_event(delivery)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let projector = recorder.take();

    // The query function, through every query route, paginated.
    for path in [
        "/aggregates/b/events?limit=1",
        "/aggregates/b/events",
        "/aggregates/b",
        "/aggregates/b?consistent=true",
        "/events?type=user_created&limit=1",
        "/health",
    ] {
        let bare = path.split('?').next().unwrap();
        covered.insert(route_of(service::routes::Function::Query, "GET", bare));
        let r = service::http::handle_query(&store, request("GET", path, None)).await;
        assert_eq!(status(r), 200, "GET {path}");
    }
    // Every view's route, once its version is live (what deploy does after the stack update).
    for view in domain::registry().views() {
        setup
            .set_view_live_version(&view.name, view.target(), None)
            .await
            .unwrap();
        let path = format!("/views/{}/someone?limit=1", view.name);
        let bare = path.split('?').next().unwrap();
        covered.insert(route_of(service::routes::Function::Query, "GET", bare));
        let r = service::http::handle_query(&store, request("GET", &path, None)).await;
        assert_eq!(status(r), 200, "GET {path}");
    }
    let query = recorder.take();

    // Every route of the API was exercised.
    for r in service::routes::routes() {
        assert!(
            covered.contains(&(r.method, r.path)),
            "route {} {} is not exercised by this test; add a request for it",
            r.method,
            r.path
        );
    }
    Recorded {
        command,
        query,
        projector,
    }
}

/// The command's failure paths, so that what they do is recorded too: a write whose answer is lost (the retry
/// finds the transaction applied and the append recognises its own events), a read throttled (the SDK backs off
/// and retries), and appends that lose the race for an aggregate's next version (they reload and retry).
async fn command_failure_paths(
    recorder: &Recorder,
    store: &service::DynamoStore,
    setup: &service::DynamoStore,
) {
    let post = |body: serde_json::Value| request("POST", "/events", Some(&body.to_string()));
    let status =
        |r: service::lambda_http::Response<service::lambda_http::Body>| r.status().as_u16();

    // Ambiguous write: applied, answer lost.
    let writes = recorder.attempts("TransactWriteItems");
    recorder.inject("TransactWriteItems", Fault::LostAnswer);
    let lost = json!({"aggregateId": "lost-answer", "eventType": "user_created", "eventData": {"name": "Lu"}});
    assert_eq!(
        status(service::http::handle_command(store, post(lost)).await),
        200,
        "an append whose answer was lost is recognised as applied"
    );
    assert_eq!(
        recorder.attempts("TransactWriteItems") - writes,
        2,
        "the lost answer made the SDK send the transaction again"
    );
    let (events, _) = setup
        .read_events("lost-answer", 0, None, true)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "applied once: {events:?}");

    // Throttled read of the aggregate's head.
    let reads = recorder.attempts("GetItem");
    recorder.inject("GetItem", Fault::Throttled);
    let throttled = json!({"aggregateId": "throttled", "eventType": "user_created", "eventData": {"name": "Th"}});
    assert_eq!(
        status(service::http::handle_command(store, post(throttled)).await),
        200
    );
    assert!(
        recorder.attempts("GetItem") - reads >= 2,
        "the throttled read was retried"
    );
    assert!(
        recorder.pending_faults().is_empty(),
        "every injected fault was hit: {:?}",
        recorder.pending_faults()
    );

    // Lost races: bursts of appends to one aggregate without an expected version, until more transactions
    // were sent than appends made (some lost the race for a version and went round again).
    let created =
        json!({"aggregateId": "raced", "eventType": "user_created", "eventData": {"name": "Ra"}});
    assert_eq!(
        status(service::http::handle_command(store, post(created)).await),
        200
    );
    let mut appends = 0;
    let writes = recorder.attempts("TransactWriteItems");
    for _ in 0..20 {
        let burst = (0..8).map(|i| {
            let body = json!({"aggregateId": "raced", "eventType": "user_updated", "eventData": {"name": format!("R{i}")}});
            service::http::handle_command(store, post(body))
        });
        for r in futures::future::join_all(burst).await {
            assert_eq!(status(r), 200);
            appends += 1;
        }
        if recorder.attempts("TransactWriteItems") - writes > appends {
            break;
        }
    }
    assert!(
        recorder.attempts("TransactWriteItems") - writes > appends,
        "no append lost a race in 20 bursts of 8"
    );
    let (events, _) = setup.read_events("raced", 0, None, true).await.unwrap();
    assert_eq!(
        events.len(),
        appends + 1,
        "every append stored exactly once"
    );
}

/// The method and path template of the route `method path` matches in `function`; panics when none does.
fn route_of(
    function: service::routes::Function,
    method: &str,
    path: &str,
) -> (&'static str, &'static str) {
    match service::routes::match_route(function, method, path) {
        service::routes::RouteMatch::Found { route, .. } => (route.method, route.path),
        other => panic!("{method} {path} is no route of {function:?}: {other:?}"),
    }
}

/// The expected grants of one function: what its code did plus what the platform does with its role.
fn expected(function: FunctionName, code: &Grants) -> Grants {
    let mut out = code.clone();
    for (f, action, resource, _) in PLATFORM {
        if f.is_none_or(|f| f == function) {
            let resource = if *resource == "LogGroup" {
                format!("{}LogGroup", function.logical_prefix())
            } else {
                resource.to_string()
            };
            out.insert((action.to_string(), resource));
        }
    }
    out
}

/// The (action, resource) pairs a role of the rendered template grants.
fn granted(plan: &Plan, function: FunctionName) -> Grants {
    let template = iam::stack_template(plan);
    let roles = iam::roles(&template, &iam::account(plan));
    let role = &roles[&format!("{}Role", function.logical_prefix())];
    role.statements
        .iter()
        .filter(|s| s.allow)
        .flat_map(|s| {
            s.actions
                .iter()
                .flat_map(move |a| s.resources.iter().map(move |r| (a.clone(), r.clone())))
        })
        .collect()
}

/// Missing and unused grants of one role, one line each.
fn problems(env: &str, function: FunctionName, granted: &Grants, expected: &Grants) -> Vec<String> {
    let mut out: Vec<String> = expected
        .difference(granted)
        .map(|(a, r)| format!("{env}: {function:?}Role lacks {a} on {r}, which the function does"))
        .collect();
    out.extend(granted.difference(expected).map(|(a, r)| {
        format!("{env}: {function:?}Role grants {a} on {r}, which the function never does")
    }));
    out
}

fn code_of(recorded: &Recorded, f: FunctionName) -> &Grants {
    match f {
        FunctionName::Command => &recorded.command,
        FunctionName::Query => &recorded.query,
        FunctionName::Projector => &recorded.projector,
    }
}

#[tokio::test]
async fn every_function_role_grants_exactly_what_its_code_and_the_platform_do() {
    let recorded = record().await;
    assert!(
        !recorded.command.is_empty()
            && !recorded.query.is_empty()
            && !recorded.projector.is_empty()
    );
    eprintln!(
        "recorded operations:\n  command: {:?}\n  query: {:?}\n  projector: {:?}",
        recorded.command, recorded.query, recorded.projector
    );
    let mut all = Vec::new();
    for plan in iam::all_plans() {
        for f in FunctionName::ALL {
            all.extend(problems(
                &plan.env,
                f,
                &granted(&plan, f),
                &expected(f, code_of(&recorded, f)),
            ));
        }
    }
    assert!(all.is_empty(), "{}", all.join("\n"));

    // Replay writes read models with the projector's store code as the deploy role: the role's declared
    // store actions cover what that code does.
    for (action, _) in &recorded.projector {
        assert!(
            deployer::permissions::REPLAY_STORE_ACTIONS.contains(&action.as_str()),
            "the projector's store code does {action}, which deployer::permissions::REPLAY_STORE_ACTIONS (replay, deploy role) lacks"
        );
    }

    // Seeded mistakes: each must be reported.
    let plan = iam::all_plans()
        .into_iter()
        .find(|p| p.env == "prod")
        .unwrap();
    let f = FunctionName::Command;
    let exp = expected(f, code_of(&recorded, f));
    let mut dropped = granted(&plan, f);
    dropped.remove(&("dynamodb:PutItem".to_string(), "EventsTable".to_string()));
    let p = problems("prod", f, &dropped, &exp);
    assert!(
        p.iter()
            .any(|p| p.contains("lacks dynamodb:PutItem on EventsTable")),
        "{p:?}"
    );
    let mut unused = granted(&plan, FunctionName::Query);
    unused.insert(("dynamodb:Scan".into(), "EventsTable".into()));
    let p = problems(
        "prod",
        FunctionName::Query,
        &unused,
        &expected(FunctionName::Query, &recorded.query),
    );
    assert!(
        p.iter()
            .any(|p| p
                .contains("grants dynamodb:Scan on EventsTable, which the function never does")),
        "{p:?}"
    );
    let mut more_code = recorded.projector.clone();
    more_code.insert(("dynamodb:UpdateItem".into(), "ProjectionsTable".into()));
    let p = problems(
        "prod",
        FunctionName::Projector,
        &granted(&plan, FunctionName::Projector),
        &expected(FunctionName::Projector, &more_code),
    );
    assert!(
        p.iter()
            .any(|p| p.contains("lacks dynamodb:UpdateItem on ProjectionsTable")),
        "{p:?}"
    );
}
