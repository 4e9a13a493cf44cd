//! Failure paths of the DynamoDB store with scripted HTTP exchanges: each DynamoDB request is answered by
//! the next step of a script (a canned response, or one computed from the request where the answer must
//! echo what the store sent, e.g. its own event id), and every request is recorded so the exact requests
//! are asserted. Covered: the two-request append (one consistent read of the head, one conditional
//! transaction), an ambiguous write (applied, response lost, SDK retry refused) recognised as our own,
//! throttling as 503 with `Retry-After`, a 500 without internals, a lost race reported with the version,
//! BatchGetItem's unprocessed keys read again after a backoff, and refused as throttled when they stay so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use service::testing::request;
use service::{Config, DynamoStore};

mod support;

/// One scripted answer: from the request body to (status, response body).
type Step = Box<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

/// The requests the store sent: (`X-Amz-Target` without the service prefix, JSON body).
type Sent = Arc<Mutex<Vec<(String, Value)>>>;

fn canned(status: u16, body: Value) -> Step {
    Box::new(move |_| (status, body.clone()))
}

fn service_error(status: u16, kind: &str, message: &str) -> Step {
    canned(
        status,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message}),
    )
}

fn cancelled(reasons: &[&str]) -> Step {
    let reasons: Vec<Value> = reasons.iter().map(|r| json!({"Code": r})).collect();
    canned(
        400,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message": "Transaction cancelled",
            "CancellationReasons": reasons
        }),
    )
}

/// A store whose DynamoDB answers with `script`, one step per request, with `retries` SDK attempts.
fn store(script: Vec<Step>, attempts: u32) -> (DynamoStore, Sent) {
    let sent: Sent = Arc::default();
    let script = Arc::new(Mutex::new(script.into_iter()));
    let recorded = Arc::clone(&sent);
    let http = infallible_client_fn(move |req: http::Request<SdkBody>| {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_start_matches("DynamoDB_20120810.")
            .to_string();
        let body: Value = serde_json::from_slice(req.body().bytes().unwrap_or_default())
            .expect("the SDK sends JSON");
        recorded
            .lock()
            .unwrap()
            .push((target.clone(), body.clone()));
        let step = script
            .lock()
            .unwrap()
            .next()
            .unwrap_or_else(|| panic!("an unscripted request: {target} {body}"));
        let (status, response) = step(&body);
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from(response.to_string()))
            .unwrap()
    });
    let retry = if attempts > 1 {
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(1))
    } else {
        RetryConfig::disabled()
    };
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url("http://dynamodb.local")
        .retry_config(retry)
        .http_client(http)
        .build();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        Config {
            events_table: "events".into(),
            projections_table: "projections".into(),
        },
    );
    (store, sent)
}

