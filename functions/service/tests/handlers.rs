//! Happy paths of the command and query handlers against the in-memory store: the seed's request, batches,
//! pagination, replay, read models, events by type, idempotent retries and gateway-shaped requests.

mod support;

use serde_json::{Value, json};
use service::MemoryStore;
use service::testing::{stream_event, stream_record};
use support::{get, post};

async fn project_everything(store: &MemoryStore) {
    let records = store
        .all_events()
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:020}", i + 1), e))
        .collect();
    let response = service::projector::handle(store, stream_event(records)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

#[tokio::test]
async fn seed_request_is_stored_with_a_uuidv7_and_millisecond_timestamp() {
    let store = MemoryStore::new();
    let (status, body) = post(
        &store,
        "/events",
        &json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {"name": "Ann"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Event stored successfully");
    assert_eq!(body["aggregateId"], "u1");
    assert_eq!(body["version"], 1);
    let id = body["eventId"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    // The stored item keeps the seed's attribute names.
    let stored = &store.all_events()[0];
    assert_eq!(stored.event_type, "user_created");
    assert_eq!(stored.event_data["name"], "Ann");
}

#[tokio::test]
async fn batches_get_consecutive_versions_and_replay_matches_the_seed_shape() {
    let store = MemoryStore::new();
    let (status, body) = post(
        &store,
        "/aggregates/u1/events",
        &json!({"events": [
            {"eventType": "user_created", "eventData": {"name": "Ann", "age": 30}},
            {"eventType": "user_updated", "eventData": {"age": 31}}
        ], "expectedVersion": 0}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);
    let versions: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    let (status, body) = post(
        &store,
        "/aggregates/u1/events",
        &json!({"eventType": "user_updated", "eventData": {"city": "Oslo"}}),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(3)));

    let (status, view) = get(&store, "/aggregates/u1?consistent=true").await;
    assert_eq!(status, 200);
    assert_eq!(
        view,
        json!({"aggregateId": "u1", "aggregateType": "user", "version": 3, "state": {"user": {"name": "Ann", "age": 31, "city": "Oslo"}}})
    );
}

#[tokio::test]
async fn events_of_an_aggregate_page_in_version_order() {
    let store = MemoryStore::new();
    let mut events = vec![json!({"eventType": "user_created", "eventData": {}})];
    events.extend((0..6).map(|i| json!({"eventType": "user_updated", "eventData": {"n": i}})));
    assert_eq!(
        post(
            &store,
            "/aggregates/u1/events",
            &json!({ "events": events })
        )
        .await
        .0,
        201
    );
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(
            &store,
            &format!("/aggregates/u1/events?after={after}&limit=3"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["version"].as_u64().unwrap()),
        );
        match page["nextAfter"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    let (status, empty) = get(&store, "/aggregates/nobody/events").await;
    assert_eq!(
        (status, empty["events"].clone(), empty["nextAfter"].clone()),
        (200, json!([]), Value::Null)
    );
}

#[tokio::test]
async fn read_model_appears_after_projection_and_equals_replay() {
    let store = MemoryStore::new();
    post(
        &store,
        "/events",
        &json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {"name": "Ann"}}),
    )
    .await;
    post(
        &store,
        "/events",
        &json!({"aggregateId": "u1", "eventType": "user_deleted", "eventData": {}}),
    )
    .await;
    assert_eq!(get(&store, "/aggregates/u1").await.0, 404);
    project_everything(&store).await;
    let (status, model) = get(&store, "/aggregates/u1").await;
    assert_eq!(status, 200, "{model}");
    assert_eq!(model, get(&store, "/aggregates/u1?consistent=true").await.1);
    assert_eq!(model["state"]["deleted"], true);
}

#[tokio::test]
async fn retried_command_returns_the_original_result_and_writes_nothing() {
    let store = MemoryStore::new();
    let create = json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {}, "commandId": "c-1"});
    let first = post(&store, "/events", &create).await;
    assert_eq!(first.0, 200);
    let update = json!({"eventType": "user_updated", "eventData": {"a": 1}, "commandId": "c-2"});
    let second = post(&store, "/aggregates/u1/events", &update).await;
    assert_eq!(second.0, 201);
    // Retries, without and with an expected version, after other writes happened.
    assert_eq!(post(&store, "/events", &create).await, first);
    assert_eq!(post(&store, "/aggregates/u1/events", &update).await, second);
    let mut guarded = update.clone();
    guarded["expectedVersion"] = json!(1);
    assert_eq!(
        post(&store, "/aggregates/u1/events", &guarded).await,
        second
    );
    assert_eq!(store.all_events().len(), 2);
}

#[tokio::test]
async fn events_by_type_page_with_a_cursor_and_filter_by_time() {
    let store = MemoryStore::new();
    for i in 0..5 {
        let body = json!({"aggregateId": format!("u{i}"), "eventType": "user_created", "eventData": {"i": i}});
        assert_eq!(post(&store, "/events", &body).await.0, 200);
    }
    post(
        &store,
        "/events",
        &json!({"aggregateId": "u0", "eventType": "user_updated", "eventData": {}}),
    )
    .await;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/events?type=user_created&limit=2".to_string(),
            Some(c) => format!("/events?type=user_created&limit=2&cursor={c}"),
        };
        let (status, page) = get(&store, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["eventType"], "user_created");
        ids.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["aggregateId"].as_str().unwrap().to_string()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(ids, ["u0", "u1", "u2", "u3", "u4"]);
    let (_, none) = get(&store, "/events?type=user_created&to=2000-01-01T00:00:00Z").await;
    assert_eq!(none["events"], json!([]));
    let (_, all) = get(
        &store,
        "/events?type=user_created&from=2000-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(all["events"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn health_is_ok() {
    assert_eq!(
        get(&MemoryStore::new(), "/health").await,
        (200, json!({"status": "ok", "build": "dev"}))
    );
}

#[tokio::test]
async fn gateway_events_with_a_named_stage_and_path_parameters_are_routed() {
    let store = MemoryStore::new();
    post(
        &store,
        "/events",
        &json!({"aggregateId": "u 1", "eventType": "user_created", "eventData": {}}),
    )
    .await;
    let event = json!({
        "version": "2.0",
        "routeKey": "GET /aggregates/{aggregateId}/events",
        "rawPath": "/prod/aggregates/u%201/events",
        "rawQueryString": "limit=5",
        "headers": {"host": "example.test"},
        "pathParameters": {"aggregateId": "u 1"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "example.test", "domainPrefix": "example",
            "http": {"method": "GET", "path": "/prod/aggregates/u%201/events", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "req-1", "routeKey": "GET /aggregates/{aggregateId}/events", "stage": "prod",
            "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "isBase64Encoded": false
    });
    let request = service::lambda_http::request::from_str(&event.to_string()).expect("a v2 event");
    let (status, page) = support::decode(service::http::handle_query(&store, request).await);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["aggregateId"], "u 1");
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    // Without pathParameters the handler parses the path itself.
    let mut bare = event.clone();
    bare.as_object_mut().unwrap().remove("pathParameters");
    let request = service::lambda_http::request::from_str(&bare.to_string()).unwrap();
    let (status, page) = support::decode(service::http::handle_query(&store, request).await);
    assert_eq!((status, page["aggregateId"].clone()), (200, json!("u 1")));
}
