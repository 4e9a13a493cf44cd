//! A tiny function for testing the local engine against the official Lambda runtime client.
//!
//! It speaks the Runtime API through `lambda_runtime`, exactly like the project's functions, and does what
//! its payload asks, so the tests can exercise every path of the host, the gateway and the poller without
//! the real functions or a deployed stack:
//! - an API Gateway v2 event (has `requestContext`): the path decides (`/echo` returns the event,
//!   `/bare` a bare JSON value, `/cookies` cookies and multi-value headers, `/binary` a base64 body,
//!   `/fail` an error, `/slow` sleeps past any short timeout, `/crash` exits the process, `/bad` a malformed response,
//!   `/big?bytes=n` a response of about n bytes; `/echo` answers with an `Access-Control-Allow-Origin` of its own,
//!   which a gateway with CORS configured must drop);
//! - a DynamoDB stream event (has `Records`): records whose `aggregate_id` starts with `poison` fail
//!   (`PROBE_MODE=partial` reports them as batch item failures instead of failing the batch), the others are
//!   appended as JSON lines to `$PROBE_OUT` (with this process's pid);
//! - anything else: `{"allocateMb": n}` fills n MB of memory and holds it for 300 ms, `{"sleepMs": n}` sleeps
//!   (the reply carries the wall-clock instants the handler started and ended, `startedUs`/`endedUs`),
//!   `{"barrier": {"dir": d, "count": n}}` registers in directory d and waits (up to 20 s) until n invocations
//!   have registered, replying `barrierMet`: proof that n invocations were in their handlers at once,
//!   `{"fail": "msg"}` errors, `{"crash": true}` exits, and the reply echoes the payload, the invocation context
//!   and the runtime environment.

use std::io::Write;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var("PROBE_INIT_FAIL").is_ok() {
        return Err("init failed on purpose".into());
    }
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let started_us = epoch_us();
    let (payload, ctx) = event.into_parts();
    if payload.get("requestContext").is_some() {
        return http(payload).await;
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return stream(records);
    }
    let _held = match payload.get("allocateMb").and_then(Value::as_u64) {
        Some(mb) => {
            // Written, so the pages are resident; held while the host samples the process's memory.
            let block = vec![7u8; (mb as usize) << 20];
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Some(block)
        }
        None => None,
    };
    let barrier_met = match payload.get("barrier") {
        Some(b) => Some(
            barrier(
                b["dir"].as_str().unwrap_or_default(),
                b["count"].as_u64().unwrap_or(1) as usize,
            )
            .await?,
        ),
        None => None,
    };
    if let Some(ms) = payload.get("sleepMs").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(msg) = payload.get("fail").and_then(Value::as_str) {
        return Err(msg.to_string().into());
    }
    if payload.get("crash").is_some() {
        std::process::exit(3);
    }
    let env: serde_json::Map<String, Value> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_")
                || k.starts_with("PROBE_")
                || k == "RUST_LOG"
                || k == "EVENTS_TABLE"
        })
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "payload": payload,
        "requestId": ctx.request_id,
        "deadlineMs": ctx.deadline,
        "invokedFunctionArn": ctx.invoked_function_arn,
        "traceId": ctx.xray_trace_id,
        "pid": std::process::id(),
        "env": env,
        "startedUs": started_us,
        "endedUs": epoch_us(),
        "barrierMet": barrier_met,
    }))
}

/// Registers this invocation in `dir` and waits until `count` have registered (or 20 s pass).
async fn barrier(dir: &str, count: usize) -> Result<bool, Error> {
    let me = format!("{dir}/{}", std::process::id());
    std::fs::write(&me, b"")?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < until {
        if std::fs::read_dir(dir)?.count() >= count {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(false)
}

/// Microseconds since the Unix epoch: comparable across the probe's processes.
fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

async fn http(event: Value) -> Result<Value, Error> {
    let path = event["rawPath"].as_str().unwrap_or_default().to_string();
    Ok(match path.as_str() {
        "/bare" => json!({"hello": "world"}),
        "/cookies" => json!({
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-One": "1"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": "made",
        }),
        "/binary" => {
            json!({"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                            "body": "AAEC/w==", "isBase64Encoded": true})
        }
        "/fail" => return Err("failing on purpose".into()),
        "/slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            json!({"statusCode": 200})
        }
        "/crash" => std::process::exit(7),
        "/bad" => json!({"statusCode": "teapot"}),
        "/big" => {
            let bytes = event["queryStringParameters"]["bytes"]
                .as_str()
                .and_then(|b| b.parse::<usize>().ok())
                .unwrap_or(0);
            json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "x".repeat(bytes)})
        }
        _ => json!({
            "statusCode": 200,
            "headers": {"content-type": "application/json", "access-control-allow-origin": "https://backend.example"},
            "body": serde_json::to_string(&json!({"event": event, "pid": std::process::id()}))?,
        }),
    })
}

fn stream(records: &[Value]) -> Result<Value, Error> {
    let partial = std::env::var("PROBE_MODE").as_deref() == Ok("partial");
    let mut failures = Vec::new();
    let mut ok = Vec::new();
    for r in records {
        let id = r["dynamodb"]["Keys"]["aggregate_id"]["S"]
            .as_str()
            .unwrap_or_default();
        if id.starts_with("poison") {
            if !partial {
                return Err(format!("poison record {id}").into());
            }
            failures.push(json!({"itemIdentifier": r["dynamodb"]["SequenceNumber"]}));
        } else if failures.is_empty() {
            ok.push(json!({"id": id, "seq": r["dynamodb"]["SequenceNumber"], "pid": std::process::id(), "record": r}));
        }
    }
    if let Ok(path) = std::env::var("PROBE_OUT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for line in ok {
            writeln!(f, "{line}")?;
        }
    }
    Ok(json!({"batchItemFailures": failures}))
}
