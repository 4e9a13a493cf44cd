//! The DynamoDB `EventStore`: the events table (`aggregate_id` + `version`, GSI `EventTypeTimestampIndex`)
//! and the projections table (`aggregate_id`). Items are mapped with `serde_dynamo`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use domain::StoredEvent;

use crate::store::{
    CursorKey, EventStore, ReadModel, StoreError, TypeQuery, decode_cursor, encode_cursor,
};

/// The GSI on `event_type` + `timestamp` (name kept from the seed article).
pub const EVENT_TYPE_INDEX: &str = "EventTypeTimestampIndex";

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
}

/// The DynamoDB-backed store: what the binaries build once at start-up.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub config: Config,
}

/// The dependencies of the handlers in production: the DynamoDB store.
pub type Deps = DynamoStore;

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        DynamoStore { client, config }
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
                .send()
                .await
                .map_err(|e| backend("querying the events of an aggregate", e))?;
            events.extend(parse_events(out.items.unwrap_or_default())?);
            // A 1 MB page ends with a LastEvaluatedKey; keep going until there is none (the seed stopped
            // after the first page and silently lost events).
            match out.last_evaluated_key {
                Some(k) if limit.is_none_or(|l| events.len() <= l) => start = Some(k),
                _ => break,
            }
        }
        let more = limit.is_some_and(|l| events.len() > l);
        if let Some(l) = limit {
            events.truncate(l);
        }
        Ok((events, more))
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
                Err(e) => Err(backend("writing an event", e)),
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
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let lost_race = e.as_service_error().is_some_and(|s| {
                    match s {
                            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => c
                                .cancellation_reasons()
                                .iter()
                                .any(|r| matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict"))),
                            _ => false,
                        }
                });
                if lost_race {
                    Err(StoreError::Conflict)
                } else {
                    Err(backend("writing a batch of events", e))
                }
            }
        }
    }

    async fn events_by_type(
        &self,
        q: &TypeQuery,
    ) -> Result<(Vec<StoredEvent>, Option<String>), StoreError> {
        let mut start = match &q.cursor {
            Some(c) => Some(to_item(&decode_cursor(c, &q.event_type)?)?),
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
                .set_exclusive_start_key(start.take());
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
                .map_err(|e| backend("querying events by type", e))?;
            events.extend(parse_events(out.items.unwrap_or_default())?);
            match out.last_evaluated_key {
                None => break,
                Some(k) if events.len() >= q.limit => {
                    let key: CursorKey = serde_dynamo::from_item(k)
                        .map_err(|e| StoreError::Backend(format!("unexpected index key: {e}")))?;
                    next = Some(encode_cursor(&key));
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
            .send()
            .await
            .map_err(|e| backend("reading a read model", e))?;
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
        previous_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(self.projections()?)
            .set_item(Some(to_item(model)?));
        put = match previous_version {
            None => put.condition_expression("attribute_not_exists(aggregate_id)"),
            Some(v) => put
                .condition_expression("#v = :prev")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":prev", AttributeValue::N(v.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend("writing a read model", e)),
        }
    }
}
