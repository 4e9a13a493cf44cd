//! `cargo xtask deploy`: build, upload and deploy the stack through a change set.
//!
//! For the `local` environment the same code path deploys to the local AWS endpoint (started in the
//! background on first use), then the local engine is started to serve the API from the built binaries.
//! This module also holds the small helpers the other stack commands share (loading the checked plan,
//! connecting, mapping deployer errors to exit codes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use deployer::build::{BuildRequest, Release};
use deployer::deploy::{DeployOptions, DeployRequest};
use deployer::ui::ConsoleUi;
use local_engine::lock::{EnvLock, LockError};
use stack::{EnvKind, Plan, RenderedTemplate};

use crate::cli::{EnvArgs, OutputFormat};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Deploy without asking for confirmation (CI). Without a terminal and without --yes, deploy refuses.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow changes that replace or remove the events or projections table, or change their keys or stream.
    #[arg(long)]
    pub allow_data_loss: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Exit with 4 instead of 0 when the stack was already up to date.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Only update the functions' code (lambda:UpdateFunctionCode), in seconds, when nothing else changed. The
    /// stack is then drifted in code (`status` shows it) until the next full deploy reconciles it. Refused where
    /// the config says `deploy.hotswap: false` (prod).
    #[arg(long)]
    pub hotswap: bool,
    /// Deploy the release `cargo xtask build --env <env>` left in `<target>/xtask/dist/<checkout>/<env>` instead of building
    /// (CI: build once, deploy that). Refused when it was built for another environment or template, or when a
    /// zip no longer matches its manifest.
    #[arg(long)]
    pub prebuilt: bool,
    #[command(flatten)]
    pub wait: crate::cli::WaitArgs,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(deploy(args).await)
}

async fn deploy(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _) = load(&args.env)?;
    let lock = lock_env(&plan, args.lock).await?;
    deploy_in(&crate::cli::repo_root(), args, &lock).await
}

/// `deploy` of the functions in the workspace at `root` (`cargo xtask dev --workspace` builds a scratch copy),
/// by a caller holding the environment's lock.
pub(crate) async fn deploy_in(
    root: &Path,
    args: Args,
    lock: &EnvLock,
) -> anyhow::Result<ExitStatus> {
    let (plan, template) = load(&args.env)?;
    refuse_placeholders(&plan)?;
    let ui = Arc::new(ConsoleUi::new(args.yes));
    crate::serve::check_gateway_port(&plan)?;
    let (env, release) = if args.prebuilt {
        (
            connect(&plan, Some(lock)).await?,
            prebuilt_release(&plan, &template)?,
        )
    } else {
        connect_and_build(root, &plan, &template, ui.clone(), Some(lock)).await?
    };
    let bucket = deployer::artifacts::bucket_name(&plan, env.account.as_deref());
    let target = Target {
        plan: &plan,
        template: &template,
        env: &env,
        release: &release,
        bucket: &bucket,
        ui: ui.as_ref(),
    };
    // Before any upload or change set: this build's events must not break the events already stored.
    let guard = DomainGuard::check(&target).await?;
    if args.hotswap {
        hotswap(&target, &args, &guard).await
    } else {
        full_deploy(&target, &args, &guard).await
    }
}

/// What one deploy works on: the environment, this build and where its artifacts go.
struct Target<'a> {
    plan: &'a Plan,
    template: &'a RenderedTemplate,
    env: &'a Connected,
    release: &'a Release,
    bucket: &'a str,
    ui: &'a ConsoleUi,
}

impl Target<'_> {
    /// On AWS, what `rollback` goes back to: the live versions after this change, in the release history.
    async fn record_release(&self, change: deployer::rollback::Change) -> anyhow::Result<()> {
        if self.plan.kind != EnvKind::Aws {
            return Ok(());
        }
        deployer::rollback::record(
            &self.env.clients,
            self.plan,
            self.bucket,
            change,
            Some(self.release.digest()),
        )
        .await
        .context("recording the release history")?;
        Ok(())
    }
}

/// The stored-events guard of one deploy: the domain recorded at the environment's last deploy and this build's.
struct DomainGuard {
    recorded: Option<domain::Description>,
    current: domain::Description,
}

