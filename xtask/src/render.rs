//! `cargo xtask render`: prints or writes one environment's rendered CloudFormation template.
//!
//! The template is validated before it is printed, so what you see is what `deploy` would send; a config
//! or template problem exits with "invalid input" (2) and every problem on stderr.

use std::path::PathBuf;

use anyhow::Context;

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// Write the template to this file instead of stdout (its SHA-256 goes to stderr).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, template) = match stack::load_checked(&args.env.config_dir, &args.env.env) {
        Ok(ok) => ok,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitStatus::InvalidInput);
        }
    };
    match args.out {
        Some(path) => {
            std::fs::write(&path, &template.body)
                .with_context(|| format!("writing the template to {}", path.display()))?;
            eprintln!(
                "wrote {} ({} bytes, sha256 {}) for stack `{}`",
                path.display(),
                template.body.len(),
                template.sha256,
                plan.stack_name
            );
        }
        None => print!("{}", template.body),
    }
    Ok(ExitStatus::Success)
}
