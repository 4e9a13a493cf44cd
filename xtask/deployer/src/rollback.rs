//! `cargo xtask rollback` on AWS and the release history it reads: which version of each function the `live`
//! alias pointed at after every deploy, hotswap and rollback.
//!
//! Versions are published per function, only when its code or settings change, so "the previous version" of each
//! function is not the previous release (a function a deploy did not change keeps its version). The history
//! (`history/<env>.json` in the artifact bucket) records the whole set of live versions after each change;
//! rollback moves every alias back to the set before the current one with `UpdateAlias`, in seconds, without
//! CloudFormation (which would republish nothing and wait for the whole stack), and records that as the newest
//! entry. The stack still names the newer Version resources afterwards: the next deploy that changes a function
//! publishes and points its alias as usual (the same reconciliation as a hotswap's).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stack::{FunctionName, LIVE_ALIAS, Plan};

use crate::{Error, Result};

/// `history/<env>.json`.
pub fn history_key(env: &str) -> String {
    format!("history/{env}.json")
}

/// How many entries the history keeps (the newest).
pub const HISTORY_LIMIT: usize = 50;

/// What put a set of versions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Deploy,
    Hotswap,
    Rollback,
}

/// One change of the live versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub change: Change,
    /// The release the change deployed (for a rollback: the release it went back to, when known).
    pub release_digest: Option<String>,
    /// The version the `live` alias of each function points at after the change.
    pub live: BTreeMap<FunctionName, String>,
}

/// The history of one environment, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseHistory {
    pub entries: Vec<HistoryEntry>,
}

impl ReleaseHistory {
    /// Appends `entry` unless the live versions are those of the newest entry already (a no-op deploy).
    pub fn push(&mut self, entry: HistoryEntry) -> bool {
        if self.entries.last().is_some_and(|e| e.live == entry.live) {
            return false;
        }
        self.entries.push(entry);
        let excess = self.entries.len().saturating_sub(HISTORY_LIMIT);
        self.entries.drain(..excess);
        true
    }

    /// The set of versions live before the current one. After a rollback, "before" means before the current set
    /// was first live: rolling back twice goes two releases back, never forth to the one just rolled back.
    pub fn previous(&self) -> Option<&HistoryEntry> {
        let current = self.entries.last()?;
        let mut end = self.entries.len() - 1;
        if current.change == Change::Rollback
            && let Some(first) = self.entries.iter().position(|e| e.live == current.live)
        {
            end = first;
        }
        self.entries[..end]
            .iter()
            .rev()
            .find(|e| e.live != current.live)
    }
}

/// Where each function's `live` alias points: its version and, during a traffic shift, the other version and
/// the share of invocations it gets (the alias's `RoutingConfig`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveAlias {
    pub version: String,
    pub additional: Option<(String, f64)>,
}

impl fmt::Display for LiveAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version {}", self.version)?;
        match &self.additional {
            Some((v, w)) => write!(
                f,
                " ({:.0}%), version {v} ({:.0}%)",
                (1.0 - w) * 100.0,
                w * 100.0
            ),
            None => write!(f, " (100%)"),
        }
    }
}

/// The `live` alias of every function of `plan` (`GetAlias`).
pub async fn live_versions(
    lambda: &aws_sdk_lambda::Client,
    plan: &Plan,
) -> Result<BTreeMap<FunctionName, LiveAlias>> {
    let mut out = BTreeMap::new();
    for f in &plan.functions {
        let alias = lambda
            .get_alias()
            .function_name(&f.function_name)
            .name(LIVE_ALIAS)
            .send()
            .await
            .map_err(Error::aws(format!(
                "reading the `{LIVE_ALIAS}` alias of `{}` (lambda:GetAlias)",
                f.function_name
            )))?;
        let additional = alias
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.iter().next().map(|(v, w)| (v.clone(), *w)));
        out.insert(
            f.name,
            LiveAlias {
                version: alias.function_version().unwrap_or_default().to_string(),
                additional,
            },
        );
    }
    Ok(out)
}

/// The history of `env` (empty when none was recorded yet).
pub async fn read_history(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    env: &str,
) -> Result<ReleaseHistory> {
    let key = history_key(env);
    let Some(bytes) = crate::promote::get_object(s3, bucket, &key).await? else {
        return Ok(ReleaseHistory::default());
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "s3://{bucket}/{key} is not a release history ({e}); delete it and deploy again to start a new one"
        ))
    })
}

