//! The projector against the in-memory store: duplicates, reordering, gaps, poison events, one write per
//! aggregate per batch, and a property test over random delivery schedules (the read model always ends
//! equal to the replay of the log).

use domain::{StoredEvent, registry};
use proptest::prelude::*;
use serde_json::{Value, json};
use service::aws_lambda_events::event::dynamodb::EventRecord;
use service::testing::{stream_event, stream_record};
use service::{EventStore, MemoryStore};

fn event(aggregate: &str, version: u64, event_type: &str, data: Value) -> StoredEvent {
    StoredEvent {
        aggregate_id: aggregate.into(),
        version,
        event_id: format!("{aggregate}-{version}"),
        event_type: event_type.into(),
        event_data: data.as_object().cloned().unwrap_or_default(),
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        command_id: None,
        metadata: Default::default(),
        aggregate_type: None,
        schema_version: None,
    }
}

/// A valid log: created, n updates.
fn user_log(aggregate: &str, updates: u64) -> Vec<StoredEvent> {
    let mut log = vec![event(
        aggregate,
        1,
        "user_created",
        json!({"name": aggregate}),
    )];
    log.extend((0..updates).map(|i| event(aggregate, i + 2, "user_updated", json!({"n": i}))));
    log
}

fn seq(e: &StoredEvent) -> String {
    format!("{}-{:05}", e.aggregate_id, e.version)
}

fn record(e: &StoredEvent) -> EventRecord {
    stream_record(&seq(e), e)
}

async fn failures(store: &MemoryStore, records: Vec<EventRecord>) -> Vec<String> {
    let response = service::projector::handle(store, stream_event(records)).await;
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect()
}

fn replay_state(log: &[StoredEvent]) -> Value {
    registry()
        .replay(
            log.iter()
                .map(|e| (e.event_type.as_str(), e.schema_version(), &e.event_data)),
        )
        .unwrap()
        .map_or_else(|| serde_json::json!({}), |s| s.state())
}

async fn store_with(logs: &[&[StoredEvent]]) -> MemoryStore {
    let store = MemoryStore::new();
    for log in logs {
        for e in *log {
            store.insert_raw(e.clone());
        }
    }
    store
}

#[tokio::test]
async fn duplicates_and_reordering_within_a_batch_apply_once_with_one_write() {
    let log = user_log("a", 3);
    let store = store_with(&[&log]).await;
    let batch = vec![
        record(&log[2]),
        record(&log[0]),
        record(&log[2]),
        record(&log[1]),
        record(&log[3]),
        record(&log[0]),
    ];
    assert!(failures(&store, batch).await.is_empty());
    let model = store.get_read_model("a").await.unwrap().unwrap();
    assert_eq!((model.version, model.state), (4, replay_state(&log)));
    assert_eq!(
        store.read_model_writes(),
        1,
        "one read-model write per aggregate per batch"
    );
    // Redelivery of the whole batch changes nothing and writes nothing.
    assert!(
        failures(&store, log.iter().map(record).collect())
            .await
            .is_empty()
    );
    assert_eq!(store.read_model_writes(), 1);
}

#[tokio::test]
async fn a_gap_is_filled_from_the_log() {
    let log = user_log("a", 4);
    let store = store_with(&[&log]).await;
    assert!(failures(&store, vec![record(&log[4])]).await.is_empty());
    let model = store.get_read_model("a").await.unwrap().unwrap();
    assert_eq!((model.version, model.state), (5, replay_state(&log)));
}

#[tokio::test]
async fn a_poison_event_fails_its_aggregate_from_there_on_but_not_other_aggregates() {
    let mut bad = user_log("bad", 1);
    bad.push(event("bad", 3, "user_exploded", json!({})));
    bad.push(event("bad", 4, "user_updated", json!({"after": true})));
    let good = user_log("good", 2);
    let store = store_with(&[&bad, &good]).await;
    let batch = vec![
        record(&bad[0]),
        record(&good[0]),
        record(&bad[1]),
        record(&bad[2]),
        record(&good[1]),
        record(&bad[3]),
        record(&good[2]),
    ];
    let mut failed = failures(&store, batch).await;
    failed.sort();
    assert_eq!(failed, [seq(&bad[2]), seq(&bad[3])]);
    // Progress before the poison event is kept; the other aggregate is complete.
    assert_eq!(
        store.get_read_model("bad").await.unwrap().unwrap().version,
        2
    );
    assert_eq!(
        store.get_read_model("good").await.unwrap().unwrap().version,
        3
    );
    // Retries keep failing (so the records end in the dead-letter queue) instead of being skipped.
    assert_eq!(
        failures(&store, vec![record(&bad[2])]).await,
        [seq(&bad[2])]
    );
}

