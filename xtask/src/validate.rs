//! `cargo xtask validate`: checks one environment, or every environment in `config/`, without touching AWS.
//!
//! Each environment's config is validated into a plan, its template rendered and checked against the plan
//! (see `stack::validate`). All environments are checked even when one fails, so CI shows every problem at
//! once; any failure exits with "invalid input" (2). It also compares this build's event schemas with the ones
//! the environment's last deploy from this machine recorded (`deployer::domain_guard`), and fails on a change
//! that would break stored events. Example values a deploy would refuse (the shipped account,
//! role, JWT issuer, CORS origins) are only warned about, so the shipped configs validate.

use std::path::PathBuf;

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment to validate: the stem of a file in `config/`. Every environment when omitted.
    #[arg(long = "env", short = 'e', env = "XTASK_ENV")]
    pub env: Option<String>,
    /// Directory holding the per-environment YAML files.
    #[arg(long, default_value_os_t = crate::cli::repo_root().join("config"), env = "XTASK_CONFIG_DIR")]
    pub config_dir: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let envs = match args.env {
        Some(env) => vec![env],
        None => match stack::config::environments(&args.config_dir) {
            Ok(envs) if !envs.is_empty() => envs,
            Ok(_) => {
                eprintln!(
                    "error: no environments (*.yaml) in {}",
                    args.config_dir.display()
                );
                return Ok(ExitStatus::InvalidInput);
            }
            Err(err) => {
                eprintln!("error: {err}");
                return Ok(ExitStatus::InvalidInput);
            }
        },
    };
    let mut failed = 0;
    for env in &envs {
        match stack::load_checked(&args.config_dir, env) {
            Ok((plan, template)) => {
                println!(
                    "ok    {env:<10} stack {:<16} template sha256 {}",
                    plan.stack_name, template.sha256
                );
                // The shipped examples validate; deploy and promote refuse them (see `stack::placeholders`).
                for p in stack::placeholders::placeholders(&plan) {
                    eprintln!("warning: {p} (deploy refuses it)");
                }
                // This build's events against the last deploy made from this machine (deploy checks the
                // environment's own record again before it uploads anything).
                let state = local_engine::state::state_dir(env);
                let checked =
                    deployer::domain_guard::read_local_copy(&state).and_then(|recorded| {
                        deployer::domain_guard::check(
                            env,
                            recorded.as_ref(),
                            &domain::registry().describe(),
                        )
                    });
                if let Err(err) = checked {
                    failed += 1;
                    println!("FAIL  {env}");
                    eprintln!("error: {env}: {err}");
                }
            }
            Err(err) => {
                failed += 1;
                println!("FAIL  {env}");
                eprintln!("error: {env}: {err}");
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} environment(s) invalid; fix the keys named above and run `cargo xtask validate` again",
            envs.len()
        );
        return Ok(ExitStatus::InvalidInput);
    }
    Ok(ExitStatus::Success)
}
