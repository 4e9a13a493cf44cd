//! The HTTP side of the command and query functions (API Gateway v2 HTTP API, payload format 2.0, through
//! `lambda_http`): routing, request parsing, the handlers, and the one place where errors become statuses.
//!
//! Routing uses the request's method and path (the gateway's `rawPath`, stage prefix tolerated), so it works
//! whether or not the gateway filled `pathParameters`; when it did, the decoded `aggregateId` from there wins.

use domain::api::{
    AggregateView, AppendBatchResponse, AppendEventResponse, ErrorBody, ErrorDetail, EventView,
    EventsByTypePage, EventsPage, HealthResponse, ViewPage, ViewRowView, parse_append_event,
    parse_append_to_aggregate,
};
use domain::event::normalize_timestamp;
use domain::validate::{MAX_VERSION, parse_limit, validate_id};
use domain::{DomainError, Metadata, registry};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::append::{AppendError, append};
use crate::routes::{Function, RouteId, RouteMatch, match_route};
use crate::store::{CursorKey, EventStore, StoreError, TypeQuery, ViewQuery, encode_cursor};

/// The most bytes of events one page may carry, measured as they appear inside the Lambda response (the
/// body is a JSON string there, so quotes are escaped): below Lambda's 6 MB response limit with room for
/// the envelope and headers. A page cut by bytes still has its `next` cursor.
pub const PAGE_BYTES: usize = 5 * 1024 * 1024;

/// Seconds a client should wait after a 503 (DynamoDB throttled us after the SDK's own retries).
pub const RETRY_AFTER_SECS: u64 = 1;

