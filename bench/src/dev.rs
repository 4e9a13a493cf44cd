//! `cargo xtask bench dev`: edit to live, measured as a user lives it, beside `cargo lambda watch`.
//!
//! Both sides get the same behaviour-changing edit of one function (the query's `/health` build tag, in
//! `functions/query/src/main.rs`) and are timed from the save to the first answer showing the new behaviour:
//! - `cargo xtask dev` spawned as a whole process (`cargo xtask dev`, in its own temporary `local`
//!   environment with free ports), answer read through the local gateway (`GET /health`);
//! - `cargo lambda watch` (the pinned cargo-lambda) serving the query function, answer read through its invoke
//!   API with an API Gateway v2 event for `GET /health`.
//!
//! Both sides build and watch a scratch copy of the workspace's sources (in a temporary directory, removed
//! afterwards, building into this checkout's target directory so the dependencies stay compiled): the
//! benchmark never edits the checkout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::median;

/// How long one edit may take to show before the round fails.
const ROUND_LIMIT: Duration = Duration::from_secs(300);
/// How long a side may take to come up (first deploy, first build of the function).
const START_LIMIT: Duration = Duration::from_secs(900);

/// Arguments of `cargo xtask bench dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Edits per side (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct EditToLive {
    pub edited: String,
    /// `cargo xtask dev`: seconds from each save to the new `/health` through the gateway.
    pub xtask_dev_s: Vec<f64>,
    /// `cargo lambda watch`: seconds from each save to the new answer through its invoke API.
    pub cargo_lambda_watch_s: Vec<f64>,
    pub cargo_lambda_version: String,
}

impl std::fmt::Display for EditToLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |v: &[f64]| {
            let all: Vec<String> = v.iter().map(|s| format!("{s:.1}")).collect();
            format!("median {:5.1} s  (rounds: {} s)", median(v), all.join(", "))
        };
        writeln!(
            f,
            "edit to live ({}: a behaviour change of one function, save -> new answer)",
            self.edited
        )?;
        writeln!(
            f,
            "  cargo xtask dev     (gateway)     {}",
            row(&self.xtask_dev_s)
        )?;
        writeln!(
            f,
            "  cargo lambda watch  (invoke API)  {}",
            row(&self.cargo_lambda_watch_s)
        )?;
        writeln!(f, "  ({})", self.cargo_lambda_version)
    }
}

pub async fn run(args: &Args) -> anyhow::Result<EditToLive> {
    let root = crate::repo_root();
    let workspace = Workspace::copy_of(&root)?;
    let rounds = args.rounds.max(1);
    tokio::select! {
        r = measure(&workspace, rounds) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

async fn measure(workspace: &Workspace, rounds: usize) -> anyhow::Result<EditToLive> {
    let xtask_dev_s = dev_side(workspace, rounds).await?;
    workspace.restore()?;
    let (cargo_lambda_watch_s, cargo_lambda_version) = watch_side(workspace, rounds).await?;
    Ok(EditToLive {
        edited: EDITED.into(),
        xtask_dev_s,
        cargo_lambda_watch_s,
        cargo_lambda_version,
    })
}

/// The file both sides see edited, relative to the workspace.
const EDITED: &str = "functions/query/src/main.rs";

/// A scratch copy of the workspace's sources (not `target/`, `.git/`, `.local/`), removed on drop; the
/// benchmark edits [`EDITED`] there.
struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    original: String,
    /// The checkout's target directory: both sides build the copy into it (its dependencies are compiled).
    target_dir: PathBuf,
    /// The checkout's own copy of [`EDITED`], marked as changed on drop.
    checkout_edited: PathBuf,
}

impl Drop for Workspace {
    /// The copy built its edited query into the checkout's target directory, into the same cargo units (cargo keys
    /// a workspace member by its path inside the workspace) and later than the checkout's sources were written:
    /// cargo, which compares modification times, would take that build as fresh for the checkout too, and the
    /// checkout's next deploy would serve the benchmark's last tag. Marking the checkout's source as changed makes
    /// its next build compile it again.
    fn drop(&mut self) {
        let _ = std::fs::File::options()
            .write(true)
            .open(&self.checkout_edited)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
}

impl Workspace {
    fn copy_of(checkout: &Path) -> anyhow::Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix("xtask-bench-dev-ws-")
            .tempdir()?;
        let root = dir.path().join("workspace");
        copy_sources(checkout, &root).with_context(|| {
            format!(
                "copying the workspace at {} to {}",
                checkout.display(),
                root.display()
            )
        })?;
        let path = root.join(EDITED);
        let original = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            original.contains("unwrap_or(\"dev\")"),
            "{EDITED} no longer sets the `dev` build tag the benchmark edits; update bench/src/dev.rs"
        );
        Ok(Workspace {
            _dir: dir,
            root,
            original,
            target_dir: deployer::build::default_target_dir(checkout),
            checkout_edited: checkout.join(EDITED),
        })
    }

    /// Saves the copy's source with `tag` as the build tag `/health` reports.
    fn edit(&self, tag: &str) -> anyhow::Result<()> {
        let text =
            self.original
                .replacen("unwrap_or(\"dev\")", &format!("unwrap_or(\"{tag}\")"), 1);
        let path = self.root.join(EDITED);
        std::fs::write(&path, text).with_context(|| format!("editing {}", path.display()))
    }

    /// Puts the unedited source back (between the two sides).
    fn restore(&self) -> anyhow::Result<()> {
        let path = self.root.join(EDITED);
        std::fs::write(&path, &self.original)
            .with_context(|| format!("restoring {}", path.display()))
    }
}

