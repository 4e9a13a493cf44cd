//! `cargo xtask bench`: benchmark figures printed on this machine (speed goals live here, never in tests).

use crate::exit::ExitStatus;

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
    Deploy(crate::deploy::BenchArgs),
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
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    match args.what {
        What::Local(a) => local(a).await,
        What::Hotswap(a) => hotswap(a).await,
        What::Deploy(a) => crate::deploy::bench(a).await,
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

/// Deploys a small stack to its own fresh local endpoint, then times, per changed-function count, a full deploy
/// (change set + CloudFormation update) and a hotswap (UpdateFunctionCode + function_updated_v2 waiter) of a code
/// change, both including the zip uploads. The binaries are the local build's when present (`cargo xtask build`),
/// else `/bin/true`, with a few bytes appended per round so every round is a real code change.
async fn hotswap(args: HotswapArgs) -> anyhow::Result<ExitStatus> {
    use deployer::ui::{Confirmation, RecordingUi};
    use stack::FunctionName;
    let tmp = tempfile_dir()?;
    let moto = local_engine::endpoint::Endpoint::start_fresh(&tmp.join("state")).await?;
    let clients = deployer::aws::Clients::from_sdk_config(&moto.sdk_config().await);
    let config = tmp.join("config");
    std::fs::create_dir_all(&config)?;
    std::fs::copy(
        crate::cli::repo_root().join("config/defaults.yaml"),
        config.join("defaults.yaml"),
    )?;
    let yaml = format!(
        "kind: local\nstack_name: bench-hotswap\nregion: us-east-1\nlocal:\n  gateway_port: {}\n  endpoint_port: {}\ndeploy:\n  hotswap: true\n",
        local_engine::endpoint::free_port()?,
        moto.port()
    );
    std::fs::write(config.join("bench.yaml"), yaml)?;
    let (plan, template) =
        stack::load_checked(&config, "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let bucket = deployer::artifacts::bucket_name(&plan, None);
    let built = deployer::build::dist_dir(
        &deployer::build::default_target_dir(&crate::cli::repo_root()),
        "local",
    );
    let ui = RecordingUi::new(Confirmation::Yes);
    let mut round = 0u32;
    // A release where the first `changed` functions differ from the last one deployed.
    let mut versions = [0u32; 3];
    let mut release = |changed: usize| -> anyhow::Result<deployer::build::Release> {
        round += 1;
        let mut req = deployer::build::BuildRequest::for_plan(
            &plan,
            &crate::cli::repo_root(),
            &template.sha256,
        )?;
        req.target_dir = tmp.join(format!("target-{round}"));
        let mut binaries = std::collections::BTreeMap::new();
        for (i, f) in FunctionName::ALL.into_iter().enumerate() {
            if i < changed {
                versions[i] = round;
            }
            let src = built.join(f.as_str()).join("bootstrap");
            let mut bytes = std::fs::read(&src).or_else(|_| std::fs::read("/bin/true"))?;
            bytes.extend_from_slice(format!("bench-{}-{}", f.as_str(), versions[i]).as_bytes());
            let path = tmp.join(format!("bin-{round}-{}", f.as_str()));
            std::fs::write(&path, bytes)?;
            binaries.insert(f, path);
        }
        Ok(deployer::build::package(&req, &binaries, &ui)?)
    };
    let opts = deployer::deploy::DeployOptions::for_plan(&plan);
    let full = |r: deployer::build::Release| {
        let (clients, plan, template, bucket, opts, ui) =
            (&clients, &plan, &template, &bucket, &opts, &ui);
        async move {
            let req = deployer::deploy::DeployRequest {
                plan,
                template_body: &template.body,
                release: &r,
                bucket,
            };
            let started = std::time::Instant::now();
            deployer::deploy::deploy(clients, req, opts, ui).await?;
            deployer::hotswap::reconcile(clients, plan, bucket, &r.manifest).await?;
            Ok::<_, anyhow::Error>(started.elapsed())
        }
    };
    full(release(3)?).await?;
    let mut rows = Vec::new();
    for changed in [1usize, 3] {
        let (mut full_ms, mut swap_ms) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            full_ms.push(full(release(changed)?).await?.as_secs_f64() * 1000.0);
            let r = release(changed)?;
            let started = std::time::Instant::now();
            let outcome =
                deployer::hotswap::hotswap(&clients, &plan, &template.body, &r, &bucket, &ui)
                    .await?;
            swap_ms.push(started.elapsed().as_secs_f64() * 1000.0);
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
    drop(moto);
    let _ = std::fs::remove_dir_all(&tmp);
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A fresh directory under the system temp dir for one bench run.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-bench-hotswap-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