/// An HTTP error: every variant becomes `{"error":{"code","message"}}` with its status in `into_response`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{method} is not allowed here; allowed: {}", allowed.join(", "))]
    MethodNotAllowed {
        method: String,
        allowed: Vec<&'static str>,
    },
    #[error("{message}")]
    Conflict { message: String, current: u64 },
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// A view without a caught-up version: 503 `view_not_ready`, with its message (nothing internal in it).
    #[error("{0}")]
    ViewNotReady(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Domain(String, &'static str),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
            ApiError::IdempotencyConflict(_) => (StatusCode::CONFLICT, "idempotency_conflict"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::ViewNotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "view_not_ready"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Domain(_, code) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The response. A 5xx body carries the request id and no internals (table names, ARNs, SDK text): the
    /// details go to the log under that id.
    fn into_response(self, request_id: &str) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(request_id, error = %self, "request failed");
            match &self {
                ApiError::Unavailable(_) => format!(
                    "the event store is busy; retry after {RETRY_AFTER_SECS} s (request id {request_id})"
                ),
                ApiError::ViewNotReady(m) => m.clone(),
                _ => format!(
                    "internal error; nothing is known about its cause here, the details are logged under request id {request_id}"
                ),
            }
        } else {
            self.to_string()
        };
        let current_version = match &self {
            ApiError::Conflict { current, .. } => Some(*current),
            _ => None,
        };
        let allow = match &self {
            ApiError::MethodNotAllowed { allowed, .. } => Some(allowed.join(", ")),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                current_version,
                request_id: status.is_server_error().then(|| request_id.to_string()),
            },
        };
        let mut response = json(status, &body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if let Some(allow) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::TooLarge(m) => ApiError::TooLarge(m),
            AppendError::Conflict { current, .. } => ApiError::Conflict {
                message: e.to_string(),
                current,
            },
            AppendError::IdempotencyConflict(_) => ApiError::IdempotencyConflict(e.to_string()),
            AppendError::Domain { index, source } => domain_error(index, source),
            AppendError::Store(s) => s.into(),
            AppendError::CorruptLog(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor(m) => {
                ApiError::InvalidRequest(format!("invalid `cursor`: {m}"))
            }
            StoreError::Throttled(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn domain_error(index: usize, e: DomainError) -> ApiError {
    let code = e.code();
    let message = if index == 0 {
        e.to_string()
    } else {
        format!("event {index} of the batch: {e}")
    };
    match e {
        // Data that does not match its event type's schema is a bad request, like any schema-invalid body.
        DomainError::InvalidData(_) => ApiError::InvalidRequest(message),
        _ => ApiError::Domain(message, code),
    }
}

/// The command function's handler: `POST /events` and `POST /aggregates/{aggregateId}/events`.
pub async fn handle_command<S: EventStore>(store: &S, request: Request) -> Response<Body> {
    dispatch(store, request, Function::Command).await
}

/// The build tag `GET /health` reports (`dev` until the query binary sets its own). It lets a deploy or a
/// hotswap be verified through the API itself.
static BUILD_TAG: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Sets the tag `GET /health` reports. The query binary calls it with its compile-time `CQRS_BUILD_TAG`:
/// reading the variable there (not in this shared library) means a new tag rebuilds only the query function,
/// so the command and projector zips stay byte-identical and a hotswap updates only what changed.
pub fn set_build_tag(tag: &'static str) {
    let _ = BUILD_TAG.set(tag);
}

/// The tag `GET /health` reports: the one set by [`set_build_tag`], or `dev`.
pub fn build_tag() -> &'static str {
    BUILD_TAG.get().copied().unwrap_or("dev")
}

/// The query function's handler: the GET routes, including `GET /health`.
pub async fn handle_query<S: EventStore>(store: &S, request: Request) -> Response<Body> {
    dispatch(store, request, Function::Query).await
}

async fn dispatch<S: EventStore>(
    store: &S,
    request: Request,
    function: Function,
) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let request_id = request_id(&request);
    let (path, matched) = route(&request, function, &method);
    let result = match matched {
        RouteMatch::Found {
            route,
            aggregate_id,
        } => {
            let from_gateway = request
                .path_parameters_ref()
                .and_then(|p| p.first("aggregateId"))
                .map(str::to_string);
            let aggregate_id = from_gateway.filter(|s| !s.is_empty()).or(aggregate_id);
            if let Some(view) = route.view() {
                list_view(store, &request, view, aggregate_id.unwrap_or_default()).await
            } else {
                handle(store, &request, route.id, aggregate_id).await
            }
        }
        RouteMatch::MethodNotAllowed { allowed } => Err(ApiError::MethodNotAllowed {
            method: method.clone(),
            allowed,
        }),
        RouteMatch::NotFound => Err(ApiError::NotFound(format!("no route for {method} {path}"))),
    };
    let response = result.unwrap_or_else(|e| e.into_response(&request_id));
    tracing::info!(%request_id, %method, %path, status = response.status().as_u16(), "request");
    response
}

/// The id a 5xx answer quotes and the log carries: the Lambda invocation's request id, else API Gateway's,
/// else a fresh one (tests and tools calling the handler directly).
fn request_id(request: &Request) -> String {
    if let Some(ctx) = request.lambda_context_ref()
        && !ctx.request_id.is_empty()
    {
        return ctx.request_id.clone();
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) if ctx.request_id.is_some() => {
            ctx.request_id.clone().unwrap_or_default()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// Keeps the longest prefix of `events` whose JSON fits [`PAGE_BYTES`] (always at least one event, which is
/// at most 400 KB); returns whether it cut.
fn cap_page(events: &mut Vec<EventView>) -> bool {
    let mut total = 0usize;
    for (i, e) in events.iter().enumerate() {
        let json = serde_json::to_string(e).expect("events serialize");
        // As embedded in the Lambda response: the body is a JSON string, so measure it escaped.
        total += serde_json::to_string(&json)
            .expect("strings serialize")
            .len();
        if total > PAGE_BYTES && i > 0 {
            events.truncate(i);
            return true;
        }
    }
    false
}

/// The request path without a named stage's prefix, and the route it matches.
fn route(request: &Request, function: Function, method: &str) -> (String, RouteMatch) {
    let raw = request.raw_http_path();
    let path = if raw.is_empty() {
        request.uri().path().to_string()
    } else {
        raw.to_string()
    };
    let matched = match_route(function, method, &path);
    if matched == RouteMatch::NotFound
        && let Some(RequestContext::ApiGatewayV2(ctx)) = request.request_context_ref()
        && let Some(stage) = ctx.stage.as_deref().filter(|s| *s != "$default")
        && let Some(rest) = path.strip_prefix(&format!("/{stage}"))
        && rest.starts_with('/')
    {
        return (rest.to_string(), match_route(function, method, rest));
    }
    (path, matched)
}

async fn handle<S: EventStore>(
    store: &S,
    request: &Request,
    route: RouteId,
    aggregate_id: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let aggregate_id = aggregate_id.unwrap_or_default();
    match route {
        RouteId::AppendEvent => append_event(store, request).await,
        RouteId::AppendToAggregate => append_to_aggregate(store, request, aggregate_id).await,
        RouteId::ListAggregateEvents => list_aggregate_events(store, request, aggregate_id).await,
        RouteId::GetAggregate => get_aggregate(store, request, aggregate_id).await,
        RouteId::ListEventsByType => list_events_by_type(store, request).await,
        RouteId::Health => Ok(json(
            StatusCode::OK,
            &HealthResponse {
                status: "ok".into(),
                build: build_tag().into(),
            },
        )),
        RouteId::ListView => Err(ApiError::Internal(
            "a view route without a view name".into(),
        )),
    }
}

/// `GET /views/<view>/{key}`: one page of the rows listed under `key` in the view's live version. Until a
/// version has caught up (a new view on an existing log, before deploy or `cargo xtask replay` built it)
/// the answer is 503 `view_not_ready`: an empty list there would be a wrong answer, not a slow one.
async fn list_view<S: EventStore>(
    store: &S,
    request: &Request,
    view: &str,
    key: String,
) -> Result<Response<Body>, ApiError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(ApiError::InvalidRequest(
            "`key` must be 1 to 1024 characters".into(),
        ));
    }
    let params = query_params(request);
    let limit = parse_limit(param(&params, "limit")).map_err(ApiError::InvalidRequest)?;
    let cursor = param(&params, "cursor").map(str::to_string);
    let Some(version) = store.view_live_version(view).await? else {
        return Err(ApiError::ViewNotReady(format!(
            "view `{view}` has no version that has caught up with the log yet; deploy, or run `cargo xtask replay --projection {view}`"
        )));
    };
    let query = ViewQuery {
        view: view.to_string(),
        view_version: version,
        key,
        limit,
        cursor,
    };
    let (rows, next_cursor) = store.query_view(&query).await?;
    Ok(json(
        StatusCode::OK,
        &ViewPage {
            view: query.view,
            version,
            key: query.key,
            rows: rows
                .into_iter()
                .map(|r| ViewRowView {
                    aggregate_id: r.aggregate_id,
                    aggregate_type: r.aggregate_type,
                    version: r.aggregate_version,
                    row: r.row,
                })
                .collect(),
            next_cursor,
        },
    ))
}

/// `POST /events`: one event (the seed's request), answered with its version.
async fn append_event<S: EventStore>(
    store: &S,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(request)?;
    let cmd = parse_append_event(body).map_err(ApiError::InvalidRequest)?;
    let outcome = append(store, &cmd, metadata(request)).await?;
    let e = &outcome.events[0];
    Ok(json(
        StatusCode::OK,
        &AppendEventResponse {
            message: "Event stored successfully".into(),
            aggregate_id: outcome.aggregate_id.clone(),
            version: e.version,
            event_id: e.event_id.clone(),
            timestamp: e.timestamp.clone(),
        },
    ))
}

/// `POST /aggregates/{id}/events`: a batch of events appended to one aggregate.
async fn append_to_aggregate<S: EventStore>(
    store: &S,
    request: &Request,
    aggregate_id: String,
) -> Result<Response<Body>, ApiError> {
    validate_id("aggregateId", &aggregate_id).map_err(ApiError::InvalidRequest)?;
    let body = json_body(request)?;
    let cmd = parse_append_to_aggregate(&aggregate_id, body).map_err(ApiError::InvalidRequest)?;
    let outcome = append(store, &cmd, metadata(request)).await?;
    Ok(json(
        StatusCode::CREATED,
        &AppendBatchResponse {
            aggregate_id: outcome.aggregate_id,
            version: outcome.events.last().map_or(0, |e| e.version),
            events: outcome.events,
        },
    ))
}

/// `GET /aggregates/{id}/events`: a page of one aggregate's events after a version.
async fn list_aggregate_events<S: EventStore>(
    store: &S,
    request: &Request,
    aggregate_id: String,
) -> Result<Response<Body>, ApiError> {
    validate_id("aggregateId", &aggregate_id).map_err(ApiError::InvalidRequest)?;
    let params = query_params(request);
    let after = match param(&params, "after") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= MAX_VERSION)
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "`after` must be an integer version from 0 to {MAX_VERSION}, got `{s}`"
                ))
            })?,
    };
    let limit = parse_limit(param(&params, "limit")).map_err(ApiError::InvalidRequest)?;
    let (events, more) = store
        .read_events(&aggregate_id, after, Some(limit), true)
        .await?;
    let mut events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
    let cut = cap_page(&mut events);
    let next_after = if more || cut {
        events.last().map(|e| e.version)
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &EventsPage {
            aggregate_id,
            events,
            next_after,
        },
    ))
}

