//! The OpenAPI 3 document of the HTTP API, generated from the route table ([`crate::routes::routes`]) and the
//! domain's registry (every event type with the `eventData` schema derived from its Rust type, every
//! aggregate type), never written by hand. `cargo xtask openapi` writes it to `functions/openapi.yaml`; a test
//! fails when the committed copy is stale, and a schema fuzzer holds the server to it.
//!
//! It states every rule the server enforces on the shape of a request: ids and their lengths, the version
//! range, the event types and, per event type, its data's schema (checked by `domain::schema::validate`
//! before anything is read), so a schema-valid request is never refused as invalid and a schema-invalid one
//! always is. What a valid request may still meet is written beside each operation.

use domain::registry::Registry;
use domain::validate::{MAX_BATCH_EVENTS, MAX_ID_CHARS, MAX_PAGE_LIMIT, MAX_VERSION};
use serde_json::{Map, Value, json};

use crate::routes::{Function, RouteId, routes};

/// The document for `registry` (the build's domain) as JSON.
pub fn document(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        if route.path.contains("{aggregateId}") && item.get("parameters").is_none() {
            item["parameters"] = json!([{ "name": "aggregateId", "in": "path", "required": true,
                "schema": { "$ref": "#/components/schemas/Id" } }]);
        }
        let mut op = match route.view().and_then(|v| registry.view(v)) {
            Some(view) => {
                item["parameters"] = json!([{ "name": "key", "in": "path", "required": true,
                    "description": "The key rows are listed under.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": 1024 } }]);
                view_operation(&view)
            }
            None => operation(route.id),
        };
        op["x-function"] = json!(match route.function {
            Function::Command => "command",
            Function::Query => "query",
        });
        item[route.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Event-sourced CQRS API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(registry),
        },
        "paths": paths,
        "components": {
            "responses": responses(),
            "schemas": schemas(registry),
        },
    })
}

fn description(registry: &Registry) -> String {
    let mut text = String::from(
        "Commands append events to a DynamoDB event log (optimistic concurrency, idempotency by commandId);
queries read events and read models. Every error the functions answer is `{\"error\":{\"code\",\"message\"}}`;
the gateway's own refusals (no route, a body over 10 MB, a failed function) are API Gateway's `{\"message\"}`.

Aggregate types and their events (an event type names its aggregate type; `aggregateType` may be sent too,
and must then agree):
",
    );
    for kind in registry.kinds() {
        let events: Vec<String> = kind
            .events()
            .iter()
            .map(|e| format!("{} (v{})", e.event_type, e.version))
            .collect();
        text.push_str(&format!(
            "- `{}`: {} Events: {}.\n",
            kind.name(),
            kind.description(),
            events.join(", ")
        ));
    }
    text.push_str(
        "
Idempotency: a `commandId` is remembered per aggregate for at least 24 hours (until DynamoDB's TTL
removes its record, usually within days after). Within that window a retry with the same body gets the
original result and writes nothing (whatever its `expectedVersion`); the same `commandId` with other
events is 409 `idempotency_conflict`.
A request without `commandId` whose response is lost inside the service (DynamoDB applied it, the SDK
retried) is still stored once; a client that retries after a 5xx must send a `commandId`.

5xx answers carry `requestId` and no internals (the details are logged under that id). 503 `unavailable`
(DynamoDB throttled) comes with `Retry-After` and wrote nothing.

`x-function` names the Lambda function that serves an operation.

This document is generated from the route table and the domain's registry (`cargo xtask openapi`). It states
every rule the server enforces on the shape of a request (types, lengths, counts, no control characters,
the event types and each one's `eventData` schema), and the server refuses a request the schemas refuse with
400 `invalid_request`, or 422 when the refused value is an `eventType` the domain does not know
(`unknown_event_type`) or an `aggregateType` other than its event type's (`wrong_aggregate_type`). A schema-valid request is never a 400 except where a rule spans values (`from` after
`to`, a cursor the server did not issue); what it may still meet is the state of the log (404, 409), a size
limit of the store (413: 400 KB per event, 4 MB per batch) or a rule of the domain (422: an event its
aggregate's state does not allow, events of another aggregate type than the aggregate's).
",
    );
    text
}

