//! Appending events with the event store's guarantees: domain rules, optimistic concurrency, size limits,
//! durable idempotency by `commandId`, and no duplicate from an ambiguous write. The cost of an append does
//! not depend on the aggregate's history.
//!
//! ## Design: a head item per aggregate (Equinox DynamoStore's "Tip")
//! Next to its events (sort key `version` 1, 2, 3 ...) every aggregate has a *head* item at `version` 0
//! holding the current version and the state folded from every event. A single-event append makes two
//! DynamoDB requests whatever the history:
//! 1. one consistent read of at most two items: GetItem of the head, or BatchGetItem of the head and the
//!    command record when a `commandId` is given;
//! 2. one TransactWriteItems: the new head, conditional on the head version just read (or on no head);
//!    each event, conditional on its key not existing; and, with a `commandId`, the command record,
//!    conditional on not existing.
//!
//! Only the new events are judged by the rules (`Aggregate::step`); the head's state was folded from facts.
//! A batch is the same single transaction; with the head and the command record it may carry at most 98
//! events (TransactWriteItems takes 100 items). Losing the race (a failed condition or a concurrent
//! transaction) reloads the head and decides again, up to [`MAX_ATTEMPTS`] times; with `expectedVersion`
//! the reload answers 409 instead.
//!
//! ## Aggregate types
//! The command's events name its aggregate type (each event type belongs to one type in the registry).
//! Before any read, every event must be of one known type, of the type the request names if it names one,
//! and its data must match its event type's schema (400 naming the field). The head records the type;
//! an event of another type sent to an existing aggregate is refused (422 `wrong_aggregate_type`).
//!
//! ## Idempotency
//! An append with a `commandId` writes a command record (sort key: minus a hash of the command id) holding
//! a SHA-256 of the request and the written versions, event ids and timestamps, with a TTL attribute
//! `expires_at` [`IDEMPOTENCY_WINDOW_SECS`] (24 h) ahead. A retry finds it in step 1 and gets the original
//! result; a reuse with another body is an [`AppendError::IdempotencyConflict`]. Concurrent duplicates both
//! read no record; the transaction lets exactly one win, the loser reloads and finds the record. A record is
//! honoured as long as it exists: at least 24 h, until DynamoDB's TTL deletes it (typically within days).
//! A `commandId` is scoped to its aggregate.
//!
//! ## Ambiguous writes
//! Event ids and timestamps are fixed once per request, not per attempt. When a transaction fails on a
//! condition, it may have been our own earlier attempt (the write applied, the response was lost, the SDK
//! retried): the append reads the event at its first version (one bounded Query) and, if it carries our
//! event id, returns success with what it wrote. So a lost response never stores a request twice, with or
//! without `commandId`. When the SDK gives up with an error the outcome is unknown and reported as such
//! (500/503); a client that retries must send a `commandId` to make the retry safe.
//!
//! ## Tables written before the head existed
//! An aggregate without a head is first assumed new (version 0): the condition on event 1 not existing
//! makes that safe. If the write fails, or a rule or `expectedVersion` refuses the command, the append
//! reads the aggregate's log once, folds it, honours a `commandId` found on its events, and the next
//! successful append writes the head: a one-time migration per aggregate, lazily.

use std::time::Duration;

use domain::api::{AppendCommand, WrittenEvent};
use domain::registry::{Kind, State};
use domain::validate::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_ITEM_BYTES};
use domain::{DomainError, Metadata, StoredEvent, registry};
use sha2::Digest as _;

use crate::dynamo::meta_items_size;
use crate::size::event_item_size;
use crate::store::{AppendWrite, CommandRecord, EventStore, Head, StoreError};

/// How often an append without `expectedVersion` reloads and retries after losing a race.
pub const MAX_ATTEMPTS: u32 = 64;

/// How long a command record is kept at least (its TTL): 24 hours.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 60 * 60;

