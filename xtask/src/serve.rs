//! `cargo xtask serve`: run the local engine (function host, HTTP gateway, stream poller) in the foreground,
//! and the background start/stop that `deploy` and `teardown` use.
//!
//! `deploy` calls [`start_background`], which spawns this same executable as `serve` in its own session and
//! waits until `GET /health` answers through the real query function; `teardown` calls [`stop_background`].
//! Keeping both sides in one module means the daemon's arguments and its readiness check cannot drift apart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use local_engine::process::Stopped;
use local_engine::state::StatePaths;
use local_engine::{Engine, EngineConfig};
use stack::Plan;

use crate::exit::ExitStatus;

/// How long `deploy` waits for the background engine to serve `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `cargo xtask serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// URL of the local AWS endpoint [default: http://127.0.0.1:<local.endpoint_port>].
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Port of the HTTP gateway on 127.0.0.1 [default: local.gateway_port of the config].
    #[arg(long)]
    pub port: Option<u16>,
    /// Directory of the built release (bootstrap binaries and manifest.json) [default: <target>/xtask/dist/<checkout>/<env>].
    #[arg(long)]
    pub dist_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let plan = stack::config::load(&args.env.config_dir, &args.env.env)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading config `{}`", args.env.env))?;
    let Some(local) = plan.local.clone() else {
        anyhow::bail!(
            "environment `{}` is not local: `serve` runs only the local engine (use `cargo xtask serve` without --env)",
            plan.env
        );
    };
    let endpoint_url = args
        .endpoint_url
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", local.endpoint_port));
    let state_dir = local_engine::state::state_dir(&plan.env);
    let dist = args.dist_dir.unwrap_or_else(|| dist_dir(&plan));
    let mut cfg = EngineConfig::from_deployed(&plan, &endpoint_url, &state_dir, &dist)
        .await
        .context("reading the deployed local stack")?;
    if let Some(port) = args.port {
        cfg.gateway_port = port;
    }
    // Only this engine serves this state directory: what it does not run now is a leftover of earlier builds.
    let serving: Vec<&str> = cfg
        .functions
        .iter()
        .filter_map(|f| f.binary_sha256.as_deref())
        .collect();
    local_engine::deployed::prune_pinned(&state_dir, &serving);
    // The inspector's port is bound and recorded before the gateway answers, so whoever waits for the
    // gateway (`deploy`) finds the inspector's URL already written.
    let paths = StatePaths::new(&state_dir);
    let inspector_cfg =
        local_engine::inspector::InspectorConfig::of_engine(&cfg, Some(dist.clone()));
    let inspector_listener = match &inspector_cfg {
        Some(_) => {
            let listener = local_engine::inspector::bind(local.inspector_port.unwrap_or(0)).await?;
            let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
            local_engine::inspector::record(&paths, &url)?;
            Some((listener, url))
        }
        None => {
            let _ = std::fs::remove_file(paths.inspector());
            eprintln!(
                "local engine: no inspector: the deployed functions name no EVENTS_TABLE/PROJECTIONS_TABLE"
            );
            None
        }
    };
    let engine = Engine::start(cfg)
        .await
        .context("starting the local engine")?;
    let (inspector_stop, inspector_stopped) = tokio::sync::oneshot::channel::<()>();
    let inspector_url = match (inspector_cfg, inspector_listener) {
        (Some(icfg), Some((listener, url))) => {
            let stats = engine.poller_stats_watch();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = inspector_stopped.await;
                };
                if let Err(e) = local_engine::inspector::serve(listener, icfg, stats, stop).await {
                    tracing::error!("inspector stopped: {e}");
                }
            });
            url
        }
        _ => "(none)".to_string(),
    };
    // Hotswaps (`deploy --hotswap`, `dev`) ask through this socket for the changed functions to be reloaded.
    let source = local_engine::control::DeployedSource {
        plan: plan.clone(),
        endpoint_url: endpoint_url.clone(),
        state_dir: state_dir.clone(),
        dist: dist.clone(),
    };
    let _control = match local_engine::control::ControlServer::start(engine.host(), source) {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!(
                "local engine: no control socket at {} ({e}); a hotswap restarts the engine instead",
                local_engine::control::socket_path(&state_dir).display()
            );
            None
        }
    };
    eprintln!(
        "local engine: gateway {} -> functions from {}; endpoint {endpoint_url}; inspector {inspector_url}; logs in {}",
        engine.url(),
        dist.display(),
        paths.function_logs().display()
    );
    // Serve until SIGTERM (teardown) or Ctrl-C, then kill every function process before exiting.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("local engine: stopping");
    let _ = inspector_stop.send(());
    let _ = std::fs::remove_file(paths.inspector());
    engine.stop().await;
    Ok(ExitStatus::Success)
}

