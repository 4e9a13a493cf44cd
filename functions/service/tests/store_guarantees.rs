//! The event store's guarantees through the handlers, against the in-memory store (same conditions as
//! DynamoDB): the head makes appends independent of the log, a `commandId` reused with another body is
//! 409 `idempotency_conflict`, logs written before heads existed still work, stored events are folded
//! without today's rules, cursors carry their bounds, and pages are capped by bytes.

mod support;

use domain::{Metadata, StoredEvent};
use serde_json::{Value, json};
use service::store::{AppendWrite, Head};
use service::testing::{stream_event, stream_record};
use service::{EventStore, MemoryStore};
use support::{get, post};

fn event(aggregate: &str, version: u64, event_type: &str, data: Value) -> StoredEvent {
    StoredEvent {
        aggregate_id: aggregate.into(),
        version,
        event_id: format!("{aggregate}-{version}"),
        event_type: event_type.into(),
        event_data: data.as_object().cloned().unwrap(),
        timestamp: format!("2026-01-01T00:00:{:02}.000Z", version % 60),
        command_id: None,
        metadata: Metadata::default(),
        aggregate_type: None,
        schema_version: None,
    }
}

async fn project(store: &MemoryStore, events: &[StoredEvent]) {
    let records = events
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:020}", i + 1), e))
        .collect();
    let response = service::projector::handle(store, stream_event(records)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

#[tokio::test]
async fn a_command_id_reused_with_another_body_is_an_idempotency_conflict() {
    let store = MemoryStore::new();
    let first =
        json!({"eventType": "user_created", "eventData": {"name": "Ann"}, "commandId": "c1"});
    let (status, original) = post(&store, "/aggregates/u1/events", &first).await;
    assert_eq!(status, 201, "{original}");
    // The same body (keys in another order) is a retry: the original result, nothing written.
    let same =
        json!({"commandId": "c1", "eventData": {"name": "Ann"}, "eventType": "user_created"});
    let (status, again) = post(&store, "/aggregates/u1/events", &same).await;
    assert_eq!((status, &again), (201, &original));
    let other =
        json!({"eventType": "user_created", "eventData": {"name": "Bob"}, "commandId": "c1"});
    let (status, body) = post(&store, "/aggregates/u1/events", &other).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_conflict");
    assert_eq!(store.all_events().len(), 1);
    // A commandId is scoped to its aggregate.
    let (status, _) = post(&store, "/aggregates/u2/events", &other).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn an_append_reads_the_head_not_the_log() {
    let store = MemoryStore::new();
    let (status, _) = post(
        &store,
        "/aggregates/u1/events",
        &json!({"eventType": "user_created", "eventData": {"name": "Ann"}}),
    )
    .await;
    assert_eq!(status, 201);
    let (head, _) = store.read_head("u1", None).await.unwrap();
    assert_eq!(head.as_ref().map(|h| h.version), Some(1));
    let reads = store.log_reads();
    let (status, body) = post(
        &store,
        "/aggregates/u1/events",
        &json!({"eventType": "user_updated", "eventData": {"age": 3}, "expectedVersion": 1}),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(2)), "{body}");
    assert_eq!(store.log_reads(), reads, "the append read no event");
    let (head, _) = store.read_head("u1", None).await.unwrap();
    assert_eq!(
        head.unwrap(),
        Head {
            version: 2,
            state: json!({"user": {"name": "Ann", "age": 3}}),
            aggregate_type: Some("user".into()),
        }
    );
}

#[tokio::test]
async fn a_log_written_before_heads_existed_is_migrated_once() {
    let store = MemoryStore::new();
    let mut legacy = vec![event("old", 1, "user_created", json!({"name": "Ann"}))];
    legacy[0].command_id = Some("c-old".into());
    legacy.push(event("old", 2, "user_updated", json!({"age": 40})));
    store.write_events(&legacy).await.unwrap();

    // A retry of a command from before the upgrade is still recognised (its id is on the events).
    let (status, body) = post(
        &store,
        "/aggregates/old/events",
        &json!({"eventType": "user_created", "eventData": {"name": "Ann"}, "commandId": "c-old"}),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(1)), "{body}");
    // A rule that depends on the log (the user exists) and expectedVersion both see the real log.
    let (status, body) = post(
        &store,
        "/aggregates/old/events",
        &json!({"eventType": "user_updated", "eventData": {"age": 41}, "expectedVersion": 2}),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(3)), "{body}");
    let (head, _) = store.read_head("old", None).await.unwrap();
    assert_eq!(
        head.unwrap(),
        Head {
            version: 3,
            state: json!({"user": {"name": "Ann", "age": 41}}),
            aggregate_type: Some("user".into()),
        }
    );
    let (status, body) = post(
        &store,
        "/aggregates/old/events",
        &json!({"eventType": "user_updated", "eventData": {}, "expectedVersion": 2}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["currentVersion"].clone()),
        (409, json!(3))
    );
}

