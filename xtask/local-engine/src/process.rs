//! Process control for everything the tool leaves running: detached spawning, pid files that name a process
//! by more than its pid, signals, and "who listens on this port".
//!
//! Why one module: the background engine, the background endpoint and the function host each used to stop
//! processes their own way (three different calls of a `kill` binary). A pid alone does not identify a
//! process: after a reboot, or once enough processes have come and gone, the pid in a left-over pid file
//! names some other program, and signalling it would kill someone else's work. So a pid file here records the
//! pid *and* the process's start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot) and the boot id
//! (`/proc/sys/kernel/random/boot_id`); the pair is unique for the machine's lifetime, and every signal is
//! preceded by checking that the live process still has both. Signals go through `rustix` (safe wrappers over
//! `kill(2)`), never through a `kill` executable.
//!
//! Linux only: the identity and the listener checks read `/proc`. [`supported`] says whether they can work
//! here, and `cargo xtask doctor` reports it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

/// What a pid file records: enough to recognise the process the tool started, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// The boot the start time belongs to (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// What was started, for people reading the file and for messages; not used to identify the process.
    pub program: String,
}

/// What a pid file says about the process it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// There is no pid file.
    Absent,
    /// The process the tool started runs.
    Running(PidRecord),
    /// The process the tool started has exited; the file is left over.
    Exited(PidRecord),
    /// The file cannot name a process the tool started: another process now has that pid (a reboot or pid
    /// reuse), or the file is unreadable or from an older version without a start time. Never signalled.
    Stale { pid: Option<u32>, reason: String },
}

/// What [`stop`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was running (no pid file, or its process had exited).
    NotRunning,
    /// The recorded process was stopped.
    Stopped { pid: u32 },
    /// The pid file was stale; nothing was signalled and the file was removed.
    Stale {
        path: PathBuf,
        pid: Option<u32>,
        reason: String,
    },
}

impl Stopped {
    /// Whether a process of ours was running and has been stopped.
    pub fn was_running(&self) -> bool {
        matches!(self, Stopped::Stopped { .. })
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::NotRunning => f.write_str("not running"),
            Stopped::Stopped { pid } => write!(f, "stopped (pid {pid})"),
            Stopped::Stale { path, pid, reason } => write!(
                f,
                "the pid file {} was stale{}: {reason}; nothing was signalled and the file was removed",
                path.display(),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
        }
    }
}

/// Whether process identities can be checked here (Linux with `/proc`).
pub fn supported() -> bool {
    start_ticks(std::process::id()).is_some() && boot_id().is_some()
}

/// Makes `cmd` start detached from the caller: in a new process group, so a terminal's Ctrl-C (sent to the
/// foreground group) does not reach it and its group can be signalled as one; stdin should be null (the
/// caller sets stdout/stderr to a log). The process outlives the caller.
pub fn detach(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
}

/// Records `pid` (a process this tool just started and has not reaped) in `path`, atomically.
pub fn write_pid_file(path: &Path, pid: u32, program: &str) -> std::io::Result<PidRecord> {
    let record = identify(pid, program).ok_or_else(|| {
        std::io::Error::other(format!(
            "cannot read the start time of process {pid} from /proc; the local engine needs Linux with /proc"
        ))
    })?;
    let json = serde_json::to_vec_pretty(&record).expect("a pid record serializes");
    crate::state::write_atomic(path, &json)?;
    Ok(record)
}

/// The identity of a live process, or `None` when it does not exist (or `/proc` cannot tell).
pub fn identify(pid: u32, program: &str) -> Option<PidRecord> {
    Some(PidRecord {
        pid,
        start_ticks: start_ticks(pid)?,
        boot_id: boot_id()?,
        program: program.to_string(),
    })
}

