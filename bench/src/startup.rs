//! Process start-to-ready time of a function binary: from spawning it to its first
//! `GET /2018-06-01/runtime/invocation/next`, the moment Lambda ends a cold start's init phase.
//!
//! Why a separate, minimal Runtime API instead of timing a cold invocation through the [`Host`]: a cold
//! invocation also includes the handler's own work (and its calls to DynamoDB); init is what the binary's size,
//! its linked libraries and its `main` cost, and it is what `cargo xtask bench release` reports beside each
//! release binary's size. The process gets exactly the environment the host gives it ([`Host::process_env`]);
//! it is killed as soon as it has asked for work.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use stack::FunctionName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use local_engine::host::{Host, INIT_TIMEOUT};

/// Why a binary's start-to-ready time could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("no function `{0}` is hosted")]
    UnknownFunction(FunctionName),
    #[error("could not start `{path}`: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "could not start the emulator `{program}` for a binary of another architecture: {source}; install Debian's qemu-user and libc6-arm64-cross (`apt-get install qemu-user libc6-arm64-cross`; .ci/run installs both, pinned)"
    )]
    Emulator {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("local Runtime API for the start-up measurement: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "`{path}` exited ({status}) before asking for work; its stderr: {stderr}; run it through `cargo xtask deploy` to see its logs"
    )]
    Exited {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("`{path}` did not ask for work within {INIT_TIMEOUT:?} (Lambda's init limit)")]
    Timeout { path: PathBuf },
    #[error("`{path}` sent `{request_line}` before asking for work (an init error?)")]
    Unexpected { path: PathBuf, request_line: String },
}

/// How a binary built for another architecture starts on this machine: through a user-mode emulator. Its times
/// include the emulation, so they show that the binary starts and how its start compares with its peers, not
/// what Lambda's own hardware takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Emulator {
    /// Debian's qemu-user for aarch64, with the aarch64 C library of `libc6-arm64-cross` as its root
    /// (`apt-get install qemu-user libc6-arm64-cross`; `.ci/run` installs both, pinned).
    pub fn qemu_aarch64() -> Emulator {
        Emulator {
            program: PathBuf::from("/usr/bin/qemu-aarch64"),
            args: vec!["-L".into(), "/usr/aarch64-linux-gnu".into()],
        }
    }

    /// What a Lambda binary of `architecture` needs to start here: `None` when this machine runs it natively.
    pub fn for_architecture(architecture: stack::Architecture) -> Option<Emulator> {
        match (architecture, cfg!(target_arch = "aarch64")) {
            (stack::Architecture::Arm64, false) => Some(Emulator::qemu_aarch64()),
            (stack::Architecture::X86_64, true) => Some(Emulator {
                program: PathBuf::from("/usr/bin/qemu-x86_64"),
                args: vec!["-L".into(), "/usr/x86_64-linux-gnu".into()],
            }),
            _ => None,
        }
    }
}

/// Starts the binary of `name` `rounds` times, one process at a time (through `emulator` when it is built for
/// another architecture), and returns each process's time from spawn to its first `next` request.
pub async fn time_to_ready(
    host: &Host,
    name: FunctionName,
    rounds: usize,
    emulator: Option<&Emulator>,
) -> Result<Vec<Duration>, StartupError> {
    let binary = host
        .functions()
        .find(|f| f.name == name)
        .map(|f| f.binary.clone())
        .ok_or(StartupError::UnknownFunction(name))?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let runtime_api = listener.local_addr()?.to_string();
        let env = host
            .process_env(name, &runtime_api)
            .ok_or(StartupError::UnknownFunction(name))?;
        times.push(once(&binary, env, listener, emulator).await?);
    }
    Ok(times)
}

async fn once(
    binary: &Path,
    env: Vec<(String, String)>,
    listener: TcpListener,
    emulator: Option<&Emulator>,
) -> Result<Duration, StartupError> {
    let mut cmd = match emulator {
        Some(e) => {
            let mut cmd = tokio::process::Command::new(&e.program);
            cmd.args(&e.args).arg(binary);
            cmd
        }
        None => tokio::process::Command::new(binary),
    };
    cmd.env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = binary.parent() {
        cmd.current_dir(dir);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| match emulator {
        Some(e) => StartupError::Emulator {
            program: e.program.clone(),
            source,
        },
        None => StartupError::Spawn {
            path: binary.to_path_buf(),
            source,
        },
    })?;
    let outcome = tokio::select! {
        polled = first_request_line(&listener) => polled.map(|line| (started.elapsed(), line)).map_err(StartupError::Io),
        status = child.wait() => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            Err(StartupError::Exited {
                path: binary.to_path_buf(),
                status: status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                stderr: stderr.trim().to_string(),
            })
        }
        _ = tokio::time::sleep(INIT_TIMEOUT) => Err(StartupError::Timeout { path: binary.to_path_buf() }),
    };
    let _ = child.kill().await;
    let (elapsed, line) = outcome?;
    if line.starts_with("GET ") && line.contains("/runtime/invocation/next") {
        Ok(elapsed)
    } else {
        Err(StartupError::Unexpected {
            path: binary.to_path_buf(),
            request_line: line,
        })
    }
}

/// Accepts one connection and returns the request line of its first request, answering nothing useful (the
/// process is killed right after).
async fn first_request_line(listener: &TcpListener) -> std::io::Result<String> {
    let (mut socket, _) = listener.accept().await?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let _ = socket
        .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
        .await;
    Ok(line)
}
