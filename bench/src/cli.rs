//! `cargo xtask bench cli`: the figures a user meets. Every step is a whole `cargo xtask ...` process started
//! the way a shell starts it (through cargo, with a shell's environment: `deployer::cargo::command`), against
//! a sandboxed `local` environment (a copy of `config/` with free ports and its own state directory), so the
//! cargo freshness check, process start, connecting and the engine's start are all in the figure.
//!
//! In-process timings (`bench deploy`) are printed beside them for where the time goes; the ratio no-op /
//! full deploy says how much of a no-op is left to shave. `--cold` adds the first deploy of a fresh clone with
//! an empty target directory and an empty moto venv (minutes: it compiles the whole workspace), and the
//! longest stretch in which it printed nothing.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::median;

/// Arguments of `cargo xtask bench cli`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rounds of the no-op deploy and status figures (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Also time the first `cargo xtask deploy` of a fresh clone with an empty target directory and an empty
    /// moto venv (compiles the whole workspace: several minutes).
    #[arg(long)]
    pub cold: bool,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// One timed whole process.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Wall time from spawn to exit.
    pub ms: f64,
    /// Time until the process printed its first line (on either stream).
    pub first_output_ms: Option<f64>,
    /// The longest stretch without a printed line (progress visibility).
    pub longest_silence_ms: f64,
}

/// What `bench cli` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds: usize,
    /// `cargo xtask deploy` on an empty sandbox (warm build cache; moto started, stack created, engine started).
    pub full_deploy: Run,
    /// `cargo xtask deploy` again, nothing changed (median).
    pub noop_deploy_ms: f64,
    /// `cargo xtask status` right after a deploy (median).
    pub status_ms: f64,
    /// `cargo xtask teardown --yes`.
    pub teardown_ms: f64,
    /// no-op deploy / full deploy.
    pub noop_over_full: f64,
    /// The same deploy path in-process (`bench deploy`): full, no-op, teardown.
    pub in_process: crate::deploy::DeployFigures,
    /// The first deploy of a fresh clone (`--cold`).
    pub cold_first_deploy: Option<Run>,
}

pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let rounds = args.rounds.max(1);
    let root = crate::repo_root();
    let sandbox = UserSandbox::new(&root)?;
    // Not timed: bring the function build up to date, so the figures are deploys, not a compile.
    sandbox.run(&["build"]).context("building the functions")?;

    let full_deploy = sandbox.run(&["deploy"]).context("the first deploy")?;
    let mut noop = Vec::new();
    for _ in 0..rounds {
        let run = sandbox.run_expect(&["deploy"], "up to date")?;
        noop.push(run.ms);
    }
    let mut status = Vec::new();
    for _ in 0..rounds {
        status.push(sandbox.run(&["status"])?.ms);
    }
    let teardown = sandbox.run(&["teardown", "--yes"])?;
    drop(sandbox);

    let in_process = crate::deploy::deploy_figures(rounds.min(3)).await?;
    let cold_first_deploy = if args.cold {
        Some(cold_first_deploy(&root)?)
    } else {
        None
    };
    let noop_deploy_ms = median(&noop);
    let report = Report {
        rounds,
        noop_over_full: noop_deploy_ms / full_deploy.ms,
        full_deploy,
        noop_deploy_ms,
        status_ms: median(&status),
        teardown_ms: teardown.ms,
        in_process,
        cold_first_deploy,
    };
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "whole `cargo xtask` processes, as typed at a shell (median of {} rounds; in-process beside):",
            self.rounds
        )?;
        writeln!(
            f,
            "  deploy, first (warm build cache)   {:>8.0} ms   in-process {:>8.0} ms",
            self.full_deploy.ms, self.in_process.full_deploy_ms
        )?;
        writeln!(
            f,
            "  deploy, nothing changed            {:>8.0} ms   in-process {:>8.0} ms   (no-op / full = {:.2})",
            self.noop_deploy_ms, self.in_process.noop_deploy_ms, self.noop_over_full
        )?;
        writeln!(
            f,
            "  status right after a deploy        {:>8.0} ms",
            self.status_ms
        )?;
        writeln!(
            f,
            "  teardown                           {:>8.0} ms   in-process {:>8.0} ms",
            self.teardown_ms, self.in_process.teardown_ms
        )?;
        if let Some(cold) = &self.cold_first_deploy {
            writeln!(
                f,
                "  first deploy of a fresh clone      {:>8.1} s    first output after {:.1} s, longest silence {:.1} s",
                cold.ms / 1000.0,
                cold.first_output_ms.unwrap_or(cold.ms) / 1000.0,
                cold.longest_silence_ms / 1000.0
            )?;
        }
        Ok(())
    }
}

/// A `local` environment of its own: the checkout's `config/` copied with free ports, an empty state
/// directory, both removed on drop (after a best-effort teardown, so no process outlives the benchmark).
pub struct UserSandbox {
    root: PathBuf,
    dir: PathBuf,
    torn_down: std::cell::Cell<bool>,
}

