//! The bad-input table of the HTTP API, one test per row, through the real handlers (in-memory store):
//! each asserts the status, the machine-readable error code, a human message, and that nothing was written.

mod support;

use serde_json::{Value, json};
use service::MemoryStore;
use service::lambda_http::{Body, Request};
use service::testing::request;
use support::{call, post};

/// A store with one existing user `u1` at version 1.
async fn seeded() -> MemoryStore {
    let store = MemoryStore::new();
    let (status, _) = post(
        &store,
        "/events",
        &json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {"name": "Ann"}}),
    )
    .await;
    assert_eq!(status, 200);
    store
}

/// Sends `req`, asserts the refusal, and that the store holds exactly what it held before.
async fn refused(req: Request, status: u16, code: &str) -> Value {
    let store = seeded().await;
    let before = store.all_events();
    let (got, body) = call(&store, req).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        store.all_events(),
        before,
        "nothing may be written on an error"
    );
    assert_eq!(store.read_model_writes(), 0);
    body
}

fn post_raw(path: &str, body: &str) -> Request {
    request("POST", path, Some(body))
}

fn post_json(path: &str, body: Value) -> Request {
    request("POST", path, Some(&body.to_string()))
}

#[tokio::test]
async fn malformed_json_is_400() {
    refused(
        post_raw("/events", r#"{"aggregateId": "u2", "#),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn empty_body_is_400() {
    refused(post_raw("/events", ""), 400, "invalid_request").await;
}

#[tokio::test]
async fn missing_field_is_400() {
    let body = refused(
        post_json("/events", json!({"aggregateId": "u2", "eventData": {}})),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("eventType"),
        "{body}"
    );
}

#[tokio::test]
async fn mistyped_field_is_400() {
    refused(
        post_json("/events", json!({"aggregateId": "u2", "eventType": "user_created", "eventData": {}, "expectedVersion": "one"})),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn event_data_not_an_object_is_400() {
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "u2", "eventType": "user_created", "eventData": [1, 2]}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn unknown_field_is_400() {
    refused(
        post_json("/events", json!({"aggregateId": "u1", "eventType": "user_updated", "eventData": {}, "expectedVersoin": 1})),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn empty_aggregate_id_is_400() {
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "", "eventType": "user_created", "eventData": {}}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn aggregate_id_over_256_characters_is_400() {
    let id = "é".repeat(257); // 257 characters: the OpenAPI `maxLength` counts characters, not bytes
    refused(
        post_json(
            "/events",
            json!({"aggregateId": id, "eventType": "user_created", "eventData": {}}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn aggregate_id_with_control_characters_is_400() {
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "u\u{0007}2", "eventType": "user_created", "eventData": {}}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn control_characters_in_path_id_are_400() {
    refused(
        post_json(
            "/aggregates/u%0A2/events",
            json!({"eventType": "user_created", "eventData": {}}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn empty_command_id_is_400() {
    refused(
        post_json("/events", json!({"aggregateId": "u2", "eventType": "user_created", "eventData": {}, "commandId": ""})),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn empty_batch_is_400() {
    refused(
        post_json("/aggregates/u2/events", json!({"events": []})),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn bad_limit_is_400() {
    refused(
        request("GET", "/aggregates/u1/events?limit=0", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn bad_after_is_400() {
    refused(
        request("GET", "/aggregates/u1/events?after=-1", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn bad_consistent_flag_is_400() {
    refused(
        request("GET", "/aggregates/u1?consistent=yes", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn missing_type_is_400() {
    refused(request("GET", "/events", None), 400, "invalid_request").await;
}

#[tokio::test]
async fn bad_timestamp_is_400() {
    refused(
        request("GET", "/events?type=user_created&from=yesterday", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn bad_cursor_is_400() {
    refused(
        request("GET", "/events?type=user_created&cursor=not-a-cursor", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn unknown_route_is_404() {
    refused(request("GET", "/nothing/here", None), 404, "not_found").await;
}

#[tokio::test]
async fn aggregate_without_events_is_404() {
    refused(
        request("GET", "/aggregates/nobody?consistent=true", None),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn wrong_method_is_405() {
    let store = seeded().await;
    let response =
        service::http::handle_command(&store, request("PUT", "/events", Some("{}"))).await;
    assert_eq!(response.headers().get("allow").unwrap(), "POST");
    refused(
        request("PUT", "/events", Some("{}")),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn delete_on_aggregate_events_is_405() {
    refused(
        request("DELETE", "/aggregates/u1/events", None),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn stale_expected_version_is_409_with_current_version() {
    let body = refused(
        post_json("/events", json!({"aggregateId": "u1", "eventType": "user_updated", "eventData": {}, "expectedVersion": 0})),
        409,
        "version_conflict",
    )
    .await;
    assert_eq!(body["error"]["currentVersion"], 1, "{body}");
}

#[tokio::test]
async fn batch_of_99_events_is_400() {
    // The schema's `maxItems: 98` (98 events + the aggregate's head + its command record fill one 100-item
    // transaction): a request the schema refuses is an invalid request.
    let mut events = vec![json!({"eventType": "user_created", "eventData": {}})];
    events.extend((0..98).map(|i| json!({"eventType": "user_updated", "eventData": {"n": i}})));
    refused(
        post_json("/aggregates/u2/events", json!({ "events": events })),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn null_expected_version_is_400() {
    refused(
        post_json("/events", json!({"aggregateId": "u1", "eventType": "user_updated", "eventData": {}, "expectedVersion": null})),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn empty_event_type_is_400() {
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "u1", "eventType": "", "eventData": {}}),
        ),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn after_beyond_the_largest_version_is_400() {
    refused(
        request("GET", "/aggregates/u1/events?after=9007199254740992", None),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn event_over_400_kb_is_413() {
    let big = "x".repeat(400 * 1024);
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "u2", "eventType": "user_created", "eventData": {"blob": big}}),
        ),
        413,
        "too_large",
    )
    .await;
}

#[tokio::test]
async fn batch_over_4_mb_is_413() {
    let chunk = "x".repeat(350 * 1024);
    let mut events = vec![json!({"eventType": "user_created", "eventData": {"blob": chunk}})];
    events.extend(
        (0..12).map(|_| json!({"eventType": "user_updated", "eventData": {"blob": chunk}})),
    );
    refused(
        post_json("/aggregates/u2/events", json!({ "events": events })),
        413,
        "too_large",
    )
    .await;
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let req = service::lambda_http::http::Request::builder()
        .method("POST")
        .uri("/events")
        .header("content-type", "text/plain")
        .body(Body::Text(
            r#"{"aggregateId":"u2","eventType":"user_created","eventData":{}}"#.into(),
        ))
        .unwrap();
    refused(req, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn rule_violation_is_422() {
    refused(
        post_json(
            "/events",
            json!({"aggregateId": "u2", "eventType": "user_updated", "eventData": {"a": 1}}),
        ),
        422,
        "rule_violation",
    )
    .await;
}

#[tokio::test]
async fn rule_violation_inside_a_batch_is_422_and_writes_none_of_it() {
    refused(
        post_json(
            "/aggregates/u2/events",
            json!({"events": [
                {"eventType": "user_created", "eventData": {}},
                {"eventType": "user_created", "eventData": {}}
            ]}),
        ),
        422,
        "rule_violation",
    )
    .await;
}

#[tokio::test]
async fn unknown_event_type_is_422_and_lists_known_types() {
    let body = refused(
        post_json(
            "/events",
            json!({"aggregateId": "u1", "eventType": "user_renamed", "eventData": {}}),
        ),
        422,
        "unknown_event_type",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_updated"),
        "{body}"
    );
}
