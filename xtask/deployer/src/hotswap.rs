//! Hotswap (`cargo xtask deploy --hotswap`): when only function code changed, update the functions directly with
//! `UpdateFunctionCode` in seconds instead of a CloudFormation update.
//!
//! The stack then no longer describes what runs: its `<X>CodeKey` parameters name the old zips. That drift is
//! recorded in the artifact bucket at `hotswap/<env>.json` ([`DriftRecord`]) so `status` can show it, and the next
//! full deploy reconciles it: the zips are content-addressed and already uploaded, so the change set only moves
//! the parameters to the keys that already run, and the deploy then deletes the record ([`clear_drift`]).
//!
//! The decision is pure ([`plan_hotswap`]): a hotswap is refused unless the rendered template and every parameter
//! other than the code keys and the release digest are exactly what the stack holds, and always refused when the
//! environment's config forbids it (`deploy.hotswap: false`, prod by default).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_lambda::client::Waiters as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stack::{FunctionName, Plan};

use crate::manifest::ReleaseManifest;
use crate::{Error, Result};

/// How long one function may take to finish its code update before we give up.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(300);

/// `hotswap/<env>.json`: present exactly while the stack is drifted in code.
pub fn drift_key(env: &str) -> String {
    format!("hotswap/{env}.json")
}

/// What a hotswap changed behind CloudFormation's back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub env: String,
    pub stack_name: String,
    pub at: DateTime<Utc>,
    /// Digest of the release whose code now runs (its manifest is stored at `releases/<digest>.json`).
    pub release_digest: String,
    /// The `ReleaseDigest` the stack still records.
    pub stack_release_digest: Option<String>,
    /// Per hotswapped function: the code key that runs, and the one the stack still names.
    pub functions: BTreeMap<FunctionName, SwappedCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwappedCode {
    pub code_key: String,
    pub stack_code_key: Option<String>,
    pub zip_sha256: String,
}

impl fmt::Display for DriftRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "drifted in code since {} (hotswap): the stack names older zips than the functions run; a full `cargo xtask deploy --env {}` reconciles it",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.env
        )?;
        for (name, code) in &self.functions {
            writeln!(
                f,
                "  {name}: runs {} (stack: {})",
                code.code_key,
                code.stack_code_key.as_deref().unwrap_or("none")
            )?;
        }
        Ok(())
    }
}

/// What the stack holds now, read before deciding.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    /// The stack's template body (`GetTemplate`, original stage).
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    /// An earlier hotswap's record, if the stack is already drifted.
    pub drift: Option<DriftRecord>,
}

/// The outcome of [`plan_hotswap`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum HotswapPlan {
    /// The functions already run exactly this code.
    UpToDate,
    /// Only these functions' code differs: `(function, new code key)`.
    Swap {
        functions: Vec<(FunctionName, String)>,
    },
}

/// Decides whether `new_template` + `new_parameters` can be applied as a hotswap of `deployed`, and to which
/// functions. Refuses (`Error::Refused`, exit 3) with every reason when the environment forbids hotswaps or when
/// anything but code changed, naming the full deploy as the way forward.
pub fn plan_hotswap(
    plan: &Plan,
    deployed: &Deployed,
    new_template: &str,
    new_parameters: &BTreeMap<String, String>,
) -> Result<HotswapPlan> {
    if !plan.deploy.hotswap {
        return Err(Error::Refused(format!(
            "hotswap is disabled for `{}` (deploy.hotswap: false in {}); run a full `cargo xtask deploy --env {}`",
            plan.env,
            plan.config_path.display(),
            plan.env
        )));
    }
    let code_params: BTreeSet<String> = FunctionName::ALL
        .iter()
        .map(|f| stack::parameters::code_key(*f))
        .collect();
    let mut reasons = Vec::new();
    if deployed.template_body.trim_end() != new_template.trim_end() {
        reasons.push("the rendered template differs from the deployed one".to_string());
    }
    let keys: BTreeSet<&String> = deployed
        .parameters
        .keys()
        .chain(new_parameters.keys())
        .collect();
    for key in keys {
        if code_params.contains(key) || key == stack::parameters::RELEASE_DIGEST {
            continue;
        }
        let (old, new) = (deployed.parameters.get(key), new_parameters.get(key));
        if old != new {
            reasons.push(format!(
                "parameter {key} changes ({} -> {})",
                old.map(String::as_str).unwrap_or("unset"),
                new.map(String::as_str).unwrap_or("unset")
            ));
        }
    }
    if !reasons.is_empty() {
        return Err(Error::Refused(format!(
            "hotswap refused: not only function code changed ({}); run a full `cargo xtask deploy --env {}`",
            reasons.join("; "),
            plan.env
        )));
    }
    let mut functions = Vec::new();
    for f in FunctionName::ALL {
        let param = stack::parameters::code_key(f);
        let Some(new_key) = new_parameters.get(&param) else {
            return Err(Error::InvalidInput(format!(
                "the release has no {param}; rebuild with `cargo xtask build`"
            )));
        };
        // What runs now: the stack's parameter, unless an earlier hotswap replaced it.
        let running = deployed
            .drift
            .as_ref()
            .and_then(|d| d.functions.get(&f).map(|c| &c.code_key))
            .or_else(|| deployed.parameters.get(&param));
        if running != Some(new_key) {
            functions.push((f, new_key.clone()));
        }
    }
    Ok(if functions.is_empty() {
        HotswapPlan::UpToDate
    } else {
        HotswapPlan::Swap { functions }
    })
}