fn error_responses(codes: &[&str]) -> Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            let r = if *c == "503" { "Unavailable" } else { "Error" };
            (
                c.to_string(),
                json!({ "$ref": format!("#/components/responses/{r}") }),
            )
        })
        .collect()
}

fn with_success(status: &str, description: &str, schema: &str, errors: &[&str]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        status.into(),
        json!({ "description": description, "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{schema}") } } } }),
    );
    responses.extend(error_responses(errors));
    Value::Object(responses)
}

/// Links from an append's answer to the reads of the same aggregate (the fuzzer's stateful phase follows them).
fn aggregate_links() -> Value {
    json!({
        "GetAggregate": { "operationId": "getAggregate",
            "parameters": { "aggregateId": "$response.body#/aggregateId" } },
        "ListAggregateEvents": { "operationId": "listAggregateEvents",
            "parameters": { "aggregateId": "$response.body#/aggregateId" } },
    })
}

fn operation(id: RouteId) -> Value {
    const WRITE_ERRORS: &[&str] = &["400", "409", "413", "415", "422", "500", "503"];
    const READ_ERRORS: &[&str] = &["400", "500", "503"];
    let limit = json!({ "name": "limit", "in": "query",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": 100 } });
    match id {
        RouteId::AppendEvent => {
            let mut responses = with_success(
                "200",
                "Stored (or already stored by the same commandId).",
                "AppendEventResponse",
                WRITE_ERRORS,
            );
            responses["200"]["links"] = aggregate_links();
            json!({
                "operationId": "appendEvent",
                "summary": "Append one event (the seed article's request).",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/AppendEventRequest" } } } },
                "responses": responses,
            })
        }
        RouteId::AppendToAggregate => {
            let mut responses = with_success(
                "201",
                "Written (or already written by the same commandId).",
                "AppendBatchResponse",
                WRITE_ERRORS,
            );
            responses["201"]["links"] = aggregate_links();
            json!({
                "operationId": "appendToAggregate",
                "summary": format!("Append one event or an atomic batch of up to {MAX_BATCH_EVENTS} events of one aggregate type."),
                "description": "One DynamoDB transaction of at most 100 items: the events, the aggregate's head and, with a\n`commandId`, its command record; hence 98 events. Events of two aggregate types in one batch, or of\nanother type than the aggregate's, are 422 `wrong_aggregate_type`.\n",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "oneOf": [
                        { "$ref": "#/components/schemas/AppendOneRequest" },
                        { "$ref": "#/components/schemas/AppendBatchRequest" },
                    ] } } } },
                "responses": responses,
            })
        }
        RouteId::ListEventsByType => json!({
            "operationId": "listEventsByType",
            "summary": "Events of one type in time order (GSI EventTypeTimestampIndex), paginated.",
            "description": "A query, not a feed: an event's timestamp is taken before its conditional write, so a slower writer\ncan commit an event with an earlier timestamp after a reader has paged past that time (and the GSI is\neventually consistent). Consumers that need every event exactly once read the table's stream (as the\nprojector does). A page holds at most `limit` events and at most about 5 MB; `nextCursor` is set\nwhenever more may follow. The cursor carries the query's `type`, `from` and `to`: using it with other\nvalues, or a cursor this API did not produce, is 400 `invalid_request`.\n",
            "parameters": [
                { "name": "type", "in": "query", "required": true, "schema": { "$ref": "#/components/schemas/EventType" } },
                { "name": "from", "in": "query", "description": "Not after `to` (400 otherwise).", "schema": { "type": "string", "format": "date-time" } },
                { "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                limit,
                { "name": "cursor", "in": "query", "description": "Opaque; the nextCursor of the previous page (400 for any other value).", "schema": { "type": "string", "minLength": 1 } },
            ],
            "responses": with_success("200", "One page.", "EventsByTypePage", READ_ERRORS),
        }),
        RouteId::ListAggregateEvents => json!({
            "operationId": "listAggregateEvents",
            "summary": "The events of one aggregate in version order.",
            "description": "A page holds at most `limit` events and at most about 5 MB; `nextAfter` is set whenever more may follow.\n",
            "parameters": [
                { "name": "after", "in": "query", "schema": { "$ref": "#/components/schemas/Version" } },
                limit,
            ],
            "responses": with_success("200", "One page (empty for an aggregate without events).", "EventsPage", READ_ERRORS),
        }),
        RouteId::GetAggregate => json!({
            "operationId": "getAggregate",
            "summary": "The read model, or with consistent=true the replay of the event log.",
            "parameters": [
                { "name": "consistent", "in": "query", "schema": { "type": "boolean", "default": false } },
            ],
            "responses": with_success("200", "The aggregate's state.", "AggregateView", &["400", "404", "500", "503"]),
        }),
        // Served per view by `view_operation`; a route without a declared view does not exist.
        RouteId::ListView => {
            json!({ "responses": with_success("200", "One page.", "ViewPage", READ_ERRORS) })
        }
        RouteId::Health => json!({
            "operationId": "health",
            "summary": "Liveness.",
            "responses": { "200": { "description": "OK.", "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["status", "build"],
                "properties": {
                    "status": { "type": "string", "enum": ["ok"] },
                    "build": { "type": "string", "description": "CQRS_BUILD_TAG at compile time, or dev" },
                },
            } } } } },
        }),
    }
}