/// Copies the sources under `src` (not `target/`, `.git/`, `.local/`) into `dst`.
fn copy_sources(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(name.to_str(), Some("target" | ".git" | ".local")) {
            continue;
        }
        let to = dst.join(&name);
        if entry.file_type()?.is_dir() {
            copy_sources(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// A process started by the benchmark, killed (with its process group) when dropped.
struct Spawned {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Spawned {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A temporary `local` environment named `bench-dev` (its own config, state and ports), torn down on drop.
struct Scratch {
    dir: PathBuf,
    gateway_port: u16,
}

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-dev-{}", std::process::id()));
        let config = dir.join("config");
        std::fs::create_dir_all(&config)?;
        std::fs::copy(
            crate::repo_root().join("config/defaults.yaml"),
            config.join("defaults.yaml"),
        )?;
        let gateway_port = local_engine::endpoint::free_port()?;
        let endpoint_port = local_engine::endpoint::free_port()?;
        std::fs::write(
            config.join("bench-dev.yaml"),
            format!(
                "kind: local\nstack_name: bench-dev\nregion: us-east-1\ndeploy:\n  hotswap: true\nlocal:\n  gateway_port: {gateway_port}\n  endpoint_port: {endpoint_port}\n"
            ),
        )?;
        Ok(Scratch { dir, gateway_port })
    }

    /// `cargo xtask <args>` against this environment, as a user types it.
    fn cargo_xtask(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd: tokio::process::Command =
            deployer::cargo::command(deployer::cargo::cargo_path()).into();
        cmd.current_dir(crate::repo_root())
            .args(["xtask"])
            .args(args)
            .args(["--env", "bench-dev"])
            .env("XTASK_CONFIG_DIR", self.dir.join("config"))
            .env("XTASK_STATE_DIR", self.dir.join("state"))
            .env_remove("CQRS_BUILD_TAG")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Stops the engine and the endpoint `dev` left running (that is what `dev` does on exit).
        let _ = deployer::cargo::command(deployer::cargo::cargo_path())
            .current_dir(crate::repo_root())
            .args(["xtask", "teardown", "--env", "bench-dev", "--yes"])
            .env("XTASK_CONFIG_DIR", self.dir.join("config"))
            .env("XTASK_STATE_DIR", self.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask dev` as a whole process; each round saves a new tag and polls `GET /health` through the
/// gateway until it shows.
async fn dev_side(workspace: &Workspace, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let scratch = Scratch::new()?;
    let log = scratch.dir.join("dev.log");
    let out = std::fs::File::create(&log)?;
    let child = scratch
        .cargo_xtask(&[
            "dev",
            "--workspace",
            workspace
                .root
                .to_str()
                .context("the scratch workspace's path is not UTF-8")?,
        ])
        .env("CARGO_TARGET_DIR", &workspace.target_dir)
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .context("starting `cargo xtask dev`")?;
    let mut dev = Spawned { child, log };
    eprintln!(
        "bench dev: waiting for `cargo xtask dev` to deploy and watch (log {})",
        dev.log.display()
    );
    let started = Instant::now();
    while !dev.log_text().contains(" watching ") {
        if let Some(status) = dev.child.try_wait()? {
            anyhow::bail!("`cargo xtask dev` exited ({status}):\n{}", dev.log_text());
        }
        anyhow::ensure!(
            started.elapsed() < START_LIMIT,
            "`cargo xtask dev` was not watching within {} s; see {}",
            START_LIMIT.as_secs(),
            dev.log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("http://127.0.0.1:{}/health", scratch.gateway_port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let build_tag = async |http: &reqwest::Client| -> Option<String> {
        let v: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        v["build"].as_str().map(str::to_string)
    };
    anyhow::ensure!(
        build_tag(&http).await.as_deref() == Some("dev"),
        "the gateway at {url} does not serve the unedited query function"
    );
    let times = time_edits(workspace, rounds, "xtask dev", &dev.log, async || {
        build_tag(&http).await
    })
    .await?;
    let _ = dev.child.kill().await;
    // Kept for reading what `dev` printed (the scratch directory goes with the environment).
    let kept = std::env::temp_dir().join("xtask-bench-dev.log");
    if std::fs::copy(&dev.log, &kept).is_ok() {
        eprintln!(
            "bench dev: what `cargo xtask dev` printed: {}",
            kept.display()
        );
    }
    drop(scratch);
    Ok(times)
}

/// `cargo lambda watch` serving the query function; each round saves a new tag and invokes `GET /health`
/// through its invoke API until the answer shows it.
async fn watch_side(workspace: &Workspace, rounds: usize) -> anyhow::Result<(Vec<f64>, String)> {
    let tools = deployer::build::tools_dir(&crate::repo_root());
    let venv = tokio::task::spawn_blocking(move || {
        deployer::build::ensure_cargo_lambda(&tools, &deployer::ui::ConsoleUi::new(true))
    })
    .await??;
    let bin = venv.join("bin");
    let exe = bin.join("cargo-lambda");
    let version = std::process::Command::new(&exe)
        .args(["lambda", "--version"])
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let scratch = std::env::temp_dir().join(format!("xtask-bench-watch-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let log = scratch.join("cargo-lambda-watch.log");
    let out = std::fs::File::create(&log)?;
    let port = local_engine::endpoint::free_port()?;
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let mut cmd: tokio::process::Command = deployer::cargo::command(&exe).into();
    cmd.current_dir(&workspace.root)
        .env("CARGO_TARGET_DIR", &workspace.target_dir)
        .env("PATH", path)
        .env("CARGO", deployer::cargo::cargo_path())
        .env_remove("CQRS_BUILD_TAG")
        .args(["lambda", "watch", "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        // The query binary's configuration; `GET /health` reads no table.
        .args([
            "--env-var",
            "EVENTS_TABLE=bench-events,PROJECTIONS_TABLE=bench-projections,AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    let child = cmd.spawn().context("starting `cargo lambda watch`")?;
    let watch = Spawned { child, log };
    let result = watch_rounds(&watch, port, workspace, rounds).await;
    drop(watch);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok((result?, version))
}

async fn watch_rounds(
    watch: &Spawned,
    port: u16,
    workspace: &Workspace,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/query/invocations");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let event = health_event();
    let build_tag = async |http: &reqwest::Client| -> Option<String> {
        let resp: serde_json::Value = http
            .post(&url)
            .json(&event)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(resp["body"].as_str()?).ok()?;
        body["build"].as_str().map(str::to_string)
    };
    eprintln!(
        "bench dev: waiting for `cargo lambda watch` to build and serve the query function (log {})",
        watch.log.display()
    );
    let started = Instant::now();
    while build_tag(&http).await.as_deref() != Some("dev") {
        anyhow::ensure!(
            started.elapsed() < START_LIMIT,
            "`cargo lambda watch` did not serve the query function within {} s; see {}:\n{}",
            START_LIMIT.as_secs(),
            watch.log.display(),
            watch.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let times = time_edits(
        workspace,
        rounds,
        "cargo lambda watch",
        &watch.log,
        async || build_tag(&http).await,
    )
    .await?;
    Ok(times)
}

/// Times `rounds` edits of the `/health` build tag on one side: each round saves a new tag and polls
/// `served_tag` until it answers with it. `log` is the side's output, named when a round takes too long.
async fn time_edits(
    workspace: &Workspace,
    rounds: usize,
    side: &str,
    log: &Path,
    mut served_tag: impl AsyncFnMut() -> Option<String>,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for round in 1..=rounds {
        let tag = format!(
            "bench-{}-{}-{round}",
            side.replace(' ', "-"),
            std::process::id()
        );
        let t = Instant::now();
        workspace.edit(&tag)?;
        while served_tag().await.as_deref() != Some(tag.as_str()) {
            anyhow::ensure!(
                t.elapsed() < ROUND_LIMIT,
                "`{side}` did not serve the edit within {} s; see {}",
                ROUND_LIMIT.as_secs(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        times.push(t.elapsed().as_secs_f64());
        eprintln!("bench dev: {side} round {round}: {:.1} s", times[round - 1]);
        // Let the watcher settle before the next save.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(times)
}

/// An API Gateway v2 (payload format 2.0) event for `GET /health`, as the gateway would send it.
fn health_event() -> serde_json::Value {
    let now = chrono::Utc::now();
    serde_json::json!({
        "version": "2.0",
        "routeKey": "GET /health",
        "rawPath": "/health",
        "rawQueryString": "",
        "headers": {"host": "127.0.0.1", "user-agent": "xtask-bench"},
        "requestContext": {
            "accountId": local_engine::endpoint::LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "xtask-bench"},
            "requestId": uuid::Uuid::now_v7().to_string(),
            "routeKey": "GET /health",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    })
}
