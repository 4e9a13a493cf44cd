//! The HTTP API's request and response bodies (camelCase JSON), shared by the command/query handlers and
//! by `cargo xtask smoke`, which uses them as a typed client.
//!
//! Requests use `deny_unknown_fields`: a misspelt `expectedVersoin` silently ignored would turn a guarded
//! append into an unguarded one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Metadata, StoredEvent};
use crate::validate::{MAX_BATCH_EVENTS, MAX_VERSION, validate_event_data, validate_id};

/// `POST /events`: the seed's request, plus optional `expectedVersion` and `commandId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendEventRequest {
    pub aggregate_id: String,
    /// Optional: the aggregate type, which the event type names anyway; when given, it must agree.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregate_type: Option<String>,
    pub event_type: String,
    pub event_data: Map<String, Value>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_version: Option<u64>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub command_id: Option<String>,
}

/// `POST /events` 200: a superset of the seed's `{"message"}` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendEventResponse {
    pub message: String,
    pub aggregate_id: String,
    pub version: u64,
    pub event_id: String,
    pub timestamp: String,
}

/// One event of an append to `POST /aggregates/{aggregateId}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEvent {
    pub event_type: String,
    pub event_data: Map<String, Value>,
}

/// `POST /aggregates/{aggregateId}/events` with a batch: `{"events":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendBatchRequest {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregate_type: Option<String>,
    pub events: Vec<NewEvent>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_version: Option<u64>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub command_id: Option<String>,
}

/// `POST /aggregates/{aggregateId}/events` with one event: `{"eventType","eventData"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendOneRequest {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregate_type: Option<String>,
    pub event_type: String,
    pub event_data: Map<String, Value>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_version: Option<u64>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub command_id: Option<String>,
}

/// One written event in an append response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrittenEvent {
    pub version: u64,
    pub event_id: String,
    pub timestamp: String,
}

/// `POST /aggregates/{aggregateId}/events` 201.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendBatchResponse {
    pub aggregate_id: String,
    /// The aggregate's version after the append (the last written version).
    pub version: u64,
    pub events: Vec<WrittenEvent>,
}

/// An event as served by the query endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub aggregate_id: String,
    pub version: u64,
    pub event_id: String,
    pub event_type: String,
    pub event_data: Map<String, Value>,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default)]
    pub metadata: MetadataView,
    /// The aggregate type (absent on events stored before types were recorded, whose event type names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// The schema version of `eventData` as stored (1 when not recorded).
    #[serde(default = "one")]
    pub schema_version: u32,
}

fn one() -> u32 {
    1
}

/// Event metadata in camelCase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

impl From<StoredEvent> for EventView {
    fn from(e: StoredEvent) -> Self {
        let Metadata {
            correlation_id,
            causation_id,
        } = e.metadata;
        EventView {
            aggregate_id: e.aggregate_id,
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            event_data: e.event_data,
            timestamp: e.timestamp,
            command_id: e.command_id,
            metadata: MetadataView {
                correlation_id,
                causation_id,
            },
            schema_version: e.schema_version.unwrap_or(1),
            aggregate_type: e.aggregate_type,
        }
    }
}

/// `GET /aggregates/{aggregateId}/events` 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    pub aggregate_id: String,
    pub events: Vec<EventView>,
    /// Pass as `?after=` to get the next page; `null` on the last page.
    pub next_after: Option<u64>,
}

/// `GET /events?type=...` 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsByTypePage {
    pub event_type: String,
    pub events: Vec<EventView>,
    /// Opaque; pass as `?cursor=` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /aggregates/{aggregateId}` 200 (read model or, with `?consistent=true`, replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateView {
    pub aggregate_id: String,
    /// The aggregate type (absent for read models written before types were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    pub version: u64,
    pub state: Value,
}

/// `GET /views/{view}/{key}` 200: the rows listed under `key` in the live version of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewPage {
    pub view: String,
    /// The live version the rows come from.
    pub version: u32,
    pub key: String,
    pub rows: Vec<ViewRowView>,
    /// Opaque; pass as `?cursor=` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One aggregate's row in a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewRowView {
    pub aggregate_id: String,
    pub aggregate_type: String,
    /// The aggregate version the row reflects.
    pub version: u64,
    pub row: Value,
}