/// `GET /aggregates/{id}`: the read model, or with `?consistent=true` the replay of the log.
async fn get_aggregate<S: EventStore>(
    store: &S,
    request: &Request,
    aggregate_id: String,
) -> Result<Response<Body>, ApiError> {
    validate_id("aggregateId", &aggregate_id).map_err(ApiError::InvalidRequest)?;
    let params = query_params(request);
    let consistent = match param(&params, "consistent") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::InvalidRequest(format!(
                "`consistent` must be true or false, got `{other}`"
            )));
        }
    };
    if consistent {
        // The seed's replayEvents, paging through the whole log.
        let (events, _) = store.read_events(&aggregate_id, 0, None, true).await?;
        let Some(last) = events.last() else {
            return Err(ApiError::NotFound(format!(
                "aggregate `{aggregate_id}` has no events"
            )));
        };
        let version = last.version;
        let state = registry()
            .replay(
                events
                    .iter()
                    .map(|e| (e.event_type.as_str(), e.schema_version(), &e.event_data)),
            )
            .map_err(|e| ApiError::Internal(format!("the stored events cannot be replayed: {e}")))?
            .ok_or_else(|| ApiError::Internal("a non-empty log replayed to nothing".into()))?;
        return Ok(json(
            StatusCode::OK,
            &AggregateView {
                aggregate_id,
                aggregate_type: Some(state.kind().to_string()),
                version,
                state: state.state(),
            },
        ));
    }
    match store.get_read_model(&aggregate_id).await? {
        Some(m) => Ok(json(
            StatusCode::OK,
            &AggregateView {
                aggregate_id,
                aggregate_type: m.aggregate_type,
                version: m.version,
                state: m.state,
            },
        )),
        None => Err(ApiError::NotFound(format!(
            "aggregate `{aggregate_id}` has no read model: it has no events, or the projector has not caught up yet (add ?consistent=true to replay the event log)"
        ))),
    }
}