/// Reads a pid file and checks the process it names against the live one.
pub fn read_pid_file(path: &Path) -> Recorded {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Recorded::Absent,
        Err(e) => {
            return Recorded::Stale {
                pid: None,
                reason: format!("it cannot be read ({e})"),
            };
        }
    };
    let record: PidRecord = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(_) => {
            let pid = String::from_utf8_lossy(&bytes).trim().parse().ok();
            return Recorded::Stale {
                pid,
                reason: "it records no start time (written by an older version of the tool, or damaged), \
                         so the process it names cannot be told apart from an unrelated one"
                    .into(),
            };
        }
    };
    check(record)
}

/// Compares a record with the live process of the same pid.
pub fn check(record: PidRecord) -> Recorded {
    let Some(boot) = boot_id() else {
        return Recorded::Stale {
            pid: Some(record.pid),
            reason: "/proc is not readable here, so the process cannot be identified".into(),
        };
    };
    if boot != record.boot_id {
        // Every process of the previous boot is gone; a live process with this pid is someone else's.
        return if is_alive(record.pid) {
            Recorded::Stale {
                pid: Some(record.pid),
                reason: format!(
                    "it was written before the last reboot; pid {} now belongs to another program",
                    record.pid
                ),
            }
        } else {
            Recorded::Exited(record)
        };
    }
    match start_ticks(record.pid) {
        Some(t) if t == record.start_ticks && is_alive(record.pid) => Recorded::Running(record),
        Some(t) if t != record.start_ticks => Recorded::Stale {
            pid: Some(record.pid),
            reason: format!(
                "pid {} now belongs to another program (started at tick {t}, not {}: the recorded `{}` has exited and its pid was reused)",
                record.pid, record.start_ticks, record.program
            ),
        },
        _ => Recorded::Exited(record),
    }
}

/// Stops the process a pid file names, if it is the one the tool started: SIGTERM, up to `grace` for it to
/// exit, then SIGKILL (of its whole process group when `group`, so its children go too). The file is removed
/// in every case. A stale file is never acted on beyond its removal.
///
/// Waiting for the process to exit blocks a thread for up to `grace`; this runs it on tokio's blocking pool,
/// so endpoint, engine and teardown code calling it never stall the runtime (the gateway and the poller run
/// on the same one). Synchronous callers use [`stop_blocking`].
pub async fn stop(path: &Path, grace: Duration, group: bool) -> Stopped {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || stop_blocking(&path, grace, group))
        .await
        .expect("stopping a process does not panic")
}

/// [`stop`] on the calling thread, for code outside an async runtime (tests, `Drop`).
pub fn stop_blocking(path: &Path, grace: Duration, group: bool) -> Stopped {
    let outcome = match read_pid_file(path) {
        Recorded::Absent | Recorded::Exited(_) => Stopped::NotRunning,
        Recorded::Stale { pid, reason } => Stopped::Stale {
            path: path.to_path_buf(),
            pid,
            reason,
        },
        Recorded::Running(record) => {
            terminate(&record, grace, group);
            Stopped::Stopped { pid: record.pid }
        }
    };
    let _ = std::fs::remove_file(path);
    outcome
}

