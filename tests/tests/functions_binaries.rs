//! The real `command`, `query` and `projector` binaries under the local function host (the Lambda Runtime
//! API) against the local AWS endpoint: they read `EVENTS_TABLE`/`PROJECTIONS_TABLE` and the standard AWS
//! variables, answer API Gateway v2 events, and the projector answers stream batches with
//! `batchItemFailures` keyed by sequence number.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use local_engine::endpoint::Endpoint;
use local_engine::host::{FunctionSpec, Host, HostConfig};
use serde_json::{Value, json};
use service::testing::{create_tables, stream_event, stream_record};
use service::{Config, EventStore};
use stack::FunctionName;

/// Builds the three function binaries (debug) and returns their paths by package name.
fn function_binaries() -> BTreeMap<String, PathBuf> {
    let out = deployer::cargo::command(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "command",
            "-p",
            "query",
            "-p",
            "projector",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building the functions failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let name = v["target"]["name"].as_str()?.to_string();
            let exe = v["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}

fn http_event(method: &str, path: &str, query: &str, body: Option<Value>) -> Vec<u8> {
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "localhost", "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "req", "routeKey": "$default", "stage": "$default",
            "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        event["body"] = json!(b.to_string());
    }
    serde_json::to_vec(&event).unwrap()
}

async fn call(host: &Host, name: FunctionName, payload: Vec<u8>) -> (u16, Value) {
    let out = host
        .invoke(name, payload)
        .await
        .expect("the function answers");
    let response: Value = serde_json::from_slice(&out.body).expect("an API Gateway v2 response");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
    (response["statusCode"].as_u64().unwrap() as u16, body)
}

#[tokio::test]
async fn the_function_binaries_serve_the_api_and_project_under_the_runtime_api() {
    let binaries = function_binaries();
    let dir = tempfile::tempdir().unwrap();
    let moto = Endpoint::start_fresh(dir.path())
        .await
        .expect("the local AWS endpoint starts");
    let client = service::aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let config = Config {
        events_table: "bin-events".into(),
        projections_table: "bin-projections".into(),
    };
    create_tables(&client, &config.events_table, &config.projections_table)
        .await
        .unwrap();

    let env = BTreeMap::from([
        ("EVENTS_TABLE".to_string(), config.events_table.clone()),
        (
            "PROJECTIONS_TABLE".to_string(),
            config.projections_table.clone(),
        ),
        (
            "VIEWS_TABLE".to_string(),
            service::testing::views_table(&config.projections_table),
        ),
        ("RUST_LOG".to_string(), "info".to_string()),
    ]);
    let spec = |name: FunctionName| FunctionSpec {
        name,
        function_name: format!("bin-{}", name.as_str()),
        binary: binaries[name.as_str()].clone(),
        environment: env.clone(),
        memory_mb: 256,
        timeout: Duration::from_secs(30),
        max_processes: 1,
        binary_sha256: None,
    };
    let host = Host::new(
        HostConfig {
            endpoint_url: moto.url(),
            region: local_engine::endpoint::LOCAL_REGION.into(),
            account_id: local_engine::endpoint::LOCAL_ACCOUNT_ID.into(),
            log_dir: dir.path().join("logs"),
        },
        vec![
            spec(FunctionName::Command),
            spec(FunctionName::Query),
            spec(FunctionName::Projector),
        ],
    )
    .expect("the host starts");

    let (status, body) = call(
        &host,
        FunctionName::Query,
        http_event("GET", "/health", "", None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok", "health body: {body}");

    let create =
        json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {"name": "Ann"}});
    let (status, body) = call(
        &host,
        FunctionName::Command,
        http_event("POST", "/events", "", Some(create)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    let update =
        json!({"eventType": "user_updated", "eventData": {"age": 3}, "expectedVersion": 1});
    let (status, body) = call(
        &host,
        FunctionName::Command,
        http_event("POST", "/aggregates/u1/events", "", Some(update)),
    )
    .await;
    assert_eq!((status, body["version"].clone()), (201, json!(2)), "{body}");
    let (status, body) = call(
        &host,
        FunctionName::Command,
        http_event("POST", "/events", "", Some(json!({}))),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );

    // The projector, fed the log as a stream batch (plus an event it cannot apply).
    let store = service::testing::store(client, config);
    let mut log = store.read_events("u1", 0, None, true).await.unwrap().0;
    let mut poison = log[0].clone();
    poison.aggregate_id = "p1".into();
    poison.event_type = "user_exploded".into();
    log.push(poison);
    let records = log
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{}", 100 + i), e))
        .collect();
    let out = host
        .invoke(
            FunctionName::Projector,
            serde_json::to_vec(&stream_event(records)).unwrap(),
        )
        .await
        .expect("the projector answers");
    let response: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "102"}]})
    );

    let (status, body) = call(
        &host,
        FunctionName::Query,
        http_event("GET", "/aggregates/u1", "", None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"aggregateId": "u1", "aggregateType": "user", "version": 2, "state": {"user": {"name": "Ann", "age": 3}}})
    );
    let (status, body) = call(
        &host,
        FunctionName::Query,
        http_event("GET", "/aggregates/u1/events", "limit=1", None),
    )
    .await;
    assert_eq!(
        (status, body["nextAfter"].clone()),
        (200, json!(1)),
        "{body}"
    );

    host.shutdown().await;
    moto.stop();
}