/// Events written when the rules were looser (here: `user_updated` before `user_created`, and two
/// `user_created`, which today's rules refuse) are facts: the aggregate still loads, projects, replays and
/// accepts appends that today's rules allow.
#[tokio::test]
async fn old_events_are_folded_without_todays_rules() {
    let store = MemoryStore::new();
    let old = vec![
        event("loose", 1, "user_updated", json!({"nick": "a"})),
        event("loose", 2, "user_created", json!({"name": "Ann"})),
        event("loose", 3, "user_created", json!({"name": "Ann B"})),
    ];
    let state = json!({"user": {"name": "Ann B"}});
    store
        .append(&AppendWrite {
            aggregate_id: "loose".into(),
            events: old.clone(),
            head: Head {
                version: 3,
                state: state.clone(),
                aggregate_type: Some("user".into()),
            },
            previous_head: None,
            command: None,
        })
        .await
        .unwrap();

    let (status, body) = get(&store, "/aggregates/loose?consistent=true").await;
    assert_eq!((status, &body["state"]), (200, &state), "{body}");
    project(&store, &old).await;
    let (status, body) = get(&store, "/aggregates/loose").await;
    assert_eq!(
        (status, &body["version"], &body["state"]),
        (200, &json!(3), &state)
    );

    let (status, body) = post(
        &store,
        "/aggregates/loose/events",
        &json!({"eventType": "user_updated", "eventData": {"age": 1}, "expectedVersion": 3}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // New commands are still judged.
    let (status, body) = post(
        &store,
        "/aggregates/loose/events",
        &json!({"eventType": "user_created", "eventData": {}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (422, json!("rule_violation"))
    );
}

#[tokio::test]
async fn a_cursor_used_with_other_bounds_or_forged_is_a_400() {
    let store = MemoryStore::new();
    for i in 0..3 {
        let (status, _) = post(
            &store,
            "/events",
            &json!({"aggregateId": format!("u{i}"), "eventType": "user_created", "eventData": {}}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let from = "2000-01-01T00:00:00.000Z";
    let (status, page) = get(
        &store,
        &format!("/events?type=user_created&limit=1&from={from}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["nextCursor"].as_str().expect("more pages").to_string();
    let (status, next) = get(
        &store,
        &format!("/events?type=user_created&limit=1&from={from}&cursor={cursor}"),
    )
    .await;
    assert_eq!((status, next["events"].as_array().unwrap().len()), (200, 1));

    for query in [
        format!("/events?type=user_created&limit=1&cursor={cursor}"),
        format!("/events?type=user_created&limit=1&from=2001-01-01T00:00:00Z&cursor={cursor}"),
        format!("/events?type=user_updated&limit=1&from={from}&cursor={cursor}"),
        format!("/events?type=user_created&from={from}&cursor=not-a-cursor"),
        format!(
            "/events?type=user_created&from={from}&cursor={}",
            forged_cursor(from)
        ),
    ] {
        let (status, body) = get(&store, &query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
}

/// A cursor with the right bounds whose key lies before `from` (DynamoDB would refuse it as a start key).
fn forged_cursor(from: &str) -> String {
    use base64::Engine as _;
    let cursor = json!({
        "key": {"aggregate_id": "u0", "version": 1, "event_type": "user_created", "timestamp": "1999-01-01T00:00:00.000Z"},
        "from": from, "to": null
    });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor.to_string())
}

#[tokio::test]
async fn pages_are_capped_by_bytes_and_still_lead_to_the_rest() {
    let store = MemoryStore::new();
    // 16 events of ~390 KB: 6 MB in all, over Lambda's 6 MB response limit in one page.
    let blob = "x".repeat(390 * 1024);
    let (status, _) = post(
        &store,
        "/aggregates/big/events",
        &json!({"eventType": "user_created", "eventData": {"blob": blob}}),
    )
    .await;
    assert_eq!(status, 201);
    for _ in 1..16 {
        let (status, body) = post(
            &store,
            "/aggregates/big/events",
            &json!({"eventType": "user_updated", "eventData": {"blob": blob}}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut after = 0;
    let mut seen = 0;
    loop {
        let response = service::http::handle_query(
            &store,
            service::testing::request(
                "GET",
                &format!("/aggregates/big/events?limit=1000&after={after}"),
                None,
            ),
        )
        .await;
        let bytes = response.body().as_ref().len();
        assert!(bytes <= service::http::PAGE_BYTES + 64 * 1024, "{bytes}");
        let (_, page) = support::decode(response);
        let events = page["events"].as_array().unwrap();
        assert!(!events.is_empty());
        seen += events.len();
        match page["nextAfter"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, 16, "every event, over several pages");

    let mut cursor = String::new();
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let (status, page) = get(
            &store,
            &format!("/events?type=user_updated&limit=1000{cursor}"),
        )
        .await;
        assert_eq!(status, 200);
        seen += page["events"].as_array().unwrap().len();
        pages += 1;
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((seen, pages > 1), (15, true));
}
