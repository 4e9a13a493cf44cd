//! Local traffic shifting: the local engine's stand-in for a `live` alias with routing weights and CodeDeploy.
//!
//! Why the engine does it: on AWS a canary or linear `deployment` is CodeDeploy's, which moves the alias's weights
//! and rolls back when an alarm on the new version fires; the local endpoint has neither aliases nor CodeDeploy, and
//! the functions run in the engine's host anyway. So `deploy` asks the running engine (through the control socket)
//! to serve each changed binary beside the live one, in the steps of the environment's shift, watching the same
//! signals the AWS alarms watch: any error, or a duration above 80% of the timeout.
//!
//! A local shift runs *before* the stack is changed: a passing shift is followed by the change set and a reload
//! that makes the new code the deployed one; a failing one is dropped and the stack was never touched, which is
//! where a CloudFormation rollback after a failed CodeDeploy shift ends too. The canary runs the new binary with the
//! deployed settings (environment, memory, timeout); a change of settings takes effect with the stack update.
//!
//! The connection that asked for the shift holds it: when it ends (the deploy finished, failed or was interrupted)
//! the canaries end, unless a reload already made their code the deployed one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use stack::{FunctionName, ShiftStep};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::control::{ControlError, Reloader, socket_path};
use crate::host::{CanaryStats, Host};

/// How often the engine checks the canaries and tells the caller where the shift is.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long the caller waits for the next line (progress comes every second).
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// What `deploy` asks for: the steps of the shift and the new release's binaries (the build's files; the engine
/// pins them, so a later build cannot change what the canary runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShiftRequest {
    pub steps: Vec<ShiftStep>,
    pub binaries: BTreeMap<FunctionName, PathBuf>,
}

/// What the engine says while it shifts, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ShiftEvent {
    /// Every binary is the one already served: nothing to shift.
    Unchanged,
    /// These functions have a new binary; each is served beside its live version.
    Started { functions: Vec<FunctionName> },
    /// The new versions get `percent` of the invocations for `seconds`.
    Step { percent: u32, seconds: u32 },
    /// What the new versions did so far (every second).
    Progress {
        elapsed_ms: u64,
        stats: BTreeMap<FunctionName, CanaryStats>,
    },
    /// Every step passed: the new versions take every invocation until a reload makes them the deployed ones
    /// (or the connection ends, which goes back to the live versions).
    Shifted {
        stats: BTreeMap<FunctionName, CanaryStats>,
    },
    /// `function`'s new version failed: every invocation goes to the live versions again.
    RolledBack {
        function: FunctionName,
        reason: String,
        stats: BTreeMap<FunctionName, CanaryStats>,
    },
    /// The engine could not start the shift.
    Failed { message: String },
}

/// How a shift ended, for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum ShiftVerdict {
    Unchanged,
    Shifted(BTreeMap<FunctionName, CanaryStats>),
    RolledBack {
        function: FunctionName,
        reason: String,
        stats: BTreeMap<FunctionName, CanaryStats>,
    },
}

/// The caller's end of a passed shift: keep it until the engine has reloaded the deployed release (dropping it
/// earlier sends every invocation back to the previous version).
pub struct ShiftHold {
    _connection: Option<BufReader<UnixStream>>,
}

/// Asks the engine serving `state_dir` to shift to `request`'s binaries, calling `on_event` with each step and
/// progress line, and returns the verdict with the connection that holds a passed shift.
pub async fn request_shift(
    state_dir: &Path,
    request: &ShiftRequest,
    mut on_event: impl FnMut(&ShiftEvent),
) -> Result<(ShiftVerdict, ShiftHold), ControlError> {
    let path = socket_path(state_dir);
    let unreachable = |detail: String| ControlError::Unreachable {
        path: path.clone(),
        detail,
    };
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut line = b"shift ".to_vec();
    line.extend(serde_json::to_vec(request).expect("a shift request serializes"));
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        let read = tokio::time::timeout(LINE_TIMEOUT, reader.read_line(&mut answer))
            .await
            .map_err(|_| unreachable(format!("no word within {} s", LINE_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        if read == 0 {
            return Err(unreachable(
                "the engine ended the shift without a verdict".into(),
            ));
        }
        let event: ShiftEvent = serde_json::from_str(&answer)
            .map_err(|e| unreachable(format!("unreadable answer `{}`: {e}", answer.trim())))?;
        on_event(&event);
        match event {
            ShiftEvent::Unchanged => {
                return Ok((ShiftVerdict::Unchanged, ShiftHold { _connection: None }));
            }
            ShiftEvent::Shifted { stats } => {
                return Ok((
                    ShiftVerdict::Shifted(stats),
                    ShiftHold {
                        _connection: Some(reader),
                    },
                ));
            }
            ShiftEvent::RolledBack {
                function,
                reason,
                stats,
            } => {
                return Ok((
                    ShiftVerdict::RolledBack {
                        function,
                        reason,
                        stats,
                    },
                    ShiftHold { _connection: None },
                ));
            }
            ShiftEvent::Failed { message } => return Err(ControlError::Failed(message)),
            ShiftEvent::Started { .. } | ShiftEvent::Step { .. } | ShiftEvent::Progress { .. } => {}
        }
    }
}

/// The engine side of a `shift <json>` request (see the module documentation).
pub(crate) async fn serve_shift(
    reloader: &Reloader,
    body: &str,
    mut read: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
) -> std::io::Result<()> {
    let request: ShiftRequest = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("unreadable shift request: {e}");
            return send(&mut write, &ShiftEvent::Failed { message }).await;
        }
    };
    let functions = match start(reloader, &request).await {
        Ok(f) => f,
        Err(message) => return send(&mut write, &ShiftEvent::Failed { message }).await,
    };
    if functions.is_empty() {
        return send(&mut write, &ShiftEvent::Unchanged).await;
    }
    let host = &reloader.host;
    let started = ShiftEvent::Started {
        functions: functions.clone(),
    };
    let shifted = match send(&mut write, &started).await {
        Ok(()) => drive(host, &functions, &request.steps, &mut write).await,
        Err(e) => Err(e),
    };
    if let Ok(true) = shifted {
        // Hold the new versions at 100% until the caller is done (its reload ends the canaries first).
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
    }
    let _one = reloader.busy.lock().await;
    for f in &functions {
        host.end_canary(*f);
    }
    let keep: Vec<String> = reloader
        .served
        .lock()
        .unwrap()
        .values()
        .map(|s| s.binary_sha256.clone())
        .collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    crate::deployed::prune_pinned(reloader.state_dir(), &keep);
    shifted.map(|_| ())
}

