//! `cargo xtask inspect`: the URL of the local inspector, the read-only page the background engine serves over
//! the local event log, read models, pipeline and functions (see `local_engine::inspector`).
//!
//! It prints the URL (stdout, alone on its line, so scripts can take it) and opens a browser only when one
//! can be shown: a `$BROWSER`, or `xdg-open`/`open` with a display. The browser is started detached and
//! never waited for, so the command returns at once in CI, over SSH or without a terminal. An AWS
//! environment has no inspector: the command refuses it (exit 2).

use std::process::{Command, Stdio};

use stack::Plan;

use crate::cli::EnvArgs;
use crate::deploy::{InvalidInput, load, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Print the URL only; do not try to open a browser.
    #[arg(long)]
    pub no_open: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(inspect(args).await)
}

async fn inspect(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, _template) = load(&args.env)?;
    if plan.local.is_none() {
        return Err(anyhow::Error::new(InvalidInput(format!(
            "`{}` is an AWS environment: the inspector exists only for local environments (it reads the local \
             engine's tables and files); on AWS use the console's DynamoDB, CloudWatch and SQS pages",
            plan.env
        ))));
    }
    let Some(url) = running_url(&plan) else {
        eprintln!(
            "the local engine of `{}` is not running, so there is nothing to inspect; start it with `cargo xtask deploy` (or `cargo xtask dev`)",
            plan.env
        );
        return Ok(ExitStatus::Failed);
    };
    println!("{url}");
    if args.no_open {
        return Ok(ExitStatus::Success);
    }
    match open_browser(&url) {
        Some(how) => eprintln!("opened it with {how}"),
        None => {
            eprintln!("no browser to open here (no $BROWSER, no display); open the URL yourself")
        }
    }
    Ok(ExitStatus::Success)
}

/// The inspector URL of the environment's running background engine, if one runs and answers.
pub fn running_url(plan: &Plan) -> Option<String> {
    plan.local.as_ref()?;
    let paths = local_engine::state::StatePaths::new(local_engine::state::state_dir(&plan.env));
    local_engine::inspector::recorded_url(&paths)
}

/// Starts a browser on `url` without waiting for it; returns what was started.
fn open_browser(url: &str) -> Option<String> {
    let display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    let mut candidates: Vec<String> = Vec::new();
    if let Some(b) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        candidates.push(b.to_string_lossy().into_owned());
    }
    if cfg!(target_os = "macos") {
        candidates.push("open".into());
    } else if display {
        candidates.push("xdg-open".into());
    }
    candidates.into_iter().find_map(|exe| {
        Command::new(&exe)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|_child| exe)
    })
}
