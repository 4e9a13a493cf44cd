//! The storage interface the append logic, the handlers and the projector are written against, with two
//! implementations: DynamoDB (`dynamo`) and in-memory (`memory`, for fast and property tests).
//!
//! The interface is deliberately low level (conditional writes, ranged reads); the guarantees
//! (concurrency, idempotency, rules) live once in `append` and `projector` so both stores share them.

use std::future::Future;

use base64::Engine as _;
use domain::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the key already exists (events) or the read model moved on.
    ///
    /// ### Handling
    /// Reload and retry, or report a `version_conflict` (409) when the caller named a version.
    #[error("conditional write failed: the item changed concurrently")]
    Conflict,
    /// A pagination cursor that this API did not produce.
    ///
    /// ### Handling
    /// HTTP 400 `invalid_request`.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// DynamoDB (or the network) failed, or a stored item does not parse.
    ///
    /// ### Handling
    /// HTTP 500 `internal`; the projector reports the records as batch item failures so they are retried.
    #[error("storage error: {0}")]
    Backend(String),
}

/// A read model: the projections table's item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadModel {
    pub aggregate_id: String,
    /// The last applied event version.
    pub version: u64,
    pub state: Value,
    pub updated_at: String,
}

/// `GET /events?type=...`: one page of one event type in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeQuery {
    pub event_type: String,
    /// Inclusive bounds, already normalised to the stored timestamp format.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// The events table + projections table operations.
pub trait EventStore: Send + Sync {
    /// Events of one aggregate with `version > after`, in version order, at most `limit` (all when `None`),
    /// paging through every DynamoDB page. Returns the events and whether more exist after them.
    fn read_events(
        &self,
        aggregate_id: &str,
        after: u64,
        limit: Option<usize>,
        consistent: bool,
    ) -> impl Future<Output = Result<(Vec<StoredEvent>, bool), StoreError>> + Send;

    /// Writes new events atomically, each conditional on its key not existing yet: one conditional PutItem
    /// for one event, one TransactWriteItems for several. `Conflict` when any key exists.
    fn write_events(
        &self,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of events of one type from the `EventTypeTimestampIndex` GSI, and the next cursor.
    fn events_by_type(
        &self,
        query: &TypeQuery,
    ) -> impl Future<Output = Result<(Vec<StoredEvent>, Option<String>), StoreError>> + Send;

    /// The read model of one aggregate (consistent read).
    fn get_read_model(
        &self,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<ReadModel>, StoreError>> + Send;

    /// Writes a read model, conditional on the stored one being at `previous_version` (or absent when
    /// `None`). `Conflict` otherwise.
    fn put_read_model(
        &self,
        model: &ReadModel,
        previous_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The GSI key a `GET /events` cursor encodes (the LastEvaluatedKey of the index query).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorKey {
    pub aggregate_id: String,
    pub version: u64,
    pub event_type: String,
    pub timestamp: String,
}

/// Encodes a cursor: base64url of the LastEvaluatedKey as JSON. Opaque to clients.
pub fn encode_cursor(key: &CursorKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(key).expect("a cursor serializes"))
}

/// Decodes a cursor and checks that it belongs to the queried event type.
pub fn decode_cursor(cursor: &str, event_type: &str) -> Result<CursorKey, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| {
            StoreError::InvalidCursor(
                "not a cursor returned by this API; start without `cursor`".into(),
            )
        })?;
    let key: CursorKey = serde_json::from_slice(&bytes).map_err(|_| {
        StoreError::InvalidCursor(
            "not a cursor returned by this API; start without `cursor`".into(),
        )
    })?;
    if key.event_type != event_type {
        return Err(StoreError::InvalidCursor(format!(
            "the cursor belongs to event type `{}`, not `{event_type}`",
            key.event_type
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_type() {
        let key = CursorKey {
            aggregate_id: "a".into(),
            version: 3,
            event_type: "t".into(),
            timestamp: "x".into(),
        };
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor(&c, "t").unwrap(), key);
        assert!(decode_cursor(&c, "u").is_err());
        assert!(decode_cursor("!!!", "t").is_err());
    }
}
