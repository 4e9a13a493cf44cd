//! `cargo xtask bench`: benchmark figures printed on this machine (speed goals live here, never in tests).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest};
use deployer::ui::{Confirmation, RecordingUi};
use stack::FunctionName;

use crate::exit::ExitStatus;

mod inspector;
mod store;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The local engine: gateway vs direct invoke latency (p50/p99) and projection lag.
    /// Needs a deployed local stack (`cargo xtask deploy`).
    Local(LocalArgs),
    /// `deploy --hotswap` of 1 and of 3 functions vs a full CloudFormation update of the same change, on a
    /// fresh local endpoint of its own (the figures are wall times on this machine).
    Hotswap(HotswapArgs),
    /// Full deploy, no-op deploy and teardown wall times on a fresh local endpoint of its own.
    Deploy(DeployArgs),
    /// The user's view: whole `cargo xtask` processes as typed at a shell (deploy, no-op deploy, status,
    /// teardown; `--cold` adds a fresh clone's first deploy), beside the in-process figures.
    Cli(crate::bench_cli::Args),
    /// Edit to live: `cargo xtask dev` spawned as a user runs it vs `cargo lambda watch`, timed from saving a
    /// behaviour change of one function to the first answer showing it. Edits functions/query/src/main.rs and
    /// restores it afterwards.
    Dev(crate::bench_dev::Args),
    /// The release build of an AWS deploy (cargo-lambda): each binary's size, zip size, glibc floor and
    /// process start-to-ready time (spawn -> first Runtime API poll).
    Release(crate::bench_release::Args),
    /// Event store cost: DynamoDB requests and capacity units per append at 10, 1,000 and 10,000 events
    /// of history, per batch append and per projected batch, on a fresh local endpoint of its own.
    Store(store::StoreArgs),
    /// The local inspector: opening an aggregate of 10,000 events (first open with its full replay, next
    /// open, a page deep in the history), on a fresh local endpoint of its own.
    Inspector(inspector::InspectorArgs),
}

/// Arguments of `cargo xtask bench deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Rounds (the median of each figure is printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

/// Arguments of `cargo xtask bench hotswap`.
#[derive(Debug, clap::Args)]
pub struct HotswapArgs {
    /// Rounds per figure (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

/// Arguments of `cargo xtask bench local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// Requests per latency figure.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Events posted for the projection lag figure (each waits for its read model before the next is posted).
    #[arg(long, default_value_t = 100)]
    pub lag_events: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    match args.what {
        What::Local(a) => local(a).await,
        What::Hotswap(a) => hotswap(a).await,
        What::Deploy(a) => deploy(a).await,
        What::Cli(a) => crate::bench_cli::run(a).await,
        What::Dev(a) => crate::bench_dev::run(a).await,
        What::Release(a) => crate::bench_release::run(a).await,
        What::Store(a) => store::run(a).await,
        What::Inspector(a) => inspector::run(a).await,
    }
}

async fn local(args: LocalArgs) -> anyhow::Result<ExitStatus> {
    let plan = stack::config::load(&args.env.config_dir, &args.env.env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(local) = &plan.local else {
        anyhow::bail!(
            "`bench local` needs a local environment; `{}` is not one",
            plan.env
        );
    };
    let endpoint_url = format!("http://127.0.0.1:{}", local.endpoint_port);
    let cargo_lambda = cargo_lambda_for_bench().await;
    let report = local_engine::bench::run(
        &plan,
        &endpoint_url,
        &crate::serve::dist_dir(&plan),
        args.samples.max(1),
        args.lag_events.max(1),
        &cargo_lambda,
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!("{e:#}; deploy the local stack first with `cargo xtask deploy`")
    })?;
    match args.output {
        crate::cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::cli::OutputFormat::Text => print!("{report}"),
    }
    Ok(ExitStatus::Success)
}

/// The pinned cargo-lambda for the `cargo lambda watch` comparison, installed on first use where the deployer
/// installs it for release builds (`<tools>/cargo-lambda`); an install failure skips the comparison, saying why.
async fn cargo_lambda_for_bench() -> local_engine::bench::CargoLambda {
    let root = crate::cli::repo_root();
    let tools = deployer::build::tools_dir(&root);
    let installed = tokio::task::spawn_blocking(move || {
        let ui = deployer::ui::ConsoleUi::new(true);
        deployer::build::ensure_cargo_lambda(&tools, &ui)
    })
    .await;
    match installed {
        Ok(Ok(venv)) => local_engine::bench::CargoLambda::Installed {
            bin_dir: venv.join("bin"),
            workspace: root,
        },
        Ok(Err(e)) => local_engine::bench::CargoLambda::Unavailable(format!(
            "installing cargo-lambda {} failed: {e}",
            deployer::build::CARGO_LAMBDA_VERSION
        )),
        Err(e) => local_engine::bench::CargoLambda::Unavailable(e.to_string()),
    }
}