/// One function's code update, timed.
#[derive(Debug, Clone, Serialize)]
pub struct SwappedFunction {
    pub function: FunctionName,
    pub function_name: String,
    pub code_key: String,
    /// `CodeSha256` after the update (base64), checked against the manifest.
    pub code_sha256: String,
    /// On AWS, the version published from the new code, which the `live` alias now points at (the API and the
    /// stream mapping invoke the alias, so updating `$LATEST` alone would change nothing they serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_version: Option<String>,
    pub duration_ms: u64,
}

/// Updates each function of `swap` to its new zip (already uploaded to `bucket`) and waits until the update is
/// active (`function_updated_v2` waiter), checking the reported `CodeSha256` against the manifest. Functions are
/// updated concurrently: they are independent and each waits on its own. On AWS each new code is then published
/// as a version and the `live` alias moved to it ([`publish_live`]).
pub async fn swap_code(
    lambda: &aws_sdk_lambda::Client,
    plan: &Plan,
    bucket: &str,
    manifest: &ReleaseManifest,
    swap: &[(FunctionName, String)],
) -> Result<Vec<SwappedFunction>> {
    let updates = swap.iter().map(|(f, key)| {
        let function_name = plan.function(*f).function_name.clone();
        let expected = manifest
            .functions
            .get(f)
            .map(|a| crate::promote::code_sha256_of_hex(&a.zip_sha256))
            .transpose();
        async move {
            let expected = expected?.ok_or_else(|| Error::InvalidInput(format!("the release manifest has no `{f}` function")))?;
            let started = Instant::now();
            lambda
                .update_function_code()
                .function_name(&function_name)
                .s3_bucket(bucket)
                .s3_key(key)
                .send()
                .await
                .map_err(Error::aws(format!("updating the code of `{function_name}` (lambda:UpdateFunctionCode)")))?;
            let done = lambda
                .wait_until_function_updated_v2()
                .function_name(&function_name)
                .wait(UPDATE_TIMEOUT)
                .await
                .map_err(Error::aws(format!(
                    "waiting for `{function_name}` to finish its code update (limit {} s)",
                    UPDATE_TIMEOUT.as_secs()
                )))?;
            let code_sha256 = done
                .into_result()
                .ok()
                .and_then(|out| out.configuration().and_then(|c| c.code_sha256().map(str::to_string)))
                .unwrap_or_default();
            if code_sha256 != expected {
                return Err(Error::StackFailed(format!(
                    "`{function_name}` reports CodeSha256 {code_sha256} after the update, expected {expected}; run a full deploy"
                )));
            }
            let live_version = if plan.kind == stack::EnvKind::Aws {
                Some(publish_live(lambda, &function_name, &format!("code {key}, hotswap")).await?)
            } else {
                None
            };
            Ok(SwappedFunction {
                function: *f,
                function_name,
                code_key: key.clone(),
                code_sha256,
                live_version,
                duration_ms: started.elapsed().as_millis() as u64,
            })
        }
    });
    futures::future::try_join_all(updates).await
}

