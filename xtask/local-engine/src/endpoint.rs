//! The local AWS endpoint: a pinned moto server, installed into a project-local virtual environment on
//! first use and run on 127.0.0.1.
//!
//! Two lifetimes exist because two kinds of caller exist:
//! - [`Endpoint::start_fresh`] gives a test its own moto on a free port; the process dies with the handle,
//!   so every test run starts from empty state (moto keeps everything in memory and grows over a long run).
//! - [`Endpoint::ensure_running`] is what `cargo xtask deploy` uses: a background moto whose pid and log live
//!   under the state directory, reused by later commands until [`Endpoint::stop_background`].
//!
//! The install is guarded by a file lock so that test binaries running in parallel install it once.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The moto version this project is tested against (see DEVELOPERS.md for its known gaps).
pub const MOTO_VERSION: &str = "5.2.5";

/// The region every local resource lives in.
pub const LOCAL_REGION: &str = "us-east-1";

/// The account id moto reports for every local resource.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// How long to wait for a freshly started moto to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the local endpoint. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// python3 or its venv module is missing: install them (Debian: `apt-get install python3 python3-venv`).
    #[error(
        "cannot create the python virtual environment at {dir}: {detail}; install python3 with its venv module (Debian: apt-get install python3-venv) and retry"
    )]
    Venv { dir: PathBuf, detail: String },
    /// pip could not install moto: usually no access to the package index.
    #[error(
        "installing moto[server]=={MOTO_VERSION} into {dir} failed: {detail}; check access to the Python package index and retry (log: {log})"
    )]
    Install {
        dir: PathBuf,
        detail: String,
        log: PathBuf,
    },
    /// The server did not answer in time; its log says why.
    #[error("the local AWS endpoint did not answer on {url} within {secs} s; see its log at {log}")]
    NotAnswering {
        url: String,
        secs: u64,
        log: PathBuf,
    },
    /// The configured port is taken by something that is not a moto server.
    #[error(
        "port {port} on 127.0.0.1 is in use by another program; free it or set local.endpoint_port in the config"
    )]
    PortTaken { port: u16 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EndpointError {
    let context = context.into();
    move |source| EndpointError::Io { context, source }
}

/// A running local AWS endpoint.
#[derive(Debug)]
pub struct Endpoint {
    port: u16,
    /// Owned child process (fresh endpoints only): killed on drop.
    child: Option<Child>,
    log: PathBuf,
}

impl Endpoint {
    /// Starts a new, empty moto on a free port, owned by the returned handle (killed on drop).
    /// Its log goes to `<state_dir>/moto-<port>.log`.
    pub async fn start_fresh(state_dir: &Path) -> Result<Endpoint, EndpointError> {
        let moto = ensure_installed().await?;
        fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
        // Picking a free port and binding it are two steps; parallel tests (threads and processes) could pick the
        // same port in between and end up sharing one moto. A lock held until our server answers closes that window,
        // and a server that died right after start (port taken by something else) is retried on another port.
        let _guard = port_lock().await?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let log = state_dir.join(format!("moto-{port}.log"));
            let child = spawn_moto(&moto, port, &log, false)?;
            let mut endpoint = Endpoint {
                port,
                child: Some(child),
                log,
            };
            match endpoint.wait_until_answering().await {
                Ok(()) if endpoint.child_alive() => return Ok(endpoint),
                Ok(()) => endpoint.kill_child(),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(EndpointError::PortTaken { port: 0 }))
    }

    /// True while the owned server process has not exited.
    fn child_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Returns the background endpoint of this state directory, starting it on `port` if it is not running.
    /// The process outlives this call; stop it with [`Endpoint::stop_background`].
    /// Returns `(endpoint, started)`: `started` is true when a new (empty) moto had to be started.
    pub async fn ensure_running(
        state_dir: &Path,
        port: u16,
    ) -> Result<(Endpoint, bool), EndpointError> {
        fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
        let log = state_dir.join("endpoint.log");
        let url = url_of(port);
        if answers_as_moto(&url).await {
            return Ok((
                Endpoint {
                    port,
                    child: None,
                    log,
                },
                false,
            ));
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(EndpointError::PortTaken { port });
        }
        let moto = ensure_installed().await?;
        let child = spawn_moto(&moto, port, &log, true)?;
        fs::write(state_dir.join("endpoint.pid"), child.id().to_string())
            .map_err(io("writing the endpoint pid file"))?;
        // The child is detached (its own session); dropping the handle does not stop it.
        drop(child);
        let endpoint = Endpoint {
            port,
            child: None,
            log,
        };
        endpoint.wait_until_answering().await?;
        Ok((endpoint, true))
    }

    /// Stops the background endpoint of this state directory, if any. Returns whether one was running.
    pub fn stop_background(state_dir: &Path) -> Result<bool, EndpointError> {
        let pid_file = state_dir.join("endpoint.pid");
        let Ok(pid) = fs::read_to_string(&pid_file) else {
            return Ok(false);
        };
        let pid = pid.trim().to_string();
        let stopped = terminate(&pid);
        let _ = fs::remove_file(&pid_file);
        Ok(stopped)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        url_of(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// An SDK config pointed at this endpoint: region `us-east-1`, dummy static credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.url()).await
    }

    /// Stops an owned endpoint now (same as dropping it).
    pub fn stop(mut self) {
        self.kill_child();
    }

    async fn wait_until_answering(&self) -> Result<(), EndpointError> {
        let url = self.url();
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if answers_as_moto(&url).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EndpointError::NotAnswering {
            url,
            secs: START_TIMEOUT.as_secs(),
            log: self.log.clone(),
        })
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.kill_child();
    }
}

/// An SDK config pointed at a local endpoint URL, with the local region and dummy credentials.
pub async fn sdk_config_for(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-endpoint",
        ))
        .load()
        .await
}