/// `GET /views/<view>/{key}`: operation id `list` + the view's name in camel case (`listAccountsByOwner`).
fn view_operation(view: &domain::registry::ViewDecl) -> Value {
    let limit = json!({ "name": "limit", "in": "query",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": 100 } });
    let camel: String = view
        .name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    json!({
        "operationId": format!("list{camel}"),
        "summary": format!("View `{}` of `{}` aggregates: {}", view.name, view.aggregate_type, view.description),
        "description": "The rows listed under `key` in the view's live version, ordered by aggregate id. A view row follows its
aggregate's events as the read model does (eventually consistent). When the view's definition changes
(a new `version`), the new version is rebuilt beside the old one and reads switch to it once it has caught
up; until a first version has, the answer is 503 `view_not_ready`. A cursor from before a switch is 400.
",
        "parameters": [
            limit,
            { "name": "cursor", "in": "query", "description": "Opaque; the nextCursor of the previous page (400 for any other value).", "schema": { "type": "string", "minLength": 1 } },
        ],
        "responses": with_success("200", "One page.", "ViewPage", &["400", "500", "503"]),
    })
}

fn responses() -> Value {
    json!({
        "Error": {
            "description": "invalid_request (400), not_found (404), method_not_allowed (405), version_conflict (409, with\ncurrentVersion), idempotency_conflict (409: the commandId was used with another body), too_large (413),\nunsupported_media_type (415), rule_violation or wrong_aggregate_type (422), internal (500, with requestId).\n",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
        },
        "Unavailable": {
            "description": "unavailable (503, with requestId): DynamoDB throttled the request; nothing was written. Retry after the\nRetry-After header's seconds. view_not_ready (503): the view has no caught-up version yet.\n",
            "headers": { "Retry-After": { "schema": { "type": "integer", "minimum": 1 } } },
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
        },
    })
}

/// One request shape per event type, told apart by `eventType` (so `oneOf` holds exactly one).
fn per_event(registry: &Registry, common: &Value, required: &[&str], with_type: bool) -> Value {
    let options: Vec<Value> = registry
        .kinds()
        .flat_map(|kind| {
            kind.events().iter().map(move |spec| {
                let mut properties = common.as_object().cloned().unwrap_or_default();
                if with_type {
                    properties.insert(
                        "aggregateType".into(),
                        json!({ "type": "string", "enum": [kind.name()] }),
                    );
                }
                properties.insert(
                    "eventType".into(),
                    json!({ "type": "string", "enum": [spec.event_type] }),
                );
                properties.insert("eventData".into(), spec.schema.clone());
                json!({
                    "title": spec.event_type,
                    "type": "object",
                    "additionalProperties": false,
                    "required": required,
                    "properties": properties,
                })
            })
        })
        .collect();
    json!({ "oneOf": options })
}

/// `components.schemas`: the values every operation shares, the command side's bodies, the query side's, and the
/// error body.
fn schemas(registry: &Registry) -> Value {
    let mut all = Map::new();
    for part in [
        value_schemas(registry),
        command_schemas(registry),
        query_schemas(),
        error_schema(),
    ] {
        let Value::Object(part) = part else {
            unreachable!("each part is an object")
        };
        all.extend(part);
    }
    Value::Object(all)
}

/// Ids, versions, event types and event data as the domain and DynamoDB bound them.
fn value_schemas(registry: &Registry) -> Value {
    let aggregate_types: Vec<&str> = registry.kinds().map(|k| k.name()).collect();
    let event_types = registry.event_types();
    json!({
        "Id": {
            "description": format!("An aggregate id or command id: 1 to {MAX_ID_CHARS} characters (Unicode scalar values), none of them a control\ncharacter (U+0000-U+001F, U+007F-U+009F).\n"),
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        },
        "EventType": {
            "description": "An event type of the domain; each names its aggregate type.",
            "type": "string",
            "enum": event_types,
        },
        "AggregateType": { "type": "string", "enum": aggregate_types },
        "Version": {
            "description": "An aggregate version (0 before the first event). At most 2^53 - 1, which every JSON client reads exactly.",
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_VERSION,
        },
        "EventData": {
            "description": "Any JSON object DynamoDB can store as it is: every number is 0 or has a magnitude from 1e-130 up to\n(not including) 1e126, no object has an empty key, and it nests at most 32 levels, itself included.\nThe item holding the event is at most 400 KB (413 too_large otherwise). Free-form event types use it;\nevery event's data meets these rules too.\n",
            "type": "object",
            "properties": { "": { "not": {} } },
            "additionalProperties": { "$ref": "#/components/schemas/DataValue" },
        },
        "DataValue": {
            "anyOf": [
                { "type": "string", "nullable": true },
                { "type": "boolean" },
                { "$ref": "#/components/schemas/DataNumber" },
                { "type": "array", "items": { "$ref": "#/components/schemas/DataValue" } },
                { "type": "object", "properties": { "": { "not": {} } }, "additionalProperties": { "$ref": "#/components/schemas/DataValue" } },
            ],
        },
        "DataNumber": {
            "description": "A number DynamoDB can store.",
            "type": "number",
            "anyOf": [
                { "type": "number", "enum": [0] },
                { "type": "number", "minimum": 1.0e-130, "maximum": 1.0e126, "exclusiveMaximum": true },
                { "type": "number", "minimum": -1.0e126, "exclusiveMinimum": true, "maximum": -1.0e-130 },
            ],
        },
    })
}

/// The bodies of the append routes, one `oneOf` branch per event type with its data schema.
fn command_schemas(registry: &Registry) -> Value {
    let version = json!({ "$ref": "#/components/schemas/Version" });
    let id = json!({ "$ref": "#/components/schemas/Id" });
    json!({
        "AppendEventRequest": per_event(
            registry,
            &json!({ "aggregateId": id, "expectedVersion": version, "commandId": id }),
            &["aggregateId", "eventType", "eventData"],
            true,
        ),
        "AppendEventResponse": {
            "type": "object",
            "required": ["message", "aggregateId", "version", "eventId", "timestamp"],
            "properties": {
                "message": { "type": "string", "example": "Event stored successfully" },
                "aggregateId": { "type": "string" },
                "version": { "type": "integer" },
                "eventId": { "type": "string", "format": "uuid" },
                "timestamp": { "type": "string", "format": "date-time" },
            },
        },
        // One event of a batch; the batch itself may name the aggregate type.
        "NewEvent": per_event(registry, &json!({}), &["eventType", "eventData"], false),
        "AppendOneRequest": per_event(
            registry,
            &json!({ "expectedVersion": version, "commandId": id }),
            &["eventType", "eventData"],
            true,
        ),
        "AppendBatchRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["events"],
            "properties": {
                "aggregateType": { "$ref": "#/components/schemas/AggregateType" },
                "events": { "type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS,
                    "items": { "$ref": "#/components/schemas/NewEvent" } },
                "expectedVersion": version,
                "commandId": id,
            },
        },
        "AppendBatchResponse": {
            "type": "object",
            "required": ["aggregateId", "version", "events"],
            "properties": {
                "aggregateId": { "type": "string" },
                "version": { "type": "integer" },
                "events": { "type": "array", "items": {
                    "type": "object",
                    "required": ["version", "eventId", "timestamp"],
                    "properties": {
                        "version": { "type": "integer" },
                        "eventId": { "type": "string", "format": "uuid" },
                        "timestamp": { "type": "string", "format": "date-time" },
                    },
                } },
            },
        },
    })
}

/// The body of every error answer: a machine-readable code and a human message.
fn error_schema() -> Value {
    json!({
        "ErrorBody": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string" },
                        "message": { "type": "string" },
                        "currentVersion": { "type": "integer" },
                        "requestId": { "type": "string", "description": "On 5xx only: the id the details are logged under." },
                    },
                },
            },
        },
    })
}