/// A throwaway stack for the deploy and hotswap benchmarks: its own fresh local endpoint, a `local` config
/// named `bench` in a temporary directory (removed on drop, with the endpoint), and the checked plan.
struct Sandbox {
    tmp: PathBuf,
    clients: deployer::aws::Clients,
    plan: stack::Plan,
    template: stack::RenderedTemplate,
    bucket: String,
    // Dropped after the fields above: the endpoint dies with the sandbox.
    _moto: local_engine::endpoint::Endpoint,
}

impl Sandbox {
    /// `stack_name` names the stack; `deploy_yaml` is the config's `deploy:` section, if any.
    async fn start(stack_name: &str, deploy_yaml: &str) -> anyhow::Result<Sandbox> {
        let tmp = std::env::temp_dir().join(format!("xtask-{stack_name}-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let moto = local_engine::endpoint::Endpoint::start_fresh(&tmp.join("state")).await?;
        let clients = deployer::aws::Clients::from_sdk_config(&moto.sdk_config().await);
        let config = tmp.join("config");
        std::fs::create_dir_all(&config)?;
        std::fs::copy(
            crate::cli::repo_root().join("config/defaults.yaml"),
            config.join("defaults.yaml"),
        )?;
        let yaml = format!(
            "kind: local\nstack_name: {stack_name}\nregion: us-east-1\nlocal:\n  gateway_port: {}\n  endpoint_port: {}\n{deploy_yaml}",
            local_engine::endpoint::free_port()?,
            moto.port()
        );
        std::fs::write(config.join("bench.yaml"), yaml)?;
        let (plan, template) =
            stack::load_checked(&config, "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        let bucket = deployer::artifacts::bucket_name(&plan, None);
        Ok(Sandbox {
            tmp,
            clients,
            plan,
            template,
            bucket,
            _moto: moto,
        })
    }

    /// Packages `binaries` as a release of the sandbox's plan, in a target directory of its own under the sandbox.
    fn package(
        &self,
        target: &str,
        binaries: &BTreeMap<FunctionName, PathBuf>,
        ui: &dyn deployer::ui::Ui,
    ) -> anyhow::Result<Release> {
        let mut req = deployer::build::BuildRequest::for_plan(
            &self.plan,
            &crate::cli::repo_root(),
            &self.template.sha256,
        )?;
        req.target_dir = self.tmp.join(target);
        Ok(deployer::build::package(&req, binaries, ui)?)
    }

    /// The full deploy path of `cargo xtask deploy` for `release`.
    async fn deploy(
        &self,
        release: &Release,
        opts: &DeployOptions,
        ui: &dyn deployer::ui::Ui,
    ) -> anyhow::Result<deployer::deploy::DeployOutcome> {
        let req = DeployRequest {
            plan: &self.plan,
            template_body: &self.template.body,
            release,
            bucket: &self.bucket,
        };
        Ok(deployer::deploy::deploy(&self.clients, req, opts, ui).await?)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// The binary of `f` from the last local build (`cargo xtask build` or `deploy`), else `/bin/true`: the
/// benchmarks time deploys, not cargo.
fn built_binary(f: FunctionName) -> PathBuf {
    let built = deployer::build::dist_dir(
        &deployer::build::default_target_dir(&crate::cli::repo_root()),
        "local",
    )
    .join(f.as_str())
    .join("bootstrap");
    if built.exists() {
        built
    } else {
        PathBuf::from("/bin/true")
    }
}

/// `cargo xtask bench deploy`: the in-process figures of [`deploy_figures`].
async fn deploy(args: DeployArgs) -> anyhow::Result<ExitStatus> {
    let rounds = args.rounds.max(1);
    let figures = deploy_figures(rounds).await?;
    match args.output {
        crate::cli::OutputFormat::Json => println!("{}", serde_json::to_string(&figures)?),
        crate::cli::OutputFormat::Text => {
            println!(
                "deploy on a fresh local endpoint (median of {rounds} rounds, {} bytes of zips):",
                figures.zip_bytes
            );
            println!(
                "  full deploy (create, uploads included)  {:>8.0} ms",
                figures.full_deploy_ms
            );
            println!(
                "  no-op deploy (up to date)               {:>8.0} ms",
                figures.noop_deploy_ms
            );
            println!(
                "  teardown (stack and artifact bucket)    {:>8.0} ms",
                figures.teardown_ms
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// Median in-process wall times of the deploy path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployFigures {
    pub rounds: usize,
    pub zip_bytes: u64,
    pub full_deploy_ms: f64,
    pub noop_deploy_ms: f64,
    pub teardown_ms: f64,
}

/// On a fresh local endpoint of its own, times a full deploy (first create, uploads included), a no-op deploy of
/// the same release (the "up to date" path) and a teardown, through the same deployer calls as
/// `deploy`/`teardown`, in this process. The cargo build itself is not timed (it is cargo's, and a no-op build is
/// cargo's no-op).
pub(crate) async fn deploy_figures(rounds: usize) -> anyhow::Result<DeployFigures> {
    let sandbox = Sandbox::start("bench-deploy", "").await?;
    let binaries = FunctionName::ALL
        .into_iter()
        .map(|f| (f, built_binary(f)))
        .collect();
    let ui = RecordingUi::new(Confirmation::Yes);
    let release = sandbox.package("target", &binaries, &ui)?;
    let opts = DeployOptions::for_plan(&sandbox.plan);
    let teardown_opts = deployer::teardown::TeardownOptions {
        delete_data: false,
        confirm: false,
        poll_interval: deployer::deploy::poll_interval(&sandbox.plan),
        wait_timeout: deployer::stackops::DEFAULT_WAIT_TIMEOUT,
    };
    let (mut full, mut noop, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let first = sandbox.deploy(&release, &opts, &ui).await?;
        full.push(ms(t));
        anyhow::ensure!(
            first.result == deployer::deploy::DeployResult::Created,
            "the first deploy must create the stack"
        );
        let t = Instant::now();
        let again = sandbox.deploy(&release, &opts, &ui).await?;
        noop.push(ms(t));
        anyhow::ensure!(
            again.result == deployer::deploy::DeployResult::UpToDate,
            "the second deploy must be a no-op"
        );
        let t = Instant::now();
        deployer::teardown::teardown(
            &sandbox.clients,
            &sandbox.plan,
            &sandbox.bucket,
            &teardown_opts,
            &ui,
        )
        .await?;
        down.push(ms(t));
    }
    drop(sandbox);
    let zip_bytes: u64 = release
        .manifest
        .functions
        .values()
        .map(|a| a.zip_size)
        .sum();
    Ok(DeployFigures {
        rounds: rounds.max(1),
        zip_bytes,
        full_deploy_ms: median(&mut full),
        noop_deploy_ms: median(&mut noop),
        teardown_ms: median(&mut down),
    })
}

/// Deploys a small stack to its own fresh local endpoint, then times, per changed-function count, a full deploy
/// (change set + CloudFormation update) and a hotswap (UpdateFunctionCode + function_updated_v2 waiter) of a code
/// change, both including the zip uploads. The binaries are the local build's when present (`cargo xtask build`),
/// else `/bin/true`, with a few bytes appended per round so every round is a real code change.
async fn hotswap(args: HotswapArgs) -> anyhow::Result<ExitStatus> {
    let sandbox = Sandbox::start("bench-hotswap", "deploy:\n  hotswap: true\n").await?;
    let ui = RecordingUi::new(Confirmation::Yes);
    let mut round = 0u32;
    // A release where the first `changed` functions differ from the last one deployed.
    let mut versions = [0u32; 3];
    let mut release = |changed: usize| -> anyhow::Result<Release> {
        round += 1;
        let mut binaries = BTreeMap::new();
        for (i, f) in FunctionName::ALL.into_iter().enumerate() {
            if i < changed {
                versions[i] = round;
            }
            let mut bytes = std::fs::read(built_binary(f))?;
            bytes.extend_from_slice(format!("bench-{}-{}", f.as_str(), versions[i]).as_bytes());
            let path = sandbox.tmp.join(format!("bin-{round}-{}", f.as_str()));
            std::fs::write(&path, bytes)?;
            binaries.insert(f, path);
        }
        sandbox.package(&format!("target-{round}"), &binaries, &ui)
    };
    let opts = DeployOptions::for_plan(&sandbox.plan);
    // A full deploy, then the stack's parameters catch up with any hotswap drift: timed together.
    let full = async |r: Release| {
        let started = Instant::now();
        sandbox.deploy(&r, &opts, &ui).await?;
        deployer::hotswap::reconcile(
            &sandbox.clients,
            &sandbox.plan,
            &sandbox.bucket,
            &r.manifest,
        )
        .await?;
        Ok::<_, anyhow::Error>(ms(started))
    };
    full(release(3)?).await?;
    let mut rows = Vec::new();
    for changed in [1usize, 3] {
        let (mut full_ms, mut swap_ms) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            full_ms.push(full(release(changed)?).await?);
            let r = release(changed)?;
            let started = Instant::now();
            let outcome = deployer::hotswap::hotswap(
                &sandbox.clients,
                &sandbox.plan,
                &sandbox.template.body,
                &r,
                &sandbox.bucket,
                &ui,
            )
            .await?;
            swap_ms.push(ms(started));
            anyhow::ensure!(
                outcome.swapped.len() == changed,
                "expected {changed} swapped, got {}",
                outcome.swapped.len()
            );
            full(r).await?; // reconcile before the next round (not timed)
        }
        rows.push(serde_json::json!({
            "changed_functions": changed,
            "full_deploy_ms_median": median(&mut full_ms),
            "hotswap_ms_median": median(&mut swap_ms),
            "rounds": full_ms.len(),
        }));
    }
    drop(sandbox);
    match args.output {
        crate::cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        crate::cli::OutputFormat::Text => {
            println!(
                "hotswap vs full CloudFormation update (local endpoint, median wall time, uploads included)"
            );
            for r in &rows {
                println!(
                    "  {} function(s): full deploy {:>8.0} ms   hotswap {:>8.0} ms",
                    r["changed_functions"],
                    r["full_deploy_ms_median"].as_f64().unwrap_or(0.0),
                    r["hotswap_ms_median"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
