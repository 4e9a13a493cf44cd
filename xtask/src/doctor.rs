//! `cargo xtask doctor`: checks what the local engine needs (python3 with venv for the local endpoint, cargo,
//! the configured ports) and whether the endpoint and engine answer, then lists how the local engine differs
//! from AWS so nobody mistakes a local result for an AWS guarantee.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use local_engine::state::StatePaths;

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
}

/// Every known way the local engine behaves differently from AWS. The README's "What differs locally from
/// AWS" section lists the same sentences (a test keeps them equal).
pub const DIFFERENCES: &[&str] = &[
    "the AWS services are moto, in memory: restarting the endpoint loses all data (the engine says so when it notices)",
    "DynamoDB on moto is slower than DynamoDB and serves one request at a time (transactions are isolated that way): never quote DynamoDB speed measured locally",
    "IAM is not enforced: functions get static test credentials, not their execution role, so a missing permission works locally and fails on AWS",
    "API Gateway is the local gateway built from the plan's routes and CORS configuration; the JWT authorizer is not enforced (every route is open locally)",
    "API Gateway's stage throttling (burst and rate limits) is not applied: no request is ever answered 429 locally",
    "API Gateway's 30-second integration timeout is not applied: a function whose timeout is longer answers locally where API Gateway would have given up",
    "custom domains, stage variables and API Gateway access logs do not exist locally",
    "a request whose event is over Lambda's 6 MB answers 413 {\"message\":\"Request Too Long\"}, the answer recorded from API Gateway with a REST API; an HTTP API's exact answer is unverified",
    "the stream mapping is the local poller, built from the plan: same settings, but config/local.yaml sets no batching window (the AWS environments keep 1 s), one shard is polled every 50 ms, and a batch over Lambda's 6 MB fails as an invocation instead of being sent in smaller batches",
    "timeouts and memory sizes are enforced (the process is killed; memory is its resident set sampled every 20 ms on Linux, where Lambda counts the whole sandbox), but CPU does not scale with memory as on Lambda",
    "functions run as processes of your user with your file system, not in a Firecracker sandbox with a read-only root and a 512 MB /tmp",
    "concurrency is at most 4 processes per function (or the reserved concurrency, if lower); further invocations wait for a free process where Lambda would throttle them",
    "X-Ray is not available: trace ids are handed to the functions but nothing is recorded",
    "a reviewed change set is applied with CreateStack/UpdateStack on moto (it computes no outputs for executed change sets); AWS executes the change set itself",
    "CloudFormation drift detection does not exist on moto: `cargo xtask drift` runs only for AWS environments (refused locally with exit 2)",
    "CloudWatch alarms, point-in-time recovery, TTL and log retention are accepted but do nothing (command records never expire locally); logs go to .local/state/<env>/logs instead of CloudWatch Logs",
];

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let mut check = Checks::default();
    check_tools(&mut check);
    match stack::config::load(&args.env.config_dir, &args.env.env) {
        Err(e) => check.check(false, true, "config", e.to_string()),
        Ok(plan) => match &plan.local {
            None => check.check(
                true,
                false,
                "environment",
                format!(
                    "`{}` is an AWS environment; the local checks do not apply",
                    plan.env
                ),
            ),
            Some(local) => check_environment(&mut check, &plan, local).await,
        },
    }

    println!("\nknown differences between the local engine and AWS:");
    for d in DIFFERENCES {
        println!("  - {d}");
    }
    Ok(if check.failed {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    })
}

/// The checks' printed marks, and whether a required one failed.
#[derive(Default)]
struct Checks {
    failed: bool,
}

impl Checks {
    /// Prints one check (`ok`, `FAIL` when a required check fails, `warn` otherwise).
    fn check(&mut self, ok: bool, required: bool, what: &str, detail: String) {
        let mark = if ok {
            "ok  "
        } else if required {
            "FAIL"
        } else {
            "warn"
        };
        println!("[{mark}] {what}: {detail}");
        self.failed |= required && !ok;
    }
}

