//! What was deployed to the local endpoint, read back before the engine starts serving it.
//!
//! The host must run what was deployed, not what happens to be on disk: the function settings
//! (environment, memory, timeout) come from `GetFunctionConfiguration`, the binaries must match the release
//! manifest the deployer wrote (`binary_sha256`), and the deployed code must be that release
//! (`CodeSha256` = base64 of the zip's SHA-256 = the manifest's `zip_sha256`). A mismatch is an error that
//! says to run `cargo xtask deploy` again, instead of silently serving something else.
//!
//! The engine runs a pinned copy of each binary (`<state>/code/<sha256>/<function>/bootstrap`, a hard link where the file
//! system allows), not the build's own file: the next build renames new binaries over `dist` while the engine
//! still serves the deployed ones (during a local canary, both), and a process started then must run what was
//! verified.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use stack::{FunctionName, Plan, outputs};

use crate::host::{DEFAULT_POOL_SIZE, FunctionSpec};

/// Errors while reading the deployed stack. Every message says what to do next.
///
/// ### Handling
/// All variants mean "the local stack and the build disagree or are missing": `serve` exits with a failure
/// and the message; the fix is always to (re)deploy.
#[derive(Debug, thiserror::Error)]
pub enum DeployedError {
    #[error(
        "stack `{stack}` is not deployed on {endpoint}: {detail}; run `cargo xtask deploy` first"
    )]
    NoStack {
        stack: String,
        endpoint: String,
        detail: String,
    },
    #[error("stack `{stack}` has no output `{output}`; redeploy with `cargo xtask deploy`")]
    MissingOutput { stack: String, output: String },
    #[error(
        "function `{function}` is not deployed on {endpoint}: {detail}; run `cargo xtask deploy`"
    )]
    NoFunction {
        function: String,
        endpoint: String,
        detail: String,
    },
    #[error(
        "cannot read the release manifest {path}: {detail}; run `cargo xtask deploy` to build it"
    )]
    Manifest { path: PathBuf, detail: String },
    #[error("cannot read the built binary {path}: {detail}; run `cargo xtask deploy` to build it")]
    Binary { path: PathBuf, detail: String },
    #[error(
        "{what} of `{function}` does not match the release manifest (expected {expected}, found {found}); run `cargo xtask deploy` so the endpoint, the manifest and the binaries agree"
    )]
    Mismatch {
        function: String,
        what: &'static str,
        expected: String,
        found: String,
    },
}

/// The stack's outputs, by name.
pub async fn stack_outputs(
    sdk: &aws_config::SdkConfig,
    stack_name: &str,
    endpoint: &str,
) -> Result<BTreeMap<String, String>, DeployedError> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .map_err(|e| DeployedError::NoStack {
            stack: stack_name.to_string(),
            endpoint: endpoint.to_string(),
            detail: aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
        })?;
    let stack = out
        .stacks
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| DeployedError::NoStack {
            stack: stack_name.to_string(),
            endpoint: endpoint.to_string(),
            detail: "DescribeStacks returned no stack".into(),
        })?;
    Ok(stack
        .outputs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| Some((o.output_key?, o.output_value?)))
        .collect())
}

/// Where the deployer puts one environment's build: `<target>/xtask/dist/<checkout>/<env>` of the checkout the
/// tool runs in (the deployer's layout, not a copy of it).
pub fn dist_dir(env: &str) -> PathBuf {
    let root = crate::state::repo_root();
    deployer::build::dist_dir(&deployer::build::default_target_dir(&root), &root, env)
}

/// The function specs of a deployed local stack, verified against the release manifest in `dist`, each running
/// its binary's pinned copy in `state_dir`.
pub async fn function_specs(
    sdk: &aws_config::SdkConfig,
    plan: &Plan,
    endpoint: &str,
    (dist, state_dir): (&Path, &Path),
    outputs: &BTreeMap<String, String>,
) -> Result<Vec<FunctionSpec>, DeployedError> {
    let manifest_path = deployer::build::manifest_path(dist);
    let manifest = deployer::build::read_manifest(dist).map_err(|e| DeployedError::Manifest {
        path: manifest_path.clone(),
        detail: e.to_string(),
    })?;
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mut specs = Vec::new();
    for fplan in &plan.functions {
        let name = fplan.name;
        let function_name = outputs
            .get(&outputs::function_name(name))
            .cloned()
            .unwrap_or_else(|| fplan.function_name.clone());
        let artifact = manifest
            .functions
            .get(&name)
            .ok_or_else(|| DeployedError::Manifest {
                path: manifest_path.clone(),
                detail: format!("no function `{name}` in it"),
            })?;
        let built = deployer::build::bootstrap_path(dist, name);
        // 15 MB linked or copied, then hashed: off the runtime the gateway and the poller share.
        let pinned = {
            let (built, state_dir) = (built.clone(), state_dir.to_path_buf());
            tokio::task::spawn_blocking(move || pin_binary(&state_dir, name, &built))
                .await
                .expect("pinning a file does not panic")
        };
        let (binary, found) = pinned.map_err(|e| DeployedError::Binary {
            path: built.clone(),
            detail: e.to_string(),
        })?;
        if found != artifact.binary_sha256 {
            return Err(DeployedError::Mismatch {
                function: name.to_string(),
                what: "the binary's SHA-256",
                expected: artifact.binary_sha256.clone(),
                found,
            });
        }
        let cfg = lambda
            .get_function_configuration()
            .function_name(&function_name)
            .send()
            .await
            .map_err(|e| DeployedError::NoFunction {
                function: function_name.clone(),
                endpoint: endpoint.to_string(),
                detail: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
            })?;
        let expected_code =
            deployer::promote::code_sha256_of_hex(&artifact.zip_sha256).unwrap_or_default();
        let code = cfg.code_sha256.clone().unwrap_or_default();
        if code != expected_code {
            return Err(DeployedError::Mismatch {
                function: name.to_string(),
                what: "the deployed CodeSha256",
                expected: expected_code,
                found: code,
            });
        }
        let environment: BTreeMap<String, String> = cfg
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_else(HashMap::new)
            .into_iter()
            .collect();
        let max_processes = match fplan.reserved_concurrency {
            Some(n) if n > 0 => (n as usize).min(DEFAULT_POOL_SIZE),
            _ => DEFAULT_POOL_SIZE,
        };
        specs.push(FunctionSpec {
            name,
            function_name,
            binary,
            environment,
            memory_mb: cfg.memory_size.map(|m| m as u32).unwrap_or(fplan.memory_mb),
            timeout: Duration::from_secs(
                cfg.timeout
                    .map(|t| t as u64)
                    .unwrap_or(fplan.timeout_seconds as u64),
            ),
            max_processes,
            binary_sha256: Some(found),
        });
    }
    Ok(specs)
}

