//! `deployer::replay` (behind `cargo xtask replay`) against the local AWS endpoint: read models rebuilt from
//! events appended by the service's own store equal the `?consistent=true` replay of the query API; one
//! aggregate alone; a read model already ahead (a projector that got further) is never moved backwards; a
//! poison event is reported and the other aggregates are still replayed.

use deployer::replay::{ReplayRequest, replay};
use deployer::ui::{Confirmation, RecordingUi};
use serde_json::{Value, json};
use service::aws_sdk_dynamodb::types::AttributeValue;
use service::{DynamoStore, EventStore, ReadModel};
use tests::store::{FreshStore, append, query};

/// What `GET /aggregates/{id}?consistent=true` answers: (version, state).
async fn consistent_view(store: &DynamoStore, aggregate: &str) -> (u64, Value) {
    let (status, body) = query(store, &format!("/aggregates/{aggregate}?consistent=true")).await;
    assert_eq!(status, 200, "consistent read of {aggregate}");
    (body["version"].as_u64().unwrap(), body["state"].clone())
}

async fn read_model(store: &DynamoStore, aggregate: &str) -> Option<ReadModel> {
    store.get_read_model(aggregate).await.unwrap()
}

#[tokio::test]
async fn replay_rebuilds_read_models_without_moving_any_backwards_and_reports_poison() {
    let fresh = FreshStore::start("replay").await;
    let (client, config, store) = (&fresh.client, &fresh.config, &fresh.store);

    // Five aggregates of a few events each, written by the service's own append.
    let ids = ["u1", "u2", "u3", "u4", "u5"];
    for (i, id) in ids.iter().enumerate() {
        let mut events = vec![("user_created", json!({"name": format!("user {i}")}))];
        for n in 0..i {
            events.push(("user_updated", json!({"age": n})));
        }
        append(store, id, events).await;
    }
    // No projector ran: u1..u5 have no read model. Corrupt one (wrong state, behind) and put one ahead of
    // its log, as a projector that got further would have (u5 has 5 events; pretend it is at 9).
    let stale = ReadModel {
        aggregate_id: "u2".into(),
        aggregate_type: Some("user".into()),
        version: 1,
        state: json!({"user": {"name": "wrong"}}),
        updated_at: domain::now_timestamp(),
    };
    store.put_read_model(&stale, None).await.unwrap();
    let ahead = ReadModel {
        aggregate_id: "u5".into(),
        aggregate_type: Some("user".into()),
        version: 9,
        state: json!({"user": {"name": "from the future"}}),
        updated_at: domain::now_timestamp(),
    };
    store.put_read_model(&ahead, None).await.unwrap();

    let all = ReplayRequest {
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        aggregate: None,
        segments: 4,
        force: false,
        concurrency: 4,
    };
    let ui = RecordingUi::new(Confirmation::Yes);
    let outcome = replay(client, &all, &ui).await.expect("replay runs");
    assert_eq!(outcome.aggregates_seen, 5, "{outcome}");
    assert_eq!(outcome.aggregates_replayed, 4, "{outcome}");
    assert_eq!(outcome.aggregates_skipped, 1, "{outcome}");
    assert_eq!(outcome.events_replayed, 1 + 2 + 3 + 4, "{outcome}");
    assert_eq!(outcome.events_skipped, 5, "{outcome}");
    assert!(outcome.failures.is_empty(), "{outcome}");
    for id in &ids[..4] {
        let model = read_model(store, id).await.expect("rebuilt");
        let (version, state) = consistent_view(store, id).await;
        assert_eq!((model.version, model.state), (version, state), "{id}");
    }
    assert_eq!(
        read_model(store, "u5").await.unwrap(),
        ahead,
        "a read model ahead of the log is never moved backwards"
    );
    let text = outcome.to_string();
    assert!(text.contains("4 replayed, 1 skipped"), "{text}");
    assert!(text.contains("events/s"), "{text}");
    let json: Value = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["events_replayed"], 10);

    // Replaying again changes nothing: everything is current.
    let again = replay(client, &all, &ui).await.unwrap();
    assert_eq!(
        (again.aggregates_replayed, again.aggregates_skipped),
        (0, 5)
    );

    // One aggregate: delete its read model, replay it alone; the others are not touched.
    client
        .delete_item()
        .table_name(&config.projections_table)
        .key("aggregate_id", AttributeValue::S("u3".into()))
        .send()
        .await
        .unwrap();
    let u4_before = read_model(store, "u4").await.unwrap();
    let one = ReplayRequest {
        aggregate: Some("u3".into()),
        ..all.clone()
    };
    let outcome = replay(client, &one, &ui).await.unwrap();
    assert_eq!(
        (
            outcome.aggregates_seen,
            outcome.aggregates_replayed,
            outcome.events_replayed
        ),
        (1, 1, 3),
        "{outcome}"
    );
    assert_eq!(
        read_model(store, "u3").await.unwrap().state,
        consistent_view(store, "u3").await.1
    );
    assert_eq!(read_model(store, "u4").await.unwrap(), u4_before);

    // A poison event written around the API (unknown type at version 2 of a new aggregate, then one more
    // valid-looking event after it): reported with its version, not fatal; the progress before it is written.
    append(store, "p1", vec![("user_created", json!({"name": "P"}))]).await;
    let (events, _) = store.read_events("p1", 0, None, true).await.unwrap();
    let mut poison = events[0].clone();
    poison.version = 2;
    poison.event_type = "user_exploded".into();
    let mut after = events[0].clone();
    after.version = 3;
    after.event_type = "user_updated".into();
    store.write_events(&[poison, after]).await.unwrap();
    client
        .delete_item()
        .table_name(&config.projections_table)
        .key("aggregate_id", AttributeValue::S("u1".into()))
        .send()
        .await
        .unwrap();
    let outcome = replay(client, &all, &ui).await.unwrap();
    assert_eq!(outcome.aggregates_seen, 6, "{outcome}");
    assert_eq!(outcome.failures.len(), 1, "{outcome}");
    let failure = &outcome.failures[0];
    assert_eq!(failure.aggregate_id, "p1");
    assert_eq!(failure.version, Some(2));
    assert!(
        failure.reason.contains("user_exploded"),
        "{}",
        failure.reason
    );
    assert_eq!(outcome.events_failed, 2);
    assert!(outcome.to_string().contains("`p1` version 2"), "{outcome}");
    // u1 (deleted) and p1's first event were still replayed.
    assert_eq!(outcome.aggregates_replayed, 2, "{outcome}");
    assert_eq!(read_model(store, "p1").await.unwrap().version, 1);
    assert_eq!(read_model(store, "u1").await.unwrap().version, 1);
    fresh.stop();
}

