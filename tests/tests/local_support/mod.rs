//! Shared helpers of the local-engine tests: building the runtime probe (a real function on the official
//! runtime crate) and assembling engine configs around it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use local_engine::host::FunctionSpec;
use local_engine::{EngineConfig, StreamSettings};
use stack::FunctionName;

/// Builds `examples/runtime_probe` of local-engine once per test binary and returns its path.
pub fn probe_binary() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            tests::cli::cargo_executable(
                &["-p", "local-engine", "--example", "runtime_probe"],
                "runtime_probe",
                "example",
            )
        })
        .clone()
}

/// A function spec running the probe.
pub fn probe_spec(name: FunctionName, timeout: Duration, env: &[(&str, &str)]) -> FunctionSpec {
    FunctionSpec {
        name,
        function_name: format!("probe-{name}"),
        binary: probe_binary(),
        environment: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        memory_mb: 256,
        timeout,
        max_processes: 4,
        binary_sha256: None,
    }
}

/// An engine config with the probe as every given function, no poller, a free gateway port.
pub fn probe_engine(
    state_dir: &Path,
    endpoint_url: &str,
    functions: Vec<FunctionSpec>,
    routes: Vec<stack::Route>,
) -> EngineConfig {
    EngineConfig {
        env: "test".into(),
        endpoint_url: endpoint_url.into(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        state_dir: state_dir.to_path_buf(),
        gateway_port: 0,
        routes,
        stage: "$default".into(),
        cors: None,
        functions,
        stream: None::<StreamSettings>,
    }
}

/// Whether a process is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    local_engine::daemon::is_alive(pid)
}

/// Polls `f` every 50 ms until it returns `Some` or `limit` passes.
pub async fn eventually<T>(limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