fn targets(sent: &Sent) -> Vec<String> {
    sent.lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

fn head(version: u64, state: Value) -> Value {
    json!({
        "aggregate_id": {"S": "u1"}, "version": {"N": "0"},
        "head_version": {"N": version.to_string()}, "state": {"S": state.to_string()}
    })
}

async fn post(store: &DynamoStore, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let response =
        service::http::handle_command(store, request("POST", path, Some(&body.to_string()))).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = support::decode(response);
    (status, body, retry_after)
}

#[tokio::test]
async fn a_single_event_append_is_one_consistent_head_read_and_one_conditional_transaction() {
    let (store, sent) = store(
        vec![
            canned(
                200,
                json!({"Item": head(3, json!({"user": {"name": "Ann"}}))}),
            ),
            canned(200, json!({})),
        ],
        1,
    );
    let (status, body, _) = post(
        &store,
        "/aggregates/u1/events",
        json!({"eventType": "user_updated", "eventData": {"age": 3}}),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(4)), "{body}");

    assert_eq!(targets(&sent), ["GetItem", "TransactWriteItems"]);
    let sent = sent.lock().unwrap();
    let read = &sent[0].1;
    assert_eq!(read["ConsistentRead"], true);
    assert_eq!(read["Key"]["version"], json!({"N": "0"}), "the head item");
    let items = sent[1].1["TransactItems"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the head and the event");
    let head_put = &items[0]["Put"];
    assert_eq!(head_put["ConditionExpression"], "head_version = :expected");
    assert_eq!(
        head_put["ExpressionAttributeValues"][":expected"],
        json!({"N": "3"})
    );
    assert_eq!(head_put["Item"]["head_version"], json!({"N": "4"}));
    let state: Value =
        serde_json::from_str(head_put["Item"]["state"]["S"].as_str().unwrap()).unwrap();
    assert_eq!(state, json!({"user": {"name": "Ann", "age": 3}}));
    assert!(
        head_put["Item"].get("event_type").is_none() && head_put["Item"].get("timestamp").is_none(),
        "the head is sparse: not in the GSI, filtered from the stream"
    );
    let event_put = &items[1]["Put"];
    assert_eq!(
        event_put["ConditionExpression"],
        "attribute_not_exists(aggregate_id)"
    );
    assert_eq!(event_put["Item"]["version"], json!({"N": "4"}));
}

#[tokio::test]
async fn with_a_command_id_the_read_is_one_batch_and_the_record_expires() {
    let (store, sent) = store(
        vec![
            canned(
                200,
                json!({"Responses": {"events": []}, "UnprocessedKeys": {}}),
            ),
            canned(200, json!({})),
        ],
        1,
    );
    let (status, body, _) = post(
        &store,
        "/aggregates/u1/events",
        json!({"eventType": "user_created", "eventData": {}, "commandId": "c-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(targets(&sent), ["BatchGetItem", "TransactWriteItems"]);
    let sent = sent.lock().unwrap();
    let keys = &sent[0].1["RequestItems"]["events"];
    assert_eq!(keys["ConsistentRead"], true);
    assert_eq!(
        keys["Keys"].as_array().unwrap().len(),
        2,
        "head + command record"
    );
    let items = sent[1].1["TransactItems"].as_array().unwrap();
    assert_eq!(items.len(), 3, "head, event, command record");
    assert_eq!(
        items[0]["Put"]["ConditionExpression"], "attribute_not_exists(aggregate_id)",
        "a new aggregate has no head yet"
    );
    let record = &items[2]["Put"]["Item"];
    assert_eq!(record["command_id"], json!({"S": "c-1"}));
    assert!(record["version"]["N"].as_str().unwrap().starts_with('-'));
    assert!(record.get("event_type").is_none());
    let expires: i64 = record["expires_at"]["N"].as_str().unwrap().parse().unwrap();
    let in_a_day = chrono::Utc::now().timestamp() + 24 * 3600;
    assert!(
        (in_a_day - 60..=in_a_day + 60).contains(&expires),
        "{expires}"
    );
}

/// A BatchGetItem answer that processed nothing: every key the store asked for comes back in `UnprocessedKeys`
/// (DynamoDB's answer under load, a 200 that the SDK's retries never see).
fn nothing_processed() -> Step {
    Box::new(|request: &Value| {
        (
            200,
            json!({"Responses": {"events": []}, "UnprocessedKeys": request["RequestItems"].clone()}),
        )
    })
}

/// Unprocessed keys are asked for again, after a pause (DynamoDB asks for a backoff), and the append then
/// goes on as usual.
#[tokio::test]
async fn unprocessed_keys_are_read_again_after_a_backoff() {
    let at = Arc::new(Mutex::new(Vec::new()));
    let timed = |step: Step| -> Step {
        let at = Arc::clone(&at);
        Box::new(move |request: &Value| {
            at.lock().unwrap().push(std::time::Instant::now());
            step(request)
        })
    };
    let (store, sent) = store(
        vec![
            timed(nothing_processed()),
            timed(nothing_processed()),
            timed(canned(
                200,
                json!({"Responses": {"events": []}, "UnprocessedKeys": {}}),
            )),
            canned(200, json!({})),
        ],
        1,
    );
    let (status, body, _) = post(
        &store,
        "/aggregates/u1/events",
        json!({"eventType": "user_created", "eventData": {}, "commandId": "c-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        targets(&sent),
        [
            "BatchGetItem",
            "BatchGetItem",
            "BatchGetItem",
            "TransactWriteItems"
        ]
    );
    // Each retry waited at least the fixed half of the first backoff, 12.5 ms (a sleep never returns early).
    let at = at.lock().unwrap();
    for (retry, pair) in at.windows(2).enumerate() {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(12),
            "retry {} came after {:?}",
            retry + 1,
            pair[1] - pair[0]
        );
    }
}

/// Keys DynamoDB keeps leaving unprocessed are not asked for forever: after a bounded number of rounds the
/// append is refused as throttled (503, `Retry-After`), and nothing is written.
#[tokio::test]
async fn unprocessed_keys_that_stay_unprocessed_are_a_503_after_bounded_rounds() {
    let rounds = service::dynamo::UNPROCESSED_ROUNDS as usize;
    let (store, sent) = store((0..rounds).map(|_| nothing_processed()).collect(), 1);
    let (status, body, retry_after) = post(
        &store,
        "/aggregates/u1/events",
        json!({"eventType": "user_created", "eventData": {}, "commandId": "c-1"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(
        targets(&sent),
        vec!["BatchGetItem"; rounds],
        "nothing written"
    );
}

/// The write is applied but its response is lost (500), the SDK retries the same transaction and gets
/// `ConditionalCheckFailed` (our own items are in the way); the append reads the event at its version,
/// finds its own event id and answers success: one stored event, no 409, no second append.
#[tokio::test]
async fn an_ambiguous_write_is_recognised_as_our_own_and_stored_once() {
    for body in [
        json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}}),
        json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}, "expectedVersion": 0}),
    ] {
        let applied: Arc<Mutex<Option<Value>>> = Arc::default();
        let keep = Arc::clone(&applied);
        let echo = Arc::clone(&applied);
        let (store, sent) = store(
            vec![
                canned(200, json!({})),
                // DynamoDB applies the transaction, then the connection fails: the client sees a 500.
                Box::new(move |req: &Value| {
                    *keep.lock().unwrap() = Some(req["TransactItems"][1]["Put"]["Item"].clone());
                    (
                        500,
                        json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "lost"}),
                    )
                }),
                cancelled(&["ConditionalCheckFailed", "ConditionalCheckFailed"]),
                Box::new(move |_| {
                    let item = echo.lock().unwrap().clone().expect("the write was applied");
                    (200, json!({"Items": [item], "Count": 1}))
                }),
            ],
            2,
        );
        let (status, response, _) = post(&store, "/events", body.clone()).await;
        assert_eq!(status, 200, "{body}: {response}");
        let stored = applied.lock().unwrap().clone().unwrap();
        assert_eq!(response["version"], 1);
        assert_eq!(response["eventId"], stored["event_id"]["S"]);
        assert_eq!(response["timestamp"], stored["timestamp"]["S"]);

        assert_eq!(
            targets(&sent),
            [
                "GetItem",
                "TransactWriteItems",
                "TransactWriteItems",
                "Query"
            ]
        );
        let sent = sent.lock().unwrap();
        assert_eq!(
            sent[1].1, sent[2].1,
            "the SDK's retry is the same write, with the same event id"
        );
        assert_eq!(sent[3].1["ConsistentRead"], true);
        assert_eq!(
            sent[3].1["ExpressionAttributeValues"][":after"],
            json!({"N": "0"}),
            "the check reads the event at our version"
        );
        let event_puts = sent
            .iter()
            .filter(|(t, _)| t == "TransactWriteItems")
            .flat_map(|(_, b)| b["TransactItems"].as_array().unwrap().clone())
            .filter(|i| i["Put"]["Item"].get("event_type").is_some())
            .map(|i| i["Put"]["Item"]["event_id"].to_string())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(event_puts.len(), 1, "one event id was ever written");
    }
}