/// SIGTERM, wait, SIGKILL, re-checking the identity before each signal.
fn terminate(record: &PidRecord, grace: Duration, group: bool) {
    let ours = || matches!(check(record.clone()), Recorded::Running(_));
    if ours() {
        let _ = signal(record.pid, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && ours() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A process group keeps its id while any member lives, and the kernel does not hand that id out as a new
    // pid meanwhile, so the group of a process we identified is still ours even after its leader exited.
    if group {
        let _ = signal_group(record.pid, Signal::KILL);
    } else if ours() {
        let _ = signal(record.pid, Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && ours() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to one process. Callers hold a child handle or a just-checked [`PidRecord`].
pub fn signal(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = to_pid(pid)?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

/// Sends `sig` to every process of the group `pgid`.
pub fn signal_group(pgid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = to_pid(pgid)?;
    rustix::process::kill_process_group(pid, sig).map_err(std::io::Error::from)
}

fn to_pid(pid: u32) -> std::io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .filter(|p| !p.is_init())
        .ok_or_else(|| std::io::Error::other(format!("refusing to signal pid {pid}")))
}

/// Whether a process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z"))
}

/// Pids of the live processes in a process group (the engine's functions, for tests and `doctor`).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| {
                f.first().is_some_and(|s| s != "Z")
                    && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// Whether a process of the group `pgid` holds the listening TCP socket on `port` (any local address).
/// This is how a readiness check knows that the server answering on a port is the one the tool started, not
/// another program that happened to be there.
pub fn group_listens_on(pgid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    !inodes.is_empty()
        && group_members(pgid)
            .into_iter()
            .any(|pid| holds_any(pid, &inodes))
}

/// Whether process `pid` itself holds the listening TCP socket on `port`.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    !inodes.is_empty() && holds_any(pid, &inodes)
}

/// Whether one of `pid`'s open files is one of the sockets `inodes`.
fn holds_any(pid: u32, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .any(|inode| inodes.contains(&inode))
}

/// Socket inodes of the TCP listeners on `port` (IPv4 and IPv6), from `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...`
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// The fields of `/proc/<pid>/stat` after the parenthesised command name: index 0 is the state (field 3),
/// index 2 the process group (field 5), index 19 the start time (field 22).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may itself contain `)` or spaces; the last `)` ends it.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep starts")
    }

    #[test]
    fn a_pid_file_names_the_process_it_was_written_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let mut child = sleeper();
        let record = write_pid_file(&path, child.id(), "sleep").unwrap();
        assert_eq!(read_pid_file(&path), Recorded::Running(record.clone()));
        let stopped = stop_blocking(&path, Duration::from_secs(5), false);
        assert_eq!(stopped, Stopped::Stopped { pid: child.id() });
        assert!(child.wait().is_ok());
        assert!(!path.exists(), "the pid file is removed");
        assert_eq!(read_pid_file(&path), Recorded::Absent);
        assert_eq!(check(record.clone()), Recorded::Exited(record));
    }

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let mut child = sleeper();
        // As after a reboot or pid reuse: the pid is live, but it is not the process that was recorded.
        let mut record = identify(child.id(), "moto_server").unwrap();
        record.start_ticks += 1;
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        let stopped = stop_blocking(&path, Duration::from_secs(1), true);
        assert!(
            matches!(stopped, Stopped::Stale { pid: Some(p), .. } if p == child.id()),
            "{stopped:?}"
        );
        assert!(stopped.to_string().contains("stale"), "{stopped}");
        assert!(matches!(child.try_wait(), Ok(None)), "the sleep survives");
        assert!(!path.exists(), "the stale file is removed");

        // Another boot's record, and an old-style bare pid, are stale too.
        record.start_ticks -= 1;
        record.boot_id = "another-boot".into();
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(matches!(read_pid_file(&path), Recorded::Stale { .. }));
        std::fs::write(&path, child.id().to_string()).unwrap();
        assert!(matches!(
            stop_blocking(&path, Duration::from_secs(1), true),
            Stopped::Stale { .. }
        ));
        assert!(matches!(child.try_wait(), Ok(None)), "the sleep survives");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_listener_of_a_port_is_found_in_its_process_group() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let my_group = stat_fields(std::process::id()).unwrap()[2]
            .parse::<u32>()
            .unwrap();
        assert!(group_listens_on(my_group, port));
        assert!(listens_on(std::process::id(), port));
        // A detached process leads its own group, and holding no socket, it is not the port's listener.
        let mut cmd = Command::new("sleep");
        cmd.arg("30").stdin(Stdio::null());
        let mut child = detach(&mut cmd).spawn().unwrap();
        assert_eq!(group_members(child.id()), vec![child.id()]);
        assert!(!group_listens_on(child.id(), port));
        drop(listener);
        assert!(!group_listens_on(my_group, port));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn refuses_to_signal_init_or_nonsense() {
        assert!(signal(1, Signal::TERM).is_err());
        assert!(signal(0, Signal::TERM).is_err());
        assert!(signal(u32::MAX, Signal::TERM).is_err());
    }
}
