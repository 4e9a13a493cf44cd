//! The local function host: a Lambda Runtime API server that runs the exact built function binaries.
//!
//! Why a host instead of calling handlers in-process: the binaries that ship to AWS are `bootstrap`
//! executables built on `lambda_runtime`, which pull work from the Runtime API
//! (`GET /2018-06-01/runtime/invocation/next`) and post results back. Serving that API locally lets the
//! very same file run here, with the environment, memory size and timeout that were deployed.
//!
//! Model (as on Lambda): one process handles one invocation at a time; concurrent invocations of one
//! function spawn more processes, up to a small pool size. Every process gets its own Runtime API
//! listener, so the host always knows which process holds which invocation and can kill exactly that
//! one when the invocation times out. A process that crashes or is killed is dropped from the pool and
//! a fresh one is started by the next invocation. stdout/stderr of every process, plus CloudWatch-like
//! `START`/`END`/`REPORT` lines, are appended to `<log_dir>/<function>.log`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use stack::FunctionName;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// How long a fresh process may take to ask for its first invocation (Lambda's init phase limit).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of processes per function when the plan sets no reserved concurrency.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Lambda's limit on a synchronous invocation's event: 6 MB (the `Invoke` API reference: "For synchronous
/// invocations, the maximum payload size is 6 MB"), enforced as 6 MiB: `Invoke` answers
/// `RequestEntityTooLargeException: Request must be smaller than 6291456 bytes for the InvokeFunction
/// operation`.
pub const MAX_REQUEST_PAYLOAD: usize = 6 * 1024 * 1024;
/// Lambda's limit on a function's response: 6 MiB + 100 bytes (`MaxPayloadSize` of AWS's Lambda Runtime
/// Interface Emulator, `lambda/interop/model.go`; the figure in Lambda's `Function.ResponseSizeTooLarge`
/// message).
pub const MAX_RESPONSE_PAYLOAD: usize = 6 * 1024 * 1024 + 100;

/// Everything needed to run one function's binary.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: FunctionName,
    /// Physical function name (`<stack>-query`), exposed as `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// The `bootstrap` executable.
    pub binary: PathBuf,
    /// The deployed function's environment variables (`EVENTS_TABLE`, `RUST_LOG`, ...).
    pub environment: BTreeMap<String, String>,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Maximum number of processes (concurrent invocations) of this function.
    pub max_processes: usize,
    /// The binary's SHA-256 (hex) when the caller already computed it (the engine verifies each binary
    /// against the release manifest, and the control channel compares digests to see what a reload changed:
    /// one hash per binary and reload, not two). `None`: hashed when needed.
    pub binary_sha256: Option<String>,
}

/// Settings shared by every function process.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The local AWS endpoint every SDK client in the functions talks to (`AWS_ENDPOINT_URL`).
    pub endpoint_url: String,
    pub region: String,
    /// Account id used in the ARNs the host hands out.
    pub account_id: String,
    /// Directory of the per-function log files.
    pub log_dir: PathBuf,
}

/// A successful invocation: the function posted a response.
#[derive(Debug, Clone)]
pub struct InvokeOutput {
    pub request_id: String,
    pub body: Bytes,
    pub duration: Duration,
    /// Whether a new process had to be started for this invocation.
    pub cold_start: bool,
}

/// Why an invocation produced no response.
///
/// ### Handling
/// The gateway maps `RequestTooLarge` to 413, `Timeout` to 504, `ShuttingDown` to 503 and the rest to 500
/// (`gateway::lambda_failure`); the poller treats every variant as a failed batch.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no function `{0}` is hosted")]
    UnknownFunction(FunctionName),
    /// The event is over Lambda's synchronous payload limit; no process saw it (Lambda's
    /// `RequestEntityTooLargeException`).
    #[error(
        "RequestEntityTooLargeException: the {size}-byte event is over Lambda's limit; request must be smaller than {limit} bytes for the InvokeFunction operation"
    )]
    RequestTooLarge { size: usize, limit: usize },
    /// The handler returned an error (`POST /runtime/invocation/{id}/error`).
    #[error("function returned an error: {error_type}: {body}")]
    FunctionError { error_type: String, body: String },
    /// The function did not answer within its timeout; its process was killed.
    #[error("task timed out after {0:.2?}; the process was killed")]
    Timeout(Duration),
    /// The process exited while holding the invocation.
    #[error("function process exited ({0}) during the invocation")]
    Crashed(String),
    /// The process's resident memory went above the function's memory size; it was killed, as Lambda does.
    #[error(
        "Runtime.OutOfMemory: the process used {used_mb} MB, more than the function's {limit_mb} MB; it was killed"
    )]
    OutOfMemory { limit_mb: u32, used_mb: u64 },
    /// The process reported an init error or never asked for work.
    #[error("function failed to initialise: {0}")]
    Init(String),
    #[error("could not start the function process `{path}`: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the host is shutting down")]
    ShuttingDown,
}

