//! Where the local engine keeps its state: pid file, engine log, function logs, poller checkpoints.
//!
//! One place computes every path so `serve`, `logs`, `doctor`, `teardown` and the tests agree.
//! `$XTASK_STATE_DIR` (tests point it at a temporary directory) replaces `<repo>/.local/state/<env>`.

use std::path::{Path, PathBuf};

/// The state directory of an environment: `$XTASK_STATE_DIR`, else `<repo>/.local/state/<env>`.
pub fn state_dir(env: &str) -> PathBuf {
    match std::env::var_os("XTASK_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".local").join("state").join(env),
    }
}

/// The repository root (this crate lives in `xtask/local-engine`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("local-engine lives two levels below the repository root")
        .to_path_buf()
}

/// Paths of the engine's files inside one state directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub root: PathBuf,
}

impl StatePaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StatePaths { root: root.into() }
    }
    /// Pid of the background engine (`cargo xtask serve` started by `deploy`).
    pub fn engine_pid(&self) -> PathBuf {
        self.root.join("engine.pid")
    }
    /// stdout/stderr of the background engine.
    pub fn engine_log(&self) -> PathBuf {
        self.root.join("engine.log")
    }
    /// Directory of the per-function logs (`<function>.log`).
    pub fn function_logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn function_log(&self, function: stack::FunctionName) -> PathBuf {
        self.function_logs().join(format!("{function}.log"))
    }
    /// Poller checkpoints (last processed sequence number per shard).
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("poller").join("checkpoints.json")
    }
    /// What the engine saw of the endpoint last time (to detect an endpoint restart).
    pub fn endpoint_marker(&self) -> PathBuf {
        self.root.join("engine-endpoint.json")
    }
}

/// Writes a file atomically (temporary file + rename) so a crash never leaves half a checkpoint.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