#[tokio::test]
async fn throttling_is_a_503_with_retry_after_and_nothing_internal() {
    for script in [
        vec![service_error(
            400,
            "ProvisionedThroughputExceededException",
            "Throughput exceeds the current capacity of your table arn:aws:dynamodb:us-east-1:123456789012:table/events",
        )],
        vec![
            canned(200, json!({})),
            cancelled(&["ThrottlingError", "None"]),
        ],
        vec![service_error(400, "ThrottlingException", "Rate exceeded")],
    ] {
        let (store, _sent) = store(script, 1);
        let (status, body, retry_after) = post(
            &store,
            "/events",
            json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}}),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(retry_after.as_deref(), Some("1"));
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("arn:") && !message.contains("Throughput"),
            "{message}"
        );
        assert!(
            body["error"]["requestId"]
                .as_str()
                .is_some_and(|id| message.contains(id))
        );
    }
}

#[tokio::test]
async fn a_500_carries_a_request_id_and_no_internals() {
    let (store, _sent) = store(
        vec![service_error(
            400,
            "ResourceNotFoundException",
            "Requested resource not found: Table: arn:aws:dynamodb:us-east-1:123456789012:table/events not found",
        )],
        1,
    );
    let (status, body, _) = post(
        &store,
        "/events",
        json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (500, json!("internal"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    for secret in ["arn:", "123456789012", "events", "ResourceNotFound"] {
        assert!(!message.contains(secret), "{message}");
    }
    let id = body["error"]["requestId"].as_str().expect("a request id");
    assert!(message.contains(id), "{message}");
}

#[tokio::test]
async fn a_lost_race_reloads_the_head_and_reports_the_current_version() {
    let other = json!({
        "aggregate_id": {"S": "u1"}, "version": {"N": "1"}, "event_id": {"S": "someone-else"},
        "event_type": {"S": "user_created"}, "event_data": {"M": {}},
        "timestamp": {"S": "2026-01-01T00:00:00.000Z"}, "metadata": {"M": {}}
    });
    let (store, sent) = store(
        vec![
            canned(200, json!({})),
            cancelled(&["ConditionalCheckFailed", "ConditionalCheckFailed", "None"]),
            canned(200, json!({"Items": [other], "Count": 1})),
            canned(200, json!({"Item": head(1, json!({"user": {}}))})),
        ],
        1,
    );
    let (status, body, _) = post(
        &store,
        "/aggregates/u1/events",
        json!({"events": [
            {"eventType": "user_created", "eventData": {}},
            {"eventType": "user_updated", "eventData": {"a": 1}}
        ], "expectedVersion": 0}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "version_conflict");
    assert_eq!(body["error"]["currentVersion"], 1);
    assert_eq!(
        targets(&sent),
        ["GetItem", "TransactWriteItems", "Query", "GetItem"]
    );
    let sent = sent.lock().unwrap();
    let items = sent[1].1["TransactItems"].as_array().unwrap();
    assert_eq!(items.len(), 3, "one transaction: the head and both events");
    for (i, item) in items[1..].iter().enumerate() {
        assert_eq!(
            item["Put"]["ConditionExpression"],
            "attribute_not_exists(aggregate_id)"
        );
        assert_eq!(
            item["Put"]["Item"]["version"],
            json!({"N": (i + 1).to_string()})
        );
    }
}
