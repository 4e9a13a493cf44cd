//! The local HTTP gateway: API Gateway v2 (HTTP API, payload format 2.0) in front of the function host.
//!
//! Why it exists: the local AWS endpoint has no API Gateway data plane (and its CloudFormation ignores
//! `AWS::ApiGatewayV2::*`), so the routes come from the plan, the same data that renders the AWS template.
//! Requests become `ApiGatewayV2httpRequest` events exactly as API Gateway would build them, and function
//! results become HTTP responses with API Gateway's rules (a bare JSON value is a 200 `application/json`
//! body; `cookies` become `set-cookie`; base64 bodies are decoded). Gateway-level failures answer with API
//! Gateway's own bodies (`{"message":"Not Found"}`, ...), not the service's error format, because that is
//! what a client of the deployed API would see.
//!
//! Where the behaviour comes from (each rule below cites its source):
//! - CORS: the plan's [`CorsPlan`] (the same data that renders the template's `CorsConfiguration`), applied
//!   as the API Gateway developer guide describes for HTTP APIs ("Configure CORS for HTTP APIs",
//!   `http-api-cors.html`): preflights are answered by the gateway even without an `OPTIONS` route, CORS
//!   headers are returned only to requests that carry `Origin` (and, for a preflight,
//!   `Access-Control-Request-Method`), and CORS headers returned by the integration are ignored.
//! - Payload limits: API Gateway accepts 10 MB (HTTP API quotas, `http-api-quotas.html`); the function host
//!   refuses what Lambda refuses (6 MB, see `host.rs`) and [`lambda_failure`] maps that to the answers a
//!   client of API Gateway gets.
//! - Bodies: the function always receives the exact bytes; text that is not valid UTF-8 is base64-encoded
//!   (`isBase64Encoded: true`) like a binary body, never repaired.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use stack::{CorsPlan, FunctionName, Route};

use crate::host::{Host, InvokeError};

/// API Gateway's payload limit for HTTP APIs: 10 MB ("Quotas for configuring and running an HTTP API",
/// `http-api-quotas.html`). Lambda's own 6 MB limit on the event is checked by the host.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What the gateway needs to know about the API it imitates.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub routes: Vec<Route>,
    pub region: String,
    pub account_id: String,
    /// The `apiId` in request contexts (and in `domainName`).
    pub api_id: String,
    pub stage: String,
    /// The API's CORS configuration from the plan; `None` answers no preflight and adds no CORS header.
    pub cors: Option<CorsPlan>,
}

/// A matched route: which function, the route key and the path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route_key: String,
    pub function: FunctionName,
    pub path_parameters: BTreeMap<String, String>,
}

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No route has this path.
    NotFound,
    /// The path exists with other methods (listed for the `Allow` header).
    MethodNotAllowed(Vec<&'static str>),
}

/// Finds the route for a method and path, with `{param}` segments matching one non-empty segment.
/// Literal segments win over parameters (API Gateway prefers the most specific route).
pub fn match_route(routes: &[Route], method: &str, path: &str) -> Result<RouteMatch, NoRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut candidates: Vec<(usize, &Route, BTreeMap<String, String>)> = Vec::new();
    for route in routes {
        let template: Vec<&str> = route.path.trim_start_matches('/').split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut params = BTreeMap::new();
        let mut literal = 0;
        let ok = template.iter().zip(&segments).all(|(t, s)| {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                if s.is_empty() {
                    return false;
                }
                params.insert(name.to_string(), percent_decode(s));
                true
            } else {
                literal += 1;
                t == s
            }
        });
        if ok {
            candidates.push((literal, route, params));
        }
    }
    if candidates.is_empty() {
        return Err(NoRoute::NotFound);
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some((_, route, params)) = candidates
        .iter()
        .find(|(_, r, _)| r.method.as_str() == method)
    {
        return Ok(RouteMatch {
            route_key: route.route_key(),
            function: route.function,
            path_parameters: params.clone(),
        });
    }
    let mut allowed: Vec<&'static str> = candidates
        .iter()
        .map(|(_, r, _)| r.method.as_str())
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    Err(NoRoute::MethodNotAllowed(allowed))
}

/// The parts of an HTTP request the event is built from (kept separate from axum so it is unit-testable).
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub source_ip: String,
    pub protocol: String,
}