/// Publishes `function_name`'s current code and settings as a version and points its `live` alias
/// ([`stack::LIVE_ALIAS`]) at it; returns the version. Only for stacks that have the alias (`aws` environments).
pub async fn publish_live(
    lambda: &aws_sdk_lambda::Client,
    function_name: &str,
    description: &str,
) -> Result<String> {
    let published = lambda
        .publish_version()
        .function_name(function_name)
        .description(description)
        .send()
        .await
        .map_err(Error::aws(format!(
            "publishing a version of `{function_name}` (lambda:PublishVersion)"
        )))?;
    let version = published.version().unwrap_or_default().to_string();
    lambda
        .update_alias()
        .function_name(function_name)
        .name(stack::LIVE_ALIAS)
        .function_version(&version)
        .send()
        .await
        .map_err(Error::aws(format!(
            "pointing the `{}` alias of `{function_name}` at version {version} (lambda:UpdateAlias)",
            stack::LIVE_ALIAS
        )))?;
    Ok(version)
}

/// The drift record after a hotswap: earlier swapped functions stay listed unless the stack already names
/// their running key.
pub fn drift_after(
    plan: &Plan,
    deployed: &Deployed,
    manifest: &ReleaseManifest,
    swapped: &[SwappedFunction],
) -> DriftRecord {
    let mut functions = deployed
        .drift
        .as_ref()
        .map(|d| d.functions.clone())
        .unwrap_or_default();
    for s in swapped {
        let stack_code_key = deployed
            .parameters
            .get(&stack::parameters::code_key(s.function))
            .cloned();
        let zip_sha256 = manifest
            .functions
            .get(&s.function)
            .map(|a| a.zip_sha256.clone())
            .unwrap_or_default();
        functions.insert(
            s.function,
            SwappedCode {
                code_key: s.code_key.clone(),
                stack_code_key,
                zip_sha256,
            },
        );
    }
    functions.retain(|_, code| code.stack_code_key.as_ref() != Some(&code.code_key));
    DriftRecord {
        env: plan.env.clone(),
        stack_name: plan.stack_name.clone(),
        at: Utc::now(),
        release_digest: manifest.digest(),
        stack_release_digest: deployed
            .parameters
            .get(stack::parameters::RELEASE_DIGEST)
            .cloned(),
        functions,
    }
}

/// Stores the drift record (`hotswap/<env>.json`).
pub async fn record_drift(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    record: &DriftRecord,
) -> Result<()> {
    let body = serde_json::to_vec_pretty(record).expect("a drift record serializes");
    crate::promote::put_json(s3, bucket, &drift_key(&record.env), body).await
}

/// The drift record of `env`, or `None` when the stack describes what runs. For `status`.
pub async fn read_drift(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    env: &str,
) -> Result<Option<DriftRecord>> {
    let key = drift_key(env);
    let Some(bytes) = crate::promote::get_object(s3, bucket, &key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::InvalidInput(format!(
            "s3://{bucket}/{key} is not a hotswap drift record ({e}); a full deploy replaces it"
        ))
    })
}

/// Called after a successful full deploy: the stack's parameters now name the running code, so the drift record
/// is removed. Returns whether there was one.
pub async fn clear_drift(s3: &aws_sdk_s3::Client, bucket: &str, env: &str) -> Result<bool> {
    let key = drift_key(env);
    if !crate::promote::object_exists(s3, bucket, &key).await? {
        return Ok(false);
    }
    s3.delete_object()
        .bucket(bucket)
        .set_expected_bucket_owner(crate::artifacts::expected_owner(bucket))
        .key(&key)
        .send()
        .await
        .map_err(Error::aws(format!("deleting s3://{bucket}/{key}")))?;
    Ok(true)
}

/// The result of `deploy --hotswap`: `Display` for people, `Serialize` for `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct HotswapOutcome {
    pub env: String,
    pub stack_name: String,
    pub release_digest: String,
    /// The functions already ran this code: nothing was uploaded or updated.
    pub up_to_date: bool,
    pub uploads: Option<crate::artifacts::UploadSummary>,
    pub swapped: Vec<SwappedFunction>,
    pub elapsed_ms: u64,
    /// The drift recorded after the hotswap (`None` when up to date and not drifted).
    pub drift: Option<DriftRecord>,
}

