//! Running the real `xtask` CLI from tests, as a user runs it: the binary is built once per test binary and run
//! directly (no cargo lock wait per command), against a temporary copy of `config/` with free ports and an
//! empty state directory, so tests never touch the user's `.local/` nor each other's ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::repo_root;

/// Builds the `xtask` binary (what `cargo xtask` runs) once per test binary and returns its path.
pub fn xtask_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cargo_executable(&["-p", "xtask", "--bin", "xtask"], "xtask", "bin"))
        .clone()
}

/// `cargo build --quiet <args> --message-format=json` in the workspace; returns the executable cargo reports
/// for the target `name` of `kind` (`bin`, `example`). Panics with cargo's stderr when the build fails.
pub fn cargo_executable(args: &[&str], name: &str, kind: &str) -> PathBuf {
    let out = deployer::cargo::command(env!("CARGO"))
        .arg("build")
        .arg("--quiet")
        .args(args)
        .arg("--message-format=json")
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"]["name"] == name && v["target"]["kind"][0] == kind)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reports no executable for {kind} `{name}`"))
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON document a command printed on stdout (`--output json`); panics with the whole output otherwise.
pub fn stdout_json(o: &Output, what: &str) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON document ({e}):\n{}", output_text(o)))
}

/// Copies the repository's `config/` into `<dir>/config` and returns that directory.
pub fn copy_config(dir: &Path) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), config.join(entry.file_name())).unwrap();
    }
    config
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    local_engine::endpoint::free_port().expect("a free port")
}

/// The default `local` environment in a temporary directory: the repository's config with free gateway and
/// endpoint ports, and an empty state directory. Runs `teardown --yes` on drop unless `torn_down` is set, so a
/// failing test leaves no process behind.
pub struct LocalEnv {
    dir: tempfile::TempDir,
    pub gateway_port: u16,
    pub endpoint_port: u16,
    /// Set once the test has torn the environment down itself.
    pub torn_down: bool,
}

impl LocalEnv {
    pub fn new() -> LocalEnv {
        let dir = tempfile::tempdir().unwrap();
        let config = copy_config(dir.path());
        let (gateway_port, endpoint_port) = (free_port(), free_port());
        let local = config.join("local.yaml");
        let mut yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
        yaml["local"]["gateway_port"] = gateway_port.into();
        yaml["local"]["endpoint_port"] = endpoint_port.into();
        std::fs::write(&local, serde_yaml::to_string(&yaml).unwrap()).unwrap();
        LocalEnv {
            dir,
            gateway_port,
            endpoint_port,
            torn_down: false,
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The API's base URL (the local gateway).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// `xtask <args>` for this environment, not yet run: no terminal, no inherited `XTASK_ENV`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(xtask_binary());
        cmd.args(args)
            .env("XTASK_STATE_DIR", self.state_dir())
            .env("XTASK_CONFIG_DIR", self.config_dir())
            .env_remove("XTASK_ENV")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs `xtask <args>` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("xtask runs")
    }

    /// The pid recorded in `<state>/<file>` (a pid file of `local_engine::process`), if any.
    pub fn pid(&self, file: &str) -> Option<u32> {
        let bytes = std::fs::read(self.state_dir().join(file)).ok()?;
        serde_json::from_slice::<local_engine::process::PidRecord>(&bytes)
            .ok()
            .map(|r| r.pid)
    }
}

impl Default for LocalEnv {
    fn default() -> Self {
        LocalEnv::new()
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        if !self.torn_down {
            let _ = self.run(&["teardown", "--yes"]);
        }
    }
}

/// A command running in the background with its stderr collected line by line, so a test waits for what the
/// command says (an observable condition with a deadline) instead of sleeping.
pub struct Background {
    pub child: std::process::Child,
    stderr: std::sync::Arc<(std::sync::Mutex<Collected>, std::sync::Condvar)>,
}

#[derive(Default)]
struct Collected {
    text: String,
    /// The pipe reached its end: the command (and everything holding its stderr) exited.
    closed: bool,
}

impl Background {
    /// Spawns `cmd` with stderr piped (stdout discarded).
    pub fn start(mut cmd: Command) -> Background {
        use std::io::BufRead as _;
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the command starts");
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = std::sync::Arc::new((
            std::sync::Mutex::new(Collected::default()),
            std::sync::Condvar::new(),
        ));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = sink.0.lock().unwrap();
                all.text.push_str(&line);
                all.text.push('\n');
                sink.1.notify_all();
            }
            sink.0.lock().unwrap().closed = true;
            sink.1.notify_all();
        });
        Background { child, stderr }
    }

    /// Everything printed on stderr so far.
    pub fn output(&self) -> String {
        self.stderr.0.lock().unwrap().text.clone()
    }

    /// Waits until the command has printed `needle` `count` times in all; panics with its output when it
    /// exits first or after `limit`.
    pub fn wait_for(&self, needle: &str, count: usize, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        let (lock, changed) = &*self.stderr;
        let mut all = lock.lock().unwrap();
        while all.text.matches(needle).count() < count {
            assert!(
                !all.closed,
                "the command exited before printing `{needle}`:\n{}",
                all.text
            );
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "the command did not print `{needle}` within {limit:?}:\n{}",
                all.text
            );
            all = changed.wait_timeout(all, left).unwrap().0;
        }
    }

    /// Waits (up to `limit`) until the command has exited and its stderr is read to the end; returns its status.
    pub fn finish(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        {
            let (lock, changed) = &*self.stderr;
            let mut all = lock.lock().unwrap();
            while !all.closed {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                assert!(
                    !left.is_zero(),
                    "the command did not exit within {limit:?}:\n{}",
                    all.text
                );
                all = changed.wait_timeout(all, left).unwrap().0;
            }
        }
        self.child.wait().expect("the command is reaped")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the checkout's files (what git tracks, and untracked files it does not ignore) into `dst`, keeping
/// their modification times.
pub fn clone_checkout(dst: &Path) {
    let root = repo_root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .expect("git runs");
    assert!(listed.status.success(), "{}", output_text(&listed));
    for rel in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("UTF-8 paths"));
        let (from, to) = (root.join(rel), dst.join(rel));
        let Ok(meta) = std::fs::metadata(&from) else {
            continue; // deleted in the working tree, not yet in the index
        };
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
    }
}
