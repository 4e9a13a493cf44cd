//! `cargo xtask dev`: the inner loop. Deploys the local environment if needed (the `deploy` code path), then
//! watches `functions/`, the config directory and `templates/`, and applies each change the cheapest correct way:
//!
//! - a function source changed: one cargo build of the three functions, then the `deploy --hotswap` path
//!   (`UpdateFunctionCode` of the functions whose zip changed) and a reload of just those functions in the
//!   running engine; the tables keep their data (they live in the local AWS endpoint, which never restarts);
//! - a config file changed: the full `deploy` path (change set, guards); a local-only setting such as the
//!   gateway port restarts the engine there. Moving the endpoint port is refused: the endpoint holds the data;
//! - `Cargo.toml` or `Cargo.lock` at the workspace root changed (a dependency or a profile): the functions are
//!   rebuilt and swapped as for a source edit (the hotswap path finds which binaries changed);
//! - a template, `stack/` or the domain (`functions/domain/`) changed: all are compiled into xtask (the plan
//!   derives routes, tables and grants from the domain, and deploy checks its event schemas against the ones
//!   recorded for the environment), so it rebuilds itself and starts over (the fresh process deploys through
//!   the same `deploy` path, guard included; a hotswap could not add a view's route or table).
//!
//! One line per change says what was done and how long it took. A build error leaves the previous version
//! serving (cargo's errors are shown) and the next save tries again. Ctrl-C stops watching and leaves the engine
//! running until `teardown`; a Ctrl-C while a change is being applied lets it finish first, so the engine is
//! never left with half a swap. Nothing here reads stdin: it runs the same without a terminal.
//!
//! `dev` holds the environment's lock (`local_engine::lock`) only while it deploys or swaps, not while it
//! watches: it runs for hours, and a `deploy`, `teardown` or `replay --force` in another terminal must be able
//! to run between two saves (it waits for the change in progress, and `dev` waits for it in turn), instead of
//! waiting for `dev` to end or being refused for as long as it runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deployer::ui::{Confirmation, RecordingUi};
use local_engine::lock::EnvLock;
use notify_debouncer_full::notify::{self, EventKind, RecursiveMode};
use stack::{EnvKind, FunctionName, Plan};

use crate::cli::{EnvArgs, OutputFormat};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Quiet time after the last change before acting, in milliseconds (editors save in several steps).
    #[arg(long, default_value_t = 200)]
    pub debounce_ms: u64,
    /// Watch and build the workspace at this directory instead of this checkout (tests and `bench dev` edit a
    /// scratch copy). Needs CARGO_TARGET_DIR, so the copy shares this checkout's build cache and release directory.
    #[arg(long, hide = true)]
    pub workspace: Option<PathBuf>,
    /// With --no-wait, `dev` refuses to start while another command changes the environment; once it runs,
    /// each change waits for such a command to finish (a save is never dropped).
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    crate::deploy::report_errors(dev(args).await)
}

/// What a batch of file events touched.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Function sources, and the workspace's `Cargo.toml`/`Cargo.lock`: rebuild the functions and swap.
    functions: BTreeSet<PathBuf>,
    config: BTreeSet<PathBuf>,
    /// Sources compiled into xtask (`templates/`, `stack/`, `functions/domain/`): rebuild xtask and start over.
    tool: BTreeSet<PathBuf>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.functions.is_empty() && self.config.is_empty() && self.tool.is_empty()
    }
}

/// The directories watched, for classifying event paths.
struct Watched {
    root: PathBuf,
    functions: PathBuf,
    config: PathBuf,
    templates: PathBuf,
    stack: PathBuf,
    /// `functions/domain`: compiled into xtask too.
    domain: PathBuf,
}

impl Watched {
    fn classify(&self, kind: &EventKind, paths: &[PathBuf], into: &mut Changes) {
        if !is_content_change(kind) {
            return;
        }
        for path in paths {
            if is_ignored(path) {
                continue;
            }
            if path.starts_with(&self.config) {
                into.config.insert(path.clone());
            } else if path.starts_with(&self.templates)
                || path.starts_with(&self.stack)
                || path.starts_with(&self.domain)
            {
                into.tool.insert(path.clone());
            } else if path.starts_with(&self.functions) || self.is_manifest(path) {
                into.functions.insert(path.clone());
            }
        }
    }

