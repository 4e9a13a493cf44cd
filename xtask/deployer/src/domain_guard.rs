//! The stored-events guard: a deploy compares this build's event schemas with the ones recorded at the
//! environment's last deploy, and refuses a change that stored events would not survive (an event type removed,
//! a field removed, retyped or newly required without a new schema version and an upcaster). It is `buf
//! breaking` for an event log; the comparison itself is `domain::registry::breaking_changes`.
//!
//! The record is the domain as data (`domain::Description`) at `domain/<env>.json` in the environment's
//! artifact bucket, written after every successful deploy. A local environment's bucket lives in the local
//! endpoint, so a teardown forgets the record together with the events it protected. A copy is kept in the
//! environment's state directory (`domain.json`) so that `cargo xtask validate`, which touches no AWS, can run
//! the same comparison against the last deploy made from this machine.

use domain::Description;
use domain::registry::breaking_changes;

use crate::error::{Error, Result};

/// `domain/<env>.json`: the domain as the environment's last deploy recorded it.
pub fn key(env: &str) -> String {
    format!("domain/{env}.json")
}

/// The recorded domain of `env`, or `None` before its first deploy (or when the bucket does not exist yet).
pub async fn recorded(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    env: &str,
) -> Result<Option<Description>> {
    let key = key(env);
    let Some(bytes) = crate::promote::get_object(s3, bucket, &key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::InvalidInput(format!(
            "s3://{bucket}/{key} is not a recorded domain ({e}); delete it to accept this build's event schemas as the new baseline"
        ))
    })
}

/// Records `domain` as the environment's baseline.
pub async fn record(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    env: &str,
    domain: &Description,
) -> Result<()> {
    let body = serde_json::to_vec_pretty(domain).expect("a domain description serializes");
    crate::promote::put_json(s3, bucket, &key(env), body).await
}

/// The state directory's copy of the record (for `validate`).
pub fn local_copy(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("domain.json")
}

/// Reads the state directory's copy, `None` when there is none.
pub fn read_local_copy(state_dir: &std::path::Path) -> Result<Option<Description>> {
    let path = local_copy(state_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::InvalidInput(format!(
                "{} is not a recorded domain ({e}); delete it (the next deploy writes it again)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::InvalidInput(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses `current` when it breaks events stored under `recorded` (pure: the message names each event, field
/// and fix).
pub fn check(env: &str, recorded: Option<&Description>, current: &Description) -> Result<()> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let breaking = breaking_changes(recorded, current);
    if breaking.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = breaking.iter().map(|b| format!("  - {b}")).collect();
    Err(Error::Refused(format!(
        "refusing to deploy `{env}`: this build's events would break events already stored there (recorded at its last deploy); nothing was changed:\n{}",
        lines.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_domain_or_a_first_deploy_passes_and_a_removed_event_type_is_refused() {
        let current = domain::registry().describe();
        assert!(check("dev", None, &current).is_ok());
        assert!(check("dev", Some(&current), &current).is_ok());
        let mut recorded = current.clone();
        recorded.aggregates[0]
            .events
            .push(domain::registry::EventInfo {
                event_type: "user_renamed".into(),
                version: 1,
                upcasts_from: vec![],
                schema: serde_json::json!({"type": "object"}),
            });
        let err = check("dev", Some(&recorded), &current).unwrap_err();
        assert!(matches!(err, Error::Refused(_)));
        assert!(
            err.to_string()
                .contains("event `user_renamed`: the event type of aggregate `user` was removed"),
            "{err}"
        );
    }
}