impl fmt::Display for HotswapOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.up_to_date {
            writeln!(
                f,
                "hotswap: the functions of `{}` already run release {}",
                self.stack_name,
                short(&self.release_digest)
            )?;
        } else {
            writeln!(
                f,
                "hotswapped {} function(s) of `{}` in {:.1} s (release {})",
                self.swapped.len(),
                self.stack_name,
                self.elapsed_ms as f64 / 1000.0,
                short(&self.release_digest)
            )?;
            for s in &self.swapped {
                writeln!(
                    f,
                    "  {:<10} {} ({} ms)",
                    s.function.as_str(),
                    s.code_key,
                    s.duration_ms
                )?;
            }
        }
        if let Some(drift) = &self.drift {
            write!(f, "{drift}")?;
        }
        Ok(())
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// `cargo xtask deploy --hotswap`: reads what the stack holds, decides with [`plan_hotswap`], uploads the
/// missing zips (and the manifest), updates each changed function's code, and records the drift.
pub async fn hotswap(
    clients: &crate::aws::Clients,
    plan: &Plan,
    template_body: &str,
    release: &crate::build::Release,
    bucket: &str,
    ui: &dyn crate::ui::Ui,
) -> Result<HotswapOutcome> {
    let started = Instant::now();
    if !plan.deploy.hotswap {
        // Decided before any AWS call: the config alone forbids it.
        plan_hotswap(plan, &Deployed::default(), template_body, &BTreeMap::new())?;
    }
    let stack = crate::stackops::describe(&clients.cfn, &plan.stack_name).await?.ok_or_else(|| {
        Error::Refused(format!(
            "stack `{}` does not exist: a first deploy cannot be a hotswap; run `cargo xtask deploy --env {}`",
            plan.stack_name, plan.env
        ))
    })?;
    let status = crate::stackops::status_of(&stack);
    if !crate::stackops::is_success(&status) {
        return Err(Error::Refused(format!(
            "stack `{}` is {status}; hotswap only applies to a stack in a complete state; run a full `cargo xtask deploy --env {}`",
            plan.stack_name, plan.env
        )));
    }
    let deployed = Deployed {
        template_body: crate::stackops::template_body(&clients.cfn, &plan.stack_name).await?,
        parameters: crate::stackops::parameters_of(&stack),
        drift: read_drift(&clients.s3, bucket, &plan.env).await?,
    };
    let manifest = &release.manifest;
    let new_parameters = manifest.parameters(bucket);
    let mut outcome = HotswapOutcome {
        env: plan.env.clone(),
        stack_name: plan.stack_name.clone(),
        release_digest: manifest.digest(),
        up_to_date: true,
        uploads: None,
        swapped: Vec::new(),
        elapsed_ms: 0,
        drift: deployed.drift.clone(),
    };
    let HotswapPlan::Swap { functions } =
        plan_hotswap(plan, &deployed, template_body, &new_parameters)?
    else {
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(outcome);
    };
    let names: Vec<&str> = functions.iter().map(|(f, _)| f.as_str()).collect();
    ui.progress_start(&format!("hotswapping {}", names.join(", ")));
    let result = async {
        let uploads = crate::artifacts::upload_release(&clients.s3, bucket, release).await?;
        let swapped = swap_code(&clients.lambda, plan, bucket, manifest, &functions).await?;
        Ok::<_, Error>((uploads, swapped))
    }
    .await;
    ui.progress_finish();
    let (uploads, swapped) = result?;
    let drift = drift_after(plan, &deployed, manifest, &swapped);
    record_drift(&clients.s3, bucket, &drift).await?;
    outcome.up_to_date = false;
    outcome.uploads = Some(uploads);
    outcome.swapped = swapped;
    outcome.drift = Some(drift);
    outcome.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// After a successful full deploy: the stack's code keys name `manifest`'s zips again. Any function a hotswap
/// left on other code (a deploy that went back to an older release sees no parameter change, so CloudFormation
/// would not touch it) is set back to the stack's key, with no upload (the zips are in the bucket); then the drift
/// record is removed. Returns the functions that had to be set back, or `None` when the stack was not drifted.
pub async fn reconcile(
    clients: &crate::aws::Clients,
    plan: &Plan,
    bucket: &str,
    manifest: &ReleaseManifest,
) -> Result<Option<Vec<FunctionName>>> {
    let Some(drift) = read_drift(&clients.s3, bucket, &plan.env).await? else {
        return Ok(None);
    };
    let back: Vec<(FunctionName, String)> = drift
        .functions
        .iter()
        .filter_map(|(f, code)| {
            let key = manifest.functions.get(f)?.s3_key.clone();
            (code.code_key != key).then_some((*f, key))
        })
        .collect();
    if !back.is_empty() {
        swap_code(&clients.lambda, plan, bucket, manifest, &back).await?;
    }
    clear_drift(&clients.s3, bucket, &plan.env).await?;
    Ok(Some(back.into_iter().map(|(f, _)| f).collect()))
}