/// `--force` repairs a read model that is at the log's version but holds a wrong state (what a projector
/// bug leaves behind), conditionally on the read model it read: a writer that read the wrong one before the
/// repair (a projector mid-batch) loses its conditional write afterwards instead of overwriting the repair.
#[tokio::test]
async fn replay_force_repairs_current_but_wrong_read_models_conditionally() {
    let fresh = FreshStore::start("force").await;
    let (client, config, store) = (&fresh.client, &fresh.config, &fresh.store);
    append(
        store,
        "u1",
        vec![
            ("user_created", json!({"name": "Ann"})),
            ("user_updated", json!({"age": 3})),
        ],
    )
    .await;
    append(store, "u2", vec![("user_created", json!({"name": "Bob"}))]).await;
    let wrong = ReadModel {
        aggregate_id: "u1".into(),
        aggregate_type: Some("user".into()),
        version: 2,
        state: json!({"user": {"name": "wrong"}}),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    };
    store.put_read_model(&wrong, None).await.unwrap();
    let (version, right) = consistent_view(store, "u1").await;
    assert_eq!(version, 2);

    let request = ReplayRequest {
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        aggregate: None,
        segments: 2,
        concurrency: 2,
        force: false,
    };
    let ui = RecordingUi::new(Confirmation::Yes);
    // Without --force a current read model is left alone, even a wrong one.
    let outcome = replay(client, &request, &ui).await.unwrap();
    assert_eq!(
        (outcome.aggregates_replayed, outcome.aggregates_skipped),
        (1, 1),
        "{outcome}"
    );
    assert_eq!(read_model(store, "u1").await.unwrap(), wrong);

    let forced = ReplayRequest {
        force: true,
        ..request.clone()
    };
    let outcome = replay(client, &forced, &ui).await.unwrap();
    assert_eq!(
        (outcome.aggregates_replayed, outcome.aggregates_skipped),
        (1, 1),
        "only the wrong one is rewritten: {outcome}"
    );
    let repaired = read_model(store, "u1").await.unwrap();
    assert_eq!((repaired.version, &repaired.state), (2, &right));

    // A writer that read the wrong read model before the repair loses: the condition is on what it read.
    let late = ReadModel {
        version: 3,
        state: json!({"user": {"name": "wrong", "late": true}}),
        ..wrong.clone()
    };
    assert!(matches!(
        store.put_read_model(&late, Some(&wrong)).await,
        Err(service::StoreError::Conflict)
    ));
    assert_eq!(read_model(store, "u1").await.unwrap(), repaired);

    // Forcing again finds nothing to repair.
    let outcome = replay(client, &forced, &ui).await.unwrap();
    assert_eq!(
        (outcome.aggregates_replayed, outcome.aggregates_skipped),
        (0, 2),
        "{outcome}"
    );
    fresh.stop();
}
