//! The projector: DynamoDB stream records of the events table -> read models in the projections table.
//!
//! Delivery is at-least-once, possibly duplicated and reordered (Lambda retries whole batches from the
//! lowest failed sequence number; the local poller redelivers too). The effect is still exactly-once:
//! - the read model carries the last applied `version`; events at or below it are duplicates, acknowledged
//!   and skipped;
//! - an event more than one version ahead means a gap: the missing events are read from the events table
//!   (consistent read) and applied in order first;
//! - all of one aggregate's records in a batch are folded in memory and written once, conditional on the
//!   read model still being at the version we started from (the batch-sized form of "conditional on
//!   `version - 1`"); if another invocation won that race we reload and redo that aggregate;
//! - an event that cannot be applied (unknown type, item that does not parse) fails its
//!   record and every later record of the same aggregate in the batch (they must not be applied past it);
//!   progress before it is still written, and other aggregates are unaffected. Failed records are returned
//!   in `batchItemFailures` so that only they are retried, and end in the dead-letter queue eventually.
//! - the aggregate's rows in the domain's views are written before its read model (see `views`);
//! - stored events are facts: they are folded without the rules (`Aggregate::fold`), so tightening a rule
//!   never sends an old event to the dead-letter queue; only an event that cannot be read fails;
//! - the stream mapping's filter delivers only inserted events; the head and command records of the append
//!   (sort key `version` <= 0, no `event_type`) are skipped here too, for a consumer without the filter.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use domain::registry::{Kind, State};
use domain::{StoredEvent, registry};
use futures::future::join_all;

use crate::store::{EventStore, ReadModel, StoreError};

/// How often one aggregate is redone after losing the conditional read-model write.
const MAX_ATTEMPTS: usize = 5;

/// One stream record, parsed as far as possible.
#[derive(Debug)]
struct Record {
    /// The record's `dynamodb.SequenceNumber` (its batch item identifier).
    id: String,
    event: Result<StoredEvent, String>,
}

/// Handles one batch of stream records and reports the ones that must be retried.
pub async fn handle<S: EventStore>(store: &S, event: Event) -> DynamoDbEventResponse {
    // Group by aggregate, keeping stream order within each aggregate.
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Record>> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    for record in event.records {
        if record.event_name != "INSERT" || !is_event(&record) {
            // The log is append-only; MODIFY/REMOVE (head updates, manual repairs, TTL) and the head and
            // command records carry nothing to project.
            continue;
        }
        let (aggregate_id, parsed) = parse_record(&record);
        let id = record
            .change
            .sequence_number
            .clone()
            .unwrap_or_else(|| record.event_id.clone());
        match aggregate_id {
            Some(aggregate_id) => {
                if !groups.contains_key(&aggregate_id) {
                    order.push(aggregate_id.clone());
                }
                groups
                    .entry(aggregate_id)
                    .or_default()
                    .push(Record { id, event: parsed });
            }
            None => {
                tracing::error!(record = %id, error = ?parsed.err(), "stream record without an aggregate id");
                failures.push(id);
            }
        }
    }
    let results = join_all(order.iter().map(|aggregate_id| {
        let records = groups.remove(aggregate_id).unwrap_or_default();
        async move { project_aggregate(store, aggregate_id, records).await }
    }))
    .await;
    failures.extend(results.into_iter().flatten());

    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(id);
            f
        })
        .collect();
    response
}

/// Whether a record's key is an event's (version >= 1) rather than a head (0) or command record (< 0).
fn is_event(record: &EventRecord) -> bool {
    #[derive(serde::Deserialize)]
    struct Key {
        version: serde_json::Number,
    }
    match serde_dynamo::from_item::<_, Key>(record.change.keys.clone()) {
        Ok(k) => k.version.as_u64().is_some_and(|v| v >= 1),
        // A record without a readable key is reported as a failure by the parsing below.
        Err(_) => true,
    }
}

fn parse_record(record: &EventRecord) -> (Option<String>, Result<StoredEvent, String>) {
    let parsed = serde_dynamo::from_item::<_, StoredEvent>(record.change.new_image.clone())
        .map_err(|e| format!("the new image is not an event: {e}"));
    let aggregate_id = match &parsed {
        Ok(e) => Some(e.aggregate_id.clone()),
        Err(_) => {
            #[derive(serde::Deserialize)]
            struct Key {
                aggregate_id: String,
            }
            serde_dynamo::from_item::<_, Key>(record.change.keys.clone())
                .or_else(|_| serde_dynamo::from_item::<_, Key>(record.change.new_image.clone()))
                .ok()
                .map(|k| k.aggregate_id)
        }
    };
    (aggregate_id, parsed)
}