/// The function host. Cheap to share behind an `Arc`.
pub struct Host {
    config: HostConfig,
    pools: HashMap<FunctionName, Arc<Pool>>,
    /// A new version served beside a function's live one during a local traffic shift ([`crate::canary`]).
    canaries: Mutex<HashMap<FunctionName, Arc<Canary>>>,
}

/// The version label of a canary's processes (`AWS_LAMBDA_FUNCTION_VERSION`, the log's `START ... Version:`).
pub const CANARY_VERSION: &str = "canary";

/// What a canary version did while it was served: its invocations, and those that would fire the alarms an AWS
/// environment renders for a shift (any error, a duration above 80% of the timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanaryStats {
    pub invocations: u64,
    /// Invocations that failed: a function error, a crash, a timeout, out of memory, a failed init.
    pub errors: u64,
    /// Invocations that took more than 80% of the function's timeout (the AWS latency alarm's threshold).
    pub slow: u64,
    /// The newest failure, as the host reports it.
    pub last_error: Option<String>,
}

/// A canary: its own pool of processes, the share of invocations routed to it and what it did.
struct Canary {
    pool: Arc<Pool>,
    /// Share of the invocations, in basis points (0 to 10,000).
    weight_bp: std::sync::atomic::AtomicU32,
    /// Invocations routed through this canary's decision so far (it spreads the share evenly).
    routed: AtomicU64,
    stats: Mutex<CanaryStats>,
}

impl Canary {
    /// Whether invocation number n goes to the canary: exactly `weight` of every run of invocations, evenly
    /// spread (invocation n is the canary's when floor((n+1)w) > floor(nw)), so a 10% canary gets every tenth
    /// one rather than a random tenth (Lambda draws at random; the share is the same, a test can count it).
    fn take_turn(&self) -> bool {
        let bp = u64::from(self.weight_bp.load(Ordering::SeqCst));
        let n = self.routed.fetch_add(1, Ordering::SeqCst);
        (n + 1) * bp / 10_000 > n * bp / 10_000
    }

    fn record(&self, outcome: &Result<InvokeOutput, InvokeError>) {
        let mut stats = self.stats.lock().unwrap();
        stats.invocations += 1;
        match outcome {
            Ok(out) if out.duration * 5 > self.pool.spec.timeout * 4 => stats.slow += 1,
            Ok(_) => {}
            Err(e) => {
                stats.errors += 1;
                stats.last_error = Some(e.to_string());
            }
        }
    }
}

impl Host {
    /// Creates the host; processes start lazily on the first invocation of each function.
    pub fn new(config: HostConfig, functions: Vec<FunctionSpec>) -> std::io::Result<Arc<Host>> {
        std::fs::create_dir_all(&config.log_dir)?;
        let pools = functions
            .into_iter()
            .map(|spec| {
                let log_path = config.log_dir.join(format!("{}.log", spec.name));
                (spec.name, Arc::new(Pool::new(spec, log_path, "$LATEST")))
            })
            .collect();
        Ok(Arc::new(Host {
            config,
            pools,
            canaries: Mutex::new(HashMap::new()),
        }))
    }

