//! The DynamoDB `EventStore`: the events table (`aggregate_id` + `version`, GSI `EventTypeTimestampIndex`)
//! and the projections table (`aggregate_id`). Items are mapped with `serde_dynamo`.
//!
//! The events table holds three kinds of items under an aggregate's partition key, told apart by the sort
//! key `version`: events at 1, 2, 3 ...; the head at 0; command records at negative versions (minus a hash
//! of the command id). Every reader of events asks for `version > after` with `after >= 0`, so it never sees
//! the other two; they carry no `event_type`/`timestamp`, so the GSI never indexes them; and the stream
//! mapping's filter (`event_type` exists, INSERT only) keeps them, and TTL deletions, from the projector.
//! Every request asks for `ReturnConsumedCapacity: TOTAL` so that `cargo xtask bench store` can sum it.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem,
};
use domain::StoredEvent;
use domain::api::WrittenEvent;
use sha2::Digest as _;

use crate::size::item_size;
use crate::store::{
    AppendWrite, CommandRecord, CursorKey, EventStore, Head, ReadModel, StoreError, TypeQuery,
    ViewItem, ViewQuery, decode_cursor, decode_view_cursor, encode_cursor, encode_view_cursor,
};

/// A read that returns events stops asking for more DynamoDB pages once it holds this many item bytes,
/// so that one API page stays far below Lambda's 6 MB response limit (the handler trims it exactly).
pub const READ_BYTES_CAP: usize = 5 * 1024 * 1024;

/// The sort key of an aggregate's head item.
pub const HEAD_SORT_KEY: &str = "0";

/// The sort key of a command record: minus (1 + the first 112 bits of SHA-256 of the command id), so it is
/// negative (never an event, never the head) and fits DynamoDB's 38-digit numbers.
pub fn command_sort_key(command_id: &str) -> String {
    let digest = sha2::Sha256::digest(command_id.as_bytes());
    let n = digest[..14]
        .iter()
        .fold(0u128, |n, b| (n << 8) | u128::from(*b));
    format!("-{}", n + 1)
}

/// The GSI on `event_type` + `timestamp` (name kept from the seed article).
pub const EVENT_TYPE_INDEX: &str = "EventTypeTimestampIndex";

/// The views table's GSI: `view_key` (`<view>#<version>#<key>`) + `aggregate_id`. Sparse: a row whose
/// aggregate is not in the view has no `view_key`.
pub const VIEW_KEY_INDEX: &str = "ViewKeyIndex";

/// The views table's key of one row: `<view>#<version>#<aggregate id>`.
pub fn view_row_id(view: &str, version: u32, aggregate_id: &str) -> String {
    format!("{view}#{version}#{aggregate_id}")
}

/// The views table's key of a view's live-version pointer: `<view>#live` (never a row's: a row's second
/// part is a number).
pub fn view_pointer_id(view: &str) -> String {
    format!("{view}#live")
}

type Item = HashMap<String, AttributeValue>;

/// Table names, from `EVENTS_TABLE` and `PROJECTIONS_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    /// Empty for the command function, which never touches read models.
    pub projections_table: String,
}

impl Config {
    /// Reads the table names from the environment. `EVENTS_TABLE` is required; `PROJECTIONS_TABLE` only when
    /// `needs_projections`.
    pub fn from_env(needs_projections: bool) -> Result<Config, String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let events_table = get("EVENTS_TABLE")
            .ok_or("EVENTS_TABLE is not set; set it to the events table's name")?;
        let projections_table = match get("PROJECTIONS_TABLE") {
            Some(t) => t,
            None if needs_projections => {
                return Err(
                    "PROJECTIONS_TABLE is not set; set it to the projections table's name".into(),
                );
            }
            None => String::new(),
        };
        Ok(Config {
            events_table,
            projections_table,
        })
    }

    /// The views table's name from `VIEWS_TABLE`; the plan sets it exactly when the domain declares views.
    pub fn views_table_from_env() -> Option<String> {
        std::env::var("VIEWS_TABLE").ok().filter(|v| !v.is_empty())
    }
}

