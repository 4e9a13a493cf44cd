//! The engine: function host + HTTP gateway + stream poller, started and stopped as one unit.
//!
//! `cargo xtask serve` (and so the background daemon that `deploy` starts) and the tests use the same
//! [`Engine::start`]; the only difference is where the [`EngineConfig`] comes from: the deployed local stack
//! ([`EngineConfig::from_deployed`]) or a test that builds it by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stack::{CorsPlan, FunctionName, Plan, Route, StreamMapping, outputs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::deployed::{self, DeployedError};
use crate::gateway::{self, GatewayConfig};
use crate::host::{FunctionSpec, Host, HostConfig};
use crate::poller::{Poller, PollerConfig, PollerStats};
use crate::state::StatePaths;

/// How often the local poller reads an idle shard. Lambda's own pollers are not configurable (about four reads a
/// second); locally a short pause is what keeps the read model a fraction of a second behind a write, for the cost
/// of 20 GetRecords a second on the local endpoint while nothing happens. A shard with records is read again at
/// once. The batching window, by contrast, is a setting of the mapping and comes from the plan.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Everything the engine needs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub env: String,
    pub endpoint_url: String,
    pub region: String,
    pub account_id: String,
    pub state_dir: PathBuf,
    /// Port of the gateway on 127.0.0.1; 0 picks a free one.
    pub gateway_port: u16,
    pub routes: Vec<Route>,
    pub stage: String,
    /// The API's CORS configuration (`plan.api.cors`), applied by the gateway.
    pub cors: Option<CorsPlan>,
    pub functions: Vec<FunctionSpec>,
    /// The stream poller; `None` runs without one.
    pub stream: Option<StreamSettings>,
}

/// The poller's part of the config.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub stream_arn: String,
    pub dead_letter_queue_url: Option<String>,
    pub mapping: StreamMapping,
    pub function: FunctionName,
    pub poll_interval: Duration,
}

impl EngineConfig {
    /// Reads the deployed local stack (outputs, function configurations) and the release in `dist`, and
    /// verifies that they agree. `gateway_port` comes from the plan (`local.gateway_port`).
    pub async fn from_deployed(
        plan: &Plan,
        endpoint_url: &str,
        state_dir: &Path,
        dist: &Path,
    ) -> Result<EngineConfig, DeployedError> {
        let sdk = crate::endpoint::sdk_config_in(endpoint_url, &plan.region).await;
        let outs = deployed::stack_outputs(&sdk, &plan.stack_name, endpoint_url).await?;
        let functions =
            deployed::function_specs(&sdk, plan, endpoint_url, (dist, state_dir), &outs).await?;
        let stream_arn = match outs.get(outputs::EVENTS_STREAM_ARN) {
            Some(arn) => arn.clone(),
            None => deployed::events_stream_arn(&sdk, plan, &outs).await?,
        };
        let dead_letter_queue_url = match outs.get(outputs::DEAD_LETTER_QUEUE_URL) {
            Some(url) => Some(url.clone()),
            None => deployed::dead_letter_queue_url(&sdk, plan).await,
        };
        Ok(EngineConfig {
            env: plan.env.clone(),
            endpoint_url: endpoint_url.to_string(),
            region: plan.region.clone(),
            account_id: plan
                .account_id
                .clone()
                .unwrap_or_else(|| crate::endpoint::LOCAL_ACCOUNT_ID.to_string()),
            state_dir: state_dir.to_path_buf(),
            gateway_port: plan.local.as_ref().map(|l| l.gateway_port).unwrap_or(3030),
            routes: plan.api.routes.clone(),
            stage: plan.api.stage_name.clone(),
            cors: plan.api.cors.clone(),
            functions,
            stream: Some(StreamSettings {
                stream_arn,
                dead_letter_queue_url,
                mapping: plan.stream_mapping.clone(),
                function: FunctionName::Projector,
                poll_interval: POLL_INTERVAL,
            }),
        })
    }
}

/// Errors starting the engine.
///
/// ### Handling
/// `PortInUse` is the common one (another engine or program on the gateway port): the message says how to
/// free it; the others are I/O problems with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the gateway cannot listen on 127.0.0.1:{port}: {source}; stop what uses it (`cargo xtask teardown`, or `ss -ltnp`) or set local.gateway_port in the config"
    )]
    PortInUse { port: u16, source: std::io::Error },
    #[error("state directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the engine remembers of the endpoint between runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct EndpointMarker {
    endpoint_url: String,
    stream_arn: String,
}

/// The engine's entry point.
pub struct Engine;

impl Engine {
    /// Starts the host, the gateway and (if configured) the poller.
    pub async fn start(cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
        let paths = StatePaths::new(&cfg.state_dir);
        let state_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::State { path, source }
        };
        std::fs::create_dir_all(&cfg.state_dir).map_err(state_err(&cfg.state_dir))?;
        let data_reset = check_marker(&paths, &cfg);

