//! The background engine's control channel: a Unix socket in the state directory through which
//! `deploy --hotswap` and `cargo xtask dev` ask a running engine to pick up new function code without a restart.
//!
//! Why a reload instead of a restart: a restart drops the gateway's connections, kills every warm function
//! process and costs seconds; a reload re-reads what was deployed (the same checks as a start: binaries
//! against the release manifest, `CodeSha256` against the endpoint), then retires only the processes of the
//! functions whose binary changed ([`Host::recycle`]). The data never moves: it lives in the local AWS endpoint.
//! Why a socket and not a signal: the caller needs the answer (what was reloaded, or why the engine cannot),
//! and a socket inside the state directory can only belong to the engine of that directory.
//!
//! The same socket runs a local traffic shift (`shift`, [`crate::canary`]): the connection that asked for it
//! holds the canary, and its end ends the canary unless a reload made the new code the deployed one first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stack::{FunctionName, Plan};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::deployed::sha256_file;
use crate::host::{FunctionSpec, Host};

/// How long a caller waits for the engine's answer (reading the deployed stack and hashing the binaries).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The socket of the engine serving `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("engine.sock")
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Functions whose binary changed: their processes were retired, the next invocation runs the new code.
    pub reloaded: Vec<FunctionName>,
    /// Functions whose binary is the one already served: their processes were kept.
    pub unchanged: Vec<FunctionName>,
}

/// What the engine serves of one function: its live binary and, during a shift, the canary's and its share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    pub binary_sha256: String,
    /// The canary's binary SHA-256 and the percent of the invocations it gets.
    pub canary: Option<(String, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Reply {
    Reloaded(ReloadReport),
    Serving {
        functions: BTreeMap<FunctionName, Serving>,
    },
    Failed {
        message: String,
    },
}

/// Errors of [`request_reload`], [`request_serving`] and `canary::request_shift`.
///
/// ### Handling
/// `Unreachable`: no engine listens (none runs, or an engine from before the control channel); the caller
/// restarts the engine instead (`status` says nothing of the engine then). `Failed`: the engine answered that it
/// cannot do it (for a reload: the deployed stack and the build disagree, or more than code changed); the caller
/// restarts it, which reports the same problem if it persists.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no local engine answers on {path}: {detail}")]
    Unreachable { path: PathBuf, detail: String },
    #[error("the local engine cannot do it: {0}")]
    Failed(String),
}

/// Asks the engine serving `state_dir` to reload the functions whose code changed, and waits for its answer.
pub async fn request_reload(state_dir: &Path) -> Result<ReloadReport, ControlError> {
    match exchange(state_dir, "reload").await? {
        Reply::Reloaded(report) => Ok(report),
        Reply::Failed { message } => Err(ControlError::Failed(message)),
        Reply::Serving { .. } => Err(ControlError::Failed("answered `status` to `reload`".into())),
    }
}

/// Asks the engine serving `state_dir` what it serves of each function (`status` shows it).
pub async fn request_serving(
    state_dir: &Path,
) -> Result<BTreeMap<FunctionName, Serving>, ControlError> {
    match exchange(state_dir, "status").await? {
        Reply::Serving { functions } => Ok(functions),
        Reply::Failed { message } => Err(ControlError::Failed(message)),
        Reply::Reloaded(_) => Err(ControlError::Failed("answered `reload` to `status`".into())),
    }
}

/// Sends one request line and reads the one-line answer.
async fn exchange(state_dir: &Path, request: &str) -> Result<Reply, ControlError> {
    let path = socket_path(state_dir);
    let unreachable = |detail: String| ControlError::Unreachable {
        path: path.clone(),
        detail,
    };
    let exchange = async {
        let mut stream = UnixStream::connect(&path)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        serde_json::from_str::<Reply>(&answer)
            .map_err(|e| unreachable(format!("unreadable answer `{answer}`: {e}")))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())))?
}

/// What the engine serves of one function: its binary (pinned path and SHA-256) and the settings a process
/// starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub(crate) binary: PathBuf,
    pub(crate) binary_sha256: String,
    settings: String,
}

impl Served {
    fn of(spec: &FunctionSpec) -> std::io::Result<Served> {
        Ok(Served {
            binary: spec.binary.clone(),
            // The engine verified (so hashed) each binary when it read the deployed stack: reuse that digest.
            binary_sha256: match &spec.binary_sha256 {
                Some(digest) => digest.clone(),
                None => sha256_file(&spec.binary)?,
            },
            // Everything but the code (the binary's path is its digest's): a change here is a configuration
            // change, which needs a restart.
            settings: format!(
                "{} {:?} {} {:?} {}",
                spec.function_name,
                spec.environment,
                spec.memory_mb,
                spec.timeout,
                spec.max_processes
            ),
        })
    }
}

