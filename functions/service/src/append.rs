//! Appending events with the event store's guarantees: domain rules, optimistic concurrency, size limits
//! and durable idempotency by `commandId`.
//!
//! ## Idempotency design
//! Every event item carries the `command_id` of the append that wrote it. Because the domain rules need the
//! aggregate's full history anyway, every append first loads the aggregate with a consistent read; if an
//! event with the same `command_id` is already in the log, the append returns the original result (the
//! same versions, event ids and timestamps) and writes nothing. This is durable (it is the log itself, not a
//! cache) and survives restarts. Two concurrent duplicates both load before either writes: both target the
//! same version, the conditional write lets exactly one win, and the loser reloads, finds its command in
//! the log and returns the winner's result.
//!
//! We chose this over a separate dedup item (`aggregate_id = "cmd#<id>"`) written in the same transaction:
//! such an item would go through the table's stream (the projector would have to recognise and skip it),
//! would make a single event a two-item transaction instead of one conditional PutItem, and would push a
//! 100-event batch over the 100-item transaction limit. The trade-off: a `commandId` is scoped to its
//! aggregate (the same id on another aggregate is another command). We do not rely on
//! `ReturnValuesOnConditionCheckFailure` either: after any lost write we reload anyway to learn the current
//! version, and the reload also answers the idempotency question.

use std::time::Duration;

use domain::api::AppendCommand;
use domain::validate::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_ITEM_BYTES};
use domain::{Aggregate, DomainError, Metadata, StoredEvent, User};

use crate::size::event_item_size;
use crate::store::{EventStore, StoreError};

/// How often an append without `expectedVersion` reloads and retries after losing a race.
pub const MAX_ATTEMPTS: u32 = 64;

/// Why an append was refused. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Over 100 events, an event over 400 KB, or a batch over 4 MB.
    ///
    /// ### Handling
    /// HTTP 413 `too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// The aggregate is not at `expectedVersion` (or stayed contended for every retry).
    ///
    /// ### Handling
    /// HTTP 409 `version_conflict` with `currentVersion`.
    #[error("{}", conflict_message(*expected, *current))]
    Conflict { expected: Option<u64>, current: u64 },
    /// A domain rule refused an event.
    ///
    /// ### Handling
    /// HTTP 422 `rule_violation` or `unknown_event_type`.
    #[error("event {index}: {source}")]
    Domain { index: usize, source: DomainError },
    /// The stored log of this aggregate cannot be replayed (e.g. a poison event written around the API).
    ///
    /// ### Handling
    /// HTTP 500 `internal`: an operator must repair the log.
    #[error("the stored events of this aggregate cannot be replayed: {0}")]
    CorruptLog(String),
    /// DynamoDB failed.
    ///
    /// ### Handling
    /// HTTP 500 `internal`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn conflict_message(expected: Option<u64>, current: u64) -> String {
    match expected {
        Some(e) => format!(
            "expected version {e} but the aggregate is at version {current}; reload and retry"
        ),
        None => format!(
            "the aggregate kept changing while appending (now at version {current}); retry, with a `commandId` to make the retry safe"
        ),
    }
}

/// What an append returns: the written events, or the original ones when the command was already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    pub aggregate_id: String,
    pub events: Vec<StoredEvent>,
    /// True when nothing was written because `commandId` had been applied before.
    pub deduplicated: bool,
}

/// Appends the command's events to its aggregate.
pub async fn append<S: EventStore>(
    store: &S,
    cmd: &AppendCommand,
    metadata: Metadata,
) -> Result<AppendOutcome, AppendError> {
    if cmd.events.len() > MAX_BATCH_EVENTS {
        return Err(AppendError::TooLarge(format!(
            "{} events in one append; the limit is {MAX_BATCH_EVENTS} (one DynamoDB transaction); split the batch",
            cmd.events.len()
        )));
    }
    // Size check up front, before any read, with the largest version the batch could get.
    check_sizes(&build_events(cmd, u64::MAX / 2, &metadata))?;

    let mut current = 0;
    for attempt in 0..MAX_ATTEMPTS {
        let (log, _) = store.read_events(&cmd.aggregate_id, 0, None, true).await?;
        if let Some(command_id) = &cmd.command_id {
            let original: Vec<StoredEvent> = log
                .iter()
                .filter(|e| e.command_id.as_deref() == Some(command_id))
                .cloned()
                .collect();
            if !original.is_empty() {
                return Ok(AppendOutcome {
                    aggregate_id: cmd.aggregate_id.clone(),
                    events: original,
                    deduplicated: true,
                });
            }
        }
        current = log.last().map_or(0, |e| e.version);
        if let Some(expected) = cmd.expected_version
            && expected != current
        {
            return Err(AppendError::Conflict {
                expected: Some(expected),
                current,
            });
        }
        let mut state: User =
            domain::replay(log.iter().map(|e| (e.event_type.as_str(), &e.event_data)))
                .map_err(|e| AppendError::CorruptLog(e.to_string()))?;
        for (index, event) in cmd.events.iter().enumerate() {
            state
                .step(&event.event_type, &event.event_data)
                .map_err(|source| AppendError::Domain { index, source })?;
        }
        let events = build_events(cmd, current, &metadata);
        check_sizes(&events)?;
        match store.write_events(&events).await {
            Ok(()) => {
                return Ok(AppendOutcome {
                    aggregate_id: cmd.aggregate_id.clone(),
                    events,
                    deduplicated: false,
                });
            }
            // Lost the race: the next iteration reloads, returns the original result if it was our own
            // command, reports the conflict if a version was expected, or retries on top of the winner.
            Err(StoreError::Conflict) => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppendError::Conflict {
        expected: cmd.expected_version,
        current,
    })
}

fn build_events(cmd: &AppendCommand, current: u64, metadata: &Metadata) -> Vec<StoredEvent> {
    let timestamp = domain::now_timestamp();
    let mut metadata = metadata.clone();
    if metadata.causation_id.is_none() {
        metadata.causation_id = cmd.command_id.clone();
    }
    cmd.events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent {
            aggregate_id: cmd.aggregate_id.clone(),
            version: current + 1 + i as u64,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: e.event_type.clone(),
            event_data: e.event_data.clone(),
            timestamp: timestamp.clone(),
            command_id: cmd.command_id.clone(),
            metadata: metadata.clone(),
        })
        .collect()
}

fn check_sizes(events: &[StoredEvent]) -> Result<(), AppendError> {
    let mut total = 0usize;
    for (i, e) in events.iter().enumerate() {
        let size = event_item_size(e);
        if size > MAX_ITEM_BYTES {
            return Err(AppendError::TooLarge(format!(
                "event {i} is {size} bytes as a DynamoDB item; the limit is {MAX_ITEM_BYTES} bytes (400 KB); store large payloads elsewhere and reference them"
            )));
        }
        total = total.saturating_add(size);
    }
    if total > MAX_BATCH_BYTES {
        return Err(AppendError::TooLarge(format!(
            "the batch is {total} bytes; one append may write at most {MAX_BATCH_BYTES} bytes (4 MB); split the batch"
        )));
    }
    Ok(())
}

/// Exponential backoff with jitter (from the random bits of a UUIDv7), capped at ~64 ms.
async fn backoff(attempt: u32) {
    let cap_ms = 2u64 << attempt.min(5);
    let jitter = (uuid::Uuid::now_v7().as_u128() as u64) % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}