/// The read routes' pages: stored events (any storable data, older schema versions included), read models, views.
fn query_schemas() -> Value {
    let event = json!({
        "type": "object",
        "required": ["aggregateId", "version", "eventId", "eventType", "eventData", "timestamp", "metadata", "schemaVersion"],
        "properties": {
            "aggregateId": { "type": "string" },
            "aggregateType": { "type": "string", "description": "Absent on events stored before aggregate types were recorded." },
            "version": { "type": "integer" },
            "eventId": { "type": "string", "format": "uuid" },
            "eventType": { "type": "string" },
            "schemaVersion": { "type": "integer", "minimum": 1 },
            "eventData": { "$ref": "#/components/schemas/EventData" },
            "timestamp": { "type": "string", "format": "date-time" },
            "commandId": { "type": "string" },
            "metadata": { "type": "object", "properties": {
                "correlationId": { "type": "string" }, "causationId": { "type": "string" } } },
        },
    });
    json!({
        "Event": event,
        "EventsPage": {
            "type": "object",
            "required": ["aggregateId", "events", "nextAfter"],
            "properties": {
                "aggregateId": { "type": "string" },
                "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
                "nextAfter": { "type": "integer", "nullable": true },
            },
        },
        "EventsByTypePage": {
            "type": "object",
            "required": ["eventType", "events", "nextCursor"],
            "properties": {
                "eventType": { "type": "string" },
                "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
                "nextCursor": { "type": "string", "nullable": true },
            },
        },
        "AggregateView": {
            "type": "object",
            "required": ["aggregateId", "version", "state"],
            "properties": {
                "aggregateId": { "type": "string" },
                "aggregateType": { "type": "string", "description": "Absent on read models written before aggregate types were recorded." },
                "version": { "type": "integer" },
                "state": { "type": "object", "additionalProperties": true },
            },
        },
        "ViewPage": {
            "type": "object",
            "required": ["view", "version", "key", "rows", "nextCursor"],
            "properties": {
                "view": { "type": "string" },
                "version": { "type": "integer", "description": "The view's live version the rows come from." },
                "key": { "type": "string" },
                "rows": { "type": "array", "items": {
                    "type": "object",
                    "required": ["aggregateId", "aggregateType", "version", "row"],
                    "properties": {
                        "aggregateId": { "type": "string" },
                        "aggregateType": { "type": "string" },
                        "version": { "type": "integer", "description": "The aggregate version the row reflects." },
                        "row": {},
                    },
                } },
                "nextCursor": { "type": "string", "nullable": true },
            },
        },
    })
}
