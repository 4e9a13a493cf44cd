//! `cargo xtask build`: build the function binaries for an environment, zip them reproducibly and write the
//! release manifest under `target/xtask/dist/<checkout>/<env>/` (what `deploy` uploads and `promote` carries forward).

use std::sync::Arc;

use deployer::ui::ConsoleUi;

use crate::cli::{EnvArgs, OutputFormat};
use crate::deploy::{build_release, load, report_errors};
use crate::exit::ExitStatus;

/// Arguments of `cargo xtask build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: EnvArgs,
    /// How to print the manifest.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    report_errors(build(args).await)
}

async fn build(args: Args) -> anyhow::Result<ExitStatus> {
    let (plan, template) = load(&args.env)?;
    let release = build_release(&plan, &template, Arc::new(ConsoleUi::new(false))).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&release.manifest)?),
        OutputFormat::Text => {
            println!("release {} for `{}`", release.digest(), plan.env);
            println!("manifest: {}", release.manifest_path().display());
            for (name, a) in &release.manifest.functions {
                println!(
                    "  {name:<10} {}  ({} bytes, glibc {})",
                    release.zip_path(*name).display(),
                    a.zip_size,
                    a.glibc_floor.as_deref().unwrap_or("none")
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}