/// The project-local directory of installed tools and state: `$XTASK_STATE_DIR`'s parent conventions aside,
/// this is `<repo>/.local`.
pub fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local")
}

/// The virtual environment holding moto: `$XTASK_VENV_DIR` or `<repo>/.local/venv`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("XTASK_VENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| local_dir().join("venv"))
}

/// Installs the pinned moto server into the virtual environment (once; later calls only check) and
/// returns the path of its `moto_server` executable.
pub async fn ensure_installed() -> Result<PathBuf, EndpointError> {
    let venv = venv_dir();
    tokio::task::spawn_blocking(move || install_blocking(&venv))
        .await
        .map_err(|e| EndpointError::Io {
            context: "installing moto".into(),
            source: std::io::Error::other(e),
        })?
}

fn install_blocking(venv: &Path) -> Result<PathBuf, EndpointError> {
    let moto = venv.join("bin/moto_server");
    let stamp = venv.join(format!(".moto-{MOTO_VERSION}"));
    if moto.exists() && stamp.exists() {
        return Ok(moto);
    }
    let parent = venv.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    // Several test binaries may get here at once: the first installs, the others wait for the lock.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(parent.join(".venv.lock"))
        .map_err(io("opening the install lock"))?;
    lock.lock().map_err(io("taking the install lock"))?;
    if moto.exists() && stamp.exists() {
        return Ok(moto);
    }
    eprintln!(
        "local endpoint: installing moto[server]=={MOTO_VERSION} into {} (once) ...",
        venv.display()
    );
    let started = Instant::now();
    if !venv.join("bin/pip").exists() {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .map_err(|e| EndpointError::Venv {
                dir: venv.to_path_buf(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(EndpointError::Venv {
                dir: venv.to_path_buf(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    let log = parent.join("venv-install.log");
    let log_file = File::create(&log).map_err(io("creating the install log"))?;
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "--quiet"])
        .arg(format!("moto[server]=={MOTO_VERSION}"))
        .stdout(log_file.try_clone().map_err(io("install log"))?)
        .stderr(log_file)
        .status()
        .map_err(|e| EndpointError::Install {
            dir: venv.to_path_buf(),
            detail: e.to_string(),
            log: log.clone(),
        })?;
    if !status.success() || !moto.exists() {
        let detail = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .last()
            .unwrap_or("pip failed")
            .to_string();
        return Err(EndpointError::Install {
            dir: venv.to_path_buf(),
            detail,
            log,
        });
    }
    fs::write(&stamp, MOTO_VERSION).map_err(io("writing the install stamp"))?;
    eprintln!(
        "local endpoint: moto installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(moto)
}

/// Runs `moto_server`'s `main` with every public method of moto's DynamoDB backend behind one lock.
///
/// Why: moto's TransactWriteItems snapshots each table it touches, applies the items one by one, and on a
/// failed condition restores the snapshot. Its server is threaded, so a transaction that fails while
/// another request commits restores a table state from before that commit: an acknowledged write vanishes
/// (measured: concurrent appends to one aggregate lost events). DynamoDB isolates transactions; serialising
/// the backend's operations gives the local endpoint the same guarantee.
const MOTO_LAUNCHER: &str = r#"
import functools, sys, threading, types
from moto.dynamodb.models import DynamoDBBackend
lock = threading.RLock()
def serialised(f):
    @functools.wraps(f)
    def locked(*args, **kwargs):
        with lock:
            return f(*args, **kwargs)
    return locked
for name, f in list(vars(DynamoDBBackend).items()):
    if isinstance(f, types.FunctionType) and not name.startswith("_"):
        setattr(DynamoDBBackend, name, serialised(f))
from moto.server import main
main(sys.argv[1:])
"#;

fn spawn_moto(moto: &Path, port: u16, log: &Path, detached: bool) -> Result<Child, EndpointError> {
    let out = File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out.try_clone().map_err(io("cloning the log handle"))?;
    // The venv's python next to `moto_server`, running moto's own `main` (see `MOTO_LAUNCHER`).
    let python = moto.with_file_name("python");
    let mut cmd = if detached {
        // `setsid` puts the server in its own session so it survives the deploy command that started it
        // and is not killed by a terminal's Ctrl-C aimed at that command.
        let mut c = Command::new("setsid");
        c.arg(&python);
        c
    } else {
        Command::new(&python)
    };
    cmd.args([
        "-c",
        MOTO_LAUNCHER,
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(err)
    // moto's Lambda backend would try to reach Docker; nothing here uses it.
    .env("MOTO_DOCKER_NETWORK_MODE", "none");
    cmd.spawn()
        .map_err(io(format!("starting {}", moto.display())))
}

fn url_of(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// True when `url` answers moto's own API (so a foreign server on the port is not mistaken for it).
/// The dashboard (`/moto-api/`) is used, not `/moto-api/data.json`: once Lambda functions exist, moto
/// answers data.json with HTTP 500 (it tries to reach Docker while dumping them).
async fn answers_as_moto(url: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build();
    let Ok(client) = client else { return false };
    match client.get(format!("{url}/moto-api/")).send().await {
        Ok(resp) => resp.status().is_success(),
        Err(_) => false,
    }
}

/// The cross-process lock that serializes "pick a free port, start moto on it" (see [`Endpoint::start_fresh`]).
async fn port_lock() -> Result<File, EndpointError> {
    let dir = venv_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(local_dir);
    fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join(".ports.lock");
    tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| EndpointError::Io {
        context: "taking the port lock".into(),
        source: std::io::Error::other(e),
    })?
    .map_err(io("taking the port lock"))
}

/// Asks the OS for a free port on 127.0.0.1.
pub fn free_port() -> Result<u16, EndpointError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port();
    Ok(port)
}

/// Sends SIGTERM, waits up to 5 s, then SIGKILL. Returns whether the process existed.
fn terminate(pid: &str) -> bool {
    let alive = |pid: &str| {
        Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !alive(pid) {
        return false;
    }
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-KILL", pid]).status();
    true
}