/// `<target dir>/xtask/dist/<checkout>/<env>`, where the deployer's build step writes binaries and manifest.
pub fn dist_dir(plan: &Plan) -> PathBuf {
    let root = crate::cli::repo_root();
    deployer::build::dist_dir(
        &deployer::build::default_target_dir(&root),
        &root,
        &plan.env,
    )
}

/// The gateway URL of the engine already running for this environment, when it answers `/health`.
/// An up-to-date deploy keeps that engine (no restart, no dropped connections) instead of starting a new one.
/// The engine must be the one this tool started and hold the gateway port itself.
pub async fn running_gateway(plan: &Plan) -> Option<String> {
    let local = plan.local.as_ref()?;
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    local_engine::daemon::serves_port(&paths, local.gateway_port)?;
    let url = format!("http://127.0.0.1:{}", local.gateway_port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client.get(format!("{url}/health")).send().await.ok()?;
    resp.status().is_success().then_some(url)
}

/// Refuses a gateway port held by another program than this environment's engine, so a deploy fails before
/// it builds anything rather than after (and never reports another server's answers as the engine's).
pub fn check_gateway_port(plan: &Plan) -> anyhow::Result<()> {
    let Some(local) = &plan.local else {
        return Ok(());
    };
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    if local_engine::daemon::serves_port(&paths, local.gateway_port).is_some()
        || std::net::TcpListener::bind(("127.0.0.1", local.gateway_port)).is_ok()
    {
        return Ok(());
    }
    Err(anyhow::Error::new(crate::deploy::InvalidInput(format!(
        "the gateway port 127.0.0.1:{port} is in use by another program, not by the local engine of `{env}`; \
         stop that program (`ss -ltnp 'sport = :{port}'` shows it) or set local.gateway_port in {config}",
        port = local.gateway_port,
        env = plan.env,
        config = plan.config_path.display()
    ))))
}

/// Starts the local engine in the background for a deployed local stack (restarting a running one so new
/// binaries are picked up), waits until `GET /health` answers through the query function *from the engine
/// just started* (its process group holds the gateway port), and returns the gateway's URL,
/// `http://127.0.0.1:<port>`.
pub async fn start_background(plan: &Plan, endpoint_url: &str) -> anyhow::Result<String> {
    let local = plan
        .local
        .as_ref()
        .with_context(|| format!("environment `{}` has no `local:` section", plan.env))?;
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    if local_engine::daemon::running_pid(&paths).is_some() {
        eprintln!("local engine: restarting it to serve the new release");
    }
    stop_background(plan).await?;
    check_gateway_port(plan)?;
    let exe = current_exe()?;
    let config_dir = plan
        .config_path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| crate::cli::repo_root().join("config"));
    let args: Vec<String> = vec![
        "serve".into(),
        "--env".into(),
        plan.env.clone(),
        "--config-dir".into(),
        config_dir.display().to_string(),
        "--endpoint-url".into(),
        endpoint_url.to_string(),
        "--port".into(),
        local.gateway_port.to_string(),
        "--dist-dir".into(),
        dist_dir(plan).display().to_string(),
    ];
    let log_start = std::fs::metadata(paths.engine_log())
        .map(|m| m.len())
        .unwrap_or(0);
    let started = Instant::now();
    let pid = local_engine::daemon::spawn_detached(&paths, &exe, &args)?;
    let url = format!("http://127.0.0.1:{}", local.gateway_port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    loop {
        // A 200 from another program on the port is not readiness: the listener must be the engine's.
        if local_engine::daemon::serves_port(&paths, local.gateway_port) == Some(pid)
            && let Ok(resp) = client.get(format!("{url}/health")).send().await
            && resp.status().is_success()
        {
            eprintln!(
                "local engine: serving {url} (pid {pid}, ready in {:.1} s; log {})",
                started.elapsed().as_secs_f64(),
                paths.engine_log().display()
            );
            // Repeat what the engine said about a data reset (it goes to the engine's log) to the user.
            let log = std::fs::read(paths.engine_log()).unwrap_or_default();
            let fresh =
                String::from_utf8_lossy(&log[(log_start as usize).min(log.len())..]).to_string();
            for line in fresh.lines().filter(|l| l.contains("local data was reset")) {
                eprintln!("{line}");
            }
            return Ok(url);
        }
        if !local_engine::daemon::is_alive(pid) {
            let log = std::fs::read(paths.engine_log()).unwrap_or_default();
            let tail = String::from_utf8_lossy(&log[(log_start as usize).min(log.len())..])
                .trim()
                .to_string();
            let _ = std::fs::remove_file(paths.engine_pid());
            return Err(local_engine::daemon::DaemonError::Exited {
                status: "before serving /health".into(),
                log: paths.engine_log(),
                tail,
            }
            .into());
        }
        if started.elapsed() > READY_TIMEOUT {
            stop_background(plan).await?;
            let log = std::fs::read(paths.engine_log()).unwrap_or_default();
            let tail = String::from_utf8_lossy(&log[(log_start as usize).min(log.len())..])
                .trim()
                .to_string();
            let holder = if local_engine::daemon::serves_port(&paths, local.gateway_port).is_none()
                && std::net::TcpListener::bind(("127.0.0.1", local.gateway_port)).is_err()
            {
                " (the port is held by another program, not the engine)".to_string()
            } else {
                String::new()
            };
            return Err(local_engine::daemon::DaemonError::NotReady {
                pid,
                url: format!("{url}/health"),
                secs: READY_TIMEOUT.as_secs(),
                holder,
                log: paths.engine_log(),
                tail,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a running engine took new function code.
#[derive(Debug)]
pub enum Applied {
    /// The engine reloaded the changed functions in place; the other functions kept their processes.
    Reloaded(local_engine::control::ReloadReport),
    /// The engine was (re)started on the new release (none ran, or it could not reload).
    Restarted,
}

/// After a hotswap: asks the running engine to reload the functions whose code changed (the data stays in the
/// local AWS endpoint, the gateway keeps its port and connections, unchanged functions keep their warm
/// processes). Starts or restarts the engine instead when none runs or it cannot reload, saying why.
pub async fn reload_or_restart(
    plan: &Plan,
    endpoint_url: &str,
) -> anyhow::Result<(String, Applied)> {
    let state = local_engine::state::state_dir(&plan.env);
    if local_engine::daemon::running_pid(&StatePaths::new(&state)).is_some() {
        match local_engine::control::request_reload(&state).await {
            Ok(report) => {
                let port = plan.local.as_ref().map(|l| l.gateway_port).unwrap_or(3030);
                return Ok((
                    format!("http://127.0.0.1:{port}"),
                    Applied::Reloaded(report),
                ));
            }
            Err(e) => eprintln!("local engine: {e}; restarting it on the new release"),
        }
    }
    let url = start_background(plan, endpoint_url).await?;
    Ok((url, Applied::Restarted))
}

/// This executable. When it was rebuilt while running (a build in the same target directory replaced it),
/// Linux reports `<path> (deleted)`; the new binary at the same path is the one to start.
pub(crate) fn current_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the xtask executable")?;
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) if std::path::Path::new(path).exists() => Ok(PathBuf::from(path)),
        _ => Ok(exe),
    }
}

/// Stops the background engine of this environment (SIGTERM, then SIGKILL of its process group), leaving
/// no function process behind. Doing nothing when none runs is not an error; a stale pid file (naming a
/// process the tool did not start) is reported and removed, and nothing is signalled.
pub async fn stop_background(plan: &Plan) -> anyhow::Result<Stopped> {
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    let stopped = local_engine::daemon::stop(&paths, Duration::from_secs(10)).await;
    match &stopped {
        Stopped::NotRunning => {}
        Stopped::Stopped { .. } | Stopped::Stale { .. } => eprintln!("local engine: {stopped}"),
    }
    Ok(stopped)
}
