//! The background engine: a detached `serve` process with a pid file, started by `deploy` and stopped by
//! `teardown`.
//!
//! Why a separate process: `cargo xtask deploy` must return while the API keeps serving. The engine runs in
//! its own process group so a terminal's Ctrl-C aimed at the deploy does not reach it, writes its output to a
//! log under the state directory, and kills its function processes when it gets SIGTERM. Stopping escalates
//! to SIGKILL of the whole process group so nothing is left behind. Pid files, identity checks and signals
//! are [`crate::process`]'s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process;
use crate::state::StatePaths;

/// Errors of the daemon helpers.
///
/// ### Handling
/// `Spawn`: the executable could not be started (message names it). `NotReady`: the engine started but
/// never answered; its log is named so the user can read why.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot start the local engine `{exe}`: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the local engine (pid {pid}) did not answer on {url} within {secs} s{holder}; see its log at {log}:\n{tail}"
    )]
    NotReady {
        pid: u32,
        url: String,
        secs: u64,
        /// Says so when another program answered on the port meanwhile.
        holder: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the local engine exited during start-up ({status}); see its log at {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("state file {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Starts `exe args...` detached (its own process group, see [`process::detach`]), with stdout/stderr
/// appended to the engine log, and records it in the pid file. Returns the pid.
pub fn spawn_detached(paths: &StatePaths, exe: &Path, args: &[String]) -> Result<u32, DaemonError> {
    std::fs::create_dir_all(&paths.root).map_err(|source| DaemonError::State {
        path: paths.root.clone(),
        source,
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.engine_log())
        .map_err(|source| DaemonError::State {
            path: paths.engine_log(),
            source,
        })?;
    let err = log.try_clone().map_err(|source| DaemonError::State {
        path: paths.engine_log(),
        source,
    })?;
    // The engine leads a new process group: its pid is the group id, and the group holds the engine and
    // every function process it starts, so a stop can take them all.
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(err);
    let child = process::detach(&mut cmd)
        .spawn()
        .map_err(|source| DaemonError::Spawn {
            exe: exe.to_path_buf(),
            source,
        })?;
    let pid = child.id();
    // Written while the child is ours and unreaped, so the recorded start time is the engine's.
    let written = process::write_pid_file(&paths.engine_pid(), pid, &exe.display().to_string());
    // The child is reaped by nobody if we exit first; that is fine for a daemon (init adopts it). While we
    // live, a thread reaps it so a crash during start-up shows as "exited" rather than a zombie.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    written.map_err(|source| {
        let _ = process::signal_group(pid, rustix::process::Signal::KILL);
        DaemonError::State {
            path: paths.engine_pid(),
            source,
        }
    })?;
    Ok(pid)
}

/// What the engine's pid file says (running, exited, stale or absent).
pub fn recorded(paths: &StatePaths) -> process::Recorded {
    process::read_pid_file(&paths.engine_pid())
}

/// The pid of the background engine, if its pid file names the engine the tool started and it runs.
pub fn running_pid(paths: &StatePaths) -> Option<u32> {
    match recorded(paths) {
        process::Recorded::Running(r) => Some(r.pid),
        _ => None,
    }
}

/// Whether the gateway on `port` is served by the background engine this state directory records (not by
/// another program that happens to answer there).
pub fn serves_port(paths: &StatePaths, port: u16) -> Option<u32> {
    running_pid(paths).filter(|&pid| process::group_listens_on(pid, port))
}

pub use crate::process::{group_members, is_alive};

/// Stops the background engine: SIGTERM, up to `grace`, then SIGKILL of its whole process group, so no
/// function process is left behind. A pid file that does not name the engine the tool started (a reboot,
/// pid reuse) is reported and removed, and nothing is signalled.
pub async fn stop(paths: &StatePaths, grace: Duration) -> process::Stopped {
    process::stop(&paths.engine_pid(), grace, true).await
}
