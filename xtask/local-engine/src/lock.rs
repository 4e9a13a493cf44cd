//! One command at a time per environment: a file lock in the environment's state directory.
//!
//! Why: two commands that change one environment at once destroy each other. Two `deploy`s started together
//! both saw the other's moto starting up (recorded in the pid file, not yet listening), took it for a hung one
//! and stopped it; `dev` in one terminal and `deploy` in another did the same. Every command that changes an
//! environment (`deploy`, `deploy --hotswap`, `dev` while it deploys or swaps, `teardown`, `replay --force`,
//! `promote`) and every command about to start the local endpoint holds this lock, so there is never a
//! concurrent starter or stopper: what a pid file names is either running and finished starting, or hung.
//!
//! How: `flock(2)` (through `std::fs::File::lock`) on `<state>/lock`. The kernel releases it when the holder's
//! file is closed, also when the process dies (even by SIGKILL), so a crashed command never leaves the
//! environment locked; the descriptor is close-on-exec, so the engine and the endpoint a command starts do not
//! inherit it. The file also holds a small JSON record of the holder (command, pid, start time) so that a
//! command that has to wait can say for whom. The record is informative only: the lock is the kernel's.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often a waiting command looks again (it also re-reads the holder, to say when another one took over).
const POLL: Duration = Duration::from_millis(100);

/// Who holds an environment's lock, as its holder recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The command line after `cargo xtask` (`deploy --env local --yes`, `dev`, `teardown --yes`, ...).
    pub command: String,
    pub pid: u32,
    /// When the holder took the lock (local time, RFC 3339).
    pub since: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = chrono::DateTime::parse_from_rfc3339(&self.since)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|_| self.since.clone());
        write!(
            f,
            "`cargo xtask {}` (pid {}, since {since})",
            self.command, self.pid
        )
    }
}

/// Errors of [`EnvLock`].
///
/// ### Handling
/// `Busy` (only when not waiting): another command changes the environment; `cargo xtask` exits 3 (refused by
/// a safety guard) and names it. `Io`: the state directory cannot be written; exit 1 with the path.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another command is changing this environment: {}; nothing was done (lock {}); wait for it to finish, or run this command without --no-wait to wait for it",
        holder.as_ref().map(ToString::to_string).unwrap_or_else(|| "a command that has not yet said which".into()),
        path.display()
    )]
    Busy {
        path: PathBuf,
        holder: Option<Holder>,
    },
    #[error("cannot lock {}: {source}; check that the state directory is writable", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock of one environment; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct EnvLock {
    file: File,
    state_dir: PathBuf,
}

impl EnvLock {
    /// `<state_dir>/lock`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("lock")
    }

    /// Takes the lock if it is free and records `command` as its holder; `None` when another holds it.
    pub fn try_acquire(state_dir: &Path, command: &str) -> Result<Option<EnvLock>, LockError> {
        let path = Self::path(state_dir);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = Holder {
            command: command.to_string(),
            pid: std::process::id(),
            since: chrono::Local::now().to_rfc3339(),
        };
        let json = serde_json::to_vec(&holder).expect("a holder record serializes");
        file.set_len(0).map_err(io)?;
        file.write_all_at(&json, 0).map_err(io)?;
        Ok(Some(EnvLock {
            file,
            state_dir: state_dir.to_path_buf(),
        }))
    }

    /// Takes the lock, waiting for the holder to finish unless `wait` is false (then [`LockError::Busy`]).
    /// While waiting, `on_wait` is called with each holder seen (once per holder, so a caller prints one line
    /// per command it waits for). Never asks anything: it runs the same without a terminal (CI).
    pub async fn acquire(
        state_dir: &Path,
        command: &str,
        wait: bool,
        mut on_wait: impl FnMut(&Holder),
    ) -> Result<EnvLock, LockError> {
        let mut shown: Option<Holder> = None;
        loop {
            if let Some(lock) = Self::try_acquire(state_dir, command)? {
                return Ok(lock);
            }
            let holder = Self::holder(state_dir);
            if !wait {
                return Err(LockError::Busy {
                    path: Self::path(state_dir),
                    holder,
                });
            }
            // The record is written just after the lock is taken; an empty one is read again next time.
            if let Some(h) = holder
                && shown.as_ref() != Some(&h)
            {
                on_wait(&h);
                shown = Some(h);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The holder recorded in `<state_dir>/lock`, if the file holds a record. Meaningful while the lock is
    /// held; a record left by a holder that died is overwritten by the next one.
    pub fn holder(state_dir: &Path) -> Option<Holder> {
        let bytes = std::fs::read(Self::path(state_dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The state directory this lock covers.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Whether this lock covers `state_dir` (the same directory, however it is spelled).
    pub fn covers(&self, state_dir: &Path) -> bool {
        match (self.state_dir.canonicalize(), state_dir.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.state_dir == state_dir,
        }
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        // Clear the record first, so nobody reads this command as the holder once it is gone; closing the file
        // then releases the lock.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_or_is_refused_and_learns_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = EnvLock::try_acquire(dir.path(), "deploy")
            .unwrap()
            .expect("a free lock is taken");
        let holder = EnvLock::holder(dir.path()).expect("the holder is recorded");
        assert_eq!(
            (holder.command.as_str(), holder.pid),
            ("deploy", std::process::id())
        );
        assert!(holder.to_string().starts_with("`cargo xtask deploy` (pid "));

        // flock(2) locks belong to the open file, so a second open in this process is a second holder.
        assert!(
            EnvLock::try_acquire(dir.path(), "teardown")
                .unwrap()
                .is_none()
        );
        match EnvLock::acquire(dir.path(), "teardown", false, |_| {}).await {
            Err(LockError::Busy { holder, .. }) => assert_eq!(holder, Some(holder_of(&first))),
            other => panic!("--no-wait is refused while the lock is held: {other:?}"),
        }

        // A waiter names the holder once, and takes the lock as soon as it is released.
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let mut seen_tx = Some(seen_tx);
        let path = dir.path().to_path_buf();
        let waiter = tokio::spawn(async move {
            EnvLock::acquire(&path, "teardown", true, move |h| {
                if let Some(tx) = seen_tx.take() {
                    let _ = tx.send(h.clone());
                }
            })
            .await
        });
        let named = seen_rx.await.expect("the waiter names the holder");
        assert_eq!(named.command, "deploy");
        drop(first);
        let second = waiter.await.unwrap().expect("the waiter gets the lock");
        assert_eq!(
            EnvLock::holder(dir.path()).map(|h| h.command),
            Some("teardown".to_string())
        );
        assert!(second.covers(dir.path()));
    }

    fn holder_of(lock: &EnvLock) -> Holder {
        EnvLock::holder(lock.state_dir()).unwrap()
    }

    #[test]
    fn the_lock_goes_with_its_process() {
        // A child that takes the lock and is killed leaves it free: the kernel releases it.
        let dir = tempfile::tempdir().unwrap();
        let path = EnvLock::path(dir.path());
        std::fs::write(&path, b"").unwrap();
        // util-linux's flock(1) takes the same kind of lock as this module, from another process; `--no-fork`
        // makes it exec `sleep` itself, so the process killed below is the one holding the lock.
        let mut child = std::process::Command::new("flock")
            .arg("--no-fork")
            .arg(&path)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock(1) (util-linux) runs");
        // Wait until the child holds it (an observable condition, not a delay).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while EnvLock::try_acquire(dir.path(), "probe").unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "flock took the lock");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            EnvLock::try_acquire(dir.path(), "deploy")
                .unwrap()
                .is_some()
        );
    }
}