/// The events table's stream ARN, read from the table itself. Used when the stack has no
/// `EventsStreamArn` output: moto 5.2.5 computes outputs when a stack is created from a change set, before
/// its resources exist, and never again, so change-set deploys on the local endpoint have no outputs.
pub async fn events_stream_arn(
    sdk: &aws_config::SdkConfig,
    plan: &Plan,
    outs: &BTreeMap<String, String>,
) -> Result<String, DeployedError> {
    let table = outs
        .get(outputs::EVENTS_TABLE)
        .cloned()
        .unwrap_or_else(|| plan.events_table.table_name.clone());
    let missing = |detail: String| DeployedError::MissingOutput {
        stack: plan.stack_name.clone(),
        output: format!(
            "{} (and table `{table}` has no stream: {detail})",
            outputs::EVENTS_STREAM_ARN
        ),
    };
    let out = aws_sdk_dynamodb::Client::new(sdk)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .map_err(|e| missing(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    out.table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| missing("streams are off".into()))
}

/// The dead-letter queue's URL, from its physical name `<stack>-projector-dlq` (see `events_stream_arn`
/// for why the output may be missing locally).
pub async fn dead_letter_queue_url(sdk: &aws_config::SdkConfig, plan: &Plan) -> Option<String> {
    aws_sdk_sqs::Client::new(sdk)
        .get_queue_url()
        .queue_name(stack::dlq_name(&plan.stack_name))
        .send()
        .await
        .ok()
        .and_then(|o| o.queue_url)
}

/// `<state>/code/<sha256>/<function>/bootstrap`: the engine's pinned copy of `function`'s binary with that digest
/// (the path still ends like the build's, `<function>/bootstrap`, so a process list reads the same).
pub fn pinned_path(state_dir: &Path, sha256: &str, function: FunctionName) -> PathBuf {
    state_dir
        .join("code")
        .join(sha256)
        .join(function.as_str())
        .join("bootstrap")
}

/// Pins `binary`: links (or copies) it into the state directory first and hashes that copy, so the digest is of
/// the file that will run even if a build renames another over `binary` meanwhile. Returns the pinned path and
/// the digest.
pub fn pin_binary(
    state_dir: &Path,
    function: FunctionName,
    binary: &Path,
) -> std::io::Result<(PathBuf, String)> {
    let code = state_dir.join("code");
    std::fs::create_dir_all(&code)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let fresh = code.join(format!(".pinning-{}-{nanos}", std::process::id()));
    if std::fs::hard_link(binary, &fresh).is_err() {
        std::fs::copy(binary, &fresh)?;
    }
    let pinned = sha256_file(&fresh).and_then(|sha| {
        let dest = pinned_path(state_dir, &sha, function);
        std::fs::create_dir_all(dest.parent().expect("a pinned path has a parent"))?;
        std::fs::rename(&fresh, &dest)?;
        Ok((dest, sha))
    });
    let _ = std::fs::remove_file(&fresh);
    pinned
}

/// Removes the pinned binaries whose digest is not in `keep` (what the engine serves now): a long `dev` session
/// swaps many builds.
pub fn prune_pinned(state_dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("code")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && !keep.contains(&name.as_ref()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// SHA-256 (hex) of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The output, or an error naming it.
pub fn require_output(
    outputs: &BTreeMap<String, String>,
    stack: &str,
    name: &str,
) -> Result<String, DeployedError> {
    outputs
        .get(name)
        .cloned()
        .ok_or_else(|| DeployedError::MissingOutput {
            stack: stack.to_string(),
            output: name.to_string(),
        })
}
