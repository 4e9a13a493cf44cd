//! The local function host and HTTP gateway, with a real function process (the runtime probe built on
//! `lambda_runtime`): Runtime API headers and environment, errors, timeouts, crashes, the memory size,
//! concurrency, logs, shutdown, and the API Gateway v2 mapping over real HTTP. No AWS endpoint is needed: the probe makes no
//! AWS calls, so the endpoint URL is only passed through to its environment.

mod local_support;

use std::time::Duration;

use local_engine::host::InvokeError;
use local_engine::{Engine, EngineHandle};
use local_support::*;
use serde_json::{Value, json};
use stack::{FunctionName, HttpMethod, Route};

const FAKE_ENDPOINT: &str = "http://127.0.0.1:9";

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

async fn engine(dir: &std::path::Path, timeout: Duration) -> EngineHandle {
    let functions = vec![
        probe_spec(
            FunctionName::Query,
            timeout,
            &[("EVENTS_TABLE", "t-events"), ("RUST_LOG", "info")],
        ),
        probe_spec(FunctionName::Command, timeout, &[]),
    ];
    let route = |method, path: &str| Route {
        method,
        path: path.into(),
        function: FunctionName::Query,
    };
    let mut routes = stack::default_routes();
    for path in [
        "/bare", "/cookies", "/binary", "/fail", "/slow", "/crash", "/bad",
    ] {
        routes.push(route(HttpMethod::Get, path));
    }
    routes.push(route(HttpMethod::Post, "/echo"));
    Engine::start(probe_engine(dir, FAKE_ENDPOINT, functions, routes))
        .await
        .expect("engine starts")
}

fn pid_of(out: &[u8]) -> u32 {
    serde_json::from_slice::<Value>(out).unwrap()["pid"]
        .as_u64()
        .unwrap() as u32
}

#[tokio::test]
async fn runtime_api_gives_context_headers_and_deployed_environment() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), Duration::from_secs(7)).await;
    let host = eng.host();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let first = host
        .invoke(FunctionName::Query, body(json!({"hello": 1})))
        .await
        .expect("invocation succeeds");
    assert!(first.cold_start);
    let v: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(v["payload"], json!({"hello": 1}));
    assert_eq!(v["requestId"], first.request_id);
    let deadline = v["deadlineMs"].as_u64().unwrap();
    assert!(
        deadline > before && deadline <= before + 7_000 + 5_000,
        "deadline {deadline} vs {before}"
    );
    assert_eq!(
        v["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:probe-query"
    );
    assert!(v["traceId"].as_str().unwrap().starts_with("Root=1-"));
    let env = &v["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "probe-query");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_ENDPOINT_URL"], FAKE_ENDPOINT);
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["EVENTS_TABLE"], "t-events");
    assert_eq!(env["RUST_LOG"], "info");
    assert!(env["AWS_ACCESS_KEY_ID"].is_string());
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    // A warm process takes the next invocation.
    let second = host
        .invoke(FunctionName::Query, body(json!({})))
        .await
        .unwrap();
    assert!(!second.cold_start);
    assert_eq!(pid_of(&first.body), pid_of(&second.body));
    assert_ne!(first.request_id, second.request_id);

    let log = std::fs::read_to_string(host.log_path(FunctionName::Query).unwrap()).unwrap();
    assert!(
        log.contains(&format!("START RequestId: {}", first.request_id)),
        "{log}"
    );
    assert!(
        log.contains(&format!("REPORT RequestId: {}", second.request_id)),
        "{log}"
    );
    eng.stop().await;
}

