//! `replay`: rebuilds read models from the event log, safely while traffic continues.
//!
//! Why it exists: a read model can be lost (table restored, item deleted) or wrong (a projector bug fixed
//! since). Replay folds each aggregate's events, in version order, through the very fold the projector uses
//! (`domain::State::fold` through the registry: stored events are facts, upcast, no rules; loaded with `service`'s store), so a
//! rebuilt read model is the one the projector would have produced. It reads events only (`version >= 1`):
//! the append's head and command records are skipped.
//!
//! Safety while the projector runs: a read model is written only when it is absent or behind the replayed
//! version, or with `force` when it is at the replayed version but its state differs (current but wrong),
//! always conditional on the exact read model just read (its version and `updated_at`, the store's
//! conditional put). Losing that race means someone moved it on: we read again and stop as soon as it is
//! ahead (or, without `force`, current), so a read model never moves backwards and a projector that got
//! further wins. An event that cannot be applied is reported and replay goes on with the other aggregates;
//! the progress before it is written, as the projector does.

use std::collections::BTreeSet;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use domain::registry;
use futures::StreamExt as _;
use serde::Serialize;
use service::{DynamoStore, EventStore, ReadModel, StoreError};

use crate::error::{Error, Result};
use crate::ui::Ui;

/// Parallel Scan segments used to list the aggregates of the events table.
pub const DEFAULT_SEGMENTS: i32 = 4;
/// Aggregates replayed at the same time.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// How often one aggregate's conditional write is retried after losing a race.
const MAX_ATTEMPTS: usize = 5;

/// What to replay and where.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub events_table: String,
    pub projections_table: String,
    /// One aggregate, or every aggregate of the events table when `None`.
    pub aggregate: Option<String>,
    pub segments: i32,
    pub concurrency: usize,
    /// Also rewrite read models that are at the replayed version but hold another state.
    pub force: bool,
}

/// An event that could not be applied (or an aggregate that could not be read or written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayFailure {
    pub aggregate_id: String,
    /// The event's version, when one event is to blame.
    pub version: Option<u64>,
    pub reason: String,
    /// Events of the aggregate not applied because of this failure (the event itself and the ones after it).
    pub events_not_applied: u64,
}

/// The summary of a replay: `Display` for people, `Serialize` for `--output json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayOutcome {
    pub events_table: String,
    pub projections_table: String,
    /// The aggregate asked for, when only one was replayed.
    pub aggregate: Option<String>,
    pub aggregates_seen: u64,
    /// Aggregates whose read model was written.
    pub aggregates_replayed: u64,
    /// Aggregates whose read model was already at (or past) the replayed version.
    pub aggregates_skipped: u64,
    /// Events folded into a written read model.
    pub events_replayed: u64,
    /// Events folded for aggregates that were already current or newer.
    pub events_skipped: u64,
    /// Events that were not applied because of a failure (see `failures`).
    pub events_failed: u64,
    pub failures: Vec<ReplayFailure>,
    pub elapsed_secs: f64,
    /// Events read and folded per second (replayed + skipped).
    pub events_per_sec: f64,
}

impl std::fmt::Display for ReplayOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match &self.aggregate {
            Some(a) => format!("aggregate `{a}`"),
            None => "every aggregate".to_string(),
        };
        writeln!(
            f,
            "replayed {scope} of {} into {}",
            self.events_table, self.projections_table
        )?;
        writeln!(
            f,
            "  aggregates: {} seen, {} replayed, {} skipped (already current or newer), {} failed",
            self.aggregates_seen,
            self.aggregates_replayed,
            self.aggregates_skipped,
            self.failures.len()
        )?;
        writeln!(
            f,
            "  events:     {} replayed, {} skipped, {} failed",
            self.events_replayed, self.events_skipped, self.events_failed
        )?;
        writeln!(
            f,
            "  rate:       {:.0} events/s in {:.2} s",
            self.events_per_sec, self.elapsed_secs
        )?;
        for failure in &self.failures {
            match failure.version {
                Some(v) => writeln!(
                    f,
                    "  failed: `{}` version {v}: {} ({} event(s) not applied)",
                    failure.aggregate_id, failure.reason, failure.events_not_applied
                )?,
                None => writeln!(
                    f,
                    "  failed: `{}`: {}",
                    failure.aggregate_id, failure.reason
                )?,
            }
        }
        Ok(())
    }
}