/// `GET /health` 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    /// The build tag baked into the query binary (`CQRS_BUILD_TAG` at compile time, `dev` without one), so a
    /// hotswap can be seen through the API. Absent from older deployments, hence the default.
    #[serde(default)]
    pub build: String,
}

/// Every error response: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_request`, `not_found`, `method_not_allowed`, `version_conflict`,
    /// `idempotency_conflict`, `too_large`, `unsupported_media_type`, `rule_violation`,
    /// `unknown_event_type`, `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// Only on `version_conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// Only on 5xx answers: the id under which the details are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A validated append: what both POST routes reduce to.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendCommand {
    pub aggregate_id: String,
    /// The aggregate type the request named, if any (its events name it anyway).
    pub aggregate_type: Option<String>,
    pub events: Vec<NewEvent>,
    pub expected_version: Option<u64>,
    pub command_id: Option<String>,
}

/// Parses and validates a `POST /events` body.
pub fn parse_append_event(body: &[u8]) -> Result<AppendCommand, String> {
    let req: AppendEventRequest = parse_json(body)?;
    let cmd = AppendCommand {
        aggregate_id: req.aggregate_id,
        aggregate_type: req.aggregate_type,
        events: vec![NewEvent {
            event_type: req.event_type,
            event_data: req.event_data,
        }],
        expected_version: req.expected_version,
        command_id: req.command_id,
    };
    validate_command(&cmd)?;
    Ok(cmd)
}

/// Parses and validates a `POST /aggregates/{aggregateId}/events` body: one event or `{"events":[...]}`.
pub fn parse_append_to_aggregate(aggregate_id: &str, body: &[u8]) -> Result<AppendCommand, String> {
    let value: Value = parse_json(body)?;
    let is_batch = value.as_object().is_some_and(|o| o.contains_key("events"));
    let cmd = if is_batch {
        let req: AppendBatchRequest =
            serde_json::from_value(value).map_err(|e| format!("invalid request body: {e}"))?;
        AppendCommand {
            aggregate_id: aggregate_id.to_string(),
            aggregate_type: req.aggregate_type,
            events: req.events,
            expected_version: req.expected_version,
            command_id: req.command_id,
        }
    } else {
        let req: AppendOneRequest =
            serde_json::from_value(value).map_err(|e| format!("invalid request body: {e}"))?;
        AppendCommand {
            aggregate_id: aggregate_id.to_string(),
            aggregate_type: req.aggregate_type,
            events: vec![NewEvent {
                event_type: req.event_type,
                event_data: req.event_data,
            }],
            expected_version: req.expected_version,
            command_id: req.command_id,
        }
    };
    validate_command(&cmd)?;
    Ok(cmd)
}

/// An optional field that, when present, must hold a value: the schema types `expectedVersion` and
/// `commandId` as an integer and a string, not `null`, and a `null` accepted as "absent" would turn a
/// guarded append into an unguarded one.
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty; send a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))
}