/// Records the live versions after a change of `plan`'s aliases (AWS environments only; the local stack has no
/// aliases). Returns the history as stored.
pub async fn record(
    clients: &crate::aws::Clients,
    plan: &Plan,
    bucket: &str,
    change: Change,
    release_digest: Option<String>,
) -> Result<ReleaseHistory> {
    let live = live_versions(&clients.lambda, plan).await?;
    let mut history = read_history(&clients.s3, bucket, &plan.env).await?;
    let entry = HistoryEntry {
        at: Utc::now(),
        change,
        release_digest,
        live: live.into_iter().map(|(f, a)| (f, a.version)).collect(),
    };
    if history.push(entry) {
        let body = serde_json::to_vec_pretty(&history).expect("a release history serializes");
        crate::promote::put_json(&clients.s3, bucket, &history_key(&plan.env), body).await?;
    }
    Ok(history)
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    pub env: String,
    /// Per function: (version before, version after); only the functions that moved.
    pub moved: BTreeMap<FunctionName, (String, String)>,
    pub release_digest: Option<String>,
    pub elapsed_ms: u64,
}

impl fmt::Display for RollbackOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, (from, to)) in &self.moved {
            writeln!(f, "{name}: live version {from} -> {to}")?;
        }
        writeln!(
            f,
            "rolled `{}` back to release {} in {:.1} s",
            self.env,
            self.release_digest.as_deref().unwrap_or("(unrecorded)"),
            self.elapsed_ms as f64 / 1000.0
        )
    }
}

/// Moves every `live` alias of `plan` to the versions of the previous history entry and records it.
pub async fn rollback(
    clients: &crate::aws::Clients,
    plan: &Plan,
    bucket: &str,
) -> Result<RollbackOutcome> {
    let started = std::time::Instant::now();
    let history = read_history(&clients.s3, bucket, &plan.env).await?;
    let Some(target) = history.previous().cloned() else {
        return Err(Error::Refused(format!(
            "`{}` has no earlier release in its history (s3://{bucket}/{}): nothing to roll back to; deploy the release you want instead",
            plan.env,
            history_key(&plan.env)
        )));
    };
    let now = live_versions(&clients.lambda, plan).await?;
    let mut moved = BTreeMap::new();
    for f in &plan.functions {
        let Some(to) = target.live.get(&f.name) else {
            continue;
        };
        let from = now
            .get(&f.name)
            .map(|a| a.version.clone())
            .unwrap_or_default();
        let shifting = now.get(&f.name).is_some_and(|a| a.additional.is_some());
        if &from == to && !shifting {
            continue;
        }
        // Clearing the routing config ends any shift in progress: all traffic goes to the version named.
        clients
            .lambda
            .update_alias()
            .function_name(&f.function_name)
            .name(LIVE_ALIAS)
            .function_version(to)
            .routing_config(aws_sdk_lambda::types::AliasRoutingConfiguration::builder().build())
            .send()
            .await
            .map_err(Error::aws(format!(
                "pointing the `{LIVE_ALIAS}` alias of `{}` at version {to} (lambda:UpdateAlias)",
                f.function_name
            )))?;
        moved.insert(f.name, (from, to.clone()));
    }
    record(
        clients,
        plan,
        bucket,
        Change::Rollback,
        target.release_digest.clone(),
    )
    .await?;
    Ok(RollbackOutcome {
        env: plan.env.clone(),
        moved,
        release_digest: target.release_digest,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(change: Change, versions: [&str; 3]) -> HistoryEntry {
        HistoryEntry {
            at: Utc::now(),
            change,
            release_digest: None,
            live: FunctionName::ALL
                .into_iter()
                .zip(versions)
                .map(|(f, v)| (f, v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn previous_is_the_last_different_set_and_a_no_op_is_not_recorded() {
        let mut h = ReleaseHistory::default();
        assert!(h.previous().is_none());
        assert!(h.push(entry(Change::Deploy, ["1", "1", "1"])));
        assert!(!h.push(entry(Change::Deploy, ["1", "1", "1"])));
        assert!(h.previous().is_none());
        // Only command changed: query and projector keep version 1, so rollback must not move them to 0.
        assert!(h.push(entry(Change::Deploy, ["2", "1", "1"])));
        assert_eq!(h.previous().unwrap().live[&FunctionName::Command], "1");
        assert_eq!(h.previous().unwrap().live[&FunctionName::Query], "1");
        assert!(h.push(entry(Change::Deploy, ["3", "2", "1"])));
        // Rolled back to [2,1,1]: a second rollback goes further back to [1,1,1], never forth to [3,2,1].
        assert!(h.push(entry(Change::Rollback, ["2", "1", "1"])));
        assert_eq!(h.previous().unwrap().live[&FunctionName::Command], "1");
        assert!(h.push(entry(Change::Rollback, ["1", "1", "1"])));
        assert!(
            h.previous().is_none(),
            "nothing is older than the first release"
        );
    }

    #[test]
    fn the_history_keeps_the_newest_entries() {
        let mut h = ReleaseHistory::default();
        for i in 0..(HISTORY_LIMIT + 5) {
            let v = i.to_string();
            h.push(entry(Change::Deploy, [v.as_str(), "1", "1"]));
        }
        assert_eq!(h.entries.len(), HISTORY_LIMIT);
        assert_eq!(h.entries[0].live[&FunctionName::Command], "5");
    }
}