/// Stored events are facts: one that today's rules would refuse (an update before the user exists,
/// written when the rules were looser) is folded, not sent to the dead-letter queue.
#[tokio::test]
async fn an_event_todays_rules_refuse_is_folded_as_a_fact() {
    let log = vec![event("r", 1, "user_updated", json!({"a": 1}))];
    let store = store_with(&[&log]).await;
    assert!(failures(&store, vec![record(&log[0])]).await.is_empty());
    let model = store.get_read_model("r").await.unwrap().unwrap();
    assert_eq!((model.version, model.state), (1, json!({"user": {"a": 1}})));
}

/// The append's head (version 0) and command records (negative versions) are not events: a consumer
/// without the mapping's filter skips them instead of failing them.
#[tokio::test]
async fn heads_and_command_records_are_skipped() {
    let log = user_log("h", 0);
    let store = store_with(&[&log]).await;
    let mut head = record(&log[0]);
    head.change.keys = serde_dynamo::to_item(json!({"aggregate_id": "h", "version": 0})).unwrap();
    head.change.new_image = serde_dynamo::to_item(
        json!({"aggregate_id": "h", "version": 0, "head_version": 1, "state": "{}"}),
    )
    .unwrap();
    let mut command = record(&log[0]);
    command.change.keys =
        serde_dynamo::to_item(json!({"aggregate_id": "h", "version": -12345})).unwrap();
    command.change.new_image =
        serde_dynamo::to_item(json!({"aggregate_id": "h", "version": -12345, "command_id": "c"}))
            .unwrap();
    assert!(failures(&store, vec![head, command]).await.is_empty());
    assert!(store.get_read_model("h").await.unwrap().is_none());
}

#[tokio::test]
async fn an_item_that_is_not_an_event_is_a_failure() {
    let good = user_log("g", 0);
    let store = store_with(&[&good]).await;
    let mut broken = record(&good[0]);
    broken.change.new_image =
        serde_dynamo::to_item(json!({"aggregate_id": "x", "version": 1})).unwrap();
    broken.change.keys = serde_dynamo::to_item(json!({"aggregate_id": "x", "version": 1})).unwrap();
    broken.change.sequence_number = Some("x-00001".into());
    let failed = failures(&store, vec![broken, record(&good[0])]).await;
    assert_eq!(failed, ["x-00001"]);
    assert_eq!(store.get_read_model("g").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn records_other_than_inserts_are_ignored() {
    let log = user_log("m", 0);
    let store = store_with(&[&log]).await;
    let mut modify = record(&log[0]);
    modify.event_name = "MODIFY".into();
    assert!(failures(&store, vec![modify]).await.is_empty());
    assert!(store.get_read_model("m").await.unwrap().is_none());
}

/// One delivery schedule: batches of indices into the global record list (duplicates and any order allowed).
fn schedule(total: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    prop::collection::vec(prop::collection::vec(0..total, 0..12), 0..8)
}

fn logs_strategy() -> impl Strategy<Value = Vec<(u64, bool)>> {
    // Per aggregate: number of updates, and whether it ends deleted.
    prop::collection::vec((0u64..6, any::<bool>()), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn read_models_converge_to_the_replay_of_the_log(
        shape in logs_strategy(),
        batches in schedule(64),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut logs: Vec<Vec<StoredEvent>> = Vec::new();
            for (i, (updates, deleted)) in shape.iter().enumerate() {
                let name = format!("agg{i}");
                let mut log = user_log(&name, *updates);
                if *deleted {
                    let v = log.len() as u64 + 1;
                    log.push(event(&name, v, "user_deleted", json!({})));
                }
                logs.push(log);
            }
            let store = MemoryStore::new();
            let all: Vec<StoredEvent> = logs.iter().flatten().cloned().collect();
            for e in &all {
                store.insert_raw(e.clone());
            }
            // Random batches: duplicates, reordering and redelivery of arbitrary records.
            for batch in &batches {
                let records: Vec<EventRecord> = batch.iter().map(|i| record(&all[i % all.len()])).collect();
                let writes_before = store.read_model_writes();
                let failed = failures(&store, records).await;
                prop_assert!(failed.is_empty(), "valid events never fail: {failed:?}");
                let touched: std::collections::HashSet<&str> =
                    batch.iter().map(|i| all[i % all.len()].aggregate_id.as_str()).collect();
                prop_assert!(store.read_model_writes() - writes_before <= touched.len() as u64);
                // At every point a read model is the replay of a prefix of its log.
                for log in &logs {
                    if let Some(m) = store.get_read_model(&log[0].aggregate_id).await.unwrap() {
                        let prefix = &log[..m.version as usize];
                        prop_assert_eq!(&m.state, &replay_state(prefix));
                    }
                }
            }
            // At-least-once: every record is eventually delivered (here, once more, in stream order).
            prop_assert!(failures(&store, all.iter().map(record).collect()).await.is_empty());
            for log in &logs {
                let m = store.get_read_model(&log[0].aggregate_id).await.unwrap().unwrap();
                prop_assert_eq!(m.version, log.len() as u64);
                prop_assert_eq!(&m.state, &replay_state(log));
                prop_assert_eq!(registry().kind("user").unwrap().restore(&m.state).unwrap().state(), m.state.clone());
            }
            Ok(())
        })?;
    }
}
