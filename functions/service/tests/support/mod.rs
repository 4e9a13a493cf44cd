//! Shared helpers for the service's integration tests (a module of each, not a test binary of its own):
//! calling the command/query handlers the way the gateway does and decoding their JSON responses.
#![allow(dead_code)]

use serde_json::Value;
use service::EventStore;
use service::lambda_http::{Body, Request, Response};
use service::testing::request;

/// Sends a request to the function that serves it (GET -> query, everything else -> command).
pub async fn call<S: EventStore>(store: &S, req: Request) -> (u16, Value) {
    let response = if req.method() == "GET" {
        service::http::handle_query(store, req).await
    } else {
        service::http::handle_command(store, req).await
    };
    decode(response)
}

pub fn decode(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "every response is JSON"
    );
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (status, body)
}

pub async fn get<S: EventStore>(store: &S, path: &str) -> (u16, Value) {
    call(store, request("GET", path, None)).await
}

pub async fn post<S: EventStore>(store: &S, path: &str, body: &Value) -> (u16, Value) {
    call(store, request("POST", path, Some(&body.to_string()))).await
}
