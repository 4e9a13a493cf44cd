//! The local AWS endpoint: a pinned, patched moto server, installed into a project-local virtual environment
//! on first use and run on 127.0.0.1.
//!
//! Two lifetimes exist because two kinds of caller exist:
//! - [`Endpoint::start_fresh`] gives a test its own moto on a free port; the process dies with the handle,
//!   so every test run starts from empty state (moto keeps everything in memory and grows over a long run).
//! - [`Endpoint::ensure_running`] is what `cargo xtask deploy` uses: a background moto whose pid file and log
//!   live under the state directory, reused by later commands until [`Endpoint::stop_background`];
//!   [`Endpoint::running`] finds it without ever starting one (`status`, `teardown`).
//!
//! Either way the endpoint is ready only when moto answers *from the process just started* (it holds the
//! listening socket), so another program on the port is never taken for it.
//!
//! The install is guarded by a file lock so that test binaries running in parallel install it once. It comes from
//! `moto-requirements.txt` (every package pinned and hashed, `pip install --require-hashes`), and the venv's stamp
//! names that file's digest, so a changed file reinstalls the venv from scratch.
//!
//! moto runs patched ([`MOTO_PATCH`], `moto_patch.py`: transactions isolated, rollback snapshots per item). The
//! patch checks every moto internal it reads or replaces before the server starts, and a moto that differs is
//! refused with [`EndpointError::MotoIncompatible`], naming each internal, instead of running wrong.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::process::{self, Recorded};

