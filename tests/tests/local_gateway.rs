//! The local gateway's fidelity to API Gateway (HTTP API, payload format 2.0) where a difference would let
//! code pass locally and fail on AWS: CORS from the plan's configuration, Lambda's 6 MB payload limits, and
//! request bodies that are not valid UTF-8. The gateway runs over real HTTP in front of the runtime probe (a
//! real function on the official runtime crate); the last test feeds the gateway's event to the command
//! function's own handler to show what the service does with it. No AWS endpoint is needed.

mod local_support;

use std::time::Duration;

use base64::Engine as _;
use local_engine::gateway::{self, GatewayConfig, IncomingRequest};
use local_engine::host::{InvokeError, MAX_REQUEST_PAYLOAD, MAX_RESPONSE_PAYLOAD};
use local_engine::{Engine, EngineHandle};
use local_support::*;
use serde_json::{Value, json};
use stack::{CorsPlan, FunctionName, HttpMethod, Route};

const FAKE_ENDPOINT: &str = "http://127.0.0.1:9";
const APP: &str = "https://app.example.com";

/// An engine whose routes all go to the probe, with the given CORS configuration.
async fn engine(cors: Option<CorsPlan>) -> (tempfile::TempDir, EngineHandle) {
    let dir = tempfile::tempdir().unwrap();
    let functions = vec![
        probe_spec(FunctionName::Query, Duration::from_secs(30), &[]),
        probe_spec(FunctionName::Command, Duration::from_secs(30), &[]),
    ];
    let mut routes = stack::default_routes();
    for (method, path) in [(HttpMethod::Get, "/big"), (HttpMethod::Post, "/echo")] {
        routes.push(Route {
            method,
            path: path.into(),
            function: FunctionName::Query,
        });
    }
    let mut cfg = probe_engine(dir.path(), FAKE_ENDPOINT, functions, routes);
    cfg.cors = cors;
    let eng = Engine::start(cfg).await.expect("engine starts");
    (dir, eng)
}

