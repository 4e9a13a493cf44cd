//! `status`: what is deployed (stack status, last update, the release digest recorded in the stack's
//! parameters) next to what is built locally, and the stack's outputs.

use std::collections::BTreeMap;

use serde::Serialize;
use stack::{EnvKind, Plan};

use crate::api::ApiReport;
use crate::aws::Clients;
use crate::error::Result;
use crate::manifest::ReleaseManifest;
use crate::stackops;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub env: String,
    pub stack_name: String,
    /// `None` when the stack does not exist.
    pub status: Option<String>,
    pub last_updated: Option<String>,
    pub deployed_digest: Option<String>,
    pub deployed_code_keys: BTreeMap<String, String>,
    pub local_digest: Option<String>,
    /// Whether the deployed release is the local build (`None` when either is missing).
    pub in_sync: Option<bool>,
    pub outputs: BTreeMap<String, String>,
    pub api: Option<ApiReport>,
    /// The API's real endpoint (AWS), or the local gateway's URL (set by the caller for `local`).
    pub api_url: Option<String>,
    /// Set while a hotswap left the functions on other code than the stack names.
    pub drift: Option<crate::hotswap::DriftRecord>,
    /// On AWS, the version each function's `live` alias serves, and the traffic split during a shift. Locally,
    /// what the running engine serves: the binary's SHA-256 (12 digits) and, during a shift, the canary's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub live: BTreeMap<stack::FunctionName, crate::rollback::LiveAlias>,
    /// What `live` was read from, when it is not the `live` alias (the local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_source: Option<String>,
    /// On AWS, the release history (`deploy`, `hotswap`, `rollback`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<crate::rollback::HistoryEntry>,
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(status) = &self.status else {
            return writeln!(
                f,
                "stack `{}` ({}) is not deployed",
                self.stack_name, self.env
            );
        };
        writeln!(
            f,
            "stack `{}` ({}): {status}, last updated {}",
            self.stack_name,
            self.env,
            self.last_updated.as_deref().unwrap_or("never")
        )?;
        writeln!(
            f,
            "deployed release: {}",
            self.deployed_digest.as_deref().unwrap_or("unknown")
        )?;
        writeln!(
            f,
            "local build:      {}",
            self.local_digest
                .as_deref()
                .unwrap_or("none (run `cargo xtask build`)")
        )?;
        match self.in_sync {
            Some(true) => writeln!(f, "the deployed release is the local build")?,
            Some(false) => writeln!(
                f,
                "the local build differs from the deployed release (`cargo xtask deploy` ships it)"
            )?,
            None => {}
        }
        for (k, v) in &self.deployed_code_keys {
            writeln!(f, "  {k:<24} {v}")?;
        }
        if !self.outputs.is_empty() {
            writeln!(f, "outputs:")?;
            for (k, v) in &self.outputs {
                writeln!(f, "  {k:<24} {v}")?;
            }
        }
        if let Some(api) = &self.api {
            write!(f, "{api}")?;
        }
        if let Some(url) = &self.api_url {
            writeln!(f, "API: {url}")?;
        }
        if let Some(drift) = &self.drift {
            write!(f, "{drift}")?;
        }
        if !self.live.is_empty() {
            match &self.live_source {
                Some(source) => writeln!(f, "live ({source}):")?,
                None => writeln!(f, "live (alias `{}`):", stack::LIVE_ALIAS)?,
            }
            for (name, alias) in &self.live {
                writeln!(f, "  {:<10} {alias}", name.as_str())?;
            }
        }
        if let Some(last) = self.history.last()
            && last.change == crate::rollback::Change::Rollback
        {
            writeln!(
                f,
                "rolled back: the live versions are release {}'s; the stack still names {} (the next deploy that changes a function moves its alias on)",
                last.release_digest.as_deref().unwrap_or("(unrecorded)"),
                self.deployed_digest.as_deref().unwrap_or("unknown")
            )?;
        }
        if !self.history.is_empty() {
            writeln!(f, "history (newest last):")?;
            for e in &self.history {
                let versions: Vec<String> =
                    e.live.iter().map(|(n, v)| format!("{n} {v}")).collect();
                writeln!(
                    f,
                    "  {} {:<8} {:<12} {}",
                    e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    format!("{:?}", e.change).to_lowercase(),
                    e.release_digest
                        .as_deref()
                        .map_or("-", |d| &d[..d.len().min(12)]),
                    versions.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

pub async fn status(
    clients: &Clients,
    plan: &Plan,
    local: Option<&ReleaseManifest>,
) -> Result<StatusReport> {
    let stack = stackops::describe(&clients.cfn, &plan.stack_name).await?;
    let local_digest = local.map(ReleaseManifest::digest);
    let mut report = StatusReport {
        env: plan.env.clone(),
        stack_name: plan.stack_name.clone(),
        status: None,
        last_updated: None,
        deployed_digest: None,
        deployed_code_keys: BTreeMap::new(),
        local_digest: local_digest.clone(),
        in_sync: None,
        outputs: BTreeMap::new(),
        api: None,
        api_url: None,
        drift: None,
        live: BTreeMap::new(),
        live_source: None,
        history: Vec::new(),
    };
    let Some(stack) = stack else {
        return Ok(report);
    };
    let params = stackops::parameters_of(&stack);
    report.status = Some(stackops::status_of(&stack));
    report.last_updated = stack
        .last_updated_time()
        .or(stack.creation_time())
        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
        .map(|t| t.to_rfc3339());
    report.deployed_digest = params.get(stack::parameters::RELEASE_DIGEST).cloned();
    report.deployed_code_keys = params
        .into_iter()
        .filter(|(k, _)| k.ends_with("CodeKey"))
        .collect();
    report.in_sync = match (&report.deployed_digest, &local_digest) {
        (Some(d), Some(l)) => Some(d == l),
        _ => None,
    };
    report.outputs = stackops::outputs_of(&stack);
    let bucket = crate::artifacts::bucket_name(plan, plan.account_id.as_deref());
    report.drift = crate::hotswap::read_drift(&clients.s3, &bucket, &plan.env).await?;
    if plan.kind == EnvKind::Aws {
        report.live = crate::rollback::live_versions(&clients.lambda, plan).await?;
        report.history = crate::rollback::read_history(&clients.s3, &bucket, &plan.env)
            .await?
            .entries;
    }
    if plan.kind == EnvKind::Aws
        && let Ok(api) = crate::api::read_back(clients, plan).await
    {
        report.api_url = Some(api.endpoint.clone());
        report.api = Some(api);
    }
    Ok(report)
}