/// `GET /events?type=`: a page of the events of one type, optionally within a time range.
async fn list_events_by_type<S: EventStore>(
    store: &S,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let params = query_params(request);
    let event_type = param(&params, "type").ok_or_else(|| {
        ApiError::InvalidRequest(
            "the `type` query parameter is required, e.g. ?type=user_created".into(),
        )
    })?;
    validate_id("type", event_type).map_err(ApiError::InvalidRequest)?;
    if registry().spec(event_type).is_none() {
        return Err(ApiError::InvalidRequest(format!(
            "`type` is `{event_type}`, which is not an event type of this API; event types: {}",
            registry().event_types().join(", ")
        )));
    }
    let bound = |name: &str| {
        param(&params, name)
            .map(|v| {
                normalize_timestamp(v)
                    .map_err(|e| ApiError::InvalidRequest(format!("`{name}`: {e}")))
            })
            .transpose()
    };
    let (from, to) = (bound("from")?, bound("to")?);
    if let (Some(f), Some(t)) = (&from, &to)
        && f > t
    {
        return Err(ApiError::InvalidRequest(format!(
            "`from` ({f}) is after `to` ({t})"
        )));
    }
    let query = TypeQuery {
        event_type: event_type.to_string(),
        from,
        to,
        limit: parse_limit(param(&params, "limit")).map_err(ApiError::InvalidRequest)?,
        cursor: param(&params, "cursor").map(str::to_string),
    };
    let (events, mut next_cursor) = store.events_by_type(&query).await?;
    let mut events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
    if cap_page(&mut events)
        && let Some(last) = events.last()
    {
        next_cursor = Some(encode_cursor(
            &CursorKey {
                aggregate_id: last.aggregate_id.clone(),
                version: last.version,
                event_type: last.event_type.clone(),
                timestamp: last.timestamp.clone(),
            },
            &query,
        ));
    }
    Ok(json(
        StatusCode::OK,
        &EventsByTypePage {
            event_type: query.event_type,
            events,
            next_cursor,
        },
    ))
}

/// The body of a POST, refusing a declared non-JSON content type (415). A missing content type is accepted:
/// the seed's clients did not always send one.
fn json_body(request: &Request) -> Result<&[u8], ApiError> {
    if let Some(ct) = request.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let mime = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type `{ct}` is not supported; send JSON with `Content-Type: application/json`"
            )));
        }
    }
    Ok(request.body().as_ref())
}

fn query_params(request: &Request) -> Vec<(String, String)> {
    match request.uri().query() {
        Some(q) if !q.is_empty() => url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect(),
        _ => request
            .query_string_parameters_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Correlation id from `x-correlation-id`, else the gateway's request id; causation id from `x-causation-id`
/// (the append falls back to the command id).
fn metadata(request: &Request) -> Metadata {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| validate_id(name, v).is_ok())
            .map(str::to_string)
    };
    let request_id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    Metadata {
        correlation_id: header("x-correlation-id")
            .or(request_id)
            .or_else(|| Some(uuid::Uuid::now_v7().to_string())),
        causation_id: header("x-causation-id"),
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::to_string(body).expect("response bodies serialize"),
        ))
        .expect("a valid response")
}