    /// Serves `spec` (a new binary of a hosted function) beside the live version, to no invocation yet
    /// ([`Host::set_canary_weight`] routes a share to it). A canary already running for it is ended first.
    /// Returns whether the function is hosted.
    pub fn start_canary(&self, spec: FunctionSpec) -> bool {
        let Some(live) = self.pools.get(&spec.name) else {
            return false;
        };
        let name = spec.name;
        let pool = Arc::new(Pool::new(spec, live.log.path.clone(), CANARY_VERSION));
        pool.log.line(&format!(
            "CANARY {} serves beside the live version, to no invocation yet",
            pool.binary().display()
        ));
        let canary = Arc::new(Canary {
            pool,
            weight_bp: std::sync::atomic::AtomicU32::new(0),
            routed: AtomicU64::new(0),
            stats: Mutex::new(CanaryStats::default()),
        });
        if let Some(old) = self.canaries.lock().unwrap().insert(name, canary) {
            old.pool.close();
        }
        true
    }

    /// Routes `percent` of `name`'s invocations to its canary (0 to 100). Returns whether it has one.
    pub fn set_canary_weight(&self, name: FunctionName, percent: u32) -> bool {
        let canaries = self.canaries.lock().unwrap();
        let Some(c) = canaries.get(&name) else {
            return false;
        };
        c.weight_bp.store(percent.min(100) * 100, Ordering::SeqCst);
        c.pool.log.line(&format!(
            "CANARY {percent}% of the invocations go to {}",
            c.pool.binary().display()
        ));
        true
    }

    /// `name`'s canary, if it has one: its binary's SHA-256 and the percent of the invocations it gets.
    pub fn canary_split(&self, name: FunctionName) -> Option<(Option<String>, u32)> {
        let canaries = self.canaries.lock().unwrap();
        canaries.get(&name).map(|c| {
            (
                c.pool.spec.binary_sha256.clone(),
                c.weight_bp.load(Ordering::SeqCst) / 100,
            )
        })
    }

    /// What `name`'s canary did so far, if it has one.
    pub fn canary_stats(&self, name: FunctionName) -> Option<CanaryStats> {
        let canaries = self.canaries.lock().unwrap();
        canaries.get(&name).map(|c| c.stats.lock().unwrap().clone())
    }