#[tokio::test]
async fn errors_timeouts_and_crashes_are_reported_and_processes_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), Duration::from_secs(1)).await;
    let host = eng.host();
    let warm = pid_of(
        &host
            .invoke(FunctionName::Query, body(json!({})))
            .await
            .unwrap()
            .body,
    );

    // A handler error keeps the process.
    match host
        .invoke(FunctionName::Query, body(json!({"fail": "boom"})))
        .await
    {
        Err(InvokeError::FunctionError { body, .. }) => assert!(body.contains("boom"), "{body}"),
        other => panic!("expected a function error, got {other:?}"),
    }
    assert_eq!(
        pid_of(
            &host
                .invoke(FunctionName::Query, body(json!({})))
                .await
                .unwrap()
                .body
        ),
        warm
    );

    // A timeout kills the process; the next invocation gets a new one.
    match host
        .invoke(FunctionName::Query, body(json!({"sleepMs": 10_000})))
        .await
    {
        Err(InvokeError::Timeout(t)) => assert_eq!(t, Duration::from_secs(1)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(30), async || (!alive(warm))
            .then_some(()))
        .await
        .is_some(),
        "timed-out process still alive"
    );
    let fresh = host
        .invoke(FunctionName::Query, body(json!({})))
        .await
        .unwrap();
    assert!(fresh.cold_start);
    let fresh_pid = pid_of(&fresh.body);
    assert_ne!(fresh_pid, warm);

    // A crash is reported and the function keeps working.
    match host
        .invoke(FunctionName::Query, body(json!({"crash": true})))
        .await
    {
        Err(InvokeError::Crashed(_)) => {}
        other => panic!("expected a crash, got {other:?}"),
    }
    let after = host
        .invoke(FunctionName::Query, body(json!({})))
        .await
        .unwrap();
    assert_ne!(pid_of(&after.body), fresh_pid);

    let log = std::fs::read_to_string(host.log_path(FunctionName::Query).unwrap()).unwrap();
    assert!(log.contains("Task timed out after 1.00 seconds"), "{log}");
    assert!(log.contains("PROCESS_EXIT"), "{log}");
    eng.stop().await;
}

#[tokio::test]
async fn a_process_above_its_memory_size_is_killed_and_reported_like_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = probe_spec(FunctionName::Query, Duration::from_secs(10), &[]);
    spec.memory_mb = 128;
    let eng = Engine::start(probe_engine(
        dir.path(),
        FAKE_ENDPOINT,
        vec![spec],
        stack::default_routes(),
    ))
    .await
    .expect("engine starts");
    let host = eng.host();

    // Within the memory size: answered, and the REPORT line says how much was used, as Lambda's does.
    let small = host
        .invoke(FunctionName::Query, body(json!({"allocateMb": 16})))
        .await
        .expect("16 MB fits in 128 MB");
    let pid = pid_of(&small.body);

    // Above it: the process is killed, the invocation fails with Runtime.OutOfMemory.
    match host
        .invoke(FunctionName::Query, body(json!({"allocateMb": 400})))
        .await
    {
        Err(InvokeError::OutOfMemory { limit_mb, used_mb }) => {
            assert_eq!(limit_mb, 128);
            assert!(used_mb > 128, "{used_mb}");
        }
        other => panic!("expected out of memory, got {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(30), async || (!alive(pid))
            .then_some(()))
        .await
        .is_some(),
        "the process above its memory size is still alive"
    );
    // The function keeps working in a new process.
    let after = host
        .invoke(FunctionName::Query, body(json!({})))
        .await
        .expect("a new process answers");
    assert!(after.cold_start);
    assert_ne!(pid_of(&after.body), pid);

    let log = std::fs::read_to_string(host.log_path(FunctionName::Query).unwrap()).unwrap();
    let report = log
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {}", small.request_id)))
        .unwrap_or_else(|| panic!("no REPORT line for the first invocation:\n{log}"));
    let used: u64 = report
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used in {report}"));
    assert!((16..128).contains(&used), "{report}");
    assert!(log.contains("Error Type: Runtime.OutOfMemory"), "{log}");
    eng.stop().await;
}

#[tokio::test]
async fn concurrent_invocations_run_in_separate_processes_and_stop_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), Duration::from_secs(30)).await;
    let host = eng.host();
    let meeting = tempfile::tempdir().unwrap();
    let barrier = json!({"barrier": {"dir": meeting.path(), "count": 3}});
    let calls = (0..3).map(|_| {
        let (host, barrier) = (host.clone(), barrier.clone());
        async move {
            host.invoke(FunctionName::Query, body(barrier))
                .await
                .unwrap()
        }
    });
    let outs: Vec<Value> = futures_join(calls)
        .await
        .iter()
        .map(|o| serde_json::from_slice(&o.body).unwrap())
        .collect();
    let mut pids: Vec<u64> = outs.iter().map(|o| o["pid"].as_u64().unwrap()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "each concurrent invocation had its own process"
    );
    // They ran at the same time: each handler waited until all three were inside their handlers (a
    // meeting the functions arrange themselves, so a slow machine changes how long it takes, not the
    // verdict), and so every handler started before any of them ended.
    assert!(
        outs.iter().all(|o| o["barrierMet"] == true),
        "the three invocations met inside their handlers: {outs:?}"
    );
    let last_start = outs.iter().map(|o| o["startedUs"].as_u64().unwrap()).max();
    let first_end = outs.iter().map(|o| o["endedUs"].as_u64().unwrap()).min();
    assert!(
        last_start < first_end,
        "the invocations overlapped: {outs:?}"
    );
    assert_eq!(host.process_count(FunctionName::Query), 3);

    let all = host.process_ids(FunctionName::Query);
    eng.stop().await;
    for pid in all {
        assert!(!alive(pid), "process {pid} survived the engine");
    }
}