/// Pins each new binary and serves it as a canary (at 0%) when it differs from the live one. Returns the
/// functions that got one.
async fn start(reloader: &Reloader, request: &ShiftRequest) -> Result<Vec<FunctionName>, String> {
    let _one = reloader.busy.lock().await;
    let served = reloader.served.lock().unwrap().clone();
    let mut started = Vec::new();
    for (name, binary) in &request.binaries {
        let Some(live) = served.get(name) else {
            return Err(format!(
                "function `{name}` is not hosted by this engine; restart it (`cargo xtask deploy`)"
            ));
        };
        let pinned = {
            let (state_dir, binary, name) =
                (reloader.state_dir().to_path_buf(), binary.clone(), *name);
            tokio::task::spawn_blocking(move || {
                crate::deployed::pin_binary(&state_dir, name, &binary)
            })
            .await
            .expect("pinning a file does not panic")
        };
        let (path, sha) = pinned.map_err(|e| format!("{}: {e}", binary.display()))?;
        if sha == live.binary_sha256 {
            continue;
        }
        let mut spec = reloader
            .host
            .functions()
            .find(|f| f.name == *name)
            .cloned()
            .expect("a served function is hosted");
        spec.binary = path;
        spec.binary_sha256 = Some(sha);
        reloader.host.start_canary(spec);
        started.push(*name);
    }
    Ok(started)
}

/// Runs the steps, rolling back at the first failure. `Ok(true)`: every step passed and the new versions take
/// every invocation; `Ok(false)`: rolled back; `Err`: the caller went away (the canaries end then).
async fn drive(
    host: &Host,
    functions: &[FunctionName],
    steps: &[ShiftStep],
    write: &mut OwnedWriteHalf,
) -> std::io::Result<bool> {
    let began = Instant::now();
    for step in steps {
        for f in functions {
            host.set_canary_weight(*f, step.percent);
        }
        let event = ShiftEvent::Step {
            percent: step.percent,
            seconds: step.seconds,
        };
        send(write, &event).await?;
        let until = Instant::now() + Duration::from_secs(u64::from(step.seconds));
        loop {
            let stats = stats_of(host, functions);
            if let Some((function, reason)) = failing(&stats) {
                for f in functions {
                    host.end_canary(*f);
                }
                let event = ShiftEvent::RolledBack {
                    function,
                    reason,
                    stats,
                };
                send(write, &event).await?;
                return Ok(false);
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            let elapsed_ms = began.elapsed().as_millis() as u64;
            send(write, &ShiftEvent::Progress { elapsed_ms, stats }).await?;
            tokio::time::sleep(PROGRESS_EVERY.min(until - now)).await;
        }
    }
    for f in functions {
        host.set_canary_weight(*f, 100);
    }
    let stats = stats_of(host, functions);
    send(write, &ShiftEvent::Shifted { stats }).await?;
    Ok(true)
}

fn stats_of(host: &Host, functions: &[FunctionName]) -> BTreeMap<FunctionName, CanaryStats> {
    functions
        .iter()
        .filter_map(|f| Some((*f, host.canary_stats(*f)?)))
        .collect()
}

/// The first canary whose invocations would fire an AWS shift's alarms: an error, or a duration above 80% of
/// the timeout.
fn failing(stats: &BTreeMap<FunctionName, CanaryStats>) -> Option<(FunctionName, String)> {
    stats.iter().find_map(|(f, s)| {
        if s.errors > 0 {
            Some((
                *f,
                format!(
                    "{} of its {} invocation(s) failed ({})",
                    s.errors,
                    s.invocations,
                    s.last_error.as_deref().unwrap_or("no detail")
                ),
            ))
        } else if s.slow > 0 {
            Some((
                *f,
                format!(
                    "{} of its {} invocation(s) took more than 80% of the function's timeout",
                    s.slow, s.invocations
                ),
            ))
        } else {
            None
        }
    })
}

async fn send(write: &mut OwnedWriteHalf, event: &ShiftEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).expect("a shift event serializes");
    line.push(b'\n');
    write.write_all(&line).await
}