impl UserSandbox {
    pub fn new(root: &Path) -> anyhow::Result<UserSandbox> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-cli-{}", std::process::id()));
        let config = dir.join("config");
        std::fs::create_dir_all(&config)?;
        for entry in std::fs::read_dir(root.join("config"))? {
            let entry = entry?;
            std::fs::copy(entry.path(), config.join(entry.file_name()))?;
        }
        set_free_ports(&config.join("local.yaml"))?;
        Ok(UserSandbox {
            root: root.to_path_buf(),
            dir,
            torn_down: std::cell::Cell::new(false),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = deployer::cargo::command(deployer::cargo::cargo_path());
        cmd.current_dir(&self.root)
            .arg("xtask")
            .args(args)
            .env("XTASK_CONFIG_DIR", self.dir.join("config"))
            .env("XTASK_STATE_DIR", self.dir.join("state"))
            .env_remove("XTASK_ENV");
        cmd
    }

    /// Runs `cargo xtask <args>` in the sandbox, timed.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        if args.first() == Some(&"teardown") {
            self.torn_down.set(true);
        }
        let (run, _) = timed(
            self.command(args),
            &format!("cargo xtask {}", args.join(" ")),
        )?;
        eprintln!("  cargo xtask {:<16} {:>8.0} ms", args.join(" "), run.ms);
        Ok(run)
    }

    /// What `cargo xtask <args>` prints on stdout in the sandbox (a failure is an error carrying its output).
    pub fn stdout(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting `cargo xtask {}`", args.join(" ")))?;
        anyhow::ensure!(
            out.status.success(),
            "`cargo xtask {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and checks that the output says `expect` (e.g. that a no-op deploy really was one).
    fn run_expect(&self, args: &[&str], expect: &str) -> anyhow::Result<Run> {
        let (run, output) = timed(
            self.command(args),
            &format!("cargo xtask {}", args.join(" ")),
        )?;
        eprintln!("  cargo xtask {:<16} {:>8.0} ms", args.join(" "), run.ms);
        anyhow::ensure!(
            output.contains(expect),
            "`cargo xtask {}` did not say `{expect}`:\n{output}",
            args.join(" ")
        );
        Ok(run)
    }
}

impl Drop for UserSandbox {
    fn drop(&mut self) {
        if !self.torn_down.get() {
            let _ = self.command(&["teardown", "--yes"]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Rewrites `local.gateway_port` and `local.endpoint_port` of a `local.yaml` to free ports.
fn set_free_ports(local_yaml: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(local_yaml)?;
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("gateway_port:") {
            out.push_str(&format!(
                "{indent}gateway_port: {}\n",
                local_engine::endpoint::free_port()?
            ));
        } else if trimmed.starts_with("endpoint_port:") {
            out.push_str(&format!(
                "{indent}endpoint_port: {}\n",
                local_engine::endpoint::free_port()?
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(local_yaml, out)?;
    Ok(())
}

/// `git clone` of this checkout's HEAD into a temporary directory, then its first `cargo xtask deploy` with an
/// empty target directory and an empty moto venv, as on a fresh machine that has the toolchain and the crate
/// registry cache. The clone is torn down and removed afterwards.
fn cold_first_deploy(root: &Path) -> anyhow::Result<Run> {
    let dir = std::env::temp_dir().join(format!("xtask-bench-cold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let clone = dir.join("repo");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(root)
        .arg(&clone)
        .status()
        .context("running git clone")?;
    anyhow::ensure!(status.success(), "git clone of {} failed", root.display());
    set_free_ports(&clone.join("config/local.yaml"))?;
    let cargo = |args: &[&str]| {
        let mut cmd = deployer::cargo::command(deployer::cargo::cargo_path());
        cmd.current_dir(&clone)
            .arg("xtask")
            .args(args)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .env("XTASK_VENV_DIR", dir.join("venv"))
            .env("XTASK_STATE_DIR", dir.join("state"))
            .env_remove("XTASK_CONFIG_DIR")
            .env_remove("XTASK_ENV");
        cmd
    };
    let result = timed(cargo(&["deploy"]), "cargo xtask deploy (fresh clone)");
    let _ = cargo(&["teardown", "--yes"]).output();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result?.0)
}

/// Runs `cmd` with no stdin, timing it and the gaps between the lines it prints on stdout and stderr.
/// Returns the figures and everything it printed; a failing command is an error carrying its output.
fn timed(mut cmd: Command, what: &str) -> anyhow::Result<(Run, String)> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{what}`"))?;
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ]
    .into_iter()
    .map(|stream| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        })
    })
    .collect();
    drop(tx);
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{what}`"))?;
    let ended = Instant::now();
    // A daemon the command started may hold the pipes open (it should not, but a benchmark must not hang on
    // it): read what is there, waiting at most a moment for the last lines after the exit.
    let mut lines: Vec<(Instant, String)> = Vec::new();
    let grace = ended + Duration::from_millis(500);
    while let Ok(line) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    if readers.iter().any(|r| !r.is_finished()) {
        eprintln!("  note: a process started by `{what}` kept its output pipes open");
    }
    lines.sort_by_key(|(at, _)| *at);
    let output: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    anyhow::ensure!(status.success(), "`{what}` failed ({status}):\n{output}");
    let mut previous = started;
    let mut longest = Duration::ZERO;
    for (at, _) in &lines {
        longest = longest.max(at.saturating_duration_since(previous));
        previous = *at;
    }
    longest = longest.max(ended.saturating_duration_since(previous));
    let to_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((
        Run {
            ms: to_ms(ended - started),
            first_output_ms: lines.first().map(|(at, _)| to_ms(*at - started)),
            longest_silence_ms: to_ms(longest),
        },
        output,
    ))
}