impl DomainGuard {
    /// Refuses this build when its event schemas break the recorded ones (see `deployer::domain_guard`).
    async fn check(t: &Target<'_>) -> anyhow::Result<Self> {
        let current = domain::registry().describe();
        let recorded =
            deployer::domain_guard::recorded(&t.env.clients.s3, t.bucket, &t.plan.env).await?;
        deployer::domain_guard::check(&t.plan.env, recorded.as_ref(), &current)?;
        Ok(DomainGuard { recorded, current })
    }

    /// After a successful deploy: this build's domain becomes the baseline, in the bucket and in the state
    /// directory's copy that `validate` (which touches no AWS) compares with.
    async fn record(&self, t: &Target<'_>) -> anyhow::Result<()> {
        if self.recorded.as_ref() != Some(&self.current) {
            deployer::domain_guard::record(&t.env.clients.s3, t.bucket, &t.plan.env, &self.current)
                .await
                .context("recording the deployed domain's event schemas")?;
        }
        let copy = deployer::domain_guard::local_copy(&state_dir(t.plan));
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir)?;
        }
        local_engine::state::write_atomic(&copy, &serde_json::to_vec_pretty(&self.current)?)
            .with_context(|| format!("writing {}", copy.display()))?;
        Ok(())
    }
}

/// `deploy --hotswap`: the functions' code replaced in place, no change set; locally the engine reloads and the
/// swap joins the inspector's history.
async fn hotswap(t: &Target<'_>, args: &Args, guard: &DomainGuard) -> anyhow::Result<ExitStatus> {
    let plan = t.plan;
    let outcome = deployer::hotswap::hotswap(
        &t.env.clients,
        plan,
        &t.template.body,
        t.release,
        t.bucket,
        t.ui,
    )
    .await?;
    guard.record(t).await?;
    if !outcome.up_to_date {
        t.record_release(deployer::rollback::Change::Hotswap)
            .await?;
    }
    if let (Some(endpoint_url), false) = (&t.env.endpoint_url, outcome.up_to_date) {
        crate::serve::reload_or_restart(plan, endpoint_url)
            .await
            .context("reloading the local engine on the new code")?;
        // The inspector's hotswap history (`dev` records its swaps the same way).
        if plan.local.is_some() {
            let paths =
                local_engine::state::StatePaths::new(local_engine::state::state_dir(&plan.env));
            let entry = local_engine::inspector::HotswapEntry::of(&outcome);
            if let Err(e) = local_engine::inspector::record_hotswap(&paths, &entry) {
                eprintln!(
                    "could not record the swap in {}: {e}",
                    paths.hotswaps().display()
                );
            }
        }
    }
    let views_ok = catch_up_views(plan, &t.env.clients, t.ui).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        OutputFormat::Text => print!("{outcome}"),
    }
    Ok(if !views_ok {
        ExitStatus::Failed
    } else if outcome.up_to_date && args.detailed_exitcode {
        ExitStatus::UpToDate
    } else {
        ExitStatus::Success
    })
}

