//! The local stream poller against a real local endpoint (fresh moto): records reach the consumer in
//! order with Lambda's event shape; a poison record is isolated by bisection, retried, and described in
//! the dead-letter queue while the others are delivered; ReportBatchItemFailures resumes from the lowest
//! failed record; checkpoints survive an engine restart.

mod local_support;

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use local_engine::endpoint::Endpoint;
use local_engine::{Engine, EngineHandle, StreamSettings};
use local_support::*;
use serde_json::Value;
use stack::{FunctionName, StartingPosition, StreamMapping};

struct Fixture {
    moto: Endpoint,
    sdk: aws_config::SdkConfig,
    table: String,
    stream_arn: String,
    dlq_url: String,
}

async fn fixture(dir: &std::path::Path, name: &str) -> Fixture {
    let moto = Endpoint::start_fresh(dir).await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("{name}-events");
    let out = ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("aggregate_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("version")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("aggregate_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("version")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("table created");
    let stream_arn = out
        .table_description
        .unwrap()
        .latest_stream_arn
        .expect("stream enabled");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Fixture {
        moto,
        sdk,
        table,
        stream_arn,
        dlq_url,
    }
}

async fn put(f: &Fixture, id: &str, version: u32) {
    aws_sdk_dynamodb::Client::new(&f.sdk)
        .put_item()
        .table_name(&f.table)
        .item("aggregate_id", AttributeValue::S(id.into()))
        .item("version", AttributeValue::N(version.to_string()))
        .item("event_type", AttributeValue::S("user_created".into()))
        .send()
        .await
        .expect("put item");
}

fn mapping(bisect: bool, retries: u32) -> StreamMapping {
    StreamMapping {
        filter_patterns: vec![stack::plan::EVENTS_ONLY_FILTER.to_string()],
        batch_size: 10,
        maximum_batching_window_seconds: 0,
        maximum_retry_attempts: retries,
        maximum_record_age_seconds: 3600,
        bisect_batch_on_function_error: bisect,
        parallelization_factor: 1,
        starting_position: StartingPosition::TrimHorizon,
    }
}

async fn engine(
    f: &Fixture,
    state: &std::path::Path,
    out: &std::path::Path,
    mode: &str,
    mapping: StreamMapping,
) -> EngineHandle {
    let spec = probe_spec(
        FunctionName::Projector,
        Duration::from_secs(10),
        &[("PROBE_OUT", out.to_str().unwrap()), ("PROBE_MODE", mode)],
    );
    let mut cfg = probe_engine(state, &f.moto.url(), vec![spec], vec![]);
    cfg.stream = Some(StreamSettings {
        stream_arn: f.stream_arn.clone(),
        dead_letter_queue_url: Some(f.dlq_url.clone()),
        mapping,
        function: FunctionName::Projector,
        poll_interval: Duration::from_millis(100),
    });
    Engine::start(cfg).await.expect("engine starts")
}

fn delivered(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(out: &std::path::Path) -> Vec<String> {
    delivered(out)
        .iter()
        .map(|v| {
            format!(
                "{}#{}",
                v["id"].as_str().unwrap(),
                v["record"]["dynamodb"]["Keys"]["version"]["N"]
                    .as_str()
                    .unwrap()
            )
        })
        .collect()
}

async fn dlq_messages(f: &Fixture) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&f.sdk);
    let out = sqs
        .receive_message()
        .queue_url(&f.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn poison_record_goes_to_dlq_others_project_and_checkpoints_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), "bisect").await;
    let out = dir.path().join("delivered.jsonl");
    let state = dir.path().join("state");
    // All four are in the stream before the poller starts, so they arrive as one batch.
    put(&f, "a1", 1).await;
    put(&f, "a1", 2).await;
    put(&f, "poison-1", 1).await;
    put(&f, "a2", 1).await;
    let eng = engine(&f, &state, &out, "fail", mapping(true, 2)).await;

    let all = eventually(Duration::from_secs(30), async || {
        let got = ids(&out);
        (got.len() >= 3).then_some(got)
    })
    .await
    .expect("the healthy records are delivered");
    assert_eq!(
        all,
        vec!["a1#1", "a1#2", "a2#1"],
        "in stream order, poison skipped"
    );
    let rec = &delivered(&out)[0]["record"];
    assert_eq!(rec["eventSource"], "aws:dynamodb");
    assert_eq!(rec["eventName"], "INSERT");
    assert_eq!(rec["awsRegion"], "us-east-1");
    assert_eq!(rec["eventSourceARN"], f.stream_arn.as_str());
    assert_eq!(rec["dynamodb"]["StreamViewType"], "NEW_IMAGE");
    assert_eq!(
        rec["dynamodb"]["NewImage"]["event_type"]["S"],
        "user_created"
    );
    assert!(rec["dynamodb"]["SequenceNumber"].is_string());
    assert!(rec["dynamodb"]["ApproximateCreationDateTime"].is_number());

    let msgs = eventually(Duration::from_secs(10), async || {
        let m = dlq_messages(&f).await;
        (!m.is_empty()).then_some(m)
    })
    .await
    .expect("the poison record is described in the DLQ");
    assert_eq!(msgs.len(), 1);
    let info = &msgs[0]["DDBStreamBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], f.stream_arn.as_str());
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert!(info["shardId"].is_string());
    assert_eq!(
        msgs[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(msgs[0]["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(msgs[0]["responseContext"]["functionError"], "Unhandled");
    let stats = eng.poller_stats().unwrap();
    assert_eq!(stats.records_sent_to_dlq, 1);
    eng.stop().await;

    // A restarted engine resumes after the checkpoint: only the new record arrives.
    put(&f, "a3", 1).await;
    let eng = engine(&f, &state, &out, "fail", mapping(true, 2)).await;
    assert!(!eng.data_reset(), "same stream: no reset reported");
    let got = eventually(Duration::from_secs(20), async || {
        let got = ids(&out);
        (got.len() >= 4).then_some(got)
    })
    .await
    .expect("the new record is delivered after a restart");
    assert_eq!(
        got,
        vec!["a1#1", "a1#2", "a2#1", "a3#1"],
        "nothing delivered twice"
    );
    eng.stop().await;
}

#[tokio::test]
async fn batch_item_failures_resume_from_the_lowest_failed_record() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), "partial").await;
    let out = dir.path().join("delivered.jsonl");
    put(&f, "b1", 1).await;
    put(&f, "poison-2", 1).await;
    put(&f, "b2", 1).await;
    let eng = engine(
        &f,
        &dir.path().join("state"),
        &out,
        "partial",
        mapping(false, 1),
    )
    .await;
    let msgs = eventually(Duration::from_secs(30), async || {
        let m = dlq_messages(&f).await;
        (!m.is_empty()).then_some(m)
    })
    .await
    .expect("the failed records are described in the DLQ");
    // b1 succeeded; the poison record and everything after it were retried once, then given up.
    assert_eq!(ids(&out), vec!["b1#1"]);
    assert_eq!(msgs[0]["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(msgs[0]["requestContext"]["approximateInvokeCount"], 2);
    // Later records flow again.
    put(&f, "b3", 1).await;
    let got = eventually(Duration::from_secs(20), async || {
        let got = ids(&out);
        (got.len() >= 2).then_some(got)
    })
    .await
    .expect("the stream moves on");
    assert_eq!(got, vec!["b1#1", "b3#1"]);
    eng.stop().await;
}
