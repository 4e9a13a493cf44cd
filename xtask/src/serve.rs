//! `cargo xtask serve` (skeleton: its issue fills it in).

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
}

pub async fn run(_args: Args) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`cargo xtask serve` is not implemented yet")
}