/// The DynamoDB-backed store: what the binaries build once at start-up.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub config: Config,
    /// The views table (`VIEWS_TABLE`), when the domain declares views.
    pub views_table: Option<String>,
}

/// The dependencies of the handlers in production: the DynamoDB store.
pub type Deps = DynamoStore;

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        DynamoStore {
            client,
            config,
            views_table: None,
        }
    }

    /// The same store with the views table (the functions pass [`Config::views_table_from_env`]).
    pub fn with_views_table(mut self, views_table: Option<String>) -> Self {
        self.views_table = views_table.filter(|t| !t.is_empty());
        self
    }

    fn views(&self) -> Result<&str, StoreError> {
        self.views_table.as_deref().ok_or_else(|| {
            StoreError::Backend(
                "VIEWS_TABLE is not set, but the domain declares views; deploy again so the functions get it"
                    .into(),
            )
        })
    }

    fn projections(&self) -> Result<&str, StoreError> {
        if self.config.projections_table.is_empty() {
            return Err(StoreError::Backend("PROJECTIONS_TABLE is not set".into()));
        }
        Ok(&self.config.projections_table)
    }
}

fn backend<E: std::error::Error>(what: &str, e: E) -> StoreError {
    StoreError::Backend(format!("{what}: {}", DisplayErrorContext(e)))
}

/// Error codes DynamoDB answers when it refuses for capacity; the caller should come back later.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Maps an SDK failure to `Throttled` (capacity, 503) or `Backend` (500).
fn failed<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if e.code().is_some_and(|c| THROTTLING_CODES.contains(&c)) {
        StoreError::Throttled(format!("{what}: {}", DisplayErrorContext(e)))
    } else {
        backend(what, e)
    }
}

/// How many BatchGetItem rounds a read makes before it reports the keys DynamoDB keeps leaving unprocessed as
/// throttling (503 with `Retry-After`: the client comes back later, as for the SDK's own throttling errors).
pub const UNPROCESSED_ROUNDS: u32 = 5;

/// The pause before retry `round` (1-based) of BatchGetItem's unprocessed keys: a ceiling doubling from 25 ms
/// (at most 400 ms), of which half is waited and half is a fresh random fraction ("equal jitter"), so readers
/// refused together do not come back together. At most 25 + 50 + 100 + 200 ms in total before giving up.
pub fn unprocessed_backoff(round: u32) -> std::time::Duration {
    let ceiling = (25u64 << (round.saturating_sub(1)).min(4)).min(400);
    // The jitter needs no quality: the low bits of a fresh v7 UUID are random, and plenty.
    let jitter = (uuid::Uuid::now_v7().as_u128() % 1000) as u64;
    std::time::Duration::from_millis(ceiling / 2 + ceiling * jitter / 2000)
}

fn key(aggregate_id: &str, sort_key: &str) -> Item {
    HashMap::from([
        (
            "aggregate_id".to_string(),
            AttributeValue::S(aggregate_id.to_string()),
        ),
        (
            "version".to_string(),
            AttributeValue::N(sort_key.to_string()),
        ),
    ])
}

fn head_item(aggregate_id: &str, head: &Head) -> Item {
    let mut item = key(aggregate_id, HEAD_SORT_KEY);
    item.insert(
        "head_version".into(),
        AttributeValue::N(head.version.to_string()),
    );
    item.insert("state".into(), AttributeValue::S(head.state.to_string()));
    if let Some(t) = &head.aggregate_type {
        item.insert("aggregate_type".into(), AttributeValue::S(t.clone()));
    }
    item
}

fn command_item(aggregate_id: &str, c: &CommandRecord) -> Item {
    let mut item = key(aggregate_id, &command_sort_key(&c.command_id));
    item.insert("command_id".into(), AttributeValue::S(c.command_id.clone()));
    item.insert(
        "request_hash".into(),
        AttributeValue::S(c.request_hash.clone()),
    );
    item.insert(
        "result".into(),
        AttributeValue::S(serde_json::to_string(&c.events).expect("written events serialize")),
    );
    item.insert(
        "expires_at".into(),
        AttributeValue::N(c.expires_at.to_string()),
    );
    item
}

