//! The background engine: a detached `serve` process with a pid file, started by `deploy` and stopped by
//! `teardown`.
//!
//! Why a separate process: `cargo xtask deploy` must return while the API keeps serving. The engine runs in
//! its own session (`setsid`) so a terminal's Ctrl-C aimed at the deploy does not reach it, writes its
//! output to a log under the state directory, and kills its function processes when it gets SIGTERM.
//! Stopping escalates to SIGKILL of the whole session's process group so nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    #[error("the local engine did not answer on {url} within {secs} s; see its log at {log}")]
    NotReady {
        url: String,
        secs: u64,
        log: PathBuf,
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

/// Starts `exe args...` detached, in its own session, with stdout/stderr appended to the engine log, and
/// records its pid. Returns the pid.
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
    // `setsid` (util-linux) execs the program as the leader of a new session, so its pid is the engine's
    // pid and its process group holds the engine and every function process it starts.
    let mut cmd = Command::new("setsid");
    cmd.arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    let child = cmd.spawn().map_err(|source| DaemonError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    crate::state::write_atomic(&paths.engine_pid(), pid.to_string().as_bytes()).map_err(
        |source| DaemonError::State {
            path: paths.engine_pid(),
            source,
        },
    )?;
    // The child is reaped by nobody if we exit first; that is fine for a daemon (init adopts it). While we
    // live, a thread reaps it so a crash during start-up shows as "exited" rather than a zombie.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// The pid of the background engine, if its pid file names a live process.
pub fn running_pid(paths: &StatePaths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(paths.engine_pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_alive(pid).then_some(pid)
}

/// Whether a process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

/// Stops the background engine: SIGTERM, wait up to `grace`, then SIGKILL to its whole process group.
/// Returns whether an engine was running.
pub fn stop(paths: &StatePaths, grace: Duration) -> bool {
    let Some(pid) = running_pid(paths) else {
        let _ = std::fs::remove_file(paths.engine_pid());
        return false;
    };
    signal(&pid.to_string(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && is_alive(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The engine kills its function processes on SIGTERM; if it did not exit in time, kill its process
    // group (it is a session leader, so the group id is its pid) to leave nothing behind.
    signal(&format!("-{pid}"), "KILL");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && is_alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(paths.engine_pid());
    true
}

/// Pids of the processes in a process group (the engine's functions, for tests and `doctor`).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .is_some_and(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
                        .is_some_and(|f| {
                            f.first() != Some(&"Z")
                                && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                        })
                })
        })
        .collect()
}

fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".to_string(), target.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
