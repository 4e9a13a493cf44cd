//! `cargo xtask bench release`: what each release binary costs on Lambda before it does any work — its size
//! (binary and zip, what is uploaded and what the runtime loads) and its process start-to-ready time (spawn to
//! the first `GET /runtime/invocation/next`, the end of Lambda's init phase), side by side.
//!
//! The release is built exactly as an AWS deploy builds it (`deployer::build::build`, cargo-lambda, release
//! profile, `.2.26` glibc target), into its own dist directory; a warm build is cargo's no-op. Start-up is
//! measured on this machine through the local engine's environment for a function (`crate::startup`),
//! so the figures compare binaries with each other, not with Lambda's own init times.

use std::time::Duration;

use deployer::build::BuildRequest;
use local_engine::host::{FunctionSpec, Host, HostConfig};
use serde::Serialize;
use stack::{Architecture, EnvKind, FunctionName};

/// Arguments of `cargo xtask bench release`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Process starts per function (the median, min and max are printed).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// The Lambda architecture to build for: `x86_64` or `arm64` (started through qemu-user on an x86_64
    /// machine, so its start-to-ready includes the emulation).
    #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "arm64"])]
    pub architecture: String,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// One function's row.
#[derive(Debug, Serialize)]
pub struct Row {
    pub function: FunctionName,
    pub binary_bytes: u64,
    pub zip_bytes: u64,
    pub glibc_floor: Option<String>,
    pub ready_ms_median: f64,
    pub ready_ms_min: f64,
    pub ready_ms_max: f64,
    pub rounds: usize,
}

/// The dist directory name of the benchmark's release (`<target>/xtask/dist/<checkout>/<this>-<architecture>`),
/// apart from any environment's.
const BENCH_ENV: &str = "bench-release";

pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let root = crate::repo_root();
    let architecture = match args.architecture.as_str() {
        "arm64" => Architecture::Arm64,
        _ => Architecture::X86_64,
    };
    let emulator = crate::startup::Emulator::for_architecture(architecture);
    let req = BuildRequest {
        target_dir: deployer::build::default_target_dir(&root),
        env: format!("{BENCH_ENV}-{}", architecture.as_lambda()),
        kind: EnvKind::Aws,
        architecture,
        template_sha256: "0".repeat(64),
        cargo: deployer::cargo::cargo_path(),
        tools_dir: deployer::build::tools_dir(&root),
        checkout: root.clone(),
        repo_root: root,
    };
    let started = std::time::Instant::now();
    let release = tokio::task::spawn_blocking(move || {
        // Progress goes to stderr: stdout may be the JSON document.
        let ui = deployer::ui::ConsoleUi::new(true);
        deployer::build::build(&req, &ui)
    })
    .await??;
    let build_time = started.elapsed();

    let scratch = tempfile_dir()?;
    let specs = FunctionName::ALL
        .into_iter()
        .map(|name| FunctionSpec {
            name,
            function_name: format!("bench-{name}"),
            binary: release.dist_dir.join(name.as_str()).join("bootstrap"),
            // What the functions read at start-up; nothing is called before the first invocation.
            environment: [
                ("EVENTS_TABLE", "bench-events"),
                ("PROJECTIONS_TABLE", "bench-projections"),
                ("RUST_LOG", "info"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            max_processes: 1,
            binary_sha256: None,
        })
        .collect();
    let host = Host::new(
        HostConfig {
            // Nothing listens there: a function that called AWS during init would fail, not be timed.
            endpoint_url: "http://127.0.0.1:9".into(),
            region: "us-east-1".into(),
            account_id: local_engine::endpoint::LOCAL_ACCOUNT_ID.into(),
            log_dir: scratch.join("logs"),
        },
        specs,
    )?;
    let rounds = args.rounds.max(1);
    let mut rows = Vec::new();
    for name in FunctionName::ALL {
        let artifact = &release.manifest.functions[&name];
        let binary = release.dist_dir.join(name.as_str()).join("bootstrap");
        let mut times: Vec<f64> =
            crate::startup::time_to_ready(&host, name, rounds, emulator.as_ref())
                .await?
                .into_iter()
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        rows.push(Row {
            function: name,
            binary_bytes: std::fs::metadata(&binary)?.len(),
            zip_bytes: artifact.zip_size,
            glibc_floor: artifact.glibc_floor.clone(),
            ready_ms_median: times[times.len() / 2],
            ready_ms_min: times[0],
            ready_ms_max: times[times.len() - 1],
            rounds,
        });
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Report {
        architecture: architecture.as_lambda(),
        emulated_by: emulator.map(|e| e.program.display().to_string()),
        build_seconds: build_time.as_secs_f64(),
        rounds,
        functions: rows,
    })
}

/// What `bench release` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The Lambda architecture of the build.
    pub architecture: &'static str,
    /// The emulator the processes were started through (another architecture than this machine's).
    pub emulated_by: Option<String>,
    /// The release build's wall time (a warm build is cargo's no-op).
    pub build_seconds: f64,
    #[serde(skip)]
    pub rounds: usize,
    pub functions: Vec<Row>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "release build (cargo-lambda, {} .2.26, release profile): {:.1} s (a warm build is cargo's no-op)",
            self.architecture, self.build_seconds
        )?;
        if let Some(emulator) = &self.emulated_by {
            writeln!(
                f,
                "  started through {emulator} (user-mode emulation): the start-to-ready times include it; they show \
                 that the binaries start and compare them with each other, not Graviton's own times"
            )?;
        }
        writeln!(
            f,
            "  function      binary        zip  glibc   start-to-ready (spawn -> first /next, {} starts)",
            self.rounds
        )?;
        for r in &self.functions {
            writeln!(
                f,
                "  {:<10} {:>9} {:>10}  {:<6} median {:6.2} ms  min {:6.2} ms  max {:6.2} ms",
                r.function.as_str(),
                r.binary_bytes,
                r.zip_bytes,
                r.glibc_floor.as_deref().unwrap_or("none"),
                r.ready_ms_median,
                r.ready_ms_min,
                r.ready_ms_max
            )?;
        }
        Ok(())
    }
}

/// A fresh scratch directory for the host's log files.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-bench-release-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