/// How one aggregate ended.
#[derive(Debug)]
pub struct AggregateResult {
    /// Whether its read model was written.
    pub written: bool,
    /// Events folded.
    pub events: u64,
    pub failure: Option<ReplayFailure>,
}

/// Replays every aggregate (or one) and returns the summary. Per-aggregate failures are in the outcome;
/// `Err` only when the aggregates cannot be listed at all.
pub async fn replay(
    client: &Client,
    request: &ReplayRequest,
    ui: &dyn Ui,
) -> Result<ReplayOutcome> {
    let began = Instant::now();
    let ids: Vec<String> = match &request.aggregate {
        Some(id) => vec![id.clone()],
        None => {
            ui.progress_start("listing aggregates");
            list_aggregates(client, &request.events_table, request.segments.max(1)).await?
        }
    };
    let store = DynamoStore::new(
        client.clone(),
        service::Config {
            events_table: request.events_table.clone(),
            projections_table: request.projections_table.clone(),
        },
    );
    let total = ids.len() as u64;
    ui.progress_start("replaying aggregates");
    ui.progress_position(0, total);
    let mut outcome = ReplayOutcome {
        events_table: request.events_table.clone(),
        projections_table: request.projections_table.clone(),
        aggregate: request.aggregate.clone(),
        aggregates_seen: total,
        aggregates_replayed: 0,
        aggregates_skipped: 0,
        events_replayed: 0,
        events_skipped: 0,
        events_failed: 0,
        failures: Vec::new(),
        elapsed_secs: 0.0,
        events_per_sec: 0.0,
    };
    let store = &store;
    let force = request.force;
    let mut results = futures::stream::iter(ids.into_iter().map(|id| async move {
        let result = replay_aggregate(store, &id, force).await;
        (id, result)
    }))
    .buffer_unordered(request.concurrency.max(1));
    let mut done = 0;
    while let Some((_id, result)) = results.next().await {
        done += 1;
        ui.progress_position(done, total);
        if result.written {
            outcome.aggregates_replayed += 1;
            outcome.events_replayed += result.events;
        } else if result.events > 0 {
            outcome.aggregates_skipped += 1;
            outcome.events_skipped += result.events;
        }
        if let Some(failure) = result.failure {
            outcome.events_failed += failure.events_not_applied;
            outcome.failures.push(failure);
        }
    }
    ui.progress_finish();
    outcome
        .failures
        .sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
    outcome.elapsed_secs = began.elapsed().as_secs_f64();
    let folded = (outcome.events_replayed + outcome.events_skipped) as f64;
    outcome.events_per_sec = if outcome.elapsed_secs > 0.0 {
        folded / outcome.elapsed_secs
    } else {
        0.0
    };
    Ok(outcome)
}

/// The distinct aggregate ids of the events table: `segments` parallel Scan segments reading only the key.
pub async fn list_aggregates(client: &Client, table: &str, segments: i32) -> Result<Vec<String>> {
    let scans = (0..segments).map(|segment| scan_segment(client, table, segment, segments));
    let mut ids = BTreeSet::new();
    for part in futures::future::join_all(scans).await {
        ids.extend(part?);
    }
    Ok(ids.into_iter().collect())
}