/// The CORS configuration a plan carries for `origins`, read through the real config loader (so the test
/// exercises what `deploy` hands the engine, not a hand-built copy).
fn plan_cors(origins: &[&str], max_age: Option<u32>) -> CorsPlan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tests::repo_root().join("config/defaults.yaml"),
        dir.path().join("defaults.yaml"),
    )
    .unwrap();
    let mut yaml = std::fs::read_to_string(tests::repo_root().join("config/local.yaml")).unwrap();
    yaml.push_str(&format!(
        "\napi:\n  cors_origins: {}\n",
        serde_json::to_string(origins).unwrap()
    ));
    if let Some(age) = max_age {
        yaml.push_str(&format!("  cors_max_age_seconds: {age}\n"));
    }
    std::fs::write(dir.path().join("local.yaml"), yaml).unwrap();
    let plan = stack::config::load(dir.path(), "local").expect("the config loads");
    plan.api
        .cors
        .expect("cors_origins makes a CORS configuration")
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_answers_come_from_the_plans_configuration() {
    let cors = plan_cors(&[APP], Some(300));
    assert_eq!(cors.allow_methods, vec!["GET", "POST"]);
    assert_eq!(
        cors.allow_headers,
        vec!["authorization", "content-type", "idempotency-key"]
    );
    let (_dir, eng) = engine(Some(cors)).await;
    let url = eng.url().to_string();
    let http = reqwest::Client::new();
    let preflight = |path: &str, origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{url}{path}"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };

    // A preflight from an allowed origin: answered by the gateway (no OPTIONS route exists) with the plan's
    // configuration; a path without any route is answered too, as API Gateway does.
    for path in ["/events", "/nowhere"] {
        let ok = preflight(path, APP).await.unwrap();
        assert_eq!(ok.status(), 204, "{path}");
        assert_eq!(
            header(&ok, "access-control-allow-origin").as_deref(),
            Some(APP)
        );
        assert_eq!(
            header(&ok, "access-control-allow-methods").as_deref(),
            Some("GET,POST")
        );
        assert_eq!(
            header(&ok, "access-control-allow-headers").as_deref(),
            Some("authorization,content-type,idempotency-key")
        );
        assert_eq!(
            header(&ok, "access-control-max-age").as_deref(),
            Some("300")
        );
        assert_eq!(header(&ok, "vary").as_deref(), Some("Origin"));
    }

    // A disallowed origin gets no CORS header at all, so the browser blocks the request.
    let denied = preflight("/events", "https://evil.example").await.unwrap();
    assert_eq!(denied.status(), 204);
    assert!(
        denied
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        denied.headers()
    );

    // Actual requests: the allowed origin gets Access-Control-Allow-Origin and Vary, and the function's
    // own CORS header is dropped (API Gateway ignores the integration's CORS headers).
    let post = |origin: Option<&str>| {
        let mut req = http
            .post(format!("{url}/echo"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let allowed = post(Some(APP)).await.unwrap();
    assert_eq!(allowed.status(), 200);
    let origins: Vec<_> = allowed
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(origins, vec![APP.to_string()]);
    assert_eq!(header(&allowed, "vary").as_deref(), Some("Origin"));
    for origin in [Some("https://evil.example"), None] {
        let resp = post(origin).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            None,
            "origin {origin:?}"
        );
    }
    eng.stop().await;

    // `*` allows every origin and answers `*`.
    let (_dir, eng) = engine(Some(plan_cors(&["*"], None))).await;
    let any = http
        .request(reqwest::Method::OPTIONS, format!("{}/events", eng.url()))
        .header("origin", "https://anyone.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), 204);
    assert_eq!(
        header(&any, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&any, "access-control-max-age"), None);
    eng.stop().await;

    // Without a CORS configuration (`local.yaml`'s default) there is no preflight answer: OPTIONS is routed
    // like any method, and no CORS header is added.
    let (_dir, eng) = engine(None).await;
    let none = http
        .request(reqwest::Method::OPTIONS, format!("{}/events", eng.url()))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_ne!(none.status(), 204);
    assert_eq!(header(&none, "access-control-allow-origin"), None);
    eng.stop().await;
}

#[tokio::test]
async fn payloads_over_lambdas_6_mb_are_refused_as_aws_refuses_them() {
    let (_dir, eng) = engine(None).await;
    let url = eng.url().to_string();
    let http = reqwest::Client::new();

    // Under API Gateway's 10 MB but over Lambda's 6 MB once in the event: 413 before any function runs.
    let big = http
        .post(format!("{url}/echo"))
        .header("content-type", "text/plain")
        .body(vec![b'x'; 7 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(
        big.json::<Value>().await.unwrap(),
        json!({"message": "Request Too Long"})
    );
    // The host refuses what Lambda's Invoke refuses, at its exact limit.
    match eng
        .host()
        .invoke(FunctionName::Query, vec![b' '; MAX_REQUEST_PAYLOAD + 1])
        .await
    {
        Err(InvokeError::RequestTooLarge { size, limit }) => {
            assert_eq!((size, limit), (MAX_REQUEST_PAYLOAD + 1, 6_291_456));
        }
        other => panic!("expected RequestTooLarge, got {other:?}"),
    }

    // 3 MB each way is fine (above the HTTP server's usual 2 MB default).
    let three = http
        .post(format!("{url}/echo"))
        .header("content-type", "text/plain")
        .body(vec![b'y'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(three.status(), 200);
    let echoed: Value = three.json().await.unwrap();
    assert_eq!(
        echoed["event"]["body"].as_str().unwrap().len(),
        3 * 1024 * 1024
    );

    // A response just under the limit passes; one over it fails as Lambda fails it, and API Gateway
    // answers 500.
    let under = http
        .get(format!("{url}/big?bytes=6000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(under.status(), 200);
    assert_eq!(under.bytes().await.unwrap().len(), 6_000_000);
    let over = http
        .get(format!("{url}/big?bytes=7000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 500);
    assert_eq!(
        over.json::<Value>().await.unwrap(),
        json!({"message": "Internal Server Error"})
    );
    let event = json!({"requestContext": {}, "rawPath": "/big", "queryStringParameters": {"bytes": "7000000"}});
    match eng
        .host()
        .invoke(FunctionName::Query, serde_json::to_vec(&event).unwrap())
        .await
    {
        Err(InvokeError::FunctionError { error_type, body }) => {
            assert_eq!(error_type, "Function.ResponseSizeTooLarge");
            assert!(
                body.contains(&format!(
                    "exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes)"
                )),
                "{body}"
            );
        }
        other => panic!("expected Function.ResponseSizeTooLarge, got {other:?}"),
    }
    // The function keeps answering afterwards.
    assert_eq!(
        tests::get_status(&http, format!("{url}/big?bytes=10")).await,
        200
    );
    eng.stop().await;
}

/// A `POST /events` body whose `name` holds bytes that are not UTF-8.
fn non_utf8_command() -> Vec<u8> {
    let mut body =
        br#"{"aggregateId":"utf8-check","eventType":"user_created","eventData":{"name":"A"#
            .to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#"","email":"a@example.com"}}"#);
    body
}

#[tokio::test]
async fn a_body_that_is_not_utf8_reaches_the_function_byte_for_byte() {
    let (_dir, eng) = engine(None).await;
    let url = eng.url().to_string();
    let http = reqwest::Client::new();
    let sent = non_utf8_command();
    for content_type in ["application/json", "text/plain", ""] {
        let mut req = http.post(format!("{url}/echo")).body(sent.clone());
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let got: Value = req.send().await.unwrap().json().await.unwrap();
        let ev = &got["event"];
        assert_eq!(ev["isBase64Encoded"], true, "content type {content_type:?}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(ev["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, sent, "content type {content_type:?}");
    }
    eng.stop().await;
}

#[tokio::test]
async fn the_command_handler_refuses_a_non_utf8_body_and_stores_nothing() {
    let cfg = GatewayConfig {
        routes: stack::default_routes(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        api_id: "local".into(),
        stage: "$default".into(),
        cors: None,
    };
    let event_for = |body: Vec<u8>| {
        let req = IncomingRequest {
            method: "POST".into(),
            path: "/events".into(),
            raw_query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
        };
        let route = gateway::match_route(&cfg.routes, "POST", "/events").unwrap();
        let event = gateway::to_event(&cfg, &req, &route, chrono::Utc::now());
        service::lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
    };
    let store = service::MemoryStore::new();

    // The exact bytes reach the handler, which refuses them: nothing is stored. (A lossy conversion would
    // have turned them into U+FFFD, valid JSON that the handler would have accepted and stored.)
    let refused = service::http::handle_command(&store, event_for(non_utf8_command())).await;
    assert_eq!(refused.status(), 400);
    let body: Value = serde_json::from_slice(refused.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(store.all_events().is_empty());

    // The same command in valid UTF-8 is stored: the refusal above is about the bytes, not the command.
    let valid = String::from_utf8_lossy(&non_utf8_command()).into_owned();
    let stored = service::http::handle_command(&store, event_for(valid.into_bytes())).await;
    assert_eq!(stored.status(), 200);
    assert_eq!(store.all_events().len(), 1);
}
