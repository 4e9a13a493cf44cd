//! `cargo xtask promote --from <env> --to <env>`: deploy the release that runs in one environment into the next,
//! without rebuilding. The checks, the artifact copy and the code verification live in `deployer::promote`; the
//! deployment itself goes through the same change set, guards and progress as `cargo xtask deploy`.
//!
//! `cargo xtask promote --oidc-roles-template --github-repo owner/name` prints the one-time bootstrap template of
//! the CI deploy roles instead (see README.md, "Continuous delivery").

use std::path::PathBuf;

use anyhow::Context as _;
use deployer::deploy::DeployRequest;
use deployer::promote::{self as promotion, OidcEnvironment};
use deployer::ui::ConsoleUi;
use serde::Serialize;
use stack::{EnvKind, Plan, RenderedTemplate};

use crate::cli::{EnvArgs, OutputFormat};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask promote`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment whose deployed (and smoke-tested) release is promoted, e.g. `dev`.
    #[arg(long, required_unless_present = "oidc_roles_template")]
    pub from: Option<String>,
    /// Environment that receives it; its config must say `deploy.promote_from: <from>`.
    #[arg(long, required_unless_present = "oidc_roles_template")]
    pub to: Option<String>,
    /// Do not ask for confirmation (CI). Without it and without a terminal, promotion refuses.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Let the change set replace or remove a table (data loss). Refused otherwise, as for deploy.
    #[arg(long)]
    pub allow_data_loss: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub wait: crate::cli::WaitArgs,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
    /// Directory holding the per-environment YAML files.
    #[arg(long, default_value_os_t = crate::cli::repo_root().join("config"), env = "XTASK_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// Instead of promoting, print the CloudFormation template that bootstraps the CI deploy roles (GitHub OIDC
    /// provider + one role per environment, from the configs' role_arn) for one AWS account.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub oidc_roles_template: bool,
    /// GitHub repository (owner/name) whose workflow may assume the roles.
    #[arg(long, env = "GITHUB_REPOSITORY", requires = "oidc_roles_template")]
    pub github_repo: Option<String>,
    /// AWS account to render the roles for (needed when the environments span several accounts).
    #[arg(long, requires = "oidc_roles_template")]
    pub account: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    if args.oidc_roles_template {
        return crate::deploy::report_errors(print_oidc_roles(&args));
    }
    let output = args.output;
    finish(promote_cmd(args).await, output)
}

async fn promote_cmd(args: Args) -> anyhow::Result<PromotionReport> {
    let (from, to) = (
        args.from.clone().expect("clap requires --from"),
        args.to.clone().expect("clap requires --to"),
    );
    let env_args = |env: &str| EnvArgs {
        env: env.to_string(),
        config_dir: args.config_dir.clone(),
    };
    let (source, _) = crate::deploy::load(&env_args(&from))?;
    let (target, template) = crate::deploy::load(&env_args(&to))?;
    crate::deploy::refuse_placeholders(&target)?;
    let mut deploy = deployer::deploy::DeployOptions::for_plan(&target);
    deploy.allow_data_loss = args.allow_data_loss;
    deploy.wait_timeout = args.wait.duration();
    let root = crate::cli::repo_root();
    let options = Options {
        deploy,
        yes: args.yes,
        dist_dir: deployer::build::dist_dir(
            &deployer::build::default_target_dir(&root),
            &root,
            &target.env,
        ),
    };
    // The target changes: its lock is held throughout, engine start included, as for `deploy`.
    let lock = crate::deploy::lock_env(&target, args.lock).await?;
    let mut report = promote(&source, &target, &template, &options, &lock).await?;
    // As after `deploy`: a local target is served by the local engine, now from the promoted binaries.
    if let Some(endpoint_url) = &report.endpoint_url {
        let gateway = crate::deploy::start_local_engine(&target, endpoint_url)
            .await
            .context("starting the local engine")?;
        report.api_url = Some(gateway);
    }
    Ok(report)
}

/// Prints a command's result (text or one JSON document) or its error, and returns the documented exit code.
/// With `--output json` an error is a JSON document too, so CI can read why a promotion was refused.
pub(crate) fn finish<T: Serialize + std::fmt::Display>(
    result: anyhow::Result<T>,
    output: OutputFormat,
) -> anyhow::Result<ExitStatus> {
    match result {
        Ok(report) => {
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Text => print!("{report}"),
            }
            Ok(ExitStatus::Success)
        }
        Err(err) => {
            let status = crate::deploy::exit_status_of(&err);
            if output == OutputFormat::Json {
                let kind = match status {
                    ExitStatus::Refused => "refused",
                    ExitStatus::InvalidInput => "invalid_input",
                    _ => "failed",
                };
                println!(
                    "{}",
                    serde_json::json!({ "status": kind, "exit_code": status.code(), "error": format!("{err:#}") })
                );
            }
            eprintln!("error: {err:#}");
            Ok(status)
        }
    }
}

/// What `promote` needs besides the two plans.
#[derive(Debug, Clone)]
pub struct Options {
    /// The deploy options of the target (confirmation, data-loss guard, polling), as `deploy` would use them.
    pub deploy: deployer::deploy::DeployOptions,
    /// `--yes`: answer the confirmation (CI).
    pub yes: bool,
    /// Where the release is materialized: the target's dist directory (`deployer::build::dist_dir`), where
    /// `cargo xtask build --env <to>` would have put it.
    pub dist_dir: PathBuf,
}

/// The result of a promotion, for people (`Display`) and CI (`Serialize`).
#[derive(Debug, Clone, Serialize)]
pub struct PromotionReport {
    pub from: String,
    pub to: String,
    pub release_digest: String,
    pub git_revision: String,
    /// Keys uploaded to the target bucket (empty when it already held them, e.g. the same bucket).
    pub uploaded: Vec<String>,
    pub code: Vec<promotion::CodeCheck>,
    pub up_to_date: bool,
    pub outputs: std::collections::BTreeMap<String, String>,
    pub api_url: Option<String>,
    /// The target's local AWS endpoint (local environments only).
    #[serde(skip)]
    pub endpoint_url: Option<String>,
}

impl std::fmt::Display for PromotionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "promoted release {} (git {}) from `{}` to `{}`{}",
            self.release_digest,
            self.git_revision,
            self.from,
            self.to,
            if self.up_to_date {
                " (already deployed)"
            } else {
                ""
            }
        )?;
        if !self.uploaded.is_empty() {
            writeln!(
                f,
                "  copied {} object(s) to the target bucket",
                self.uploaded.len()
            )?;
        }
        for c in &self.code {
            writeln!(
                f,
                "  {:<10} CodeSha256 {} matches the release",
                c.function.as_str(),
                c.deployed
            )?;
        }
        for (k, v) in &self.outputs {
            writeln!(f, "  {k}: {v}")?;
        }
        if let Some(url) = &self.api_url {
            writeln!(f, "API: {url}")?;
        }
        Ok(())
    }
}

/// Promotes the release deployed in `source` into `target` (see the module docs of `deployer::promote`).
/// `template` is the target's checked template, rendered from the target's config; `lock` is the target's
/// (`local_engine::lock`: the caller holds it, so no other command changes the target meanwhile).
pub async fn promote(
    source: &Plan,
    target: &Plan,
    template: &RenderedTemplate,
    options: &Options,
    lock: &local_engine::lock::EnvLock,
) -> anyhow::Result<PromotionReport> {
    let src = crate::deploy::connect(source, Some(lock)).await?;
    let src_bucket = deployer::artifacts::bucket_name(source, src.account.as_deref());
    let src_stack = deployer::stackops::describe(&src.clients.cfn, &source.stack_name).await?;
    let digest = src_stack
        .as_ref()
        .and_then(|s| {
            deployer::stackops::parameters_of(s)
                .get(stack::parameters::RELEASE_DIGEST)
                .cloned()
        })
        .filter(|d| !d.is_empty());
    let manifest = match &digest {
        Some(d) => promotion::get_manifest(&src.clients.s3, &src_bucket, d).await?,
        None => None,
    };
    let smoke = promotion::get_smoke_record(&src.clients.s3, &src_bucket, &source.env).await?;
    let facts = promotion::SourceFacts {
        stack_name: source.stack_name.clone(),
        bucket: src_bucket.clone(),
        digest: digest.clone(),
        manifest_found: manifest.is_some(),
        smoke,
    };
    // Every reason is reported at once (order, release, manifest, smoke), before anything is changed.
    let refusals = promotion::check_promotion(source, target, &facts);
    if !refusals.is_empty() {
        return Err(promotion::refused(&refusals).into());
    }
    let manifest = manifest.expect("checked: the manifest exists");
    let digest = digest.expect("checked: a digest is recorded");

    // The target's credentials and account are checked before anything is downloaded or written locally.
    let dst = crate::deploy::connect(target, Some(lock)).await?;
    let dst_bucket = deployer::artifacts::bucket_name(target, dst.account.as_deref());
    if let Some(refusal) = promotion::check_placement(
        source,
        src.account.as_deref(),
        &src_bucket,
        target,
        dst.account.as_deref(),
        &dst_bucket,
    ) {
        return Err(promotion::refused(&[refusal]).into());
    }

    // The release is materialized where `cargo xtask build --env <to>` would have put it, so the deploy path,
    // `status` and the local engine see an ordinary release of the target; nothing is rebuilt. It is read with
    // the source's credentials, in the source's region: the target's may not reach the source bucket.
    let release =
        promotion::fetch_release(&src.clients.s3, &src_bucket, &manifest, &options.dist_dir)
            .await?;

    // The same deploy path as `cargo xtask deploy`: bucket, uploads of missing keys (the zips and the manifest,
    // so the target records it), change set, data-loss guard, confirmation, progress.
    let ui = ConsoleUi::new(options.yes);
    let request = DeployRequest {
        plan: target,
        template_body: &template.body,
        release: &release,
        bucket: &dst_bucket,
    };
    let deploy_options = crate::deploy::options_for(options.deploy.clone(), target, &dst);
    let outcome = deployer::deploy::deploy(&dst.clients, request, &deploy_options, &ui)
        .await
        .with_context(|| {
            format!(
                "deploying the promoted release to stack `{}`",
                target.stack_name
            )
        })?;
    let code = promotion::verify_code(&dst.clients.lambda, target, &manifest).await?;
    if target.kind == stack::EnvKind::Aws {
        // The target's live versions of the promoted digests, for its `rollback`.
        deployer::rollback::record(
            &dst.clients,
            target,
            &dst_bucket,
            deployer::rollback::Change::Deploy,
            Some(digest.clone()),
        )
        .await
        .context("recording the release history")?;
    }
    Ok(PromotionReport {
        from: source.env.clone(),
        to: target.env.clone(),
        release_digest: digest,
        git_revision: manifest.git_revision.clone(),
        uploaded: outcome.uploads.map(|u| u.uploaded).unwrap_or_default(),
        code,
        up_to_date: outcome.result == deployer::deploy::DeployResult::UpToDate,
        outputs: outcome.outputs,
        api_url: outcome.api_url,
        endpoint_url: dst.endpoint_url,
    })
}

fn print_oidc_roles(args: &Args) -> anyhow::Result<ExitStatus> {
    let Some(repo) = args.github_repo.as_deref() else {
        return Ok(invalid(
            "--oidc-roles-template needs --github-repo owner/name (or GITHUB_REPOSITORY)",
        ));
    };
    let envs = match stack::config::environments(&args.config_dir) {
        Ok(envs) => envs,
        Err(e) => return Ok(invalid(&e.to_string())),
    };
    let mut plans = Vec::new();
    for env in envs {
        match stack::config::load(&args.config_dir, &env) {
            Ok(p) if p.kind == EnvKind::Aws => plans.push(p),
            Ok(_) => {}
            Err(e) => return Ok(invalid(&e.to_string())),
        }
    }
    let all: Vec<OidcEnvironment<'_>> = plans
        .iter()
        .map(|p| OidcEnvironment {
            plan: p,
            artifact_bucket: deployer::artifacts::bucket_name(p, p.account_id.as_deref()),
        })
        .collect();
    let account_of = |e: &OidcEnvironment<'_>| e.plan.account_id.clone().unwrap_or_default();
    let mut accounts: Vec<String> = all.iter().map(account_of).collect();
    accounts.sort();
    accounts.dedup();
    let account = match (&args.account, accounts.as_slice()) {
        (Some(a), _) => a.clone(),
        (None, [one]) => one.clone(),
        (None, []) => {
            return Ok(invalid(
                "no aws environment in the config directory: nothing to bootstrap",
            ));
        }
        (None, many) => {
            return Ok(invalid(&format!(
                "the environments deploy into several accounts ({}); render one template per account with --account",
                many.join(", ")
            )));
        }
    };
    let mine: Vec<OidcEnvironment<'_>> = all
        .iter()
        .filter(|e| account_of(e) == account)
        .cloned()
        .collect();
    let body = promotion::render_oidc_roles(repo, &account, &mine, &all)?;
    print!("{body}");
    Ok(ExitStatus::Success)
}

fn invalid(message: &str) -> ExitStatus {
    eprintln!("error: {message}");
    ExitStatus::InvalidInput
}
