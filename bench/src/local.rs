//! `cargo xtask bench local`: what the local engine adds on top of the functions themselves.
//!
//! Measured in one run on the same machine: the latency of `GET /health` through the HTTP gateway against
//! invoking the same query function through the host directly with the same event (the difference is the
//! gateway's cost), and the projection lag (`POST /events` answered -> `GET /aggregates/{id}` shows it),
//! which is dominated by the poller's interval and the plan's batching window (none locally: `config/local.yaml`). The same query binary, with the
//! same environment and event, is also run behind `cargo lambda watch --only-lambda-apis` (cargo-lambda's own
//! Runtime API emulator, reached through its HTTP invoke API) to compare the host with the tool Rust Lambda
//! developers use. DynamoDB runs on moto here, so none of these figures says anything about DynamoDB's speed on AWS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use stack::{FunctionName, Plan};

use local_engine::gateway::{self, GatewayConfig, IncomingRequest};
use local_engine::{Engine, EngineConfig};

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
    /// The same event and binary behind `cargo lambda watch`, invoked over its HTTP invoke API.
    pub cargo_lambda_watch: Option<Latency>,
    /// What was compared (cargo-lambda version), or why the comparison was skipped.
    pub cargo_lambda_note: String,
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
        match &self.cargo_lambda_watch {
            Some(l) => {
                writeln!(f, "  same event, cargo lambda watch       {l}")?;
                writeln!(f, "    ({})", self.cargo_lambda_note)
            }
            None => writeln!(f, "  cargo lambda watch: {}", self.cargo_lambda_note),
        }
    }
}

/// Arguments of `cargo xtask bench local`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment to measure: the stem of a file in the config directory (a `local` one, deployed).
    #[arg(long = "env", short = 'e', default_value = "local", env = "XTASK_ENV")]
    pub env: String,
    /// Directory holding the per-environment YAML files (default: the checkout's `config/`).
    #[arg(long, env = "XTASK_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Requests per latency figure.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Events posted for the projection lag figure (each waits for its read model before the next is posted).
    #[arg(long, default_value_t = 100)]
    pub lag_events: usize,
    /// Leave out the `cargo lambda watch` comparison (it installs the pinned cargo-lambda on first use).
    #[arg(long)]
    pub no_cargo_lambda: bool,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// `cargo xtask bench local`: the environment's plan and its deployed build, measured.