    /// The workspace's `Cargo.toml` or `Cargo.lock` (the root is watched without recursion for these two).
    fn is_manifest(&self, path: &Path) -> bool {
        path.parent() == Some(self.root.as_path())
            && matches!(
                path.file_name().and_then(|n| n.to_str()),
                Some("Cargo.toml" | "Cargo.lock")
            )
    }

    /// `path` relative to the workspace (or the config directory's parent), for messages.
    fn show(&self, path: &Path) -> String {
        let base = self.config.parent().unwrap_or(&self.root);
        path.strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix(base))
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Creations, writes, renames and removals; not reads (cargo reads every source while it builds).
fn is_content_change(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// Build output, version control and editors' temporary files (vim's `.x.swp` and `4913`, emacs's `#x#` and
/// `.#x`, backups `x~`).
fn is_ignored(path: &Path) -> bool {
    if path
        .components()
        .any(|c| matches!(c.as_os_str().to_str(), Some("target" | ".git" | ".local")))
    {
        return true;
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name.ends_with('~')
        || name == "4913"
        || [".swp", ".swx", ".swo", ".tmp", ".bak", ".orig"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The `deploy` arguments `dev` runs with: never asks (`--yes`), never allows data loss.
fn deploy_args(env: &EnvArgs) -> crate::deploy::Args {
    crate::deploy::Args {
        env: env.clone(),
        yes: true,
        allow_data_loss: false,
        output: OutputFormat::Text,
        detailed_exitcode: false,
        hotswap: false,
        prebuilt: false,
        wait: crate::cli::WaitArgs { wait_timeout: 60 },
        lock: crate::cli::LockArgs::default(),
    }
}

async fn dev(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _) = crate::deploy::load(&args.env)?;
    if plan.kind != EnvKind::Local {
        anyhow::bail!(crate::deploy::InvalidInput(format!(
            "`dev` runs the local engine; `{}` is an AWS environment: use `cargo xtask deploy --env {} --hotswap` for a code-only update there",
            plan.env, plan.env
        )));
    }
    let root = workspace_root(&args)?;
    let config_dir = args
        .env
        .config_dir
        .canonicalize()
        .with_context(|| format!("config directory {}", args.env.config_dir.display()))?;
    let watched = Watched {
        functions: root.join("functions"),
        templates: root.join("templates"),
        stack: root.join("stack"),
        domain: root.join("functions/domain"),
        config: config_dir,
        root: root.clone(),
    };

    // Start watching before the first deploy, so a save during it is not missed.
    let (debouncer, mut rx) = watch(&watched, args.debounce_ms)?;

    let mut session = Session {
        args: &args,
        root: root.clone(),
        plan,
        deployed: false,
        env: None,
    };
    {
        let lock = crate::deploy::lock_env(&session.plan, args.lock).await?;
        session.full_deploy("start", &lock).await;
    }
    // Listen for Ctrl-C before saying so: `tokio::signal::ctrl_c()` registers only when first polled, and a
    // SIGINT between the line below and that poll took the default action (the process died mid-loop).
    let mut interrupted = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("listening for Ctrl-C")?;
    eprintln!(
        "{} watching {}, {}, {}, {}, Cargo.toml and Cargo.lock (Ctrl-C stops watching; the engine keeps serving until `cargo xtask teardown`)",
        clock(),
        watched.show(&watched.functions),
        watched.show(&watched.config),
        watched.show(&watched.templates),
        watched.show(&watched.stack),
    );

    // Set by a Ctrl-C that arrived while a change was being applied: stop once it is done.
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            _ = interrupted.recv() => break,
            batch = rx.recv() => match batch {
                Some(b) => b,
                None => anyhow::bail!("the file watcher stopped"),
            },
        };
        let changes = drain(&watched, first, &mut rx);
        if changes.is_empty() {
            continue;
        }
        // Waiting for another command (a `deploy` in another terminal) can be interrupted: nothing is changed yet.
        let lock = tokio::select! {
            _ = interrupted.recv() => break,
            lock = crate::deploy::lock_env(&session.plan, crate::cli::LockArgs::default()) => lock?,
        };
        // From here the change runs to its end: cancelling it between `UpdateFunctionCode` and the engine's
        // reload would leave the endpoint and the engine on different code. A Ctrl-C now is noted, and acted on
        // once the change is applied.
        let restart = {
            let apply = session.apply(&watched, &changes, &lock);
            tokio::pin!(apply);
            loop {
                tokio::select! {
                    restart = &mut apply => break restart,
                    _ = interrupted.recv(), if !stopping => {
                        stopping = true;
                        eprintln!("{} Ctrl-C: finishing the change in progress, then stopping", clock());
                    }
                }
            }
        };
        drop(lock);
        if let Some(exe) = restart? {
            if stopping {
                break;
            }
            drop(debouncer);
            return restart_self(&exe, &session.root);
        }
        if stopping {
            break;
        }
    }
    drop(debouncer);
    let url = session
        .plan
        .local
        .as_ref()
        .map(|l| format!("http://127.0.0.1:{}", l.gateway_port))
        .unwrap_or_default();
    eprintln!(
        "{} stopped watching; the local engine keeps serving {url} until `cargo xtask teardown`",
        clock()
    );
    Ok(ExitStatus::Success)
}

/// The workspace whose functions `dev` builds: `--workspace` (which must build into this checkout's target
/// directory), else this checkout.
fn workspace_root(args: &Args) -> anyhow::Result<PathBuf> {
    match &args.workspace {
        Some(dir) => {
            anyhow::ensure!(
                std::env::var_os("CARGO_TARGET_DIR").is_some(),
                "--workspace needs CARGO_TARGET_DIR, so the workspace at {} builds into this checkout's target directory",
                dir.display()
            );
            dir.canonicalize()
                .with_context(|| format!("--workspace {}", dir.display()))
        }
        None => Ok(crate::cli::repo_root()),
    }
}

type WatchBatch = notify_debouncer_full::DebounceEventResult;
type FileWatcher = notify_debouncer_full::Debouncer<
    notify_debouncer_full::notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// Starts the file watcher on everything a change can come from; its debounced batches arrive on the receiver.
fn watch(
    watched: &Watched,
    debounce_ms: u64,
) -> anyhow::Result<(
    FileWatcher,
    tokio::sync::mpsc::UnboundedReceiver<WatchBatch>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(debounce_ms),
        None,
        move |result: WatchBatch| {
            let _ = tx.send(result);
        },
    )
    .context("starting the file watcher")?;
    for dir in [
        &watched.functions,
        &watched.config,
        &watched.templates,
        &watched.stack,
    ] {
        debouncer
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
    }
    // The root itself, for Cargo.toml and Cargo.lock: a directory watch sees an editor's save-by-rename, which
    // a watch on the file (its inode) would lose after the first save.
    debouncer
        .watch(&watched.root, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", watched.root.display()))?;
    Ok((debouncer, rx))
}

/// The changes in `first` and every batch already queued behind it: one apply for a burst of saves.
fn drain(
    watched: &Watched,
    first: WatchBatch,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<WatchBatch>,
) -> Changes {
    let mut changes = Changes::default();
    let mut batch = Some(first);
    while let Some(result) = batch {
        match result {
            Ok(events) => {
                for e in events {
                    watched.classify(&e.event.kind, &e.event.paths, &mut changes);
                }
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{} file watcher: {e}", clock());
                }
            }
        }
        batch = rx.try_recv().ok();
    }
    changes
}

/// What `dev` knows between changes.
struct Session<'a> {
    args: &'a Args,
    root: PathBuf,
    plan: Plan,
    /// Whether the last full deploy succeeded: until one does, every change goes through the full deploy.
    deployed: bool,
    /// Clients for the local endpoint, connected on the first hotswap (the endpoint never moves while `dev` runs).
    env: Option<crate::deploy::Connected>,
}