async fn scan_segment(
    client: &Client,
    table: &str,
    segment: i32,
    total: i32,
) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .segment(segment)
            .total_segments(total)
            .projection_expression("aggregate_id")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(Error::aws(format!(
                "scanning segment {segment} of {total} of table `{table}`"
            )))?;
        for item in out.items.unwrap_or_default() {
            if let Some(id) = item.get("aggregate_id").and_then(|v| v.as_s().ok()) {
                ids.insert(id.clone());
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok(ids)
}

/// Folds one aggregate's log and writes its read model unless it is already current (with `force`: current
/// and equal) or newer.
pub async fn replay_aggregate<S: EventStore>(
    store: &S,
    aggregate_id: &str,
    force: bool,
) -> AggregateResult {
    let fail = |version, reason: String, events_not_applied| AggregateResult {
        written: false,
        events: 0,
        failure: Some(ReplayFailure {
            aggregate_id: aggregate_id.to_string(),
            version,
            reason,
            events_not_applied,
        }),
    };
    let folded = match fold_log(store, aggregate_id).await {
        Ok(folded) => folded,
        Err(e) => return fail(None, format!("reading the events: {e}"), 0),
    };
    let Folded {
        state,
        version,
        failure,
    } = folded;
    let mut result = AggregateResult {
        written: false,
        events: version,
        failure,
    };
    let Some(state) = state.filter(|_| version > 0) else {
        return result;
    };
    let model = ReadModel {
        aggregate_id: aggregate_id.to_string(),
        aggregate_type: Some(state.kind().to_string()),
        version,
        state: state.state(),
        updated_at: domain::now_timestamp(),
    };
    for _ in 0..MAX_ATTEMPTS {
        let current = match store.get_read_model(aggregate_id).await {
            Ok(m) => m,
            Err(e) => return fail(None, format!("reading the read model: {e}"), 0),
        };
        let keep = current.as_ref().is_some_and(|m| {
            m.version > version || (m.version == version && (!force || m.state == model.state))
        });
        if keep {
            return result; // already current (and right, with force), or a projector got further: it wins
        }
        match store.put_read_model(&model, current.as_ref()).await {
            Ok(()) => {
                result.written = true;
                return result;
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return fail(None, format!("writing the read model: {e}"), 0),
        }
    }
    fail(
        None,
        format!("the read model kept changing during {MAX_ATTEMPTS} attempts; run replay again"),
        0,
    )
}

/// One aggregate's log folded through the registry: the state after the last applied event, that event's
/// version, and the first event that could not be applied (the fold stops there).
pub struct Folded {
    pub state: Option<Box<dyn domain::State>>,
    pub version: u64,
    pub failure: Option<ReplayFailure>,
}

/// Reads one aggregate's whole log (consistent) and folds it, as the projector would.
pub async fn fold_log<S: EventStore>(
    store: &S,
    aggregate_id: &str,
) -> std::result::Result<Folded, StoreError> {
    let (events, _) = store.read_events(aggregate_id, 0, None, true).await?;
    let mut state: Option<Box<dyn domain::State>> = None;
    let mut version = 0;
    let mut failure = None;
    for (i, event) in events.iter().enumerate() {
        let not_applied = (events.len() - i) as u64;
        if event.version != version + 1 {
            failure = Some((
                event.version,
                format!("the log has a hole at version {}", version + 1),
                not_applied,
            ));
            break;
        }
        let folded = match &mut state {
            Some(s) => s.fold(&event.event_type, event.schema_version(), &event.event_data),
            None => registry()
                .replay([(
                    event.event_type.as_str(),
                    event.schema_version(),
                    &event.event_data,
                )])
                .map(|s| state = s),
        };
        if let Err(e) = folded {
            failure = Some((event.version, e.to_string(), not_applied));
            break;
        }
        version = event.version;
    }
    let failure = failure.map(|(v, reason, n)| ReplayFailure {
        aggregate_id: aggregate_id.to_string(),
        version: Some(v),
        reason,
        events_not_applied: n,
    });
    Ok(Folded {
        state,
        version,
        failure,
    })
}
