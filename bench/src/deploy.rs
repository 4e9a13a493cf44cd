//! `cargo xtask bench deploy` and `bench hotswap`: the deploy path's wall times, in this process, on a fresh
//! local endpoint of its own (a throwaway `local` environment named `bench-*`), through the same deployer calls
//! as `cargo xtask deploy`/`teardown`/`deploy --hotswap`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest};
use deployer::ui::{Confirmation, RecordingUi};
use serde::Serialize;
use stack::FunctionName;

use crate::{median, ms};

/// Arguments of `cargo xtask bench deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Rounds (the median of each figure is printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// Arguments of `cargo xtask bench hotswap`.
#[derive(Debug, clap::Args)]
pub struct HotswapArgs {
    /// Rounds per figure (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
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
            crate::repo_root().join("config/defaults.yaml"),
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
            &crate::repo_root(),
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
    let root = crate::repo_root();
    let built =
        deployer::build::dist_dir(&deployer::build::default_target_dir(&root), &root, "local")
            .join(f.as_str())
            .join("bootstrap");
    if built.exists() {
        built
    } else {
        PathBuf::from("/bin/true")
    }
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

impl std::fmt::Display for DeployFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "deploy on a fresh local endpoint (median of {} rounds, {} bytes of zips):",
            self.rounds, self.zip_bytes
        )?;
        writeln!(
            f,
            "  full deploy (create, uploads included)  {:>8.0} ms",
            self.full_deploy_ms
        )?;
        writeln!(
            f,
            "  no-op deploy (up to date)               {:>8.0} ms",
            self.noop_deploy_ms
        )?;
        writeln!(
            f,
            "  teardown (stack and artifact bucket)    {:>8.0} ms",
            self.teardown_ms
        )
    }
}

/// On a fresh local endpoint of its own, times a full deploy (first create, uploads included), a no-op deploy of
/// the same release (the "up to date" path) and a teardown, through the same deployer calls as
/// `deploy`/`teardown`, in this process. The cargo build itself is not timed (it is cargo's, and a no-op build is
/// cargo's no-op).
pub async fn deploy_figures(rounds: usize) -> anyhow::Result<DeployFigures> {
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
        full_deploy_ms: median(&full),
        noop_deploy_ms: median(&noop),
        teardown_ms: median(&down),
    })
}

/// Deploys a small stack to its own fresh local endpoint, then times, per changed-function count, a full deploy
/// (change set + CloudFormation update) and a hotswap (UpdateFunctionCode + function_updated_v2 waiter) of a code
/// change, both including the zip uploads. The binaries are the local build's when present (`cargo xtask build`),
/// else `/bin/true`, with a few bytes appended per round so every round is a real code change.
pub async fn hotswap_figures(rounds: usize) -> anyhow::Result<HotswapFigures> {
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
        for _ in 0..rounds.max(1) {
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
        rows.push(HotswapRow {
            changed_functions: changed,
            full_deploy_ms_median: median(&full_ms),
            hotswap_ms_median: median(&swap_ms),
            rounds: full_ms.len(),
        });
    }
    drop(sandbox);
    Ok(HotswapFigures(rows))
}

/// One row of `bench hotswap`: median wall times for a change of `changed_functions` functions.
#[derive(Debug, Clone, Serialize)]
pub struct HotswapRow {
    pub changed_functions: usize,
    pub full_deploy_ms_median: f64,
    pub hotswap_ms_median: f64,
    pub rounds: usize,
}

/// The figures of `bench hotswap` (its JSON is the list of rows).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct HotswapFigures(pub Vec<HotswapRow>);

impl std::fmt::Display for HotswapFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "hotswap vs full CloudFormation update (local endpoint, median wall time, uploads included)"
        )?;
        for r in &self.0 {
            writeln!(
                f,
                "  {} function(s): full deploy {:>8.0} ms   hotswap {:>8.0} ms",
                r.changed_functions, r.full_deploy_ms_median, r.hotswap_ms_median
            )?;
        }
        Ok(())
    }
}