impl Session<'_> {
    /// Applies one batch of changes, holding the environment's lock. Returns the executable to restart into
    /// after a change of what is compiled into xtask.
    async fn apply(
        &mut self,
        watched: &Watched,
        changes: &Changes,
        lock: &EnvLock,
    ) -> anyhow::Result<Option<PathBuf>> {
        let what = |set: &BTreeSet<PathBuf>| {
            set.iter()
                .map(|p| watched.show(p))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !changes.tool.is_empty() {
            return self.rebuild_self(&what(&changes.tool)).await;
        }
        if !changes.config.is_empty() || !self.deployed {
            let why = if changes.config.is_empty() {
                what(&changes.functions)
            } else {
                what(&changes.config)
            };
            self.config_changed(&why, lock).await;
            return Ok(None);
        }
        self.functions_changed(&what(&changes.functions), lock)
            .await;
        Ok(None)
    }

    /// The full `deploy` path, printing what `deploy` prints, then one summary line.
    async fn full_deploy(&mut self, why: &str, lock: &EnvLock) {
        let started = Instant::now();
        let result = crate::deploy::deploy_in(&self.root, deploy_args(&self.args.env), lock).await;
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(_) => {
                self.deployed = true;
                eprintln!("{} {why}: deployed in {secs:.1} s", clock());
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                eprintln!(
                    "{} {why}: deploy failed after {secs:.1} s (above); the previous version keeps serving; fix it and save again",
                    clock()
                );
            }
        }
    }

    /// A config file changed: reload the plan and go through `deploy`, unless the change would move the local
    /// AWS endpoint (it holds the data in memory).
    async fn config_changed(&mut self, why: &str, lock: &EnvLock) {
        let plan = match crate::deploy::load(&self.args.env) {
            Ok((plan, _)) => plan,
            Err(e) => {
                eprintln!(
                    "{} {why}: not applied, the config is invalid: {e:#}",
                    clock()
                );
                return;
            }
        };
        let port = |p: &Plan| p.local.as_ref().map(|l| l.endpoint_port);
        if port(&plan) != port(&self.plan) {
            eprintln!(
                "{} {why}: not applied: local.endpoint_port changed ({:?} -> {:?}), and the local AWS endpoint holds the data in memory; \
                 to move it run `cargo xtask teardown`, then start `cargo xtask dev` again",
                clock(),
                port(&self.plan).unwrap_or_default(),
                port(&plan).unwrap_or_default()
            );
            return;
        }
        self.plan = plan;
        self.full_deploy(why, lock).await;
    }

    /// Function sources changed: build, hotswap the changed functions, reload them in the running engine.
    async fn functions_changed(&mut self, why: &str, lock: &EnvLock) {
        let started = Instant::now();
        eprintln!("{} {why} changed: rebuilding", clock());
        match self.hotswap(lock).await {
            Ok(Swap::Swapped {
                swapped,
                unchanged,
                phases,
            }) => {
                let names = |v: &[FunctionName]| {
                    v.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                };
                let kept = if unchanged.is_empty() {
                    String::new()
                } else {
                    format!("; {} unchanged", names(&unchanged))
                };
                eprintln!(
                    "{} {} rebuilt and swapped in {:.1} s ({phases}{kept})",
                    clock(),
                    names(&swapped),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Swap::UpToDate) => eprintln!(
                "{} {why}: rebuilt in {:.1} s, no function binary changed (command, query, projector unchanged)",
                clock(),
                started.elapsed().as_secs_f64()
            ),
            Ok(Swap::Refused(reason)) => {
                eprintln!(
                    "{} {why}: not a code-only change ({reason}); deploying through a change set",
                    clock()
                );
                self.full_deploy(why, lock).await;
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                eprintln!(
                    "{} {why}: build failed after {:.1} s (cargo's errors are above); the previous version keeps serving",
                    clock(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }

    async fn hotswap(&mut self, lock: &EnvLock) -> anyhow::Result<Swap> {
        let (plan, template) = crate::deploy::load(&self.args.env)?;
        // Lines of the build and the hotswap are kept, not printed: `dev` prints one line per change.
        let ui = Arc::new(RecordingUi::new(Confirmation::Yes));
        let mut phases = Phases::default();
        let mut req = deployer::build::BuildRequest::for_plan(&plan, &self.root, &template.sha256)?;
        // The engine this checkout runs serves the build, whichever workspace it comes from.
        req.checkout = crate::cli::repo_root();
        let release = {
            let ui = ui.clone();
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let binaries = deployer::build::build_binaries(&req, ui.as_ref())?;
                let cargo = t.elapsed();
                let t = Instant::now();
                let release = deployer::build::package(&req, &binaries, ui.as_ref())?;
                Ok::<_, deployer::Error>((release, cargo, t.elapsed()))
            })
            .await??
        };
        let (release, cargo, package) = release;
        phases.cargo = cargo;
        phases.package = package;
        if self.env.is_none() {
            self.env = Some(crate::deploy::connect(&plan, Some(lock)).await?);
        }
        let env = self.env.as_ref().expect("connected above");
        let endpoint_url = env
            .endpoint_url
            .clone()
            .context("a local environment has an endpoint")?;
        let bucket = deployer::artifacts::bucket_name(&plan, env.account.as_deref());
        let t = Instant::now();
        let outcome = match deployer::hotswap::hotswap(
            &env.clients,
            &plan,
            &template.body,
            &release,
            &bucket,
            ui.as_ref(),
        )
        .await
        {
            Ok(o) => o,
            Err(deployer::Error::Refused(reason)) => return Ok(Swap::Refused(reason)),
            Err(e) => return Err(e.into()),
        };
        phases.update = t.elapsed();
        if outcome.up_to_date {
            return Ok(Swap::UpToDate);
        }
        let swapped: Vec<FunctionName> = outcome.swapped.iter().map(|s| s.function).collect();
        // The inspector's hotswap history (`deploy --hotswap` records its swaps too): the drift record is
        // cleared by the next full deploy, and a user chasing a behaviour change wants to see which code ran when.
        let entry = local_engine::inspector::HotswapEntry::of(&outcome);
        let paths = local_engine::state::StatePaths::new(local_engine::state::state_dir(&plan.env));
        if let Err(e) = local_engine::inspector::record_hotswap(&paths, &entry) {
            eprintln!(
                "{} could not record the swap in {}: {e}",
                clock(),
                paths.hotswaps().display()
            );
        }
        let t = Instant::now();
        let (_, applied) = crate::serve::reload_or_restart(&plan, &endpoint_url).await?;
        phases.reload = t.elapsed();
        let unchanged = match applied {
            crate::serve::Applied::Reloaded(report) => report.unchanged,
            crate::serve::Applied::Restarted => FunctionName::ALL
                .into_iter()
                .filter(|f| !swapped.contains(f))
                .collect(),
        };
        Ok(Swap::Swapped {
            swapped,
            unchanged,
            phases,
        })
    }

    /// Templates are compiled into xtask: rebuild it; the caller then restarts into the new binary, whose
    /// first step deploys the new templates.
    async fn rebuild_self(&self, why: &str) -> anyhow::Result<Option<PathBuf>> {
        let started = Instant::now();
        let root = self.root.clone();
        let status = tokio::task::spawn_blocking(move || {
            deployer::cargo::command(deployer::cargo::cargo_path())
                .current_dir(&root)
                .args(["build", "--package", "xtask", "--bin", "xtask"])
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await?
        .context("running cargo build --package xtask")?;
        if !status.success() {
            eprintln!(
                "{} {why}: xtask does not build with these templates ({status}, cargo's errors are above); the previous version keeps serving",
                clock()
            );
            return Ok(None);
        }
        eprintln!(
            "{} {why}: templates, stack/ and the domain are compiled into xtask: rebuilt it in {:.1} s; restarting `dev` to deploy them",
            clock(),
            started.elapsed().as_secs_f64()
        );
        Ok(Some(crate::serve::current_exe()?))
    }
}

/// The outcome of a function change.
enum Swap {
    Swapped {
        swapped: Vec<FunctionName>,
        unchanged: Vec<FunctionName>,
        phases: Phases,
    },
    UpToDate,
    /// More than code changed (or hotswaps are off for the environment): the full deploy applies it.
    Refused(String),
}

/// Where a hotswap's time went, printed at the end of its line: the cargo build, packaging (hash and zip),
/// the code update on the local AWS endpoint (upload, `UpdateFunctionCode`) and the engine's reload.
#[derive(Debug, Default)]
struct Phases {
    cargo: Duration,
    package: Duration,
    update: Duration,
    reload: Duration,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cargo {:.1} s, package {:.1} s, update {:.1} s, reload {:.1} s",
            self.cargo.as_secs_f64(),
            self.package.as_secs_f64(),
            self.update.as_secs_f64(),
            self.reload.as_secs_f64()
        )
    }
}

/// Replaces this process with `exe`, built from the sources at `built_from`, and the same arguments (same pid,
/// same terminal, same Ctrl-C).
fn restart_self(exe: &Path, built_from: &Path) -> anyhow::Result<ExitStatus> {
    use std::os::unix::process::CommandExt as _;
    // With --workspace the new binary carries the scratch copy's code: its source check compares with that copy.
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("XTASK_SOURCE_CHECKOUT", built_from)
        .exec();
    Err(err).with_context(|| format!("restarting {}", exe.display()))
}

/// The wall-clock time at the start of each line.
fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind};

    fn watched() -> Watched {
        Watched {
            root: "/w".into(),
            functions: "/w/functions".into(),
            config: "/w/config".into(),
            templates: "/w/templates".into(),
            stack: "/w/stack".into(),
            domain: "/w/functions/domain".into(),
        }
    }

    #[test]
    fn changes_are_sorted_by_what_they_need_and_noise_is_ignored() {
        let w = watched();
        let mut c = Changes::default();
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        for p in [
            "/w/functions/query/src/main.rs",
            "/w/functions/query/src/.main.rs.swp",
            "/w/functions/query/src/main.rs~",
            "/w/functions/query/src/4913",
            "/w/functions/query/src/.#main.rs",
            "/w/functions/target/debug/x",
            "/w/config/local.yaml",
            "/w/templates/stack.yaml.hbs",
            "/w/stack/src/plan.rs",
            "/w/functions/domain/src/aggregates/account.rs",
            "/w/Cargo.lock",
            "/w/Cargo.toml",
            "/w/README.md",
        ] {
            w.classify(&write, &[PathBuf::from(p)], &mut c);
        }
        assert_eq!(
            c.functions,
            BTreeSet::from([
                PathBuf::from("/w/Cargo.lock"),
                PathBuf::from("/w/Cargo.toml"),
                PathBuf::from("/w/functions/query/src/main.rs"),
            ])
        );
        assert_eq!(
            c.config,
            BTreeSet::from([PathBuf::from("/w/config/local.yaml")])
        );
        assert_eq!(
            c.tool,
            BTreeSet::from([
                PathBuf::from("/w/functions/domain/src/aggregates/account.rs"),
                PathBuf::from("/w/stack/src/plan.rs"),
                PathBuf::from("/w/templates/stack.yaml.hbs"),
            ])
        );

        // Reads (cargo opens every source while building) are not changes.
        let mut reads = Changes::default();
        w.classify(
            &EventKind::Access(AccessKind::Open(AccessMode::Read)),
            &[PathBuf::from("/w/functions/query/src/main.rs")],
            &mut reads,
        );
        assert!(reads.is_empty());
        w.classify(
            &EventKind::Create(CreateKind::File),
            &[PathBuf::from("/w/functions/query/src/new.rs")],
            &mut reads,
        );
        assert_eq!(reads.functions.len(), 1);
    }
}