/// The change-set deploy: the stack updated (or found up to date), hotswap drift reconciled, the release
/// history recorded, the local engine (re)started, new view versions filled, and the outcome printed.
async fn full_deploy(
    t: &Target<'_>,
    args: &Args,
    guard: &DomainGuard,
) -> anyhow::Result<ExitStatus> {
    let plan = t.plan;
    let mut opts = options_for(DeployOptions::for_plan(plan), plan, t.env);
    opts.allow_data_loss = args.allow_data_loss;
    opts.wait_timeout = args.wait.duration();
    // Locally, a canary or linear `deployment` is tried on the running engine before the stack changes.
    let shifted = crate::shift::before_change_set(plan, t.release, t.ui).await?;
    let req = DeployRequest {
        plan,
        template_body: &t.template.body,
        release: t.release,
        bucket: t.bucket,
    };
    let mut outcome = deployer::deploy::deploy(&t.env.clients, req, &opts, t.ui)
        .await
        .with_context(|| format!("deploying stack `{}`", plan.stack_name))?;
    guard.record(t).await?;
    // A full deploy ends any hotswap drift: the stack's parameters name the running code again.
    let reconciled =
        deployer::hotswap::reconcile(&t.env.clients, plan, t.bucket, &t.release.manifest).await?;
    // A no-op adds nothing to the history.
    t.record_release(deployer::rollback::Change::Deploy).await?;
    let code_unchanged =
        matches!(outcome.result, deployer::deploy::DeployResult::UpToDate) && reconciled.is_none();
    if let Some(set_back) = reconciled {
        deployer::ui::Ui::line(
            t.ui,
            &format!(
                "reconciled the hotswap drift of `{}` ({} function(s) set back to the stack's code)",
                plan.stack_name,
                set_back.len()
            ),
        );
    }
    if let Some(endpoint_url) = &t.env.endpoint_url {
        // Nothing changed and the engine answers: keep it serving rather than restart it.
        let running = if code_unchanged {
            crate::serve::running_gateway(plan).await
        } else {
            None
        };
        let gateway = match (running, shifted) {
            (Some(url), _) => url,
            // The shifted versions are the deployed ones now: reloading keeps their warm processes and the
            // gateway's connections (a change of settings restarts the engine instead).
            (None, Some(passed)) => {
                let (url, _) = crate::serve::reload_or_restart(plan, endpoint_url)
                    .await
                    .context("the stack is deployed, but the local engine did not take it")?;
                drop(passed.hold);
                url
            }
            (None, None) => start_local_engine(plan, endpoint_url)
                .await
                .context("the stack is deployed, but the local engine did not start")?,
        };
        outcome.api_url = Some(gateway);
    }
    // The new code is live (and, locally, its projector runs): fill any new view version and switch to it.
    let views_ok = catch_up_views(plan, &t.env.clients, t.ui).await?;
    print_outcome(plan, &outcome, args.output)?;
    Ok(match outcome.result {
        _ if !views_ok => ExitStatus::Failed,
        deployer::deploy::DeployResult::UpToDate if args.detailed_exitcode => ExitStatus::UpToDate,
        _ => ExitStatus::Success,
    })
}