/// Where the engine re-reads the deployed stack from: the same inputs as [`crate::EngineConfig::from_deployed`].
#[derive(Debug, Clone)]
pub struct DeployedSource {
    pub plan: Plan,
    pub endpoint_url: String,
    pub state_dir: PathBuf,
    pub dist: PathBuf,
}

/// The engine side: listens on the socket until dropped (the socket file is removed then).
pub struct ControlServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// Binds `<state_dir>/engine.sock` (replacing a stale one) and answers reload requests for `host`.
    pub fn start(host: Arc<Host>, source: DeployedSource) -> std::io::Result<ControlServer> {
        let served = host
            .functions()
            .map(|spec| Ok((spec.name, Served::of(spec)?)))
            .collect::<std::io::Result<BTreeMap<_, _>>>()?;
        let path = socket_path(&source.state_dir);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let reloader = Arc::new(Reloader {
            host,
            served: Mutex::new(served),
            source,
            busy: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let reloader = reloader.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, &reloader).await;
                });
            }
        });
        Ok(ControlServer { path, task })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(crate) struct Reloader {
    pub(crate) host: Arc<Host>,
    pub(crate) served: Mutex<BTreeMap<FunctionName, Served>>,
    source: DeployedSource,
    /// One reload (or shift set-up) at a time: two callers must not interleave their comparisons.
    pub(crate) busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub(crate) fn state_dir(&self) -> &Path {
        &self.source.state_dir
    }

    fn serving(&self) -> BTreeMap<FunctionName, Serving> {
        let served = self.served.lock().unwrap().clone();
        served
            .into_iter()
            .map(|(name, s)| {
                let canary = self
                    .host
                    .canary_split(name)
                    .map(|(sha, percent)| (sha.unwrap_or_default(), percent));
                let serving = Serving {
                    binary_sha256: s.binary_sha256,
                    canary,
                };
                (name, serving)
            })
            .collect()
    }
}

async fn answer(stream: UnixStream, reloader: &Reloader) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut request = String::new();
    read.read_line(&mut request).await?;
    let reply = match request.trim().split_once(' ') {
        _ if request.trim() == "reload" => match reloader.reload().await {
            Ok(report) => Reply::Reloaded(report),
            Err(message) => Reply::Failed { message },
        },
        _ if request.trim() == "status" => Reply::Serving {
            functions: reloader.serving(),
        },
        Some(("shift", body)) => {
            return crate::canary::serve_shift(reloader, body, read, write).await;
        }
        _ => Reply::Failed {
            message: format!(
                "unknown request `{}` (expected `reload`, `status` or `shift <json>`)",
                request.trim()
            ),
        },
    };
    let mut line = serde_json::to_vec(&reply).expect("a reply serializes");
    line.push(b'\n');
    write.write_all(&line).await
}

impl Reloader {
    async fn reload(&self) -> Result<ReloadReport, String> {
        let _one = self.busy.lock().await;
        let src = &self.source;
        let cfg = crate::EngineConfig::from_deployed(
            &src.plan,
            &src.endpoint_url,
            &src.state_dir,
            &src.dist,
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut next = BTreeMap::new();
        for spec in &cfg.functions {
            let now = Served::of(spec).map_err(|e| format!("{}: {e}", spec.binary.display()))?;
            next.insert(spec.name, now);
        }
        let mut served = self.served.lock().unwrap();
        let mut report = ReloadReport {
            reloaded: Vec::new(),
            unchanged: Vec::new(),
        };
        for (name, now) in &next {
            match served.get(name) {
                Some(before) if before.settings != now.settings => {
                    return Err(format!(
                        "the configuration of `{name}` changed (environment, memory, timeout or concurrency), not only its code; restart the engine"
                    ));
                }
                Some(before) if before.binary_sha256 == now.binary_sha256 => {
                    report.unchanged.push(*name)
                }
                Some(_) => report.reloaded.push(*name),
                None => {
                    return Err(format!(
                        "function `{name}` is deployed but not hosted; restart the engine"
                    ));
                }
            }
        }
        for name in &report.reloaded {
            self.host.recycle_to(*name, Some(next[name].binary.clone()));
        }
        // The deployed release is what runs now: a shift that was trying it is over.
        for name in next.keys() {
            self.host.end_canary(*name);
        }
        let keep: Vec<&str> = next.values().map(|s| s.binary_sha256.as_str()).collect();
        crate::deployed::prune_pinned(&src.state_dir, &keep);
        *served = next;
        Ok(report)
    }
}