/// The moto version this project is tested against: `moto-requirements.txt` pins it and `moto_patch.py` checks
/// it (a unit test keeps the three equal).
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
    /// moto could not be installed: python3 or its venv module is missing, no access to the package index, or
    /// a downloaded file whose hash is not the one `moto-requirements.txt` records (pip refuses it). The error
    /// says which, and what to do.
    #[error(transparent)]
    Install(deployer::pyvenv::VenvError),
    /// The server did not answer in time; its log says why.
    #[error("the local AWS endpoint did not answer on {url} within {secs} s; see its log at {log}")]
    NotAnswering {
        url: String,
        secs: u64,
        log: PathBuf,
    },
    /// The configured port is taken by a program this tool did not start (possibly a moto of the user's).
    #[error(
        "port {port} on 127.0.0.1 is in use by {holder}; free it or set local.endpoint_port in the config"
    )]
    PortTaken { port: u16, holder: String },
    /// The server this tool started exited before it answered; its log says why.
    #[error("the local AWS endpoint exited during start-up ({status}); see its log at {log}")]
    Exited { status: String, log: PathBuf },
    /// The installed moto lacks an internal the endpoint's patch reads or replaces (`moto_patch.py` checks each
    /// before the server starts): the venv is not the pinned one, or moto was upgraded without the patch.
    /// Deleting the venv reinstalls the pinned moto; an upgrade needs the patch and its checks updated.
    #[error("the local AWS endpoint refused to start: {detail}\n(log: {log})")]
    MotoIncompatible { detail: String, log: PathBuf },
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
            let mut child = spawn_moto(&moto, port, &log, false)?;
            let pid = child.id();
            let ready =
                wait_until_ours(port, &log, &mut child, |p| process::listens_on(pid, p)).await;
            let mut endpoint = Endpoint {
                port,
                child: Some(child),
                log,
            };
            match ready {
                Ok(()) => return Ok(endpoint),
                Err(e) => {
                    endpoint.kill_child();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(EndpointError::PortTaken {
            port: 0,
            holder: "other programs".into(),
        }))
    }

    /// Returns the background endpoint of this state directory, starting it on `port` if it is not running.
    /// The process outlives this call; stop it with [`Endpoint::stop_background`].
    /// Returns `(endpoint, started)`: `started` is true when a new (empty) moto had to be started.
    ///
    /// A moto is reused only when the pid file names the process this tool started and that process holds
    /// the port: another program (even another moto) answering there is never mistaken for ours.
    ///
    /// The caller holds the environment's lock (`lock`, for this state directory): no other command starts or
    /// stops this endpoint meanwhile. That is what makes replacing a recorded moto that does not serve the
    /// port safe: it is not one another command is starting (that command would hold the lock), but ours,
    /// hung or left on another port. Without the lock, two deploys started together each took the other's
    /// starting moto for a hung one and stopped it.
    pub async fn ensure_running(
        state_dir: &Path,
        port: u16,
        lock: &crate::lock::EnvLock,
    ) -> Result<(Endpoint, bool), EndpointError> {
        assert!(
            lock.covers(state_dir),
            "ensure_running({}) needs that state directory's lock, not {}'s",
            state_dir.display(),
            lock.state_dir().display()
        );
        fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
        if let Some(endpoint) = Endpoint::running(state_dir, port).await {
            return Ok((endpoint, false));
        }
        let log = state_dir.join("endpoint.log");
        let pid_file = pid_file(state_dir);
        match process::read_pid_file(&pid_file) {
            Recorded::Running(record) => {
                // Ours (same pid, start time and boot), finished starting (its starter held the lock we now
                // hold), yet not serving this port: local.endpoint_port changed, or it hangs. Replace it.
                eprintln!(
                    "local endpoint: the moto this tool started (pid {}) does not serve port {port}; stopping it",
                    record.pid
                );
                process::stop(&pid_file, Duration::from_secs(5), true).await;
            }
            Recorded::Stale { .. } => {
                let stopped = process::stop(&pid_file, Duration::from_secs(5), true).await;
                eprintln!("local endpoint: {stopped}");
            }
            Recorded::Exited(_) => {
                let _ = fs::remove_file(&pid_file);
            }
            Recorded::Absent => {}
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            let holder = if answers_as_moto(&url_of(port)).await {
                format!(
                    "a moto server this tool did not start (no pid file in {} names it)",
                    state_dir.display()
                )
            } else {
                "another program".to_string()
            };
            return Err(EndpointError::PortTaken { port, holder });
        }
        let moto = ensure_installed().await?;
        let mut child = spawn_moto(&moto, port, &log, true)?;
        let pid = child.id();
        process::write_pid_file(&pid_file, pid, &moto.display().to_string())
            .map_err(io("writing the endpoint pid file"))?;
        // The server leads its own process group; a listener in that group is ours.
        let ready = wait_until_ours(port, &log, &mut child, |p| {
            process::group_listens_on(pid, p)
        })
        .await;
        if let Err(e) = ready {
            process::stop(&pid_file, Duration::from_secs(2), true).await;
            // Reap it (it is dead by now) off the runtime as well.
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            return Err(e);
        }
        // The child is detached (its own process group); dropping the handle does not stop it.
        drop(child);
        Ok((
            Endpoint {
                port,
                child: None,
                log,
            },
            true,
        ))
    }

    /// The background endpoint of this state directory, if the process its pid file names runs, holds
    /// `port` and answers as moto. Never starts anything (`status` and `teardown` use it).
    ///
    /// An endpoint recorded in the state directory by [`Endpoint::adopt`] for `port` counts too.
    pub async fn running(state_dir: &Path, port: u16) -> Option<Endpoint> {
        // The background endpoint leads its own process group; an adopted one is a plain child of its owner.
        for (file, holds) in [
            (
                pid_file(state_dir),
                process::group_listens_on as fn(u32, u16) -> bool,
            ),
            (adopted_pid_file(state_dir, port), process::listens_on),
        ] {
            let Recorded::Running(record) = process::read_pid_file(&file) else {
                continue;
            };
            if holds(record.pid, port) && answers_as_moto(&url_of(port)).await {
                return Some(Endpoint {
                    port,
                    child: None,
                    log: state_dir.join("endpoint.log"),
                });
            }
        }
        None
    }

    /// Records this endpoint, a moto this tool started with [`Endpoint::start_fresh`], in `state_dir` (one file
    /// per port), so commands run with that state directory reuse it on its port instead of refusing it as
    /// another program's. Its owner still stops it (on drop); nothing else ever signals it. Test harnesses use
    /// this to point the CLI at endpoints whose data they inspect, also from several environments at once.
    pub fn adopt(&self, state_dir: &Path) -> Result<(), EndpointError> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
        let file = adopted_pid_file(state_dir, self.port);
        process::write_pid_file(&file, child.id(), "moto_server (adopted)")
            .map(|_| ())
            .map_err(io("writing the adopted endpoint's pid file"))
    }

    /// Stops the background endpoint of this state directory, if its pid file names the process this tool
    /// started; a stale pid file is removed without signalling anything (see [`process::stop`]).
    pub async fn stop_background(state_dir: &Path) -> process::Stopped {
        process::stop(&pid_file(state_dir), Duration::from_secs(5), true).await
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

    /// The endpoint's pid file in a state directory.
    pub fn pid_file(state_dir: &Path) -> PathBuf {
        pid_file(state_dir)
    }

    /// Stops an owned endpoint now (same as dropping it).
    pub fn stop(mut self) {
        self.kill_child();
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

/// An SDK config pointed at a local endpoint URL, with the default local region and dummy credentials.
pub async fn sdk_config_for(url: &str) -> SdkConfig {
    sdk_config_in(url, LOCAL_REGION).await
}

/// An SDK config pointed at a local endpoint URL in `region` (the plan's: moto keeps each region's
/// resources apart, so the engine must read the region the stack was deployed to), with dummy credentials.
pub async fn sdk_config_in(url: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(region.to_string()))
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

/// The project-local directory of installed tools and state, `<repo>/.local` of the checkout the tool runs
/// in (resolved at run time, see [`crate::state::repo_root`]).
pub fn local_dir() -> PathBuf {
    crate::state::repo_root().join(".local")
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
    tokio::task::spawn_blocking(install_blocking)
        .await
        .map_err(|e| EndpointError::Io {
            context: "installing moto".into(),
            source: std::io::Error::other(e),
        })?
}

/// moto and every package it loads, each pinned to one version with the sha256 of each of its files: pip
/// installs them with `--require-hashes`, so a file that differs from the one recorded is refused instead of
/// run. Regenerate it with pip-compile from `moto-requirements.in` (the command is in its header).
const MOTO_REQUIREMENTS: &str = include_str!("../moto-requirements.txt");

/// moto as a [`deployer::pyvenv::PythonTool`]: [`MOTO_REQUIREMENTS`] installed with `--require-hashes` into
/// [`venv_dir`]. A changed requirements file makes every existing venv stale, and it is installed again from scratch.
pub fn moto_tool() -> deployer::pyvenv::PythonTool {
    deployer::pyvenv::PythonTool {
        name: format!("moto[server]=={MOTO_VERSION}"),
        source: "xtask/local-engine/moto-requirements.txt, every package pinned and hashed".into(),
        venv: venv_dir(),
        requirements: MOTO_REQUIREMENTS.into(),
        require_hashes: true,
        executable: "moto_server".into(),
    }
}

/// Whether the venv holds an install from the current `moto-requirements.txt` (`doctor` reports a stale one,
/// which the next start reinstalls).
pub fn install_is_current() -> bool {
    moto_tool().is_current()
}

fn install_blocking() -> Result<PathBuf, EndpointError> {
    moto_tool()
        .ensure(&mut |line| eprintln!("local endpoint: {line}"))
        .map_err(EndpointError::Install)
}

/// The local endpoint's changes to moto (transactions isolated by one lock over the DynamoDB and DynamoDB Streams
/// APIs, and a rollback snapshot of the named items instead of whole tables), with the checks that the moto
/// internals they read and replace are still what they expect. Run with the venv's python in place of
/// `moto_server`; its header says why each change exists.
const MOTO_PATCH: &str = include_str!("moto_patch.py");

/// The exit status of a moto start the patch refused (`EXIT_INCOMPATIBLE` in `moto_patch.py`).
const PATCH_EXIT_INCOMPATIBLE: i32 = 3;

/// The lines of its log that explain a refused start start with this.
const PATCH_LOG_PREFIX: &str = "moto_patch:";

fn spawn_moto(moto: &Path, port: u16, log: &Path, detached: bool) -> Result<Child, EndpointError> {
    let mut cmd = moto_command(moto, port, log)?;
    if detached {
        // Its own process group: it survives the deploy command that started it and a terminal's Ctrl-C
        // aimed at that command does not reach it.
        process::detach(&mut cmd);
    }
    cmd.spawn()
        .map_err(io(format!("starting {}", moto.display())))
}

/// The venv's python next to `moto_server`, running [`MOTO_PATCH`] (which checks moto, patches it and then runs
/// moto's own server `main`), its output to `log`.
fn moto_command(moto: &Path, port: u16, log: &Path) -> Result<Command, EndpointError> {
    let out = File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out.try_clone().map_err(io("cloning the log handle"))?;
    let mut cmd = Command::new(moto.with_file_name("python"));
    cmd.args(["-c", MOTO_PATCH, "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // moto's Lambda backend would try to reach Docker; nothing here uses it.
        .env("MOTO_DOCKER_NETWORK_MODE", "none");
    Ok(cmd)
}

/// Why a moto that exited during start-up stopped: the patch's refusal (its `moto_patch:` lines) when it
/// exited with [`PATCH_EXIT_INCOMPATIBLE`], else the exit status and the log to read.
fn exited_error(status: std::process::ExitStatus, log: &Path) -> EndpointError {
    if status.code() == Some(PATCH_EXIT_INCOMPATIBLE) {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(PATCH_LOG_PREFIX))
            .map(str::trim)
            .collect();
        if !lines.is_empty() {
            return EndpointError::MotoIncompatible {
                detail: lines.join("\n  "),
                log: log.to_path_buf(),
            };
        }
    }
    EndpointError::Exited {
        status: status.to_string(),
        log: log.to_path_buf(),
    }
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

/// The record of an endpoint adopted into a state directory for one port ([`Endpoint::adopt`]).
fn adopted_pid_file(state_dir: &Path, port: u16) -> PathBuf {
    state_dir.join(format!("endpoint-{port}.adopted.pid"))
}

fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("endpoint.pid")
}

/// Waits until the server on `port` answers as moto from a listener `ours` recognises (the child just
/// started, not another program on the port), while the child lives.
async fn wait_until_ours(
    port: u16,
    log: &Path,
    child: &mut Child,
    ours: impl Fn(u16) -> bool,
) -> Result<(), EndpointError> {
    let url = url_of(port);
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(exited_error(status, log));
        }
        if ours(port) && answers_as_moto(&url).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(EndpointError::NotAnswering {
        url,
        secs: START_TIMEOUT.as_secs(),
        log: log.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust side, the hashed requirements and the patch name one moto version and one refusal status.
    #[test]
    fn the_requirements_and_the_patch_pin_the_moto_this_crate_names() {
        assert!(
            MOTO_REQUIREMENTS
                .lines()
                .any(|l| l.trim_end_matches(" \\") == format!("moto=={MOTO_VERSION}")),
            "moto-requirements.txt pins moto=={MOTO_VERSION}"
        );
        assert!(
            MOTO_PATCH.contains(&format!("\nMOTO_VERSION = \"{MOTO_VERSION}\"\n")),
            "moto_patch.py checks moto {MOTO_VERSION}"
        );
        assert!(MOTO_PATCH.contains(&format!(
            "\nEXIT_INCOMPATIBLE = {PATCH_EXIT_INCOMPATIBLE}\n"
        )));
        // Every requirement is pinned with `==` and carries at least one hash (pip's --require-hashes insists
        // on both; this says which line is wrong before a fresh machine finds out).
        let text = MOTO_REQUIREMENTS.replace("\\\n", " ");
        let requirements: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(requirements.len() > 10, "{requirements:?}");
        for line in requirements {
            assert!(
                line.contains("==") && line.contains("--hash=sha256:"),
                "unpinned or unhashed requirement: {line}"
            );
        }
    }

    /// A moto whose internals differ from what the patch reads is refused before it serves anything, with the
    /// internal and the expected moto version named (not a start-up timeout). The difference is made for real:
    /// a `sitecustomize` module, which python imports before the patch runs, renames the stream shard's record
    /// list as a future moto might, and the patch's own checks have to find it.
    #[tokio::test]
    async fn a_moto_without_what_the_patch_reads_is_refused_with_the_internal_named() {
        let moto = ensure_installed().await.expect("moto installs");
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("sitecustomize.py"),
            "from moto.dynamodb.models.table import StreamShard\n\
             original = StreamShard.__init__\n\
             def renamed(self, *args, **kwargs):\n\
             \x20   original(self, *args, **kwargs)\n\
             \x20   self.records = self.__dict__.pop('items')\n\
             StreamShard.__init__ = renamed\n",
        )
        .unwrap();
        let port = free_port().unwrap();
        let log = dir.path().join("moto.log");
        let mut cmd = moto_command(&moto, port, &log).unwrap();
        cmd.env("PYTHONPATH", dir.path());
        let mut child = cmd.spawn().unwrap();
        let err = wait_until_ours(port, &log, &mut child, |_| false)
            .await
            .expect_err("the patch refuses this moto");
        let _ = child.kill();
        let _ = child.wait();
        let EndpointError::MotoIncompatible { detail, .. } = &err else {
            panic!("expected MotoIncompatible, got {err}");
        };
        assert!(
            detail.contains("moto.dynamodb.models.table.StreamShard.items")
                && detail.contains(&format!("written for moto {MOTO_VERSION}")),
            "{err}"
        );
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "no server was started"
        );
    }
}