/// Builds the payload format 2.0 event API Gateway sends to a Lambda integration.
pub fn to_event(
    cfg: &GatewayConfig,
    req: &IncomingRequest,
    route: &RouteMatch,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    // Headers are lowercased and repeated headers comma-joined; cookies move to their own array.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &req.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in req.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            percent_decode(&k.replace('+', " ")),
            percent_decode(&v.replace('+', " ")),
        );
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    // A text body travels as a string only if it is valid UTF-8; anything else is base64-encoded so the
    // function sees the exact bytes (a lossy conversion would turn them into U+FFFD, valid JSON that a
    // handler would accept and store).
    let text = is_text(&content_type)
        .then(|| std::str::from_utf8(&req.body).ok())
        .flatten();
    let (body, is_base64) = if req.body.is_empty() {
        (Value::Null, false)
    } else if let Some(text) = text {
        (Value::String(text.to_string()), false)
    } else {
        (
            Value::String(base64::engine::general_purpose::STANDARD.encode(&req.body)),
            true,
        )
    };
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let domain_name = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| format!("{}.execute-api.{}.amazonaws.com", cfg.api_id, cfg.region));
    let domain_prefix = domain_name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": cfg.account_id,
            "apiId": cfg.api_id,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": req.protocol,
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id(),
            "routeKey": route.route_key,
            "stage": cfg.stage,
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": is_base64,
    });
    let obj = event.as_object_mut().expect("built as an object");
    if !cookies.is_empty() {
        obj.insert("cookies".into(), json!(cookies));
    }
    if !query.is_empty() {
        obj.insert("queryStringParameters".into(), json!(query));
    }
    if !route.path_parameters.is_empty() {
        obj.insert("pathParameters".into(), json!(route.path_parameters));
    }
    if !body.is_null() {
        obj.insert("body".into(), body);
    }
    event
}

/// An HTTP response built from a function's result.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Turns a function's result into the HTTP response, following API Gateway's format 2.0 rules.
/// `Err` means the result is malformed (API Gateway answers 500 in that case).
pub fn from_result(result: &[u8]) -> Result<GatewayResponse, String> {
    let value: Value = serde_json::from_slice(result)
        .map_err(|e| format!("the function returned invalid JSON: {e}"))?;
    let Some(obj) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // A bare JSON value: API Gateway assumes 200 and returns the value as the JSON body.
        return Ok(GatewayResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(result),
        });
    };
    let status = obj["statusCode"]
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", obj["statusCode"]))?
        as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            headers.push((k.to_ascii_lowercase(), scalar_to_string(v)));
        }
    }
    if let Some(map) = obj.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in map {
            let k = k.to_ascii_lowercase();
            for v in vs.as_array().into_iter().flatten() {
                let v = scalar_to_string(v);
                if !headers.iter().any(|(hk, hv)| *hk == k && *hv == v) {
                    headers.push((k.clone(), v));
                }
            }
        }
    }
    for cookie in obj
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = cookie.as_str() {
            headers.push(("set-cookie".into(), c.to_string()));
        }
    }
    let raw_body = match obj.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let body = if obj
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(raw_body.trim())
                .map_err(|e| format!("isBase64Encoded is true but the body is not base64: {e}"))?,
        )
    } else {
        Bytes::from(raw_body)
    };
    if !headers.iter().any(|(k, _)| k == "content-type") && !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok(GatewayResponse {
        status,
        headers,
        body,
    })
}

/// API Gateway's own error responses.
pub fn gateway_error(status: StatusCode, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "message": message }))).into_response();
    resp.headers_mut().insert(
        "apigw-requestid",
        HeaderValue::from_str(&request_id()).expect("ascii"),
    );
    resp
}

/// Builds the gateway's router.
pub fn router(cfg: GatewayConfig, host: Arc<Host>) -> Router {
    let state = Arc::new(GatewayState { cfg, host });
    Router::new().fallback(handle).with_state(state)
}

/// Serves the gateway on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: GatewayConfig,
    host: Arc<Host>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(cfg, host).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

struct GatewayState {
    cfg: GatewayConfig,
    host: Arc<Host>,
}