    /// Stops serving `name`'s canary: no new invocation goes to it, its idle processes are killed now and busy
    /// ones when their invocation ends. Returns what it did, if it had one.
    pub fn end_canary(&self, name: FunctionName) -> Option<CanaryStats> {
        let canary = self.canaries.lock().unwrap().remove(&name)?;
        canary.pool.close();
        canary
            .pool
            .log
            .line("CANARY ended: every invocation goes to the live version");
        let stats = canary.stats.lock().unwrap().clone();
        Some(stats)
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The functions this host runs.
    pub fn functions(&self) -> impl Iterator<Item = &FunctionSpec> {
        self.pools.values().map(|p| &p.spec)
    }

    /// The function's log file (stdout/stderr of its processes and the host's START/END/REPORT lines).
    pub fn log_path(&self, name: FunctionName) -> Option<PathBuf> {
        self.pools.get(&name).map(|p| p.log.path.clone())
    }

    /// The environment a process of `name` gets (platform variables, then the deployed ones), with
    /// `AWS_LAMBDA_RUNTIME_API` set to `runtime_api`: lets the benchmark run the same binary, configured the
    /// same way, behind another Runtime API (`cargo lambda watch`).
    pub fn process_env(
        &self,
        name: FunctionName,
        runtime_api: &str,
    ) -> Option<Vec<(String, String)>> {
        self.pools
            .get(&name)
            .map(|p| p.process_env(&self.config, runtime_api))
    }

    /// Number of live processes of a function (for tests and the benchmark).
    pub fn process_count(&self, name: FunctionName) -> usize {
        self.pools
            .get(&name)
            .map(|p| p.all.lock().unwrap().len())
            .unwrap_or(0)
    }

    /// Process ids of a function's live processes.
    pub fn process_ids(&self, name: FunctionName) -> Vec<u32> {
        self.pools
            .get(&name)
            .map(|p| {
                p.all
                    .lock()
                    .unwrap()
                    .values()
                    .filter_map(|w| *w.pid.lock().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Retires every process of `name` so the next invocation starts the binary now on disk (a hotswap
    /// replaced it by rename): idle processes are killed now, busy ones when their invocation ends, so no
    /// request is cut off. The other functions' processes are left alone. Returns whether `name` is hosted.
    pub fn recycle(&self, name: FunctionName) -> bool {
        self.recycle_to(name, None)
    }

    /// [`Host::recycle`], with the next processes started from `binary` when given (the engine runs pinned
    /// copies of the deployed binaries, one path per digest: a hotswapped binary has a new path).
    pub fn recycle_to(&self, name: FunctionName, binary: Option<PathBuf>) -> bool {
        let Some(pool) = self.pools.get(&name) else {
            return false;
        };
        if let Some(binary) = binary {
            *pool.binary.lock().unwrap() = binary;
        }
        pool.generation.fetch_add(1, Ordering::SeqCst);
        let idle: Vec<Arc<Worker>> = std::mem::take(&mut *pool.idle.lock().unwrap());
        for w in &idle {
            pool.retire(w);
        }
        pool.log.line(&format!(
            "RELOAD {} process(es) retired; the next invocation starts {}",
            idle.len(),
            pool.binary().display()
        ));
        true
    }

    /// Invokes a function synchronously (`RequestResponse`) with a JSON payload.
    pub async fn invoke(
        &self,
        name: FunctionName,
        payload: impl Into<Bytes>,
    ) -> Result<InvokeOutput, InvokeError> {
        let pool = self
            .pools
            .get(&name)
            .ok_or(InvokeError::UnknownFunction(name))?;
        let payload = payload.into();
        if payload.len() > MAX_REQUEST_PAYLOAD {
            return Err(InvokeError::RequestTooLarge {
                size: payload.len(),
                limit: MAX_REQUEST_PAYLOAD,
            });
        }
        let canary = self.canaries.lock().unwrap().get(&name).cloned();
        if let Some(canary) = canary.filter(|c| c.take_turn()) {
            let outcome = canary.pool.invoke(&self.config, payload.clone()).await;
            // A canary ended meanwhile: the live version takes the invocation.
            if !matches!(outcome, Err(InvokeError::ShuttingDown)) {
                canary.record(&outcome);
                return outcome;
            }
        }
        pool.invoke(&self.config, payload).await
    }

    /// Kills every function process and waits (bounded) until they are gone.
    pub async fn shutdown(&self) {
        let pools = self.all_pools();
        for pool in &pools {
            pool.closed.store(true, Ordering::SeqCst);
        }
        let workers: Vec<Arc<Worker>> = pools
            .iter()
            .flat_map(|p| p.all.lock().unwrap().values().cloned().collect::<Vec<_>>())
            .collect();
        for w in &workers {
            w.kill();
        }
        for w in &workers {
            let mut dead = w.dead.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), dead.wait_for(|d| *d)).await;
        }
    }

    /// Synchronous best-effort kill, for `Drop` paths that cannot await.
    pub fn kill_all(&self) {
        for pool in &self.all_pools() {
            pool.closed.store(true, Ordering::SeqCst);
            for w in pool.all.lock().unwrap().values() {
                w.kill();
                // The monitor task may never run again if the runtime is going away: kill the pid directly
                // as well, but only while the monitor has not reaped it (a reaped pid may be reused).
                if !w.is_dead()
                    && let Some(pid) = *w.pid.lock().unwrap()
                {
                    let _ = crate::process::signal(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

impl Host {
    /// The live pools and the canaries' pools.
    fn all_pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.pools.values().cloned().collect();
        if let Ok(canaries) = self.canaries.lock() {
            pools.extend(canaries.values().map(|c| c.pool.clone()));
        }
        pools
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The processes of one function (of one version of it: the live one, or a canary).
struct Pool {
    spec: FunctionSpec,
    /// The executable the next process starts (`spec.binary` until a reload names another).
    binary: Mutex<PathBuf>,
    /// `$LATEST` for the live version, [`CANARY_VERSION`] for a canary.
    version: &'static str,
    log: LogFile,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Arc<Worker>>>,
    all: Mutex<HashMap<u64, Arc<Worker>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Bumped by [`Host::recycle`]; a process of an older generation is retired instead of reused.
    generation: AtomicU64,
}

/// One pending invocation, handed to a process by its `next` endpoint.
struct Invocation {
    request_id: String,
    payload: Bytes,
    trace_id: String,
    picked: oneshot::Sender<Instant>,
    result: oneshot::Sender<Result<Bytes, InvokeError>>,
}

/// One running function process and its private Runtime API listener.
/// Where an invocation's result goes.
type ResultSender = oneshot::Sender<Result<Bytes, InvokeError>>;

struct Worker {
    id: u64,
    /// The pool's generation when this process started.
    generation: u64,
    timeout: Duration,
    arn: String,
    tx: mpsc::Sender<Invocation>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// The invocation the process is working on: request id and where its result goes.
    inflight: Mutex<Option<(String, ResultSender)>>,
    kill_tx: Mutex<Option<oneshot::Sender<()>>>,
    pid: Mutex<Option<u32>>,
    dead: watch::Receiver<bool>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Worker {
    fn kill(&self) {
        if let Some(tx) = self.kill_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }

    fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    fn fail_inflight(&self, err: InvokeError) {
        if let Some((_, tx)) = self.inflight.lock().unwrap().take() {
            let _ = tx.send(Err(err));
        }
    }
}

/// An X-Ray style trace header for one invocation (`Lambda-Runtime-Trace-Id`), never sampled.
fn new_trace_id() -> String {
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        &uuid::Uuid::now_v7().simple().to_string()[..24],
        &uuid::Uuid::now_v7().simple().to_string()[..16],
    )
}

impl Pool {
    fn new(spec: FunctionSpec, log_path: PathBuf, version: &'static str) -> Pool {
        Pool {
            permits: Arc::new(Semaphore::new(spec.max_processes.max(1))),
            binary: Mutex::new(spec.binary.clone()),
            version,
            spec,
            log: LogFile { path: log_path },
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    fn binary(&self) -> PathBuf {
        self.binary.lock().unwrap().clone()
    }

    /// Takes no more invocations: idle processes are killed now, busy ones when their invocation ends.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let idle: Vec<Arc<Worker>> = std::mem::take(&mut *self.idle.lock().unwrap());
        for w in &idle {
            self.retire(w);
        }
    }

    async fn invoke(
        self: &Arc<Self>,
        host: &HostConfig,
        payload: Bytes,
    ) -> Result<InvokeOutput, InvokeError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(InvokeError::ShuttingDown);
        }
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| InvokeError::ShuttingDown)?;
        let (worker, cold_start) = match self.take_idle() {
            Some(w) => (w, false),
            None => (self.spawn(host).await?, true),
        };
        let request_id = uuid::Uuid::now_v7().to_string();
        let (picked_tx, picked_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        let trace_id = new_trace_id();
        let inv = Invocation {
            request_id: request_id.clone(),
            payload,
            trace_id,
            picked: picked_tx,
            result: result_tx,
        };
        if worker.tx.send(inv).await.is_err() {
            self.retire(&worker);
            return Err(InvokeError::Crashed(
                "the process was gone before the invocation".into(),
            ));
        }
        let mut dead = worker.dead.clone();
        // Phase 1: the process takes the invocation (immediately if warm; after init if cold).
        let started = tokio::select! {
            picked = picked_rx => match picked {
                Ok(at) => at,
                Err(_) => { self.retire(&worker); return Err(InvokeError::Crashed("invocation dropped".into())); }
            },
            _ = dead.wait_for(|d| *d) => {
                self.retire(&worker);
                return Err(InvokeError::Init(format!("the process exited before taking the invocation; see {}", self.log.path.display())));
            }
            _ = tokio::time::sleep(INIT_TIMEOUT) => {
                worker.kill();
                self.retire(&worker);
                return Err(InvokeError::Init(format!("the process did not ask for work within {INIT_TIMEOUT:?}")));
            }
        };
        self.log.line(&format!(
            "START RequestId: {request_id} Version: {}",
            self.version
        ));
        // Phase 2: the process answers within the function's timeout and its memory size.
        let pid = *worker.pid.lock().unwrap();
        let outcome = tokio::select! {
            r = result_rx => r.unwrap_or_else(|_| Err(InvokeError::Crashed("result channel closed".into()))),
            _ = tokio::time::sleep_until((started + self.spec.timeout).into()) => {
                worker.kill();
                Err(InvokeError::Timeout(self.spec.timeout))
            }
            used_mb = memory_exceeded(pid, self.spec.memory_mb) => {
                worker.kill();
                Err(InvokeError::OutOfMemory { limit_mb: self.spec.memory_mb, used_mb })
            }
        };
        let duration = started.elapsed();
        self.log_end(&request_id, duration, pid, cold_start, &outcome);
        match outcome {
            Ok(body) => {
                self.give_back(worker);
                Ok(InvokeOutput {
                    request_id,
                    body,
                    duration,
                    cold_start,
                })
            }
            Err(e @ InvokeError::FunctionError { .. }) => {
                self.give_back(worker);
                Err(e)
            }
            Err(e) => {
                self.retire(&worker);
                Err(e)
            }
        }
    }

    /// The END and REPORT lines Lambda writes after an invocation (duration, billed duration, memory size and
    /// peak, cold start), and the timeout or runtime error line when there was one.
    fn log_end(
        &self,
        request_id: &str,
        duration: Duration,
        pid: Option<u32>,
        cold_start: bool,
        outcome: &Result<Bytes, InvokeError>,
    ) {
        self.log.line(&format!("END RequestId: {request_id}"));
        let billed = duration.as_millis() + 1;
        let mut report = format!(
            "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB",
            duration.as_secs_f64() * 1000.0,
            self.spec.memory_mb
        );
        if let Some(kb) = pid.and_then(|p| proc_status_kb(p, "VmHWM:")) {
            report.push_str(&format!("\tMax Memory Used: {} MB", kb.div_ceil(1024)));
        }
        if cold_start {
            report.push_str("\tCold start: yes");
        }
        match &outcome {
            Err(InvokeError::Timeout(t)) => {
                self.log.line(&format!("{report}\tStatus: timeout"));
                self.log.line(&format!(
                    "{} {request_id} Task timed out after {:.2} seconds",
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    t.as_secs_f64()
                ));
            }
            Err(InvokeError::Crashed(why)) => self.log.line(&format!(
                "{report}\tStatus: error\tError Type: Runtime.ExitError ({why})"
            )),
            Err(InvokeError::OutOfMemory { used_mb, .. }) => self.log.line(&format!(
                "{report}\tStatus: error\tError Type: Runtime.OutOfMemory (resident {used_mb} MB)"
            )),
            _ => self.log.line(&report),
        }
    }

    fn take_idle(&self) -> Option<Arc<Worker>> {
        let mut idle = self.idle.lock().unwrap();
        while let Some(w) = idle.pop() {
            if !w.is_dead() && w.generation == self.generation.load(Ordering::SeqCst) {
                return Some(w);
            }
            self.retire_popped(w);
        }
        None
    }

    /// Retires a worker popped from the idle list (the lock is held by the caller, so no re-lock here).
    fn retire_popped(&self, worker: Arc<Worker>) {
        worker.kill();
        self.all.lock().unwrap().remove(&worker.id);
        if let Some(server) = worker.server.lock().unwrap().take() {
            server.abort();
        }
    }

    fn give_back(&self, worker: Arc<Worker>) {
        if worker.is_dead()
            || self.closed.load(Ordering::SeqCst)
            || worker.generation != self.generation.load(Ordering::SeqCst)
        {
            self.retire(&worker);
        } else {
            self.idle.lock().unwrap().push(worker);
        }
    }

    fn retire(&self, worker: &Arc<Worker>) {
        worker.kill();
        self.all.lock().unwrap().remove(&worker.id);
        self.idle.lock().unwrap().retain(|w| w.id != worker.id);
        if let Some(server) = worker.server.lock().unwrap().take() {
            server.abort();
        }
    }

    /// Starts a process with its own Runtime API listener.
    async fn spawn(self: &Arc<Self>, host: &HostConfig) -> Result<Arc<Worker>, InvokeError> {
        let binary = self.binary();
        let spawn_err = |source| InvokeError::Spawn {
            path: binary.clone(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(spawn_err)?;
        let addr: SocketAddr = listener.local_addr().map_err(spawn_err)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(1);
        let (dead_tx, dead_rx) = watch::channel(false);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let arn = stack::function_arn(&host.region, &host.account_id, &self.spec.function_name);
        let worker = Arc::new(Worker {
            id,
            generation: self.generation.load(Ordering::SeqCst),
            timeout: self.spec.timeout,
            arn,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(None),
            kill_tx: Mutex::new(Some(kill_tx)),
            pid: Mutex::new(None),
            dead: dead_rx,
            server: Mutex::new(None),
        });
        let app = runtime_api(worker.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *worker.server.lock().unwrap() = Some(server);

        let mut cmd = tokio::process::Command::new(&binary);
        cmd.env_clear()
            .envs(self.process_env(host, &addr.to_string()))
            .stdin(std::process::Stdio::null())
            .stdout(self.log.stdio().map_err(spawn_err)?)
            .stderr(self.log.stdio().map_err(spawn_err)?)
            .kill_on_drop(true);
        if let Some(dir) = binary.parent() {
            cmd.current_dir(dir);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                if let Some(server) = worker.server.lock().unwrap().take() {
                    server.abort();
                }
                return Err(spawn_err(e));
            }
        };
        let pid = child.id();
        *worker.pid.lock().unwrap() = pid;
        self.log.line(&format!(
            "INIT_START process {} ({}) runtime API 127.0.0.1:{}",
            pid.unwrap_or(0),
            binary.display(),
            addr.port()
        ));
        self.all.lock().unwrap().insert(id, worker.clone());

        // The monitor owns the child: it waits for the exit (or a kill request), then fails whatever the
        // process held and marks the worker dead so invokers and the pool stop using it.
        let monitor_worker = worker.clone();
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx => { let _ = child.start_kill(); child.wait().await }
            };
            let why = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            monitor_worker.fail_inflight(InvokeError::Crashed(why.clone()));
            let _ = dead_tx.send(true);
            if let Some(pool) = pool.upgrade() {
                pool.log
                    .line(&format!("PROCESS_EXIT process {} {why}", pid.unwrap_or(0)));
                pool.retire(&monitor_worker);
            }
        });
        Ok(worker)
    }

    /// The environment a process of this function starts with; `runtime_api` is what the Lambda runtime
    /// reads from `AWS_LAMBDA_RUNTIME_API` (`host:port`, optionally with a path prefix).
    fn process_env(&self, host: &HostConfig, runtime_api: &str) -> Vec<(String, String)> {
        let spec = &self.spec;
        let task_root = self
            .binary()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // Start from the platform's variables, then the deployed ones (which may override e.g. RUST_LOG).
        let mut env: BTreeMap<String, String> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("LANG", "en_US.UTF-8".to_string()),
            ("TZ", ":UTC".to_string()),
            ("LAMBDA_TASK_ROOT", task_root),
            ("_HANDLER", "bootstrap".to_string()),
            (
                "AWS_EXECUTION_ENV",
                "AWS_Lambda_provided.al2023".to_string(),
            ),
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", self.version.to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                stack::function_log_group_name(&spec.function_name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/{}", uuid::Uuid::now_v7().simple()),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            ("AWS_REGION", host.region.clone()),
            ("AWS_DEFAULT_REGION", host.region.clone()),
            ("AWS_ENDPOINT_URL", host.endpoint_url.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_SESSION_TOKEN", "test".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &spec.environment {
            env.insert(k.clone(), v.clone());
        }
        env.into_iter().collect()
    }
}

/// How often a running invocation's resident memory is sampled against the function's memory size.
const MEMORY_SAMPLE: Duration = Duration::from_millis(20);

/// Resolves, with the resident size in MB, once process `pid` holds more than `limit_mb` MB of resident memory
/// (`VmRSS`, sampled every [`MEMORY_SAMPLE`]); never resolves where `/proc` cannot tell (not Linux, no pid).
/// Lambda counts the whole sandbox; here a function is one process, so its resident set is the figure.
async fn memory_exceeded(pid: Option<u32>, limit_mb: u32) -> u64 {
    let Some(pid) = pid.filter(|p| proc_status_kb(*p, "VmRSS:").is_some()) else {
        return std::future::pending().await;
    };
    let limit_kb = u64::from(limit_mb) * 1024;
    loop {
        if let Some(kb) = proc_status_kb(pid, "VmRSS:").filter(|kb| *kb > limit_kb) {
            return kb.div_ceil(1024);
        }
        tokio::time::sleep(MEMORY_SAMPLE).await;
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:` resident now, `VmHWM:` the peak), if readable.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The Runtime API one process talks to.
fn runtime_api(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            // The body is read (and bounded) by the handler, which must see an oversized response to
            // report it as Lambda does, instead of axum's default 2 MB limit refusing it first.
            post(invocation_response).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(worker)
}

async fn next_invocation(State(worker): State<Arc<Worker>>) -> Response {
    let mut rx = worker.rx.lock().await;
    let Some(inv) = rx.recv().await else {
        return (StatusCode::GONE, "the host is shutting down").into_response();
    };
    drop(rx);
    let now = Instant::now();
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + worker.timeout.as_millis();
    *worker.inflight.lock().unwrap() = Some((inv.request_id.clone(), inv.result));
    let _ = inv.picked.send(now);
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.request_id);
    put("lambda-runtime-deadline-ms", deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", worker.arn.clone());
    put("lambda-runtime-trace-id", inv.trace_id);
    put("content-type", "application/json".to_string());
    (StatusCode::OK, headers, inv.payload).into_response()
}

fn take_inflight(worker: &Worker, id: &str) -> Option<oneshot::Sender<Result<Bytes, InvokeError>>> {
    let mut slot = worker.inflight.lock().unwrap();
    match slot.as_ref() {
        Some((current, _)) if current == id => slot.take().map(|(_, tx)| tx),
        _ => None,
    }
}

fn unknown_request(id: &str) -> Response {
    let body = serde_json::json!({
        "errorMessage": format!("no invocation `{id}` is in flight on this process"),
        "errorType": "InvalidRequestID"
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn invocation_response(
    State(worker): State<Arc<Worker>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Body,
) -> Response {
    // Lambda refuses a response over its payload limit: the Runtime API answers the runtime 413
    // (`RequestEntityTooLarge`) and the invocation fails with `Function.ResponseSizeTooLarge` (AWS's Lambda
    // Runtime Interface Emulator, `rapi/handler/invocationresponse.go` and `interop/model.go`). The whole
    // body is read, so the runtime's upload completes and it sees the 413 rather than a reset connection.
    let mut kept = bytes::BytesMut::new();
    let mut size = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let Ok(chunk) = chunk else {
            return (
                StatusCode::BAD_REQUEST,
                "the response body could not be read",
            )
                .into_response();
        };
        size += chunk.len();
        if size <= MAX_RESPONSE_PAYLOAD {
            kept.extend_from_slice(&chunk);
        }
    }
    let Some(tx) = take_inflight(&worker, &id) else {
        return unknown_request(&id);
    };
    if size > MAX_RESPONSE_PAYLOAD {
        let message = format!(
            "Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes)."
        );
        let _ = tx.send(Err(InvokeError::FunctionError {
            error_type: RESPONSE_TOO_LARGE.into(),
            body: serde_json::json!({"errorType": RESPONSE_TOO_LARGE, "errorMessage": message})
                .to_string(),
        }));
        let body = serde_json::json!({
            "errorMessage": format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes)."),
            "errorType": "RequestEntityTooLarge",
        });
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    let _ = tx.send(Ok(kept.freeze()));
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

/// The error type Lambda gives an invocation whose response is over [`MAX_RESPONSE_PAYLOAD`].
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

async fn invocation_error(
    State(worker): State<Arc<Worker>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match take_inflight(&worker, &id) {
        Some(tx) => {
            let error_type = error_type(&headers, &body);
            let _ = tx.send(Err(InvokeError::FunctionError {
                error_type,
                body: String::from_utf8_lossy(&body).into_owned(),
            }));
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"status": "OK"})),
            )
                .into_response()
        }
        None => unknown_request(&id),
    }
}

async fn init_error(
    State(worker): State<Arc<Worker>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = error_type(&headers, &body);
    worker.fail_inflight(InvokeError::Init(format!(
        "{error_type}: {}",
        String::from_utf8_lossy(&body)
    )));
    // On Lambda the sandbox is discarded after an init error.
    worker.kill();
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("errorType")
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                })
        })
        .unwrap_or_else(|| "Unhandled".to_string())
}

/// An append-only log file shared by the host and the function's processes (O_APPEND keeps lines whole).
struct LogFile {
    path: PathBuf,
}

impl LogFile {
    fn open(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
    }

    fn stdio(&self) -> std::io::Result<std::process::Stdio> {
        Ok(self.open()?.into())
    }

    fn line(&self, text: &str) {
        if let Ok(mut f) = self.open() {
            let _ = f.write_all(format!("{text}\n").as_bytes());
        }
    }
}

/// Reads the tail of a log file (used by `cargo xtask logs` and tests).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
