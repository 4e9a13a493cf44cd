//! The storage interface the append logic, the handlers and the projector are written against, with two
//! implementations: DynamoDB (`dynamo`) and in-memory (`memory`, for fast and property tests).
//!
//! The interface is deliberately low level (conditional writes, ranged reads); the guarantees
//! (concurrency, idempotency, rules) live once in `append` and `projector` so both stores share them.

use std::future::Future;

use base64::Engine as _;
use domain::StoredEvent;
use domain::api::WrittenEvent;
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
    /// DynamoDB refused the request for capacity (ProvisionedThroughputExceeded, ThrottlingException,
    /// RequestLimitExceeded, a transaction cancelled for throttling) after the SDK's retries.
    ///
    /// ### Handling
    /// HTTP 503 `unavailable` with `Retry-After`; nothing was written (a throttled request is refused whole).
    #[error("throttled: {0}")]
    Throttled(String),
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
    /// The aggregate type (absent on read models written before types were recorded: those are users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// The last applied event version.
    pub version: u64,
    pub state: Value,
    pub updated_at: String,
}

/// The aggregate's head item (sort key `version` 0, below every event): the current version and the state
/// folded from every event up to it. It makes an append one bounded read and one conditional write whatever
/// the history (Equinox's "Tip"). It has no `event_type`/`timestamp`, so it is not in the GSI, and the stream
/// mapping's filter keeps it away from the projector.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub version: u64,
    /// The aggregate type (absent on heads written before types were recorded).
    pub aggregate_type: Option<String>,
    /// The aggregate's `State::state()` after `version`.
    pub state: Value,
}

/// A command record: what an append with a `commandId` wrote, kept for the idempotency window (sort key
/// `version` = minus a 112-bit hash of the command id, below the head; sparse like the head).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub command_id: String,
    /// SHA-256 of the request's aggregate and events (`append::request_hash`): a reuse with other events
    /// is refused.
    pub request_hash: String,
    pub events: Vec<WrittenEvent>,
    /// Epoch seconds after which DynamoDB's TTL may delete the record (the table's TTL attribute).
    pub expires_at: i64,
}

/// One append: the new events, the new head and, with a `commandId`, the command record, written in one
/// transaction conditional on the head still being at `previous_head` (absent when `None`) and on no event
/// or command record existing at the new keys.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendWrite {
    pub aggregate_id: String,
    pub events: Vec<StoredEvent>,
    pub head: Head,
    pub previous_head: Option<u64>,
    pub command: Option<CommandRecord>,
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

/// One aggregate's row in one version of one view: an item of the views table.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewItem {
    pub view: String,
    /// The view's version this row was computed by (old and new versions live side by side while one is
    /// rebuilt).
    pub view_version: u32,
    pub aggregate_id: String,
    pub aggregate_type: String,
    /// The aggregate version the row reflects: a row is only ever replaced by one at an equal or later
    /// version, so a rebuild and the projector can write concurrently in any order.
    pub aggregate_version: u64,
    /// The key it is listed under; `None` keeps the row out of every listing (the aggregate left the view).
    pub key: Option<String>,
    pub row: Value,
    pub updated_at: String,
}

