//! `cargo xtask bench local`: what the local engine adds on top of the functions themselves.
//!
//! Measured in one run on the same machine: the latency of `GET /health` through the HTTP gateway against
//! invoking the same query function through the host directly with the same event (the difference is the
//! gateway's cost), and the projection lag (`POST /events` answered -> `GET /aggregates/{id}` shows it),
//! which is dominated by the poller's interval and the plan's batching window. DynamoDB runs on moto here,
//! so none of these figures says anything about DynamoDB's speed on AWS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use stack::{FunctionName, Plan};

use crate::gateway::{self, GatewayConfig, IncomingRequest};
use crate::{Engine, EngineConfig};

/// Latency percentiles of one measured path, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(mut d: Vec<Duration>) -> Latency {
        d.sort_unstable();
        let ms = |x: Duration| x.as_secs_f64() * 1000.0;
        let n = d.len().max(1);
        let at = |p: usize| {
            d.get(((n * p) / 100).min(n - 1))
                .copied()
                .map(ms)
                .unwrap_or(0.0)
        };
        Latency {
            samples: d.len(),
            p50_ms: at(50),
            p99_ms: at(99),
            mean_ms: d.iter().copied().map(ms).sum::<f64>() / n as f64,
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:7.2} ms  p99 {:7.2} ms  mean {:7.2} ms  (n={})",
            self.p50_ms, self.p99_ms, self.mean_ms, self.samples
        )
    }
}

/// The figures of one `bench local` run.
#[derive(Debug, Clone, Serialize)]
pub struct LocalBench {
    pub gateway_health: Latency,
    pub direct_invoke_health: Latency,
    pub projection_lag: Option<Latency>,
    /// Why the projection lag was not measured, if it was not.
    pub projection_note: Option<String>,
    /// The `cargo lambda watch` comparison, or why it was skipped.
    pub cargo_lambda: String,
}

impl std::fmt::Display for LocalBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "local engine benchmark (same machine, one run; DynamoDB is moto: not AWS speed)"
        )?;
        writeln!(
            f,
            "  GET /health through the gateway      {}",
            self.gateway_health
        )?;
        writeln!(
            f,
            "  same event, host invoke (no gateway) {}",
            self.direct_invoke_health
        )?;
        writeln!(
            f,
            "  gateway overhead (p50)               {:.2} ms",
            self.gateway_health.p50_ms - self.direct_invoke_health.p50_ms
        )?;
        match (&self.projection_lag, &self.projection_note) {
            (Some(l), _) => writeln!(f, "  projection lag (POST -> read model)  {l}")?,
            (None, Some(n)) => writeln!(f, "  projection lag: not measured: {n}")?,
            _ => {}
        }
        writeln!(f, "  cargo lambda watch: {}", self.cargo_lambda)
    }
}

/// Runs the benchmark against a deployed local stack. `samples` requests per latency figure.
pub async fn run(
    plan: &Plan,
    endpoint_url: &str,
    dist: &Path,
    samples: usize,
    tools_dir: &Path,
) -> anyhow::Result<LocalBench> {
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    let paths = crate::state::StatePaths::new(crate::state::state_dir(&plan.env));
    let daemon = crate::daemon::running_pid(&paths);
    let mut cfg = EngineConfig::from_deployed(plan, endpoint_url, &scratch, dist).await?;
    cfg.gateway_port = 0;
    if daemon.is_some() {
        // The background engine already polls the stream; a second poller would only double the work.
        cfg.stream = None;
    }
    let engine = Engine::start(cfg).await?;
    let result = measure(plan, &engine, daemon.is_some(), samples, tools_dir).await;
    engine.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn measure(
    plan: &Plan,
    engine: &crate::EngineHandle,
    daemon: bool,
    samples: usize,
    tools_dir: &Path,
) -> anyhow::Result<LocalBench> {
    let http = reqwest::Client::new();
    let url = engine.url().to_string();
    let host = engine.host();

    // Warm up enough processes that neither path pays a cold start.
    for _ in 0..10 {
        http.get(format!("{url}/health"))
            .send()
            .await?
            .error_for_status()?;
    }
    let mut gw = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let resp = http.get(format!("{url}/health")).send().await?;
        let status = resp.status();
        resp.bytes().await?;
        gw.push(t.elapsed());
        anyhow::ensure!(status.is_success(), "GET /health answered {status}");
    }

    let gw_cfg = GatewayConfig {
        routes: plan.api.routes.clone(),
        region: plan.region.clone(),
        account_id: crate::endpoint::LOCAL_ACCOUNT_ID.into(),
        api_id: "local".into(),
        stage: plan.api.stage_name.clone(),
    };
    let req = IncomingRequest {
        method: "GET".into(),
        path: "/health".into(),
        raw_query: String::new(),
        headers: vec![
            ("host".into(), url.trim_start_matches("http://").into()),
            ("user-agent".into(), "xtask-bench".into()),
        ],
        body: Bytes::new(),
        source_ip: "127.0.0.1".into(),
        protocol: "HTTP/1.1".into(),
    };
    let route = gateway::match_route(&gw_cfg.routes, "GET", "/health")
        .map_err(|e| anyhow::anyhow!("no /health route: {e:?}"))?;
    let event = serde_json::to_vec(&gateway::to_event(
        &gw_cfg,
        &req,
        &route,
        chrono::Utc::now(),
    ))?;
    let mut direct = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        host.invoke(FunctionName::Query, event.clone()).await?;
        direct.push(t.elapsed());
    }

    // Projection lag goes through whichever engine polls the stream (the background one if it runs).
    let api = match (daemon, &plan.local) {
        (true, Some(local)) => format!("http://127.0.0.1:{}", local.gateway_port),
        _ => url.clone(),
    };
    let mut lags = Vec::new();
    let mut note = None;
    for i in 0..20 {
        let id = format!("bench-{}-{i}", uuid::Uuid::now_v7().simple());
        let body = serde_json::json!({"aggregateId": id, "eventType": "user_created", "eventData": {"name": "Bench", "email": "bench@example.com"}});
        let resp = http
            .post(format!("{api}/events"))
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            note = Some(format!(
                "POST /events answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
            break;
        }
        let posted = Instant::now();
        let deadline = posted + Duration::from_secs(10);
        loop {
            let r = http.get(format!("{api}/aggregates/{id}")).send().await?;
            if r.status().is_success() {
                lags.push(posted.elapsed());
                break;
            }
            if Instant::now() > deadline {
                note = Some(format!("aggregate {id} was not projected within 10 s"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if note.is_some() {
            break;
        }
    }
    Ok(LocalBench {
        gateway_health: Latency::of(gw),
        direct_invoke_health: Latency::of(direct),
        projection_lag: (!lags.is_empty() && note.is_none()).then(|| Latency::of(lags)),
        projection_note: note,
        cargo_lambda: cargo_lambda_note(tools_dir),
    })
}

fn cargo_lambda_note(tools_dir: &Path) -> String {
    let candidates: Vec<PathBuf> = vec![
        tools_dir.join("cargo-lambda/bin/cargo-lambda"),
        tools_dir.join("cargo-lambda/bin/cargo-lambda3"),
    ];
    match candidates.iter().find(|p| p.exists()) {
        None => format!(
            "skipped: cargo-lambda is not installed in {} (the deployer installs it there for release builds)",
            tools_dir.join("cargo-lambda").display()
        ),
        Some(p) => format!(
            "skipped: cargo-lambda is installed ({}), but `cargo lambda watch` rebuilds the function from source with its own \
             flags instead of running the built binary, and on this 2-core machine that rebuild would dominate the run",
            p.display()
        ),
    }
}