/// Checks what the OpenAPI document states about a request: ids, 1 to 100 events, the version range. Sizes
/// are `too_large` (413) errors, checked by the append logic, which knows the item encoding.
fn validate_command(cmd: &AppendCommand) -> Result<(), String> {
    validate_id("aggregateId", &cmd.aggregate_id)?;
    if let Some(t) = &cmd.aggregate_type {
        validate_id("aggregateType", t)?;
    }
    if let Some(c) = &cmd.command_id {
        validate_id("commandId", c)?;
    }
    if cmd.events.is_empty() {
        return Err("`events` must contain at least one event".into());
    }
    if cmd.events.len() > MAX_BATCH_EVENTS {
        return Err(format!(
            "`events` holds {} events; the limit is {MAX_BATCH_EVENTS} (one DynamoDB transaction): split the batch",
            cmd.events.len()
        ));
    }
    for (i, e) in cmd.events.iter().enumerate() {
        let prefix = if cmd.events.len() == 1 {
            String::new()
        } else {
            format!("events[{i}].")
        };
        validate_id(&format!("{prefix}eventType"), &e.event_type)?;
        validate_event_data(&format!("{prefix}eventData"), &e.event_data)?;
    }
    if let Some(v) = cmd.expected_version.filter(|v| *v > MAX_VERSION) {
        return Err(format!(
            "`expectedVersion` is {v}; the largest version is {MAX_VERSION}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_request_parses() {
        let cmd = parse_append_event(
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{"name":"A"}}"#,
        )
        .unwrap();
        assert_eq!(cmd.aggregate_id, "u1");
        assert_eq!(cmd.events.len(), 1);
        assert_eq!(cmd.expected_version, None);
    }

    #[test]
    fn batch_and_single_parse() {
        let one = parse_append_to_aggregate(
            "u1",
            br#"{"eventType":"user_created","eventData":{},"commandId":"c"}"#,
        )
        .unwrap();
        assert_eq!(one.command_id.as_deref(), Some("c"));
        let batch = parse_append_to_aggregate(
            "u1",
            br#"{"events":[{"eventType":"user_created","eventData":{}},{"eventType":"user_updated","eventData":{"a":1}}],"expectedVersion":0}"#,
        )
        .unwrap();
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.expected_version, Some(0));
    }

    #[test]
    fn bad_requests_are_refused() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"aggregateId":"u1","eventType":"user_created"}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":"x"}"#,
            br#"{"aggregateId":"","eventType":"user_created","eventData":{}}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{},"expectedVersoin":1}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{},"expectedVersion":-1}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{},"expectedVersion":null}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{},"expectedVersion":9007199254740992}"#,
            br#"{"aggregateId":"u1","eventType":"user_created","eventData":{},"commandId":null}"#,
            br#"{"aggregateId":"u1","eventType":"","eventData":{}}"#,
        ] {
            assert!(parse_append_event(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(parse_append_to_aggregate("u1", br#"{"events":[]}"#).is_err());
        let event = serde_json::json!({"eventType": "user_updated", "eventData": {}});
        let batch = |n: usize| serde_json::json!({ "events": vec![event.clone(); n] }).to_string();
        assert!(parse_append_to_aggregate("u1", batch(MAX_BATCH_EVENTS).as_bytes()).is_ok());
        assert!(parse_append_to_aggregate("u1", batch(MAX_BATCH_EVENTS + 1).as_bytes()).is_err());
        assert!(
            parse_append_to_aggregate(
                "u1",
                br#"{"eventType":"user_created","eventData":{},"expectedVersion":9007199254740991}"#
            )
            .is_ok()
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn id() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9_#:.-]{1,64}"
        }

        fn data() -> impl Strategy<Value = Map<String, Value>> {
            prop::collection::btree_map("[a-z]{1,8}", any::<i64>().prop_map(Value::from), 0..6)
                .prop_map(|m| m.into_iter().collect())
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse_append_event(&body);
                let _ = parse_append_to_aggregate("a", &body);
            }

            #[test]
            fn valid_requests_round_trip(
                aggregate_id in id(), event_type in id(), event_data in data(),
                expected_version in proptest::option::of(0u64..1_000_000), command_id in proptest::option::of(id()),
            ) {
                let req = AppendEventRequest {
                    aggregate_id: aggregate_id.clone(), aggregate_type: None, event_type: event_type.clone(), event_data: event_data.clone(),
                    expected_version, command_id: command_id.clone(),
                };
                let cmd = parse_append_event(&serde_json::to_vec(&req).unwrap()).unwrap();
                prop_assert_eq!(cmd, AppendCommand {
                    aggregate_id, aggregate_type: None, events: vec![NewEvent { event_type, event_data }], expected_version, command_id,
                });
            }

            #[test]
            fn ids_with_control_characters_are_refused(prefix in id(), c in prop::char::range('\u{0}', '\u{1f}')) {
                let body = serde_json::json!({"aggregateId": format!("{prefix}{c}"), "eventType": "t", "eventData": {}});
                prop_assert!(parse_append_event(body.to_string().as_bytes()).is_err());
            }
        }
    }
}