        let host = Host::new(
            HostConfig {
                endpoint_url: cfg.endpoint_url.clone(),
                region: cfg.region.clone(),
                account_id: cfg.account_id.clone(),
                log_dir: paths.function_logs(),
            },
            cfg.functions.clone(),
        )
        .map_err(state_err(&paths.function_logs()))?;

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.gateway_port))
            .await
            .map_err(|source| EngineError::PortInUse {
                port: cfg.gateway_port,
                source,
            })?;
        let addr: SocketAddr = listener
            .local_addr()
            .map_err(|source| EngineError::PortInUse {
                port: cfg.gateway_port,
                source,
            })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let gw_cfg = GatewayConfig {
            routes: cfg.routes.clone(),
            region: cfg.region.clone(),
            account_id: cfg.account_id.clone(),
            api_id: "local".to_string(),
            stage: cfg.stage.clone(),
            cors: cfg.cors.clone(),
        };
        let mut gw_shutdown = shutdown_rx.clone();
        let gw_host = host.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let stop = async move {
                let _ = gw_shutdown.wait_for(|s| *s).await;
            };
            if let Err(e) = gateway::serve(listener, gw_cfg, gw_host, stop).await {
                tracing::error!("gateway stopped: {e}");
            }
        })];

        let mut poller_stats = None;
        if let Some(stream) = &cfg.stream {
            let sdk = crate::endpoint::sdk_config_in(&cfg.endpoint_url, &cfg.region).await;
            let function_arn = host
                .functions()
                .find(|f| f.name == stream.function)
                .map(|f| stack::function_arn(&cfg.region, &cfg.account_id, &f.function_name))
                .unwrap_or_default();
            let (poller, stats) = Poller::new(
                PollerConfig {
                    stream_arn: stream.stream_arn.clone(),
                    dead_letter_queue_url: stream.dead_letter_queue_url.clone(),
                    mapping: stream.mapping.clone(),
                    function: stream.function,
                    function_arn,
                    region: cfg.region.clone(),
                    checkpoint_path: paths.checkpoints(),
                    poll_interval: stream.poll_interval,
                },
                host.clone(),
                &sdk,
            );
            poller_stats = Some(stats);
            tasks.push(tokio::spawn(poller.run(shutdown_rx.clone())));
        }

        Ok(EngineHandle {
            url: format!("http://127.0.0.1:{}", addr.port()),
            host,
            shutdown_tx,
            tasks,
            poller_stats,
            data_reset,
        })
    }
}

/// Compares the stream the engine serves with the one it served last time. A different stream means the
/// events table was recreated (the in-memory endpoint restarted, or the stack was torn down): the local
/// data starts empty and the old checkpoints are meaningless. Returns whether that happened.
fn check_marker(paths: &StatePaths, cfg: &EngineConfig) -> bool {
    let Some(stream) = &cfg.stream else {
        return false;
    };
    let now = EndpointMarker {
        endpoint_url: cfg.endpoint_url.clone(),
        stream_arn: stream.stream_arn.clone(),
    };
    let before: Option<EndpointMarker> = std::fs::read(paths.endpoint_marker())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let reset = before.as_ref().is_some_and(|b| *b != now);
    if reset {
        eprintln!(
            "local engine: the local AWS endpoint holds a new events table (the endpoint restarted or the stack was recreated): \
             local data was reset (moto keeps it in memory) and the stream checkpoints were discarded"
        );
        let _ = std::fs::remove_file(paths.checkpoints());
    }
    let _ = crate::state::write_atomic(
        &paths.endpoint_marker(),
        &serde_json::to_vec_pretty(&now).expect("json"),
    );
    reset
}

/// A running engine. Dropping it (or [`EngineHandle::stop`]) shuts everything down and kills every
/// function process.
pub struct EngineHandle {
    url: String,
    host: Arc<Host>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    poller_stats: Option<watch::Receiver<PollerStats>>,
    data_reset: bool,
}

impl EngineHandle {
    /// The gateway's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The function host (to invoke functions directly, bypassing the gateway).
    pub fn host(&self) -> Arc<Host> {
        self.host.clone()
    }

    /// The poller's counters, if a poller runs.
    pub fn poller_stats(&self) -> Option<PollerStats> {
        self.poller_stats.as_ref().map(|s| s.borrow().clone())
    }

    /// The poller's counters as they change (the inspector samples the projection lag from them).
    pub fn poller_stats_watch(&self) -> Option<watch::Receiver<PollerStats>> {
        self.poller_stats.clone()
    }

    /// Whether the engine found the endpoint's data reset since its last run (see `check_marker`).
    pub fn data_reset(&self) -> bool {
        self.data_reset
    }

    /// Stops the gateway and the poller, then kills every function process and waits for them.
    pub async fn stop(mut self) {
        let _ = self.shutdown_tx.send(true);
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                tracing::warn!("an engine task did not stop within 5 s; aborting it");
                task.abort();
            }
        }
        self.host.shutdown().await;
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for task in &self.tasks {
            task.abort();
        }
        self.host.kill_all();
    }
}
