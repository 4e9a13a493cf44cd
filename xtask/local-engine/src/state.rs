//! Where the local engine keeps its state: pid file, engine log, function logs, poller checkpoints.
//!
//! One place computes every path so `serve`, `logs`, `doctor`, `teardown` and the tests agree.
//! `$XTASK_STATE_DIR` (tests point it at a temporary directory) replaces `<repo>/.local/state/<env>`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The state directory of an environment: `$XTASK_STATE_DIR`, else `<repo>/.local/state/<env>`.
pub fn state_dir(env: &str) -> PathBuf {
    match std::env::var_os("XTASK_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".local").join("state").join(env),
    }
}

/// The checkout the tool acts on, resolved at run time (see [`resolve_repo_root`]); where that fails, the
/// current directory. `cargo xtask` refuses to run outside a checkout before anything calls this (its `main`
/// checks [`resolve_repo_root`] first), so the fallback only serves library users such as tests.
///
/// Nothing here is baked in at compile time: with a target directory shared by several clones, cargo reuses
/// one clone's compiled crates in the others, so a path compiled in would name the first clone.
pub fn repo_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        resolve_repo_root()
            .unwrap_or_else(|_| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    })
    .clone()
}

/// Why the tool refuses to pick a checkout.
///
/// ### Handling
/// Fatal for `cargo xtask` (exit 3, refused): without a checkout there is no config, no state directory and
/// no sources to build. The message says where to run the tool.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(
        "{start} is not inside a checkout of this repository (no Cargo.toml with a [workspace] holding the `xtask` member above it); \
         run `cargo xtask ...` from inside the checkout"
    )]
    NotInCheckout { start: PathBuf },
}

/// Resolves the checkout the tool was invoked from.
///
/// `cargo run` (so `cargo xtask`) sets `CARGO_MANIFEST_DIR` to the running package's directory,
/// `<root>/xtask`; a binary started another way walks up from the current directory. Either way the root is
/// the nearest directory above whose `Cargo.toml` is a workspace with the `xtask` member. Whether the binary
/// carries that checkout's code is the xtask's own check (`xtask::sources`): it compares source contents.
pub fn resolve_repo_root() -> Result<PathBuf, RootError> {
    let from_cargo = std::env::var_os("CARGO_MANIFEST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .and_then(|d| find_checkout(&d));
    match from_cargo {
        Some(root) => Ok(root),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            find_checkout(&cwd).ok_or(RootError::NotInCheckout { start: cwd })
        }
    }
}

/// The nearest directory at or above `start` that holds this workspace: a `Cargo.toml` declaring
/// `[workspace]` with an `xtask` member, and the `xtask` package beside it.
pub fn find_checkout(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| {
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
            manifest.contains("[workspace]")
                && manifest.contains("\"xtask\"")
                && dir.join("xtask").join("Cargo.toml").is_file()
        })
        .map(Path::to_path_buf)
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
    /// The poller's note of every batch it sent to the dead-letter queue: the error and the records' keys,
    /// which the queue's Lambda-style message does not carry (the inspector joins them by request id).
    pub fn dead_letters(&self) -> PathBuf {
        self.root.join("poller").join("dead-letters.jsonl")
    }
    /// The running engine's inspector: its URL and the engine's pid (`cargo xtask inspect` reads it).
    pub fn inspector(&self) -> PathBuf {
        self.root.join("inspector.json")
    }
    /// One line per code swap `cargo xtask dev` applied (the inspector's hotswap history).
    pub fn hotswaps(&self) -> PathBuf {
        self.root.join("hotswaps.jsonl")
    }
}

/// Appends one JSON line to a journal file (O_APPEND keeps concurrent lines whole).
pub fn append_json_line(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_is_found_from_any_directory_inside_it() {
        // `cargo test` runs this binary with the package directory set, at run time.
        let package = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
        let root = package.ancestors().nth(2).unwrap().to_path_buf();
        assert_eq!(find_checkout(&root), Some(root.clone()));
        assert_eq!(find_checkout(&package.join("src")), Some(root.clone()));
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(find_checkout(elsewhere.path()), None);
        assert_eq!(resolve_repo_root().unwrap(), root);
    }

    #[test]
    fn another_clone_is_recognised_as_a_checkout() {
        let clone = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(clone.path().join("xtask")).unwrap();
        std::fs::write(
            clone.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"xtask\"]\n",
        )
        .unwrap();
        std::fs::write(
            clone.path().join("xtask/Cargo.toml"),
            "[package]\nname = \"xtask\"\n",
        )
        .unwrap();
        let deep = clone.path().join("config");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_checkout(&deep).as_deref(), Some(clone.path()));
    }
}