/// A deploy's outcome as one JSON document, or as text with, locally, what to try next and the inspector.
fn print_outcome(
    plan: &Plan,
    outcome: &deployer::deploy::DeployOutcome,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(outcome)?),
        OutputFormat::Text => {
            print!("{outcome}");
            if let (EnvKind::Local, Some(url)) = (plan.kind, &outcome.api_url) {
                println!("try: curl -s {url}/health");
                if let Some(inspector) = crate::inspect::running_url(plan) {
                    println!(
                        "inspector: {inspector} (read-only view of the local data; `cargo xtask inspect` opens it)"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Rebuilds each view whose live version is not the one this build declares, and reports it. `false` when
/// a view could not be switched (some aggregate failed to fold): reads stay on its previous version.
pub(crate) async fn catch_up_views(
    plan: &Plan,
    clients: &deployer::aws::Clients,
    ui: &dyn deployer::ui::Ui,
) -> anyhow::Result<bool> {
    let tables = plan
        .views_table
        .as_ref()
        .map(|views| deployer::views::ViewTables {
            events_table: plan.events_table.table_name.clone(),
            projections_table: plan.projections_table.table_name.clone(),
            views_table: views.table_name.clone(),
        });
    let rebuilt = deployer::views::catch_up(&clients.dynamodb, tables.as_ref(), ui)
        .await
        .context("bringing the domain's views up to their declared versions")?;
    for r in &rebuilt {
        for line in r.to_string().lines() {
            ui.line(line);
        }
    }
    Ok(rebuilt.iter().all(|r| r.switched))
}

/// Starts the local function host, HTTP gateway and stream poller in the background (the local engine's
/// `serve` module owns this) and returns the gateway's URL, `http://127.0.0.1:<port>`.
pub(crate) async fn start_local_engine(plan: &Plan, endpoint_url: &str) -> anyhow::Result<String> {
    crate::serve::start_background(plan, endpoint_url).await
}

/// Loads `config/<env>.yaml`, renders and validates its template.
pub(crate) fn load(env: &EnvArgs) -> anyhow::Result<(Plan, RenderedTemplate)> {
    stack::load_checked(&env.config_dir, &env.env)
        .map_err(|e| anyhow::Error::new(InvalidInput(e.to_string())))
}

/// Refuses an `aws` environment whose config still holds the shipped example values (account, role, JWT
/// issuer, CORS origins), before anything is built or sent. Exit 2, as for any config that must be edited: no
/// flag overrides it, and `validate` lists the same values as warnings.
pub(crate) fn refuse_placeholders(plan: &Plan) -> anyhow::Result<()> {
    let found = stack::placeholders::placeholders(plan);
    if found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(|p| format!("  - {p}")).collect();
    Err(anyhow::Error::new(InvalidInput(format!(
        "refusing to deploy `{}`: its config still holds the shipped example values; nothing was built or sent to AWS; replace them:\n{}",
        plan.env,
        list.join("\n")
    ))))
}

/// The state directory of an environment: `$XTASK_STATE_DIR`, or `<repo>/.local/state/<env>`.
pub(crate) fn state_dir(plan: &Plan) -> PathBuf {
    local_engine::state::state_dir(&plan.env)
}

/// Takes the lock of the environment `plan` names for this command: one command changes an environment at a
/// time (see `local_engine::lock`). When another holds it, says who (its command line and pid) and waits; with
/// `--no-wait`, refuses (exit 3) instead. Never asks: it runs the same in CI.
pub(crate) async fn lock_env(plan: &Plan, opts: crate::cli::LockArgs) -> anyhow::Result<EnvLock> {
    let env = plan.env.clone();
    let lock = EnvLock::acquire(
        &state_dir(plan),
        &crate::cli::invocation(),
        !opts.no_wait,
        |holder| {
            eprintln!(
                "waiting: {holder} is changing environment `{env}`; this command goes on when it is done (--no-wait refuses instead)"
            )
        },
    )
    .await?;
    Ok(lock)
}

/// The `--profile` / `--no-assume-role` of this run, set once by `cli::dispatch` before any command runs. It
/// is process-wide because every command reaches AWS through [`connect`], including promotion's two
/// environments, and the options are global ones on the command line.
static ACCESS: std::sync::OnceLock<deployer::aws::Access> = std::sync::OnceLock::new();

pub(crate) fn set_access(access: deployer::aws::Access) {
    let _ = ACCESS.set(access);
}

fn access() -> deployer::aws::Access {
    ACCESS.get().cloned().unwrap_or_default()
}

/// Clients for an environment, and the local endpoint's URL for `local`.
pub(crate) struct Connected {
    pub clients: deployer::aws::Clients,
    pub account: Option<String>,
    pub endpoint_url: Option<String>,
    /// For an `aws` environment: the AWS endpoint the SDK was pointed at by the standard chain
    /// (`AWS_ENDPOINT_URL` or a profile's `endpoint_url`), if any; `None` on AWS itself.
    pub endpoint_override: Option<String>,
}

/// Connects to the environment: for `local`, first makes sure the background local endpoint runs.
///
/// Starting the endpoint needs the environment's lock (no other command may be starting or stopping it):
/// a caller that changes the environment passes the lock it holds; any other caller (`smoke`, `logs`, `diff`,
/// a promotion's source) reuses a running endpoint without it, and takes the lock only for the start.
pub(crate) async fn connect(plan: &Plan, held: Option<&EnvLock>) -> anyhow::Result<Connected> {
    let endpoint_url = match (plan.kind, &plan.local) {
        (EnvKind::Local, Some(local)) => {
            let began = std::time::Instant::now();
            let state = state_dir(plan);
            // A lock held for another environment (a promotion's target, while connecting to its source)
            // does not cover this one's endpoint.
            let held = held.filter(|lock| lock.covers(&state));
            let running = match held {
                Some(_) => None,
                None => {
                    local_engine::endpoint::Endpoint::running(&state, local.endpoint_port).await
                }
            };
            let (ep, started) = match (running, held) {
                (Some(ep), _) => (ep, false),
                (None, Some(lock)) => local_engine::endpoint::Endpoint::ensure_running(
                    &state,
                    local.endpoint_port,
                    lock,
                )
                .await
                .context("starting the local AWS endpoint")?,
                (None, None) => {
                    let lock = lock_env(plan, crate::cli::LockArgs::default()).await?;
                    local_engine::endpoint::Endpoint::ensure_running(
                        &state,
                        local.endpoint_port,
                        &lock,
                    )
                    .await
                    .context("starting the local AWS endpoint")?
                }
            };
            // Named without its scheme on purpose: the first `http://` URL a local deploy prints is the API's,
            // which is what a user (and the newcomer script) copies.
            if started {
                eprintln!(
                    "local AWS endpoint (moto {}) started on 127.0.0.1:{} in {:.1} s (log: {})",
                    local_engine::endpoint::MOTO_VERSION,
                    ep.port(),
                    began.elapsed().as_secs_f64(),
                    ep.log_path().display()
                );
            } else {
                eprintln!(
                    "local AWS endpoint: reusing the one running on 127.0.0.1:{}",
                    ep.port()
                );
            }
            Some(ep.url())
        }
        (EnvKind::Local, None) => anyhow::bail!(InvalidInput(format!(
            "{}: a local environment needs a `local:` section with endpoint_port and gateway_port",
            plan.config_path.display()
        ))),
        (EnvKind::Aws, _) => None,
    };
    connect_to(plan, endpoint_url).await
}

/// Connects to an environment's local endpoint only if the one this tool started runs; never starts one.
/// `None` means nothing can be deployed there (`status` and `teardown` then say so).
pub(crate) async fn connect_if_running(plan: &Plan) -> anyhow::Result<Option<Connected>> {
    let Some(local) = &plan.local else {
        return connect(plan, None).await.map(Some);
    };
    match local_engine::endpoint::Endpoint::running(&state_dir(plan), local.endpoint_port).await {
        Some(ep) => connect_to(plan, Some(ep.url())).await.map(Some),
        None => Ok(None),
    }
}

/// Clients for the plan, pointed at `endpoint_url` for a local environment.
async fn connect_to(plan: &Plan, endpoint_url: Option<String>) -> anyhow::Result<Connected> {
    // `deployer::aws::connect` step by step, to learn the endpoint the standard chain resolved.
    let access = access();
    let sdk = deployer::aws::sdk_config_with(plan, endpoint_url.as_deref(), &access).await?;
    let endpoint_override = match plan.kind {
        EnvKind::Aws => sdk.endpoint_url().map(str::to_string),
        EnvKind::Local => None,
    };
    let clients = deployer::aws::Clients::from_sdk_config(&sdk);
    let identity = deployer::aws::verify_identity(&clients, plan).await?;
    if let (Some(id), true) = (&identity, access.own_credentials) {
        eprintln!(
            "using your own credentials for `{}`: {} (account {}){}",
            plan.env,
            id.arn,
            id.account,
            match &plan.role_arn {
                Some(role) => format!("; `{role}` is not assumed (--no-assume-role)"),
                None => String::new(),
            }
        );
    }
    let account = identity.map(|i| i.account);
    Ok(Connected {
        clients,
        account,
        endpoint_url,
        endpoint_override,
    })
}

/// `options` for a deploy through `env`. An `aws` environment whose endpoint is overridden is served by the
/// local AWS endpoint (this is how the cross-account promotion test runs the real CLI against moto): its
/// CloudFormation creates no API Gateway v2, so there is no HTTP API to read back. Everything else (account
/// check, change set, guards, confirmation, `CodeSha256` verification) stays as on AWS; the change set is still
/// executed, since nothing after an `aws` deploy reads the stack outputs moto leaves out.
pub(crate) fn options_for(
    mut options: DeployOptions,
    plan: &Plan,
    env: &Connected,
) -> DeployOptions {
    if plan.kind == EnvKind::Aws && env.endpoint_override.is_some() && options.read_back_api {
        eprintln!(
            "notice: the AWS endpoint of `{}` is overridden (AWS_ENDPOINT_URL or a profile's endpoint_url); the HTTP API is not read back from API Gateway",
            plan.env
        );
        options.read_back_api = false;
    }
    options
}

/// Connects to the environment and builds the release at the same time: on a first local deploy the moto
/// install and start overlap the function build instead of waiting for it (both say what they do on stderr).
pub(crate) async fn connect_and_build(
    root: &Path,
    plan: &Plan,
    template: &RenderedTemplate,
    ui: Arc<ConsoleUi>,
    held: Option<&EnvLock>,
) -> anyhow::Result<(Connected, Release)> {
    tokio::try_join!(
        connect(plan, held),
        build_release_in(root, plan, template, ui)
    )
}

/// Builds and packages the functions for the plan (blocking work off the async runtime).
pub(crate) async fn build_release(
    plan: &Plan,
    template: &RenderedTemplate,
    ui: Arc<ConsoleUi>,
) -> anyhow::Result<Release> {
    build_release_in(&crate::cli::repo_root(), plan, template, ui).await
}

/// [`build_release`] of the functions in the workspace at `root`.
pub(crate) async fn build_release_in(
    root: &Path,
    plan: &Plan,
    template: &RenderedTemplate,
    ui: Arc<dyn deployer::ui::Ui>,
) -> anyhow::Result<Release> {
    let mut req = BuildRequest::for_plan(plan, root, &template.sha256)?;
    // The engine this checkout runs serves the build, whichever workspace it comes from (`dev --workspace`).
    req.checkout = crate::cli::repo_root();
    let release =
        tokio::task::spawn_blocking(move || deployer::build::build(&req, ui.as_ref())).await??;
    Ok(release)
}

/// The release the last `cargo xtask build --env <env>` left in the target directory, checked against the
/// plan: built for this environment and this exact template, every zip still the one its manifest names.
fn prebuilt_release(plan: &Plan, template: &RenderedTemplate) -> anyhow::Result<Release> {
    let root = crate::cli::repo_root();
    let target_dir = deployer::build::default_target_dir(&root);
    let dist_dir = deployer::build::dist_dir(&target_dir, &root, &plan.env);
    let invalid = |m: String| anyhow::Error::new(InvalidInput(m));
    let rebuild = format!("run `cargo xtask build --env {}` first", plan.env);
    let manifest =
        deployer::build::load_local_manifest(&target_dir, &root, &plan.env).ok_or_else(|| {
            invalid(format!(
                "--prebuilt: no release built for `{}` in {}; {rebuild}",
                plan.env,
                dist_dir.display()
            ))
        })?;
    if manifest.env != plan.env || manifest.template_sha256 != template.sha256 {
        return Err(invalid(format!(
            "--prebuilt: the release in {} was built for `{}` with template sha256 {}, but {} renders {}; {rebuild}",
            dist_dir.display(),
            manifest.env,
            manifest.template_sha256,
            plan.config_path.display(),
            template.sha256
        )));
    }
    for f in stack::FunctionName::ALL {
        let zip = deployer::build::zip_path(&dist_dir, f);
        let matches = match (manifest.functions.get(&f), std::fs::read(&zip)) {
            (Some(a), Ok(bytes)) => deployer::package::sha256_hex(&bytes) == a.zip_sha256,
            _ => false,
        };
        if !matches {
            return Err(invalid(format!(
                "--prebuilt: {} is missing or differs from the release manifest; {rebuild}",
                zip.display()
            )));
        }
    }
    Ok(Release { manifest, dist_dir })
}

/// An input error raised in the CLI layer (exit 2).
#[derive(Debug)]
pub(crate) struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// The exit status for an error: refusals 3, invalid input 2, everything else 1.
pub(crate) fn exit_status_of(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<deployer::Error>() {
            return match e {
                deployer::Error::Refused(_) => ExitStatus::Refused,
                deployer::Error::InvalidInput(_) => ExitStatus::InvalidInput,
                _ => ExitStatus::Failed,
            };
        }
        if cause.downcast_ref::<InvalidInput>().is_some() {
            return ExitStatus::InvalidInput;
        }
        if let Some(LockError::Busy { .. }) = cause.downcast_ref::<LockError>() {
            return ExitStatus::Refused;
        }
    }
    ExitStatus::Failed
}

/// Prints an error (with its context chain) and turns it into the documented exit status.
pub(crate) fn report_errors(result: anyhow::Result<ExitStatus>) -> anyhow::Result<ExitStatus> {
    match result {
        Ok(s) => Ok(s),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(exit_status_of(&err))
        }
    }
}