/// The size DynamoDB accounts for an append's head and command record (the events are sized separately).
pub fn meta_items_size(write: &AppendWrite) -> (usize, usize) {
    let head = item_size(&head_item(&write.aggregate_id, &write.head));
    let command = write
        .command
        .as_ref()
        .map_or(0, |c| item_size(&command_item(&write.aggregate_id, c)));
    (head, command)
}

fn attr_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Backend(format!("a head or command item lacks `{name}`")))
}

fn attr_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            StoreError::Backend(format!("a head or command item lacks a numeric `{name}`"))
        })
}

fn parse_head(item: &Item) -> Result<Head, StoreError> {
    Ok(Head {
        version: attr_n(item, "head_version")?,
        state: serde_json::from_str(attr_s(item, "state")?)
            .map_err(|e| StoreError::Backend(format!("a head's state is not JSON: {e}")))?,
        aggregate_type: item
            .get("aggregate_type")
            .and_then(|v| v.as_s().ok())
            .cloned(),
    })
}

fn parse_command(item: &Item) -> Result<CommandRecord, StoreError> {
    let events: Vec<WrittenEvent> = serde_json::from_str(attr_s(item, "result")?)
        .map_err(|e| StoreError::Backend(format!("a command record's result is not JSON: {e}")))?;
    Ok(CommandRecord {
        command_id: attr_s(item, "command_id")?.to_string(),
        request_hash: attr_s(item, "request_hash")?.to_string(),
        events,
        expires_at: attr_n(item, "expires_at")?,
    })
}

fn to_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Backend(format!("encoding an item: {e}")))
}

fn parse_events(items: Vec<Item>) -> Result<Vec<StoredEvent>, StoreError> {
    items
        .into_iter()
        .map(|item| {
            serde_dynamo::from_item::<_, StoredEvent>(item.clone()).map_err(|e| {
                StoreError::Backend(format!(
                    "a stored item is not a valid event ({e}): {:?}",
                    item.get("aggregate_id")
                ))
            })
        })
        .collect()
}

/// A cancelled transaction: throttling wins over a lost race (the caller should come back later), a failed
/// condition or a concurrent transaction on the same item is a `Conflict` (reload and decide again).
fn transaction_failed<R: std::fmt::Debug>(
    what: &str,
    e: SdkError<TransactWriteItemsError, R>,
) -> StoreError {
    let reasons: Vec<String> = match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let has = |codes: &[&str]| reasons.iter().any(|r| codes.contains(&r.as_str()));
    if has(&[
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    ]) {
        StoreError::Throttled(format!("{what}: {}", DisplayErrorContext(e)))
    } else if has(&["ConditionalCheckFailed", "TransactionConflict"]) {
        StoreError::Conflict
    } else {
        failed(what, e)
    }
}