/// Why an append was refused. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Over 98 events, an event over 400 KB, a batch over 4 MB, or a state over 400 KB.
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
    /// The `commandId` was already used on this aggregate with another request body.
    ///
    /// ### Handling
    /// HTTP 409 `idempotency_conflict`: use a new `commandId` for a new command.
    #[error(
        "`commandId` `{0}` was already used on this aggregate with a different request; use a new `commandId` for a new command"
    )]
    IdempotencyConflict(String),
    /// A domain rule refused an event.
    ///
    /// ### Handling
    /// HTTP 422 `rule_violation` or `unknown_event_type`.
    #[error("event {index}: {source}")]
    Domain { index: usize, source: DomainError },
    /// The stored head or log of this aggregate cannot be read (e.g. an event of an unknown type written
    /// around the API).
    ///
    /// ### Handling
    /// HTTP 500 `internal`: an operator must repair the log.
    #[error("the stored events of this aggregate cannot be folded: {0}")]
    CorruptLog(String),
    /// DynamoDB failed or throttled.
    ///
    /// ### Handling
    /// HTTP 503 `unavailable` for `StoreError::Throttled`, else 500 `internal`.
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
    pub events: Vec<WrittenEvent>,
    /// True when nothing was written because `commandId` had been applied before.
    pub deduplicated: bool,
}

