//! The store's guarantees hold for every aggregate type the domain registers, not for the seed's user alone:
//! each registered type is driven through the same handlers with its own `example()` history (read from the
//! registry, so a user's new aggregate is covered without editing this file): concurrency, idempotency, bad
//! input, wrong aggregate type, and a projection equal to the replay of the log.

mod support;

use futures::future::join_all;
use serde_json::{Map, Value, json};
use service::MemoryStore;
use service::testing::{stream_event, stream_record};
use support::{get, post};

fn kinds() -> Vec<&'static dyn domain::Kind> {
    domain::registry().kinds().collect()
}

fn body(event_type: &str, data: &Map<String, Value>, extra: Value) -> Value {
    let mut b = json!({"eventType": event_type, "eventData": data});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// Writes the example history to `id` and returns its length.
async fn write_example(store: &MemoryStore, kind: &dyn domain::Kind, id: &str) -> u64 {
    let example = kind.example();
    for (i, (t, d)) in example.iter().enumerate() {
        let (status, b) = post(
            store,
            &format!("/aggregates/{id}/events"),
            &body(t, d, json!({"expectedVersion": i})),
        )
        .await;
        assert_eq!(status, 201, "{}: {b}", kind.name());
    }
    example.len() as u64
}

#[test]
fn the_suite_covers_more_than_one_aggregate_type() {
    assert!(kinds().len() >= 2, "the examples ship two aggregate types");
}

#[tokio::test]
async fn concurrent_guarded_appends_let_exactly_one_win_for_every_aggregate_type() {
    for kind in kinds() {
        let store = MemoryStore::new();
        let id = format!("{}-race", kind.name());
        let n = write_example(&store, kind, &id).await;
        let (t, d) = kind.example().last().cloned().unwrap();
        let results = join_all((0..20).map(|_| {
            let b = body(t, &d, json!({"expectedVersion": n}));
            let store = &store;
            let id = &id;
            async move { post(store, &format!("/aggregates/{id}/events"), &b).await }
        }))
        .await;
        let won = results.iter().filter(|(s, _)| *s == 201).count();
        let lost = results
            .iter()
            .filter(|(s, b)| *s == 409 && b["error"]["code"] == "version_conflict")
            .count();
        assert_eq!((won, lost), (1, 19), "{}: {results:?}", kind.name());
        let (_, page) = get(&store, &format!("/aggregates/{id}/events")).await;
        let versions: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect();
        assert_eq!(
            versions,
            (1..=n + 1).collect::<Vec<_>>(),
            "{}: gapless, no duplicate",
            kind.name()
        );
    }
}

#[tokio::test]
async fn a_retried_command_is_stored_once_for_every_aggregate_type() {
    for kind in kinds() {
        let store = MemoryStore::new();
        let id = format!("{}-retry", kind.name());
        let (t, d) = kind.example()[0].clone();
        let b = body(t, &d, json!({"aggregateId": id, "commandId": "c-1"}));
        let first = post(&store, "/events", &b).await;
        let again = post(&store, "/events", &b).await;
        assert_eq!(first.0, 200, "{}: {:?}", kind.name(), first.1);
        assert_eq!(
            first,
            again,
            "{}: the retry gets the original answer",
            kind.name()
        );
        assert_eq!(store.all_events().len(), 1, "{}", kind.name());
        let stored = &store.all_events()[0];
        assert_eq!(stored.aggregate_type.as_deref(), Some(kind.name()));
        assert_eq!(stored.schema_version, Some(1));
    }
}

#[tokio::test]
async fn bad_data_and_foreign_events_are_refused_and_nothing_is_written() {
    let kinds = kinds();
    for (i, kind) in kinds.iter().enumerate() {
        let store = MemoryStore::new();
        let id = format!("{}-bad", kind.name());
        write_example(&store, *kind, &id).await;
        let before = store.all_events().len();
        // Data that is not an object of its schema: 400 naming `eventData`.
        let (t, _) = kind.example()[0].clone();
        let (status, b) = post(
            &store,
            &format!("/aggregates/{id}/events"),
            &json!({"eventType": t, "eventData": {"": 1}}),
        )
        .await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{}: {b}",
            kind.name()
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`eventData"),
            "{b}"
        );
        // Another aggregate type's event: 422 wrong_aggregate_type.
        let other = kinds[(i + 1) % kinds.len()];
        let (ot, od) = other.example()[0].clone();
        let (status, b) = post(
            &store,
            &format!("/aggregates/{id}/events"),
            &body(ot, &od, json!({})),
        )
        .await;
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (422, Some("wrong_aggregate_type")),
            "{}: {b}",
            kind.name()
        );
        assert_eq!(
            store.all_events().len(),
            before,
            "{}: nothing written",
            kind.name()
        );
    }
}

#[tokio::test]
async fn the_read_model_equals_the_replay_for_every_aggregate_type() {
    let store = MemoryStore::new();
    for kind in kinds() {
        let id = format!("{}-projected", kind.name());
        write_example(&store, kind, &id).await;
        let (t, d) = kind.example().last().cloned().unwrap();
        let (status, _) = post(
            &store,
            &format!("/aggregates/{id}/events"),
            &body(t, &d, json!({})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let records = store
        .all_events()
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:020}", i + 1), e))
        .collect();
    let response = service::projector::handle(&store, stream_event(records)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    for kind in kinds() {
        let id = format!("{}-projected", kind.name());
        let (_, model) = get(&store, &format!("/aggregates/{id}")).await;
        let (_, replay) = get(&store, &format!("/aggregates/{id}?consistent=true")).await;
        assert_eq!(model, replay, "{}", kind.name());
        assert_eq!(model["aggregateType"], kind.name());
    }
}

/// Every view of every aggregate type is served by its own route from what the projector wrote: 503
/// `view_not_ready` until a version is live, then the aggregate's row under the key its state gives, equal to
/// the row computed from the replayed state.
#[tokio::test]
async fn every_view_serves_the_projected_rows_once_live() {
    use service::EventStore as _;
    let store = MemoryStore::new();
    let mut checked = 0;
    for kind in kinds() {
        let id = format!("{}-viewed", kind.name());
        write_example(&store, kind, &id).await;
    }
    let records = store
        .all_events()
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:020}", i + 1), e))
        .collect();
    let response = service::projector::handle(&store, stream_event(records)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    for kind in kinds() {
        let id = format!("{}-viewed", kind.name());
        let example: Vec<_> = kind.example();
        let state = domain::registry()
            .replay(example.iter().map(|(t, d)| (*t, 1, d)))
            .unwrap()
            .unwrap();
        for row in state.view_rows() {
            let Some(key) = row.key.clone() else { continue };
            let path = format!("/views/{}/{}", row.view, key);
            let (status, body) = get(&store, &path).await;
            assert_eq!(status, 503, "{path} before any version is live: {body}");
            assert_eq!(body["error"]["code"], "view_not_ready");
            store
                .set_view_live_version(row.view, row.version, None)
                .await
                .unwrap();
            let (status, body) = get(&store, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["version"], row.version);
            let rows = body["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{path}: {body}");
            assert_eq!(rows[0]["aggregateId"], id.as_str());
            assert_eq!(rows[0]["aggregateType"], kind.name());
            assert_eq!(rows[0]["version"], example.len() as u64);
            assert_eq!(
                rows[0]["row"], row.row,
                "{path}: the row is the replayed state's"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "both examples declare a view");
}