impl EventStore for DynamoStore {
    async fn read_events(
        &self,
        aggregate_id: &str,
        after: u64,
        limit: Option<usize>,
        consistent: bool,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        let mut bytes = 0usize;
        let mut cut_by_bytes = false;
        loop {
            // Ask for one more than needed so that "is there more" is exact.
            let page_limit = limit.map(|l| (l + 1 - events.len()).min(i32::MAX as usize) as i32);
            let out = self
                .client
                .query()
                .table_name(&self.config.events_table)
                .key_condition_expression("aggregate_id = :a AND #v > :after")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":a", AttributeValue::S(aggregate_id.to_string()))
                .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
                .consistent_read(consistent)
                .scan_index_forward(true)
                .set_limit(page_limit)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| failed("querying the events of an aggregate", e))?;
            let items = out.items.unwrap_or_default();
            bytes += items.iter().map(item_size).sum::<usize>();
            events.extend(parse_events(items)?);
            // A 1 MB page ends with a LastEvaluatedKey; keep going until there is none (the seed stopped
            // after the first page and silently lost events). A limited read (an API page) also stops
            // once it holds enough bytes for one response.
            match out.last_evaluated_key {
                Some(_) if limit.is_some() && bytes >= READ_BYTES_CAP => {
                    cut_by_bytes = true;
                    break;
                }
                Some(k) if limit.is_none_or(|l| events.len() <= l) => start = Some(k),
                _ => break,
            }
        }
        let more = cut_by_bytes || limit.is_some_and(|l| events.len() > l);
        if let Some(l) = limit {
            events.truncate(l);
        }
        Ok((events, more))
    }

    async fn read_head(
        &self,
        aggregate_id: &str,
        command_id: Option<&str>,
    ) -> Result<(Option<Head>, Option<CommandRecord>), StoreError> {
        let table = &self.config.events_table;
        let Some(command_id) = command_id else {
            let out = self
                .client
                .get_item()
                .table_name(table)
                .set_key(Some(key(aggregate_id, HEAD_SORT_KEY)))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| failed("reading the head of an aggregate", e))?;
            return Ok((out.item.as_ref().map(parse_head).transpose()?, None));
        };
        let command_key = command_sort_key(command_id);
        let mut keys = Some(
            KeysAndAttributes::builder()
                .keys(key(aggregate_id, HEAD_SORT_KEY))
                .keys(key(aggregate_id, &command_key))
                .consistent_read(true)
                .build()
                .map_err(|e| backend("building a batch read", e))?,
        );
        let (mut head, mut record) = (None, None);
        // BatchGetItem may leave keys unprocessed under load (it answers 200 with `UnprocessedKeys` instead of
        // a throttling error, so the SDK's retries never see it); ask again for those only, backing off as
        // DynamoDB's documentation asks, and give up as throttled after a bounded number of rounds.
        let mut round = 0;
        while let Some(request) = keys.take() {
            if round > 0 {
                if round >= UNPROCESSED_ROUNDS {
                    return Err(StoreError::Throttled(format!(
                        "reading the head and command record of an aggregate: DynamoDB left keys unprocessed {round} times in a row"
                    )));
                }
                tokio::time::sleep(unprocessed_backoff(round)).await;
            }
            round += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| failed("reading the head and command record of an aggregate", e))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(table)
                .unwrap_or_default()
            {
                match item.get("version").and_then(|v| v.as_n().ok()) {
                    Some(v) if v == HEAD_SORT_KEY => head = Some(parse_head(&item)?),
                    Some(v) if *v == command_key => {
                        let r = parse_command(&item)?;
                        // A 112-bit hash collision would be another command: treat it as absent.
                        if r.command_id == command_id {
                            record = Some(r);
                        }
                    }
                    _ => {}
                }
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys().is_empty());
        }
        Ok((head, record))
    }

    async fn append(&self, write: &AppendWrite) -> Result<(), StoreError> {
        let table = &self.config.events_table;
        let put = |item: Item, condition: &str| {
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(condition)
        };
        let head = match write.previous_head {
            None => put(
                head_item(&write.aggregate_id, &write.head),
                "attribute_not_exists(aggregate_id)",
            ),
            Some(v) => put(
                head_item(&write.aggregate_id, &write.head),
                "head_version = :expected",
            )
            .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .put(
                    head.build()
                        .map_err(|e| backend("building a transaction", e))?,
                )
                .build(),
        ];
        for event in &write.events {
            let p = put(to_item(event)?, "attribute_not_exists(aggregate_id)")
                .build()
                .map_err(|e| backend("building a transaction", e))?;
            items.push(TransactWriteItem::builder().put(p).build());
        }
        if let Some(c) = &write.command {
            let p = put(
                command_item(&write.aggregate_id, c),
                "attribute_not_exists(aggregate_id)",
            )
            .build()
            .map_err(|e| backend("building a transaction", e))?;
            items.push(TransactWriteItem::builder().put(p).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|e| transaction_failed("appending events", e))
    }

    async fn write_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        // The condition makes the version a lock: the first writer of (aggregate_id, version) wins.
        const CONDITION: &str = "attribute_not_exists(aggregate_id)";
        if let [event] = events {
            let result = self
                .client
                .put_item()
                .table_name(&self.config.events_table)
                .set_item(Some(to_item(event)?))
                .condition_expression(CONDITION)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict)
                }
                Err(e) => Err(failed("writing an event", e)),
            };
        }
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            let put = Put::builder()
                .table_name(&self.config.events_table)
                .set_item(Some(to_item(event)?))
                .condition_expression(CONDITION)
                .build()
                .map_err(|e| backend("building a transaction", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|e| transaction_failed("writing a batch of events", e))
    }

    async fn events_by_type(
        &self,
        q: &TypeQuery,
    ) -> Result<(Vec<StoredEvent>, Option<String>), StoreError> {
        let mut start = match &q.cursor {
            Some(c) => Some(to_item(&decode_cursor(c, q)?)?),
            None => None,
        };
        let mut condition = "event_type = :t".to_string();
        match (&q.from, &q.to) {
            (Some(_), Some(_)) => condition.push_str(" AND #ts BETWEEN :from AND :to"),
            (Some(_), None) => condition.push_str(" AND #ts >= :from"),
            (None, Some(_)) => condition.push_str(" AND #ts <= :to"),
            (None, None) => {}
        }
        let mut events = Vec::new();
        let mut next = None;
        let mut bytes = 0usize;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.config.events_table)
                .index_name(EVENT_TYPE_INDEX)
                .key_condition_expression(&condition)
                .expression_attribute_values(":t", AttributeValue::S(q.event_type.clone()))
                .scan_index_forward(true)
                .limit((q.limit - events.len()) as i32)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if q.from.is_some() || q.to.is_some() {
                query = query.expression_attribute_names("#ts", "timestamp");
            }
            if let Some(f) = &q.from {
                query = query.expression_attribute_values(":from", AttributeValue::S(f.clone()));
            }
            if let Some(t) = &q.to {
                query = query.expression_attribute_values(":to", AttributeValue::S(t.clone()));
            }
            let out = query
                .send()
                .await
                .map_err(|e| failed("querying events by type", e))?;
            let items = out.items.unwrap_or_default();
            bytes += items.iter().map(item_size).sum::<usize>();
            events.extend(parse_events(items)?);
            match out.last_evaluated_key {
                None => break,
                Some(k) if events.len() >= q.limit || bytes >= READ_BYTES_CAP => {
                    let key: CursorKey = serde_dynamo::from_item(k)
                        .map_err(|e| StoreError::Backend(format!("unexpected index key: {e}")))?;
                    next = Some(encode_cursor(&key, q));
                    break;
                }
                Some(k) => start = Some(k),
            }
        }
        Ok((events, next))
    }

    async fn get_read_model(&self, aggregate_id: &str) -> Result<Option<ReadModel>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.projections()?)
            .key("aggregate_id", AttributeValue::S(aggregate_id.to_string()))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| failed("reading a read model", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Backend(format!("a read model does not parse: {e}")))
            })
            .transpose()
    }

    async fn put_read_model(
        &self,
        model: &ReadModel,
        previous: Option<&ReadModel>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(self.projections()?)
            .set_item(Some(to_item(model)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        put = match previous {
            None => put.condition_expression("attribute_not_exists(aggregate_id)"),
            Some(m) => put
                .condition_expression("#v = :prev AND updated_at = :prev_at")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":prev", AttributeValue::N(m.version.to_string()))
                .expression_attribute_values(":prev_at", AttributeValue::S(m.updated_at.clone())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(failed("writing a read model", e)),
        }
    }

    async fn put_view_row(&self, item: &ViewItem) -> Result<bool, StoreError> {
        let mut attrs = Item::from([
            (
                "id".to_string(),
                AttributeValue::S(view_row_id(
                    &item.view,
                    item.view_version,
                    &item.aggregate_id,
                )),
            ),
            ("view".into(), AttributeValue::S(item.view.clone())),
            (
                "view_version".into(),
                AttributeValue::N(item.view_version.to_string()),
            ),
            (
                "aggregate_id".into(),
                AttributeValue::S(item.aggregate_id.clone()),
            ),
            (
                "aggregate_type".into(),
                AttributeValue::S(item.aggregate_type.clone()),
            ),
            (
                "aggregate_version".into(),
                AttributeValue::N(item.aggregate_version.to_string()),
            ),
            (
                "row".into(),
                serde_dynamo::to_attribute_value(&item.row)
                    .map_err(|e| StoreError::Backend(format!("encoding a view row: {e}")))?,
            ),
            (
                "updated_at".into(),
                AttributeValue::S(item.updated_at.clone()),
            ),
        ]);
        if let Some(key) = &item.key {
            attrs.insert("key".into(), AttributeValue::S(key.clone()));
            attrs.insert(
                "view_key".into(),
                AttributeValue::S(view_row_id(&item.view, item.view_version, key)),
            );
        }
        let put = self
            .client
            .put_item()
            .table_name(self.views()?)
            .set_item(Some(attrs))
            .condition_expression("attribute_not_exists(id) OR aggregate_version <= :v")
            .expression_attribute_values(
                ":v",
                AttributeValue::N(item.aggregate_version.to_string()),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failed("writing a view row", e)),
        }
    }

    async fn view_live_version(&self, view: &str) -> Result<Option<u32>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.views()?)
            .key("id", AttributeValue::S(view_pointer_id(view)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| failed("reading a view's live version", e))?;
        out.item
            .map(|item| attr_n::<u32>(&item, "live_version"))
            .transpose()
    }

    async fn set_view_live_version(
        &self,
        view: &str,
        version: u32,
        previous: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(self.views()?)
            .item("id", AttributeValue::S(view_pointer_id(view)))
            .item("view", AttributeValue::S(view.to_string()))
            .item("live_version", AttributeValue::N(version.to_string()))
            .item("updated_at", AttributeValue::S(domain::now_timestamp()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        put = match previous {
            None => put.condition_expression("attribute_not_exists(id)"),
            Some(p) => put
                .condition_expression("live_version = :p")
                .expression_attribute_values(":p", AttributeValue::N(p.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(failed("switching a view's live version", e)),
        }
    }

    async fn query_view(
        &self,
        query: &ViewQuery,
    ) -> Result<(Vec<ViewItem>, Option<String>), StoreError> {
        let after = query
            .cursor
            .as_deref()
            .map(|c| decode_view_cursor(c, query))
            .transpose()?;
        let view_key = view_row_id(&query.view, query.view_version, &query.key);
        let start = after.map(|a| {
            Item::from([
                (
                    "id".to_string(),
                    AttributeValue::S(view_row_id(&query.view, query.view_version, &a)),
                ),
                ("view_key".into(), AttributeValue::S(view_key.clone())),
                ("aggregate_id".into(), AttributeValue::S(a)),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(self.views()?)
            .index_name(VIEW_KEY_INDEX)
            .key_condition_expression("view_key = :k")
            .expression_attribute_values(":k", AttributeValue::S(view_key))
            .limit(i32::try_from(query.limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| failed("reading a view", e))?;
        let mut rows = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| parse_view_row(&item))
            .collect::<Result<Vec<_>, _>>()?;
        // One more than the page was asked for, so `next` is only given when a row follows.
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last()
                .map(|r| encode_view_cursor(query, &r.aggregate_id))
        } else {
            None
        };
        Ok((rows, next))
    }
}

fn parse_view_row(item: &Item) -> Result<ViewItem, StoreError> {
    let row = item
        .get("row")
        .cloned()
        .map(serde_dynamo::from_attribute_value::<_, serde_json::Value>)
        .transpose()
        .map_err(|e| StoreError::Backend(format!("a view row does not parse: {e}")))?
        .unwrap_or(serde_json::Value::Null);
    Ok(ViewItem {
        view: attr_s(item, "view")?.to_string(),
        view_version: attr_n(item, "view_version")?,
        aggregate_id: attr_s(item, "aggregate_id")?.to_string(),
        aggregate_type: attr_s(item, "aggregate_type")?.to_string(),
        aggregate_version: attr_n(item, "aggregate_version")?,
        key: item.get("key").and_then(|v| v.as_s().ok()).cloned(),
        row,
        updated_at: attr_s(item, "updated_at")?.to_string(),
    })
}