/// Projects one aggregate's records; returns the ids of the records that failed.
async fn project_aggregate<S: EventStore>(
    store: &S,
    aggregate_id: &str,
    records: Vec<Record>,
) -> Vec<String> {
    let all_ids = || records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    for _ in 0..MAX_ATTEMPTS {
        let model = match store.get_read_model(aggregate_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(aggregate_id, error = %e, "reading the read model failed");
                return all_ids();
            }
        };
        let start_version = model.as_ref().map_or(0, |m| m.version);
        let kind = match kind_of(model.as_ref(), &records) {
            Ok(kind) => kind,
            Err(e) => {
                tracing::error!(aggregate_id, error = %e, "the aggregate's type is unknown");
                return all_ids();
            }
        };
        let mut state = match model.as_ref().map(|m| kind.restore(&m.state)).transpose() {
            Ok(s) => s.unwrap_or_else(|| kind.initial()),
            Err(e) => {
                tracing::error!(aggregate_id, error = %e, "the stored read model does not parse");
                return all_ids();
            }
        };
        let mut version = start_version;
        let mut failed_from = None;
        for (i, record) in records.iter().enumerate() {
            match apply_record(store, aggregate_id, &mut state, &mut version, record).await {
                Ok(()) => {}
                Err(reason) => {
                    tracing::error!(aggregate_id, record = %record.id, %reason, "event cannot be applied");
                    failed_from = Some(i);
                    break;
                }
            }
        }
        let failed: Vec<String> = match failed_from {
            Some(i) => records[i..].iter().map(|r| r.id.clone()).collect(),
            None => Vec::new(),
        };
        if version == start_version {
            return failed;
        }
        // The views first: if writing them fails, the read model has not moved, so the retried records are
        // folded again and the rows written then (a row never moves back: see `views::write_rows`).
        if let Err(e) =
            crate::views::write_rows(store, aggregate_id, state.as_ref(), version, None).await
        {
            tracing::error!(aggregate_id, error = %e, "writing the view rows failed");
            return all_ids();
        }
        let updated = ReadModel {
            aggregate_id: aggregate_id.to_string(),
            aggregate_type: Some(kind.name().to_string()),
            version,
            state: state.state(),
            updated_at: domain::now_timestamp(),
        };
        match store.put_read_model(&updated, model.as_ref()).await {
            Ok(()) => return failed,
            // Another invocation moved the read model on; redo this aggregate from its new version.
            Err(StoreError::Conflict) => continue,
            Err(e) => {
                tracing::error!(aggregate_id, error = %e, "writing the read model failed");
                return all_ids();
            }
        }
    }
    all_ids()
}

/// The aggregate type of one aggregate's records: the read model's, else the first parsable event's
/// (recorded on it, or named by its event type for events stored before types were recorded).
fn kind_of(model: Option<&ReadModel>, records: &[Record]) -> Result<&'static dyn Kind, String> {
    let registry = registry();
    let recorded = model.and_then(|m| m.aggregate_type.clone()).or_else(|| {
        records.iter().find_map(|r| {
            let e = r.event.as_ref().ok()?;
            e.aggregate_type.clone().or_else(|| {
                registry
                    .kind_of_event(&e.event_type)
                    .map(|k| k.name().to_string())
            })
        })
    });
    match recorded {
        Some(name) => registry
            .kind(&name)
            .ok_or_else(|| format!("aggregate type `{name}` is not registered")),
        // A read model written before types were recorded, with no parsable record: a user.
        None => registry
            .kinds()
            .next()
            .ok_or_else(|| "no aggregate type is registered".to_string()),
    }
}

/// Applies one record on top of `state` at `version`: skip duplicates, fill gaps from the log.
async fn apply_record<S: EventStore>(
    store: &S,
    aggregate_id: &str,
    state: &mut Box<dyn State>,
    version: &mut u64,
    record: &Record,
) -> Result<(), String> {
    let event = record.event.as_ref().map_err(Clone::clone)?;
    if event.version <= *version {
        return Ok(()); // duplicate or already covered by a gap fill
    }
    if event.version > *version + 1 {
        let missing = (event.version - *version - 1) as usize;
        let (events, _) = store
            .read_events(aggregate_id, *version, Some(missing), true)
            .await
            .map_err(|e| format!("filling the gap before version {}: {e}", event.version))?;
        for e in events {
            if e.version != *version + 1 {
                return Err(format!("the log has a hole at version {}", *version + 1));
            }
            state
                .fold(&e.event_type, e.schema_version(), &e.event_data)
                .map_err(|err| format!("version {}: {err}", e.version))?;
            *version = e.version;
        }
        if *version + 1 != event.version {
            return Err(format!(
                "versions {} to {} are missing from the log",
                *version + 1,
                event.version - 1
            ));
        }
    }
    state
        .fold(&event.event_type, event.schema_version(), &event.event_data)
        .map_err(|err| format!("version {}: {err}", event.version))?;
    *version = event.version;
    Ok(())
}