/// The SHA-256 (hex) of what a command asks for: its aggregate and events. Stored in the command record so
/// that a `commandId` reused with other events is recognised. `expectedVersion` is left out on purpose: it
/// is a precondition of the first attempt, and a retry may carry it or not (the retry gets the original
/// result either way). `serde_json` maps are ordered, so equal requests hash equally whatever their key
/// order on the wire.
pub fn request_hash(cmd: &AppendCommand) -> String {
    let canonical = serde_json::json!({
        "aggregateId": cmd.aggregate_id,
        "events": cmd.events,
    });
    hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

/// Appends the command's events to its aggregate.
pub async fn append<S: EventStore>(
    store: &S,
    cmd: &AppendCommand,
    metadata: Metadata,
) -> Result<AppendOutcome, AppendError> {
    if cmd.events.len() > MAX_BATCH_EVENTS {
        return Err(AppendError::TooLarge(format!(
            "{} events in one append; the limit is {MAX_BATCH_EVENTS} (one DynamoDB transaction of 100 items, two of which are the aggregate's head and command record); split the batch",
            cmd.events.len()
        )));
    }
    // Fixed once per request, so that a reload after an ambiguous write recognises our own events.
    let fixed = Fixed::for_command(cmd, metadata);
    let kind = decide_kind(cmd)?;
    // Size check up front, before any read, with the largest version the batch could get.
    check_sizes(&build_events(cmd, kind, u64::MAX / 2, &fixed), 0)?;

    let mut current = 0;
    // Whether the log behind a missing head must be read (a table written before heads existed).
    let mut read_log = false;
    'attempts: for attempt in 0..MAX_ATTEMPTS {
        let (head, record) = store
            .read_head(&cmd.aggregate_id, cmd.command_id.as_deref())
            .await?;
        if let Some(record) = record {
            return deduplicated(cmd, &fixed, record);
        }
        let head_exists = head.is_some();
        let (version, state) = match head {
            Some(h) => {
                same_kind(h.aggregate_type.as_deref(), kind, &cmd.aggregate_id)?;
                (
                    h.version,
                    kind.restore(&h.state).map_err(AppendError::CorruptLog)?,
                )
            }
            None if read_log => match migrate(store, cmd).await? {
                Migrated::Folded(version, state) => {
                    if let Some(state) = &state {
                        same_kind(Some(state.kind()), kind, &cmd.aggregate_id)?;
                    }
                    (version, state.unwrap_or_else(|| kind.initial()))
                }
                Migrated::Applied(events) => {
                    return Ok(AppendOutcome {
                        aggregate_id: cmd.aggregate_id.clone(),
                        events,
                        deduplicated: true,
                    });
                }
            },
            None => (0, kind.initial()),
        };
        // Without a head and before reading the log, "version 0" is an assumption: check it before
        // refusing anything.
        let assumed = !head_exists && !read_log;
        current = version;
        if let Some(expected) = cmd.expected_version
            && expected != version
        {
            if assumed {
                read_log = true;
                continue;
            }
            return Err(AppendError::Conflict {
                expected: Some(expected),
                current: version,
            });
        }
        let mut next = state;
        for (index, event) in cmd.events.iter().enumerate() {
            if let Err(source) = next.decide(&event.event_type, &event.event_data) {
                if assumed && !matches!(source, DomainError::UnknownEventType { .. }) {
                    read_log = true;
                    continue 'attempts;
                }
                return Err(AppendError::Domain { index, source });
            }
        }
        let (write, written) = prepare_write(cmd, kind, version, head_exists, next, &fixed)?;
        match store.append(&write).await {
            Ok(()) => {
                return Ok(AppendOutcome {
                    aggregate_id: cmd.aggregate_id.clone(),
                    events: written,
                    deduplicated: false,
                });
            }
            Err(StoreError::Conflict) => {
                // Was it our own write, applied by an attempt whose response was lost?
                let (at, _) = store
                    .read_events(&cmd.aggregate_id, version, Some(1), true)
                    .await?;
                if at.first().is_some_and(|e| e.event_id == fixed.event_ids[0]) {
                    return Ok(AppendOutcome {
                        aggregate_id: cmd.aggregate_id.clone(),
                        events: written,
                        deduplicated: false,
                    });
                }
                // Someone else won: the next iteration reloads, returns the original result if it was
                // the same command, reports the conflict if a version was expected, or retries on top.
                if !head_exists {
                    read_log = true;
                }
                backoff(attempt).await
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppendError::Conflict {
        expected: cmd.expected_version,
        current,
    })
}

/// What is decided once per request.
struct Fixed {
    event_ids: Vec<String>,
    timestamp: String,
    metadata: Metadata,
    request_hash: String,
}

impl Fixed {
    /// Event ids, timestamp, metadata (the command id as causation when none is given) and request hash.
    fn for_command(cmd: &AppendCommand, mut metadata: Metadata) -> Self {
        if metadata.causation_id.is_none() {
            metadata.causation_id = cmd.command_id.clone();
        }
        Fixed {
            event_ids: (0..cmd.events.len())
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
            timestamp: domain::now_timestamp(),
            metadata,
            request_hash: request_hash(cmd),
        }
    }
}

/// The transaction of one attempt on top of `version`: the events, the new head with the state `next` the rules
/// decided, and the command record; refused when the head or an event would exceed DynamoDB's item size.
fn prepare_write(
    cmd: &AppendCommand,
    kind: &'static dyn Kind,
    version: u64,
    head_exists: bool,
    next: Box<dyn State>,
    fixed: &Fixed,
) -> Result<(AppendWrite, Vec<WrittenEvent>), AppendError> {
    let events = build_events(cmd, kind, version, fixed);
    let written = written(&events);
    let write = AppendWrite {
        aggregate_id: cmd.aggregate_id.clone(),
        head: Head {
            version: version + events.len() as u64,
            state: next.state(),
            aggregate_type: Some(kind.name().to_string()),
        },
        previous_head: head_exists.then_some(version),
        command: cmd.command_id.as_ref().map(|c| CommandRecord {
            command_id: c.clone(),
            request_hash: fixed.request_hash.clone(),
            events: written.clone(),
            expires_at: chrono::Utc::now().timestamp() + IDEMPOTENCY_WINDOW_SECS,
        }),
        events,
    };
    let (head_size, command_size) = meta_items_size(&write);
    if head_size > MAX_ITEM_BYTES {
        return Err(AppendError::TooLarge(format!(
            "after this append the aggregate's state would be {head_size} bytes as a DynamoDB item; the limit is {MAX_ITEM_BYTES} bytes (400 KB), as for its read model"
        )));
    }
    check_sizes(&write.events, head_size + command_size)?;
    Ok((write, written))
}

fn deduplicated(
    cmd: &AppendCommand,
    fixed: &Fixed,
    record: CommandRecord,
) -> Result<AppendOutcome, AppendError> {
    if record.request_hash != fixed.request_hash {
        return Err(AppendError::IdempotencyConflict(record.command_id));
    }
    Ok(AppendOutcome {
        aggregate_id: cmd.aggregate_id.clone(),
        events: record.events,
        deduplicated: true,
    })
}

/// The aggregate type of a command, decided before any read: its events must be of one known type (the one
/// the request names, if any), and each event's data must match its type's schema.
fn decide_kind(cmd: &AppendCommand) -> Result<&'static dyn Kind, AppendError> {
    let registry = registry();
    let kind = registry
        .kind_of_command(
            cmd.aggregate_type.as_deref(),
            cmd.events.iter().map(|e| e.event_type.as_str()),
        )
        .map_err(|(index, source)| AppendError::Domain { index, source })?;
    for (index, event) in cmd.events.iter().enumerate() {
        let field = if cmd.events.len() == 1 {
            "eventData".to_string()
        } else {
            format!("events[{index}].eventData")
        };
        registry
            .check_new(&field, &event.event_type, &event.event_data)
            .map_err(|source| AppendError::Domain { index, source })?;
    }
    Ok(kind)
}

/// Refuses events of one aggregate type sent to an aggregate of another. A head or log without a recorded
/// type was written before types were recorded and is taken as the command's type.
fn same_kind(stored: Option<&str>, kind: &dyn Kind, aggregate_id: &str) -> Result<(), AppendError> {
    match stored {
        Some(stored) if stored != kind.name() => Err(AppendError::Domain {
            index: 0,
            source: DomainError::WrongAggregateType(format!(
                "aggregate `{aggregate_id}` is a `{stored}`; these events belong to aggregate type `{}`",
                kind.name()
            )),
        }),
        _ => Ok(()),
    }
}

enum Migrated {
    /// The log folded: its last version and state (`None` for an empty log).
    Folded(u64, Option<Box<dyn State>>),
    /// The command was already in the log (written before command records existed).
    Applied(Vec<WrittenEvent>),
}

/// Reads and folds the whole log of an aggregate that has events but no head yet (once per aggregate).
async fn migrate<S: EventStore>(store: &S, cmd: &AppendCommand) -> Result<Migrated, AppendError> {
    let (log, _) = store.read_events(&cmd.aggregate_id, 0, None, true).await?;
    if let Some(command_id) = &cmd.command_id {
        let original: Vec<StoredEvent> = log
            .iter()
            .filter(|e| e.command_id.as_deref() == Some(command_id))
            .cloned()
            .collect();
        if !original.is_empty() {
            return Ok(Migrated::Applied(written(&original)));
        }
    }
    let state = registry()
        .replay(
            log.iter()
                .map(|e| (e.event_type.as_str(), e.schema_version(), &e.event_data)),
        )
        .map_err(|e| AppendError::CorruptLog(e.to_string()))?;
    Ok(Migrated::Folded(log.last().map_or(0, |e| e.version), state))
}

fn written(events: &[StoredEvent]) -> Vec<WrittenEvent> {
    events
        .iter()
        .map(|e| WrittenEvent {
            version: e.version,
            event_id: e.event_id.clone(),
            timestamp: e.timestamp.clone(),
        })
        .collect()
}

fn build_events(
    cmd: &AppendCommand,
    kind: &dyn Kind,
    current: u64,
    fixed: &Fixed,
) -> Vec<StoredEvent> {
    cmd.events
        .iter()
        .zip(&fixed.event_ids)
        .enumerate()
        .map(|(i, (e, id))| StoredEvent {
            aggregate_id: cmd.aggregate_id.clone(),
            version: current + 1 + i as u64,
            event_id: id.clone(),
            event_type: e.event_type.clone(),
            event_data: e.event_data.clone(),
            timestamp: fixed.timestamp.clone(),
            command_id: cmd.command_id.clone(),
            metadata: fixed.metadata.clone(),
            aggregate_type: Some(kind.name().to_string()),
            schema_version: Some(
                kind.events()
                    .iter()
                    .find(|s| s.event_type == e.event_type)
                    .map_or(1, |s| s.version),
            ),
        })
        .collect()
}

/// Checks every event against the item limit and the transaction (events + `extra` bytes of head and
/// command record) against the 4 MB transaction limit.
fn check_sizes(events: &[StoredEvent], extra: usize) -> Result<(), AppendError> {
    let mut total = extra;
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
            "the batch is {total} bytes with the aggregate's head; one append may write at most {MAX_BATCH_BYTES} bytes (4 MB); split the batch"
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
