//! `cargo xtask logs`: the functions' logs. Locally they are the files the function host writes (each
//! process's stdout/stderr plus CloudWatch-like `START`/`END`/`REPORT` lines); on AWS they are the functions'
//! CloudWatch Logs groups, read through `deployer::logs` with the same credentials, role and account check as
//! `deploy`, and printed in the same format.

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
    /// AWS environments: how far back to look for those lines, e.g. `30m`, `2h`, `1d` (s, m, h, d).
    #[arg(long, default_value = "1h", value_parser = parse_since)]
    pub since: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let plan = stack::config::load(&args.env.config_dir, &args.env.env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let functions: Vec<FunctionName> = match args.function {
        Some(f) => vec![f],
        None => FunctionName::ALL.to_vec(),
    };
    if plan.kind == EnvKind::Aws {
        return crate::deploy::report_errors(aws(&plan, &functions, &args).await);
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

/// The AWS branch: the last lines of each function's log group in the window, merged by time, then (with
/// `--follow`) a poll every [`deployer::logs::FOLLOW_INTERVAL`] until Ctrl-C.
async fn aws(
    plan: &stack::Plan,
    functions: &[FunctionName],
    args: &Args,
) -> anyhow::Result<ExitStatus> {
    // Same credentials, role and account check as `deploy`; missing credentials fail here with what to set.
    let connected = crate::deploy::connect(plan, None).await.with_context(|| {
        format!(
            "reading the CloudWatch logs of `{}` (region {}{})",
            plan.env,
            plan.region,
            plan.account_id
                .as_deref()
                .map(|a| format!(", account {a}"))
                .unwrap_or_default(),
        )
    })?;
    let client = &connected.clients.logs;
    let mut reader = deployer::logs::Reader::for_plan(plan, functions);
    let since_ms = chrono::Utc::now().timestamp_millis() - args.since.as_millis() as i64;
    let batch = reader.read(client, since_ms, Some(args.lines)).await?;
    let prefix = functions.len() > 1;
    for group in &batch.no_logs_yet {
        eprintln!(
            "{}: no logs yet (log group {} does not exist until the function is first invoked)",
            group.function, group.name
        );
    }
    for line in &batch.lines {
        print_event(line, prefix);
    }
    if batch.lines.is_empty() && batch.no_logs_yet.len() < functions.len() && !args.follow {
        eprintln!(
            "no log events in the last {} (a longer window: --since 1d)",
            humanize(args.since)
        );
    }
    if !args.follow {
        return Ok(ExitStatus::Success);
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(deployer::logs::FOLLOW_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitStatus::Success),
        }
        for line in reader.poll(client).await?.lines {
            print_event(&line, prefix);
        }
    }
}

/// A CloudWatch event's message can hold several lines (a panic, a pretty-printed value): each is printed
/// like a line of the local log file.
fn print_event(event: &deployer::logs::LogLine, prefix: bool) {
    for line in event.message.trim_end_matches(['\n', '\r']).lines() {
        print_line(event.function, line, prefix);
    }
}

/// `--since`: a number followed by s, m, h or d.
fn parse_since(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a duration; write a number followed by s, m, h or d (e.g. 30m, 2h, 1d)"
        )
    };
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n * secs))
}

fn humanize(d: Duration) -> String {
    match d.as_secs() {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn print_line(f: FunctionName, line: &str, prefix: bool) {
    if prefix {
        println!("{f:>9} | {line}");
    } else {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn aws_flags_parse() {
        let cli = Cli::try_parse_from([
            "xtask", "logs", "--env", "dev", "-f", "query", "-n", "5", "--since", "30m", "--follow",
        ])
        .unwrap();
        let Command::Logs(args) = cli.command else {
            panic!("not logs: {cli:?}")
        };
        assert_eq!(args.env.env, "dev");
        assert_eq!(args.function, Some(FunctionName::Query));
        assert_eq!((args.lines, args.follow), (5, true));
        assert_eq!(args.since, Duration::from_secs(1800));
        let default = Cli::try_parse_from(["xtask", "logs"]).unwrap();
        let Command::Logs(args) = default.command else {
            panic!()
        };
        assert_eq!(args.since, deployer::logs::DEFAULT_WINDOW);
    }

    #[test]
    fn since_accepts_s_m_h_d_and_explains_anything_else() {
        assert_eq!(parse_since("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "10", "h", "1.5h", "3w", "-1h"] {
            let err = parse_since(bad).unwrap_err();
            assert!(err.contains("e.g. 30m, 2h, 1d"), "{bad}: {err}");
        }
    }
}