/// What the machine needs: Linux with /proc, python3 with venv, cargo, and whether moto is installed.
fn check_tools(check: &mut Checks) {
    let linux = local_engine::process::supported();
    check.check(
        linux,
        true,
        "platform",
        if linux {
            "Linux with /proc (the engine identifies the processes it starts, and who holds its ports, there)".into()
        } else {
            "the local engine needs Linux: it identifies the processes it starts (pid and start time) and the \
             holders of its ports through /proc; use a Linux machine, VM or container"
                .into()
        },
    );
    let python = version_of("python3", &["--version"]);
    check.check(
        python.is_some(),
        true,
        "python3",
        python.unwrap_or_else(|| {
            "not found; install python3 (Debian: apt-get install python3)".into()
        }),
    );
    let venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    check.check(
        venv,
        true,
        "python3 venv module",
        if venv {
            "available".into()
        } else {
            "missing; Debian: apt-get install python3-venv".into()
        },
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_v = version_of(&cargo, &["--version"]);
    check.check(
        cargo_v.is_some(),
        true,
        "cargo",
        cargo_v.unwrap_or_else(|| "not found; install Rust with rustup".into()),
    );
    let moto = local_engine::endpoint::venv_dir().join("bin/moto_server");
    check.check(
        moto.exists(),
        false,
        "local endpoint (moto)",
        if moto.exists() && local_engine::endpoint::install_is_current() {
            format!(
                "installed in {} from xtask/local-engine/moto-requirements.txt",
                local_engine::endpoint::venv_dir().display()
            )
        } else if moto.exists() {
            format!(
                "installed in {} from older requirements than xtask/local-engine/moto-requirements.txt; the next `cargo xtask deploy` reinstalls it",
                local_engine::endpoint::venv_dir().display()
            )
        } else {
            "not installed yet; `cargo xtask deploy` installs it on first use (needs the Python package index)".into()
        },
    );
}

/// A local environment's ports, pid files, endpoint and engine.
async fn check_environment(check: &mut Checks, plan: &stack::Plan, local: &stack::LocalSettings) {
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    let endpoint_url = format!("http://127.0.0.1:{}", local.endpoint_port);
    // Only the moto this tool started counts (its pid file matches and it holds the port).
    let endpoint_up = local_engine::endpoint::Endpoint::running(&paths.root, local.endpoint_port)
        .await
        .is_some();
    let port_free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    if endpoint_up {
        check.check(
            true,
            true,
            "endpoint port",
            format!(
                "{} in use by the local endpoint ({endpoint_url} answers)",
                local.endpoint_port
            ),
        );
    } else if port_free(local.endpoint_port) {
        check.check(
            true,
            true,
            "endpoint port",
            format!("{} free (the endpoint is not running)", local.endpoint_port),
        );
    } else {
        check.check(
            false,
            true,
            "endpoint port",
            format!(
                "{} is used by another program; free it or change local.endpoint_port in {}",
                local.endpoint_port,
                plan.config_path.display()
            ),
        );
    }
    for (what, file) in [
        ("engine pid file", paths.engine_pid()),
        (
            "endpoint pid file",
            local_engine::endpoint::Endpoint::pid_file(&paths.root),
        ),
    ] {
        if let local_engine::process::Recorded::Stale { reason, .. } =
            local_engine::process::read_pid_file(&file)
        {
            check.check(
                    false,
                    false,
                    what,
                    format!(
                        "{} is stale: {reason}; `cargo xtask teardown` removes it without signalling anything",
                        file.display()
                    ),
                );
        }
    }
    let engine_pid = local_engine::daemon::serves_port(&paths, local.gateway_port);
    let gateway_url = format!("http://127.0.0.1:{}", local.gateway_port);
    if let Some(pid) = engine_pid {
        let healthy = answers(&format!("{gateway_url}/health")).await;
        check.check(
            healthy,
            true,
            "gateway port",
            format!(
                "{} in use by the local engine (pid {pid}); /health {}",
                local.gateway_port,
                if healthy {
                    "answers"
                } else {
                    "does not answer: see `cargo xtask logs` and the engine log"
                }
            ),
        );
    } else if port_free(local.gateway_port) {
        check.check(
            true,
            true,
            "gateway port",
            format!("{} free (the engine is not running)", local.gateway_port),
        );
    } else {
        check.check(
            false,
            true,
            "gateway port",
            format!(
                "{} is used by another program; free it or change local.gateway_port in {}",
                local.gateway_port,
                plan.config_path.display()
            ),
        );
    }
    check.check(
        true,
        false,
        "state directory",
        paths.root.display().to_string(),
    );
}

fn version_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| {
        let text = if out.stdout.is_empty() {
            out.stderr
        } else {
            out.stdout
        };
        String::from_utf8_lossy(&text).trim().to_string()
    })
}

async fn answers(url: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}