async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn gateway_maps_http_to_payload_2_0_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), Duration::from_secs(1)).await;
    let url = eng.url().to_string();
    let http = reqwest::Client::new();

    // Request mapping, seen by the function.
    let resp = http
        .get(format!(
            "{url}/aggregates/user-1/events?limit=2&tag=a&tag=b"
        ))
        .header("X-Trace", "one")
        .header("Cookie", "session=abc; theme=dark")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    let ev = &got["event"];
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["routeKey"], "GET /aggregates/{aggregateId}/events");
    assert_eq!(ev["rawPath"], "/aggregates/user-1/events");
    assert_eq!(ev["rawQueryString"], "limit=2&tag=a&tag=b");
    assert_eq!(ev["pathParameters"], json!({"aggregateId": "user-1"}));
    assert_eq!(
        ev["queryStringParameters"],
        json!({"limit": "2", "tag": "a,b"})
    );
    assert_eq!(ev["headers"]["x-trace"], "one");
    assert_eq!(ev["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(ev["requestContext"]["http"]["method"], "GET");
    assert_eq!(ev["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ev["requestContext"]["stage"], "$default");
    assert!(ev["requestContext"]["timeEpoch"].as_i64().unwrap() > 0);

    // Text and binary bodies.
    let text: Value = http
        .post(format!("{url}/echo"))
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(text["event"]["body"], r#"{"a":1}"#);
    assert_eq!(text["event"]["isBase64Encoded"], false);
    let bin: Value = http
        .post(format!("{url}/echo"))
        .header("content-type", "image/png")
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bin["event"]["body"], "AAEC/w==");
    assert_eq!(bin["event"]["isBase64Encoded"], true);

    // Response mapping.
    let bare = http.get(format!("{url}/bare")).send().await.unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.headers()["content-type"], "application/json");
    assert_eq!(
        bare.json::<Value>().await.unwrap(),
        json!({"hello": "world"})
    );
    let cookies = http.get(format!("{url}/cookies")).send().await.unwrap();
    assert_eq!(cookies.status(), 201);
    let set: Vec<_> = cookies
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(set, vec!["a=1; Path=/", "b=2"]);
    let many: Vec<_> = cookies
        .headers()
        .get_all("x-many")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(many, vec!["a", "b"]);
    assert_eq!(cookies.headers()["content-type"], "text/plain");
    assert_eq!(cookies.text().await.unwrap(), "made");
    let binary = http.get(format!("{url}/binary")).send().await.unwrap();
    assert_eq!(binary.bytes().await.unwrap().to_vec(), vec![0u8, 1, 2, 255]);

    // API Gateway's own answers.
    let nf = http.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(nf.status(), 404);
    assert_eq!(
        nf.json::<Value>().await.unwrap(),
        json!({"message": "Not Found"})
    );
    let wrong = http.delete(format!("{url}/events")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    let big = http
        .post(format!("{url}/echo"))
        .body(vec![b'x'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let fail = http.get(format!("{url}/fail")).send().await.unwrap();
    assert_eq!(fail.status(), 500);
    assert_eq!(
        fail.json::<Value>().await.unwrap(),
        json!({"message": "Internal Server Error"})
    );
    assert_eq!(tests::get_status(&http, format!("{url}/bad")).await, 500);
    assert_eq!(tests::get_status(&http, format!("{url}/slow")).await, 504);
    assert_eq!(tests::get_status(&http, format!("{url}/crash")).await, 500);
    // ... and the function still answers afterwards.
    assert_eq!(tests::get_status(&http, format!("{url}/bare")).await, 200);
    eng.stop().await;
}
