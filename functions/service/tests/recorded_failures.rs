//! Failure paths of the DynamoDB store with recorded HTTP exchanges (`StaticReplayClient`): throttling
//! becomes a 500 `internal` with nothing retried behind the caller's back beyond the SDK's policy, and a
//! cancelled transaction becomes a reload and a 409 with the current version. The exact requests sent are
//! asserted (conditional writes, consistent reads).

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use service::testing::request;
use service::{Config, DynamoStore};

mod support;

fn exchange(target: &str, status: u16, body: Value) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::builder()
            .uri("http://dynamodb.local/")
            .header("x-amz-target", format!("DynamoDB_20120810.{target}"))
            .body(SdkBody::empty())
            .unwrap(),
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from(body.to_string()))
            .unwrap(),
    )
}

fn store(replay: &StaticReplayClient) -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url("http://dynamodb.local")
        .retry_config(RetryConfig::disabled())
        .http_client(replay.clone())
        .build();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        Config {
            events_table: "events".into(),
            projections_table: "projections".into(),
        },
    )
}

fn sent(replay: &StaticReplayClient) -> Vec<(String, Value)> {
    replay
        .actual_requests()
        .map(|r| {
            let target = r
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .to_string();
            let body = serde_json::from_slice(r.body().bytes().unwrap()).unwrap();
            (target, body)
        })
        .collect()
}

#[tokio::test]
async fn throttling_is_a_500_and_the_write_was_conditional() {
    let replay = StaticReplayClient::new(vec![
        exchange("Query", 200, json!({"Items": [], "Count": 0})),
        exchange(
            "PutItem",
            400,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "slow down"}),
        ),
    ]);
    let store = store(&replay);
    let body =
        json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}}).to_string();
    let (status, response) = support::decode(
        service::http::handle_command(&store, request("POST", "/events", Some(&body))).await,
    );
    assert_eq!(
        (status, response["error"]["code"].clone()),
        (500, json!("internal")),
        "{response}"
    );

    let sent = sent(&replay);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, "DynamoDB_20120810.Query");
    assert_eq!(
        sent[0].1["ConsistentRead"], true,
        "appends validate against a consistent read"
    );
    assert_eq!(sent[1].0, "DynamoDB_20120810.PutItem");
    assert_eq!(
        sent[1].1["ConditionExpression"],
        "attribute_not_exists(aggregate_id)"
    );
    assert_eq!(sent[1].1["Item"]["version"], json!({"N": "1"}));
    assert_eq!(
        sent[1].1["Item"]["event_type"],
        json!({"S": "user_created"})
    );
}

#[tokio::test]
async fn a_cancelled_transaction_reloads_and_reports_the_current_version() {
    let existing = json!({
        "aggregate_id": {"S": "u1"}, "version": {"N": "1"}, "event_id": {"S": "e1"},
        "event_type": {"S": "user_created"}, "event_data": {"M": {}},
        "timestamp": {"S": "2026-01-01T00:00:00.000Z"}, "metadata": {"M": {}}
    });
    let replay = StaticReplayClient::new(vec![
        exchange("Query", 200, json!({"Items": [], "Count": 0})),
        exchange(
            "TransactWriteItems",
            400,
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled",
                "CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]
            }),
        ),
        exchange("Query", 200, json!({"Items": [existing], "Count": 1})),
    ]);
    let store = store(&replay);
    let body = json!({"events": [
        {"eventType": "user_created", "eventData": {}},
        {"eventType": "user_updated", "eventData": {"a": 1}}
    ], "expectedVersion": 0})
    .to_string();
    let (status, response) = support::decode(
        service::http::handle_command(
            &store,
            request("POST", "/aggregates/u1/events", Some(&body)),
        )
        .await,
    );
    assert_eq!(status, 409, "{response}");
    assert_eq!(response["error"]["code"], "version_conflict");
    assert_eq!(response["error"]["currentVersion"], 1);

    let sent = sent(&replay);
    assert_eq!(sent.len(), 3);
    let items = sent[1].1["TransactItems"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one transaction with both events");
    for (i, item) in items.iter().enumerate() {
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