/// `GET /views/{view}/{key}`: one page of the rows listed under `key` in one version of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewQuery {
    pub view: String,
    pub view_version: u32,
    pub key: String,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// The events table + projections table (+ views table) operations.
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

    /// The head of an aggregate and, when `command_id` is given, its command record: one consistent read of
    /// at most two items (GetItem, or BatchGetItem with the command record).
    fn read_head(
        &self,
        aggregate_id: &str,
        command_id: Option<&str>,
    ) -> impl Future<Output = Result<(Option<Head>, Option<CommandRecord>), StoreError>> + Send;

    /// Writes an append in one TransactWriteItems (see [`AppendWrite`]). `Conflict` when a condition fails.
    fn append(&self, write: &AppendWrite) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes events alone (no head, no command record), each conditional on its key not existing yet: the
    /// log as the previous design wrote it. Only tests and tools use it (to plant legacy or poison logs).
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

    /// Writes a read model, conditional on the stored one being exactly `previous` (its version and
    /// `updated_at`), or absent when `None`. `Conflict` otherwise. Comparing `updated_at` too lets a repair
    /// that rewrites a read model at the same version (`replay --force`) make a concurrent writer lose.
    fn put_read_model(
        &self,
        model: &ReadModel,
        previous: Option<&ReadModel>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes a view row unless the stored one reflects a later aggregate version. Returns whether it was
    /// written (`false`: a newer row is there, which is not an error).
    fn put_view_row(
        &self,
        item: &ViewItem,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The version of `view` that reads are served from: `None` until a version has caught up.
    fn view_live_version(
        &self,
        view: &str,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// Makes `version` the version reads are served from, conditional on the live version still being
    /// `previous` (`Conflict` otherwise).
    fn set_view_live_version(
        &self,
        view: &str,
        version: u32,
        previous: Option<u32>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of a view's rows under one key, ordered by aggregate id, and the next cursor.
    fn query_view(
        &self,
        query: &ViewQuery,
    ) -> impl Future<Output = Result<(Vec<ViewItem>, Option<String>), StoreError>> + Send;
}

/// Where a view page stopped: the last row's aggregate id, bound to the view, version and key it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewCursor {
    view: String,
    version: u32,
    key: String,
    after: String,
}

/// Encodes a view cursor: continue after `after` (an aggregate id). Opaque to clients.
pub fn encode_view_cursor(query: &ViewQuery, after: &str) -> String {
    let cursor = ViewCursor {
        view: query.view.clone(),
        version: query.view_version,
        key: query.key.clone(),
        after: after.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&cursor).expect("a cursor serializes"))
}

/// Decodes a view cursor into the aggregate id to continue after. A cursor of another view, key, or of a
/// version that is no longer live (the view switched between two pages) is refused: start again.
pub fn decode_view_cursor(cursor: &str, query: &ViewQuery) -> Result<String, StoreError> {
    let foreign = || {
        StoreError::InvalidCursor(
            "not a cursor returned by this API for this view and key; start without `cursor`"
                .into(),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| foreign())?;
    let c: ViewCursor = serde_json::from_slice(&bytes).map_err(|_| foreign())?;
    if c.view != query.view || c.key != query.key {
        return Err(foreign());
    }
    if c.version != query.view_version {
        return Err(StoreError::InvalidCursor(format!(
            "the view was rebuilt (version {} is live now, the cursor is from version {}); start without `cursor`",
            query.view_version, c.version
        )));
    }
    Ok(c.after)
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

/// A `GET /events` cursor: the key to continue after and the bounds of the query that produced it, so a
/// cursor replayed with other bounds is refused (400) instead of reaching DynamoDB as an invalid start key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    key: CursorKey,
    from: Option<String>,
    to: Option<String>,
}

/// Encodes a cursor for `query`: base64url of the key and the query's bounds as JSON. Opaque to clients.
pub fn encode_cursor(key: &CursorKey, query: &TypeQuery) -> String {
    let cursor = Cursor {
        key: key.clone(),
        from: query.from.clone(),
        to: query.to.clone(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&cursor).expect("a cursor serializes"))
}

/// Decodes a cursor and checks that it belongs to `query` (same type and bounds) and that its key lies
/// inside those bounds.
pub fn decode_cursor(cursor: &str, query: &TypeQuery) -> Result<CursorKey, StoreError> {
    let foreign = || {
        StoreError::InvalidCursor(
            "not a cursor returned by this API; start without `cursor`".into(),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| foreign())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| foreign())?;
    if c.key.event_type != query.event_type {
        return Err(StoreError::InvalidCursor(format!(
            "the cursor belongs to event type `{}`, not `{}`",
            c.key.event_type, query.event_type
        )));
    }
    if c.from != query.from || c.to != query.to {
        return Err(StoreError::InvalidCursor(
            "the cursor belongs to a query with other `from`/`to` bounds; repeat the bounds it was returned with, or start without `cursor`".into(),
        ));
    }
    let normalized = domain::event::normalize_timestamp(&c.key.timestamp).ok();
    let inside = normalized.as_deref() == Some(c.key.timestamp.as_str())
        && c.from.as_ref().is_none_or(|f| &c.key.timestamp >= f)
        && c.to.as_ref().is_none_or(|t| &c.key.timestamp <= t)
        && domain::validate::validate_id("aggregateId", &c.key.aggregate_id).is_ok();
    if !inside {
        return Err(foreign());
    }
    Ok(c.key)
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
            timestamp: "2026-01-02T00:00:00.000Z".into(),
        };
        let query = |t: &str, from: Option<&str>| TypeQuery {
            event_type: t.into(),
            from: from.map(str::to_string),
            to: None,
            limit: 10,
            cursor: None,
        };
        let c = encode_cursor(&key, &query("t", None));
        assert_eq!(decode_cursor(&c, &query("t", None)).unwrap(), key);
        assert!(decode_cursor(&c, &query("u", None)).is_err());
        assert!(decode_cursor(&c, &query("t", Some("2026-01-01T00:00:00.000Z"))).is_err());
        assert!(decode_cursor("!!!", &query("t", None)).is_err());
    }
}