async fn handle(State(state): State<Arc<GatewayState>>, req: Request<Body>) -> Response {
    let connect = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let origin = parts
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(cors) = &state.cfg.cors
        && parts.method == Method::OPTIONS
        && let Some(origin) = &origin
        && parts.headers.contains_key("access-control-request-method")
    {
        // API Gateway answers a preflight itself, before routing and without an OPTIONS route.
        return preflight(cors, origin);
    }
    let route = match match_route(&state.cfg.routes, parts.method.as_str(), &path) {
        Ok(r) => r,
        Err(NoRoute::NotFound) => return gateway_error(StatusCode::NOT_FOUND, "Not Found"),
        Err(NoRoute::MethodNotAllowed(allowed)) => {
            let mut resp = gateway_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            resp.headers_mut().insert(
                "allow",
                HeaderValue::from_str(&allowed.join(", ")).expect("ascii"),
            );
            return resp;
        }
    };
    let too_large = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_large {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let incoming = IncomingRequest {
        method: parts.method.as_str().to_string(),
        path,
        raw_query: parts.uri.query().unwrap_or_default().to_string(),
        headers: header_pairs(&parts.headers),
        body,
        source_ip: connect
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
        protocol: format!("{:?}", parts.version),
    };
    let event = to_event(&state.cfg, &incoming, &route, chrono::Utc::now());
    let payload = Bytes::from(serde_json::to_vec(&event).expect("json serialises"));
    match state.host.invoke(route.function, payload).await {
        Ok(out) => match from_result(&out.body) {
            Ok(mut resp) => {
                if let Some(cors) = &state.cfg.cors {
                    apply_cors(cors, origin.as_deref(), &mut resp.headers);
                }
                into_http(resp)
            }
            Err(why) => {
                tracing::warn!(function = %route.function, "malformed Lambda response: {why}");
                gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
        Err(e) => {
            tracing::warn!(function = %route.function, "invocation failed: {e}");
            let (status, message) = lambda_failure(&e);
            gateway_error(status, message)
        }
    }
}

/// What a client of an HTTP API sees when the Lambda invocation itself fails.
///
/// - A request whose event is over Lambda's 6 MB (`RequestEntityTooLargeException` from `Invoke`): 413
///   `{"message":"Request Too Long"}`, the answer recorded from API Gateway in front of a Lambda proxy
///   integration in koki-develop/lgtm-generator#10 (2021; a REST API: no record for an HTTP API was found,
///   so the same answer is assumed).
/// - Every other failure of the function (handler error, crash, out of memory, a response over 6 MB, which
///   Lambda reports as `Function.ResponseSizeTooLarge`): 500 `{"message":"Internal Server Error"}`, the
///   HTTP API's answer to a failed Lambda integration ("Troubleshooting issues with HTTP API Lambda
///   integrations", `http-api-troubleshooting-lambda.html`). (A REST API would answer 502.)
/// - A timeout of the function: 504 (the gateway's answer before this list was written; not checked
///   against an HTTP API).
pub fn lambda_failure(e: &InvokeError) -> (StatusCode, &'static str) {
    match e {
        InvokeError::RequestTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long"),
        InvokeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Service Unavailable"),
        InvokeError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// The `Access-Control-Allow-Origin` value for `origin`, if the configuration allows it: `*` when every
/// origin is allowed, otherwise the origin itself. `https://*` and `http://*` allow every origin of that
/// scheme, as in API Gateway's `allowOrigins`.
pub fn allowed_origin(cors: &CorsPlan, origin: &str) -> Option<String> {
    if cors.allow_origins.iter().any(|o| o == "*") {
        return Some("*".to_string());
    }
    cors.allow_origins
        .iter()
        .any(|allowed| match allowed.strip_suffix('*') {
            Some(scheme) if scheme.ends_with("://") => origin.starts_with(scheme),
            _ => allowed.eq_ignore_ascii_case(origin),
        })
        .then(|| origin.to_string())
}

/// The gateway's answer to a CORS preflight: 204, with the configured CORS headers when the origin is
/// allowed and none when it is not (the browser then blocks the request).
pub fn preflight(cors: &CorsPlan, origin: &str) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        "apigw-requestid",
        HeaderValue::from_str(&request_id()).expect("ascii"),
    );
    let Some(allow) = allowed_origin(cors, origin) else {
        return resp;
    };
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if allow != "*" {
        put("vary", "Origin".into());
    }
    put("access-control-allow-origin", allow);
    put("access-control-allow-methods", cors.allow_methods.join(","));
    put("access-control-allow-headers", cors.allow_headers.join(","));
    if let Some(age) = cors.max_age_seconds {
        put("access-control-max-age", age.to_string());
    }
    resp
}

/// CORS on an integration's response: the function's own CORS headers are dropped (API Gateway ignores
/// them when CORS is configured) and, for an allowed `Origin`, `Access-Control-Allow-Origin` (plus
/// `Vary: Origin` when it names the origin) is added.
pub fn apply_cors(cors: &CorsPlan, origin: Option<&str>, headers: &mut Vec<(String, String)>) {
    headers.retain(|(k, _)| !k.starts_with("access-control-"));
    let Some(allow) = origin.and_then(|o| allowed_origin(cors, o)) else {
        return;
    };
    if allow != "*" {
        headers.push(("vary".into(), "Origin".into()));
    }
    headers.push(("access-control-allow-origin".into(), allow));
}

fn into_http(resp: GatewayResponse) -> Response {
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            out.headers_mut().append(k, v);
        }
    }
    out.headers_mut().insert(
        "apigw-requestid",
        HeaderValue::from_str(&request_id()).expect("ascii"),
    );
    out
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Content types whose bodies API Gateway passes as text (when they are valid UTF-8); a body without a
/// content type counts as text. Everything else is base64-encoded.
fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
        || ct.contains("yaml")
        || ct.contains("graphql")
}

fn scalar_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn request_id() -> String {
    // API Gateway request ids look like `JKJaXmPLvHcESHA=`; any unique token does locally.
    base64::engine::general_purpose::STANDARD.encode(&uuid::Uuid::now_v7().as_bytes()[..10])
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use stack::HttpMethod;

    fn cfg() -> GatewayConfig {
        GatewayConfig {
            routes: stack::default_routes(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            api_id: "local".into(),
            stage: "$default".into(),
            cors: None,
        }
    }

    fn request(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> IncomingRequest {
        IncomingRequest {
            method: method.into(),
            path: path.into(),
            raw_query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::copy_from_slice(body),
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
        }
    }

    #[test]
    fn routes_match_with_path_parameters_404_and_405() {
        let routes = stack::default_routes();
        let m = match_route(&routes, "GET", "/aggregates/user%2D1/events").unwrap();
        assert_eq!(m.route_key, "GET /aggregates/{aggregateId}/events");
        assert_eq!(m.function, FunctionName::Query);
        assert_eq!(m.path_parameters["aggregateId"], "user-1");
        assert_eq!(
            match_route(&routes, "POST", "/events").unwrap().function,
            FunctionName::Command
        );
        assert_eq!(match_route(&routes, "GET", "/nope"), Err(NoRoute::NotFound));
        assert_eq!(
            match_route(&routes, "GET", "/aggregates//events"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            match_route(&routes, "DELETE", "/events"),
            Err(NoRoute::MethodNotAllowed(vec!["GET", "POST"]))
        );
        // A literal segment beats a parameter when both match.
        let mut routes = routes;
        routes.push(Route {
            method: HttpMethod::Get,
            path: "/aggregates/special".into(),
            function: FunctionName::Command,
        });
        assert_eq!(
            match_route(&routes, "GET", "/aggregates/special")
                .unwrap()
                .function,
            FunctionName::Command
        );
    }

    #[test]
    fn event_is_payload_format_2_0() {
        let req = request(
            "GET",
            "/aggregates/a1/events",
            "limit=2&tag=x&tag=y%20z",
            &[
                ("Host", "127.0.0.1:3030"),
                ("User-Agent", "curl/8"),
                ("X-Multi", "1"),
                ("x-multi", "2"),
                ("Cookie", "a=1; b=2"),
            ],
            b"",
        );
        let route = match_route(&cfg().routes, "GET", "/aggregates/a1/events").unwrap();
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let event = to_event(&cfg(), &req, &route, now);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "GET /aggregates/{aggregateId}/events");
        assert_eq!(event["rawQueryString"], "limit=2&tag=x&tag=y%20z");
        assert_eq!(event["queryStringParameters"]["tag"], "x,y z");
        assert_eq!(event["headers"]["x-multi"], "1,2");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(event["requestContext"]["http"]["userAgent"], "curl/8");
        assert_eq!(event["requestContext"]["stage"], "$default");
        assert_eq!(event["requestContext"]["timeEpoch"], 1_700_000_000_000i64);
        assert_eq!(
            event["requestContext"]["time"],
            "14/Nov/2023:22:13:20 +0000"
        );
        assert!(event.get("body").is_none());

        // The official event type reads it back with every field in place.
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
        assert_eq!(typed.raw_path.as_deref(), Some("/aggregates/a1/events"));
        assert_eq!(
            typed.path_parameters.get("aggregateId").map(String::as_str),
            Some("a1")
        );
        assert_eq!(typed.query_string_parameters.first("limit"), Some("2"));
        assert_eq!(typed.request_context.http.method, http::Method::GET);
        assert_eq!(
            typed.request_context.http.source_ip.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            typed.request_context.domain_name.as_deref(),
            Some("127.0.0.1:3030")
        );
        assert_eq!(
            typed.cookies,
            Some(vec!["a=1".to_string(), "b=2".to_string()])
        );
        assert!(!typed.is_base64_encoded);
    }

    #[test]
    fn text_bodies_stay_text_and_binary_bodies_are_base64() {
        let route = match_route(&cfg().routes, "POST", "/events").unwrap();
        let now = chrono::Utc::now();
        let json_req = request(
            "POST",
            "/events",
            "",
            &[("content-type", "application/json")],
            br#"{"a":1}"#,
        );
        let event = to_event(&cfg(), &json_req, &route, now);
        assert_eq!(event["body"], r#"{"a":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let bin = request(
            "POST",
            "/events",
            "",
            &[("content-type", "application/octet-stream")],
            &[0, 159, 255],
        );
        let event = to_event(&cfg(), &bin, &route, now);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AJ//");
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
        assert!(typed.is_base64_encoded);
    }

    #[test]
    fn text_that_is_not_utf8_is_base64_encoded_never_repaired() {
        let route = match_route(&cfg().routes, "POST", "/events").unwrap();
        for ct in ["application/json", "text/plain; charset=utf-8", ""] {
            let headers: Vec<(&str, &str)> = if ct.is_empty() {
                vec![]
            } else {
                vec![("content-type", ct)]
            };
            let req = request("POST", "/events", "", &headers, b"{\"a\":\"\xff\"}");
            let event = to_event(&cfg(), &req, &route, chrono::Utc::now());
            assert_eq!(event["isBase64Encoded"], true, "{ct}");
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(event["body"].as_str().unwrap())
                    .unwrap(),
                b"{\"a\":\"\xff\"}",
                "{ct}"
            );
        }
    }

    #[test]
    fn origins_match_like_api_gateway_allow_origins() {
        let cors = |origins: &[&str]| CorsPlan {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_methods: vec!["GET".into()],
            allow_headers: vec![],
            max_age_seconds: None,
        };
        let exact = cors(&["https://app.example.com"]);
        assert_eq!(
            allowed_origin(&exact, "https://app.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(allowed_origin(&exact, "https://app.example.com:8443"), None);
        assert_eq!(allowed_origin(&exact, "http://app.example.com"), None);
        let https = cors(&["https://*"]);
        assert!(allowed_origin(&https, "https://any.example").is_some());
        assert_eq!(allowed_origin(&https, "http://any.example"), None);
        assert_eq!(
            allowed_origin(&cors(&["*"]), "http://x.example").as_deref(),
            Some("*")
        );

        // The integration's CORS headers never leak through; the allowed origin is added with Vary.
        let mut headers = vec![
            ("access-control-allow-origin".to_string(), "*".to_string()),
            ("x-kept".to_string(), "1".to_string()),
        ];
        apply_cors(&exact, Some("https://app.example.com"), &mut headers);
        assert_eq!(
            headers,
            vec![
                ("x-kept".to_string(), "1".to_string()),
                ("vary".to_string(), "Origin".to_string()),
                (
                    "access-control-allow-origin".to_string(),
                    "https://app.example.com".to_string()
                ),
            ]
        );
    }

    #[test]
    fn responses_follow_api_gateway_rules() {
        let bare = from_result(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(bare.status, 200);
        assert_eq!(
            bare.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(&bare.body[..], br#"{"hello":"world"}"#);

        let full = from_result(
            br#"{"statusCode":201,"headers":{"X-A":"1"},"multiValueHeaders":{"x-b":["1","2"]},"cookies":["c=1"],"body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(full.status, 201);
        assert!(full.headers.contains(&("x-a".into(), "1".into())));
        assert!(full.headers.contains(&("x-b".into(), "2".into())));
        assert!(full.headers.contains(&("set-cookie".into(), "c=1".into())));
        assert_eq!(&full.body[..], b"hi");

        let bin =
            from_result(br#"{"statusCode":200,"body":"AAEC","isBase64Encoded":true}"#).unwrap();
        assert_eq!(&bin.body[..], &[0, 1, 2]);
        assert!(from_result(br#"{"statusCode":"x"}"#).is_err());
        assert!(from_result(b"not json").is_err());
        // A bare string is a JSON value too.
        assert_eq!(&from_result(br#""ok""#).unwrap().body[..], br#""ok""#);
    }
}
