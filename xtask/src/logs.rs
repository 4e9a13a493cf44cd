//! `cargo xtask logs`: the functions' logs. Locally they are the files the function host writes (each
//! process's stdout/stderr plus CloudWatch-like `START`/`END`/`REPORT` lines); on AWS they live in CloudWatch
//! Logs, which this command does not read yet (it says which log groups to look at instead).

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::Context as _;
use local_engine::state::StatePaths;
use stack::{EnvKind, FunctionName};

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// Only this function: command, query or projector [default: all three].
    #[arg(long, short = 'f')]
    pub function: Option<FunctionName>,
    /// Keep printing new lines as they are written (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
    /// How many of the last lines of each log to print first.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub lines: usize,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let plan = stack::config::load(&args.env.config_dir, &args.env.env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let functions: Vec<FunctionName> = match args.function {
        Some(f) => vec![f],
        None => FunctionName::ALL.to_vec(),
    };
    if plan.kind == EnvKind::Aws {
        eprintln!(
            "error: reading CloudWatch Logs is not supported by `cargo xtask logs` yet; the log groups of `{}` are:",
            plan.env
        );
        for f in functions {
            eprintln!("  /aws/lambda/{}", plan.function(f).function_name);
        }
        eprintln!("read them with the AWS console or `aws logs tail <group> --follow`");
        return Ok(ExitStatus::Failed);
    }
    let paths = StatePaths::new(local_engine::state::state_dir(&plan.env));
    let files: Vec<(FunctionName, std::path::PathBuf)> = functions
        .iter()
        .map(|f| (*f, paths.function_log(*f)))
        .collect();
    if !args.follow && files.iter().all(|(_, p)| !p.exists()) {
        println!(
            "no function logs yet in {} (they appear once the local engine has invoked a function; run `cargo xtask deploy`)",
            paths.function_logs().display()
        );
        return Ok(ExitStatus::Success);
    }
    let prefix = files.len() > 1;
    let mut offsets = Vec::new();
    for (f, path) in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(args.lines)..] {
            print_line(*f, line, prefix);
        }
        offsets.push(text.len() as u64);
    }
    if !args.follow {
        return Ok(ExitStatus::Success);
    }
    loop {
        for (i, (f, path)) in files.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0; // truncated or recreated
            }
            if len == offsets[i] {
                continue;
            }
            file.seek(SeekFrom::Start(offsets[i]))
                .context("reading the log")?;
            let mut buf = String::new();
            file.read_to_string(&mut buf).context("reading the log")?;
            // Print only whole lines; keep a partial last line for the next round.
            let whole = buf.rfind('\n').map(|i| i + 1).unwrap_or(0);
            for line in buf[..whole].lines() {
                print_line(*f, line, prefix);
            }
            offsets[i] += whole as u64;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitStatus::Success),
        }
    }
}

fn print_line(f: FunctionName, line: &str, prefix: bool) {
    if prefix {
        println!("{f:>9} | {line}");
    } else {
        println!("{line}");
    }
}