pub async fn run(args: &Args) -> anyhow::Result<LocalBench> {
    let config_dir = args
        .config_dir
        .clone()
        .unwrap_or_else(|| crate::repo_root().join("config"));
    let plan = stack::config::load(&config_dir, &args.env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(local) = &plan.local else {
        anyhow::bail!(
            "`bench local` needs a local environment; `{}` is not one",
            plan.env
        );
    };
    let endpoint_url = format!("http://127.0.0.1:{}", local.endpoint_port);
    let cargo_lambda = if args.no_cargo_lambda {
        CargoLambda::Unavailable("left out (--no-cargo-lambda)".into())
    } else {
        cargo_lambda_for_bench().await
    };
    let root = crate::repo_root();
    let dist = deployer::build::dist_dir(
        &deployer::build::default_target_dir(&root),
        &root,
        &plan.env,
    );
    measure_deployed(
        &plan,
        &endpoint_url,
        &dist,
        args.samples.max(1),
        args.lag_events.max(1),
        &cargo_lambda,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}; deploy the local stack first with `cargo xtask deploy`"))
}

/// The pinned cargo-lambda for the `cargo lambda watch` comparison, installed on first use where the deployer
/// installs it for release builds (`<tools>/cargo-lambda`); an install failure skips the comparison, saying why.
async fn cargo_lambda_for_bench() -> CargoLambda {
    let root = crate::repo_root();
    let tools = deployer::build::tools_dir(&root);
    let installed = tokio::task::spawn_blocking(move || {
        let ui = deployer::ui::ConsoleUi::new(true);
        deployer::build::ensure_cargo_lambda(&tools, &ui)
    })
    .await;
    match installed {
        Ok(Ok(venv)) => CargoLambda::Installed {
            bin_dir: venv.join("bin"),
            workspace: root,
        },
        Ok(Err(e)) => CargoLambda::Unavailable(format!(
            "installing cargo-lambda {} failed: {e}",
            deployer::build::CARGO_LAMBDA_VERSION
        )),
        Err(e) => CargoLambda::Unavailable(e.to_string()),
    }
}

/// Runs the benchmark against a deployed local stack. `samples` requests per latency figure, `lag_events`
/// events for the projection lag.
pub async fn measure_deployed(
    plan: &Plan,
    endpoint_url: &str,
    dist: &Path,
    samples: usize,
    lag_events: usize,
    cargo_lambda: &CargoLambda,
) -> anyhow::Result<LocalBench> {
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    let paths = local_engine::state::StatePaths::new(local_engine::state::state_dir(&plan.env));
    let daemon = local_engine::daemon::running_pid(&paths);
    let mut cfg = EngineConfig::from_deployed(plan, endpoint_url, &scratch, dist).await?;
    cfg.gateway_port = 0;
    if daemon.is_some() {
        // The background engine already polls the stream; a second poller would only double the work.
        cfg.stream = None;
    }
    let engine = Engine::start(cfg).await?;
    let result = measure(
        plan,
        &engine,
        daemon.is_some(),
        samples,
        lag_events,
        cargo_lambda,
        &scratch,
    )
    .await;
    engine.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn measure(
    plan: &Plan,
    engine: &local_engine::EngineHandle,
    daemon: bool,
    samples: usize,
    lag_events: usize,
    cargo_lambda: &CargoLambda,
    scratch: &Path,
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
        account_id: local_engine::endpoint::LOCAL_ACCOUNT_ID.into(),
        api_id: "local".into(),
        stage: plan.api.stage_name.clone(),
        cors: plan.api.cors.clone(),
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
    let (lags, note) = projection_lags(&http, &api, lag_events).await?;
    let (cargo_lambda_watch, cargo_lambda_note) = match cargo_lambda {
        CargoLambda::Unavailable(why) => (None, format!("skipped: {why}")),
        CargoLambda::Installed { bin_dir, workspace } => {
            match watch_latency(&host, bin_dir, workspace, scratch, &event, samples).await {
                Ok((latency, version)) => (
                    Some(latency),
                    format!(
                        "{version}, --only-lambda-apis, running the same query binary with the same environment; \
                         invoked over its HTTP invoke API, which the host row does not pay"
                    ),
                ),
                Err(e) => (None, format!("failed: {e:#}")),
            }
        }
    };
    Ok(LocalBench {
        gateway_health: Latency::of(gw),
        direct_invoke_health: Latency::of(direct),
        projection_lag: (!lags.is_empty() && note.is_none()).then(|| Latency::of(lags)),
        projection_note: note,
        cargo_lambda_watch,
        cargo_lambda_note,
    })
}

/// Posts `events` events (the domain's own first example, each to a new aggregate) and times each from the
/// POST's answer to its read model answering; stops at the first failure, which the note says.
async fn projection_lags(
    http: &reqwest::Client,
    api: &str,
    events: usize,
) -> anyhow::Result<(Vec<Duration>, Option<String>)> {
    // The domain's own first event (the first registered aggregate's example), whatever the domain is.
    let (first_type, first_data) = crate::example()
        .first()
        .cloned()
        .expect("examples are not empty");
    let mut lags = Vec::new();
    let mut note = None;
    for i in 0..events {
        let id = format!("bench-{}-{i}", uuid::Uuid::now_v7().simple());
        let body = serde_json::json!({"aggregateId": id, "eventType": first_type, "eventData": first_data});
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
            // The figure's resolution: a lag is measured to within this pause plus one GET.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if note.is_some() {
            break;
        }
    }
    Ok((lags, note))
}

/// Where `cargo lambda` comes from for the comparison.
#[derive(Debug, Clone)]
pub enum CargoLambda {
    /// `bin_dir` holds the `cargo-lambda` executable; `workspace` is the Cargo workspace it starts in.
    Installed {
        bin_dir: PathBuf,
        workspace: PathBuf,
    },
    /// Why it could not be installed or found.
    Unavailable(String),
}

/// Starts `cargo lambda watch --only-lambda-apis` (its Runtime API emulator without building anything) on a free
/// port, runs the deployed query binary against it with the environment the host would give it, and times
/// `samples` invocations of `event` through cargo-lambda's invoke API. Both processes die with this call.
async fn watch_latency(
    host: &local_engine::host::Host,
    bin_dir: &Path,
    workspace: &Path,
    scratch: &Path,
    event: &[u8],
    samples: usize,
) -> anyhow::Result<(Latency, String)> {
    use anyhow::Context as _;
    let exe = bin_dir.join("cargo-lambda");
    let version = std::process::Command::new(&exe)
        .args(["lambda", "--version"])
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let spec = host
        .functions()
        .find(|s| s.name == FunctionName::Query)
        .context("the host has no query function")?
        .clone();
    let port = local_engine::endpoint::free_port()?;
    std::fs::create_dir_all(scratch)?;
    let log_path = scratch.join("cargo-lambda-watch.log");
    let log = std::fs::File::create(&log_path)?;
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let _watch = tokio::process::Command::new(&exe)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(workspace)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} lambda watch", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on 127.0.0.1:{port} within 60 s; see {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // cargo-lambda routes a function's Runtime API under `/.rt/<name>`, and only accepts names of the
    // workspace's binaries (`query`), not the deployed physical name.
    let name = FunctionName::Query.as_str();
    let runtime_api = format!("http://127.0.0.1:{port}/.rt/{name}");
    let env = host
        .process_env(FunctionName::Query, &runtime_api)
        .context("the host has no query function")?;
    let fn_log = std::fs::File::create(scratch.join("query-under-cargo-lambda.log"))?;
    let _function = tokio::process::Command::new(&spec.binary)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(fn_log.try_clone()?)
        .stderr(fn_log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", spec.binary.display()))?;
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let invoke = || async {
        let resp = http.post(&url).body(event.to_vec()).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success()
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["statusCode"] == 200),
            "cargo lambda invoke answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    };
    for _ in 0..10 {
        invoke().await?;
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        invoke().await?;
        times.push(t.elapsed());
    }
    Ok((Latency::of(times), version))
}
