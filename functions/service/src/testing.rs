//! Helpers for tests (here, in `tests/`, and in the local engine): create the two tables with the same key
//! schema as the CloudFormation template, and build API Gateway requests and stream events by hand.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use domain::StoredEvent;
use lambda_http::{Body, Request};

use crate::dynamo::EVENT_TYPE_INDEX;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates the events table (`aggregate_id` S HASH, `version` N RANGE, GSI `EventTypeTimestampIndex` on
/// `event_type` + `timestamp` projecting ALL, stream NEW_IMAGE), the projections table (`aggregate_id` S
/// HASH) and the views table (see [`views_table`]), all on demand, and waits until they are active.
pub async fn create_tables(
    client: &Client,
    events: &str,
    projections: &str,
) -> Result<(), BoxError> {
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
    };
    client
        .create_table()
        .table_name(events)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("aggregate_id", ScalarAttributeType::S)?)
        .attribute_definitions(attr("version", ScalarAttributeType::N)?)
        .attribute_definitions(attr("event_type", ScalarAttributeType::S)?)
        .attribute_definitions(attr("timestamp", ScalarAttributeType::S)?)
        .key_schema(key("aggregate_id", KeyType::Hash)?)
        .key_schema(key("version", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(EVENT_TYPE_INDEX)
                .key_schema(key("event_type", KeyType::Hash)?)
                .key_schema(key("timestamp", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()?,
        )
        .send()
        .await?;
    client
        .create_table()
        .table_name(projections)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("aggregate_id", ScalarAttributeType::S)?)
        .key_schema(key("aggregate_id", KeyType::Hash)?)
        .send()
        .await?;
    let views = views_table(projections);
    client
        .create_table()
        .table_name(&views)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("id", ScalarAttributeType::S)?)
        .attribute_definitions(attr("view_key", ScalarAttributeType::S)?)
        .attribute_definitions(attr("aggregate_id", ScalarAttributeType::S)?)
        .key_schema(key("id", KeyType::Hash)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(crate::dynamo::VIEW_KEY_INDEX)
                .key_schema(key("view_key", KeyType::Hash)?)
                .key_schema(key("aggregate_id", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await?;
    for table in [events, projections, views.as_str()] {
        client
            .wait_until_table_exists()
            .table_name(table)
            .wait(std::time::Duration::from_secs(60))
            .await?;
    }
    Ok(())
}

/// The views table [`create_tables`] creates beside `projections` (as the plan names them: `<x>-views`
/// beside `<x>-projections`).
pub fn views_table(projections: &str) -> String {
    let stem = projections
        .strip_suffix("-projections")
        .unwrap_or(projections);
    format!("{stem}-views")
}

/// The store over tables made by [`create_tables`], views table included.
pub fn store(client: Client, config: crate::Config) -> crate::DynamoStore {
    let views = views_table(&config.projections_table);
    crate::DynamoStore::new(client, config).with_views_table(Some(views))
}

/// Builds an API Gateway request as `lambda_http` would hand it to a handler (without path parameters,
/// which the handlers do not need). `path` may carry a query string.
pub fn request(method: &str, path: &str, body: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .expect("a valid request")
}

/// A stream record (INSERT, NEW_IMAGE) for an event, with the given sequence number.
pub fn stream_record(sequence_number: &str, event: &StoredEvent) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_id = format!("record-{sequence_number}");
    record.event_name = "INSERT".into();
    record.aws_region = "us-east-1".into();
    record.change.new_image = serde_dynamo::to_item(event).expect("an event encodes");
    #[derive(serde::Serialize)]
    struct Key<'a> {
        aggregate_id: &'a str,
        version: u64,
    }
    record.change.keys = serde_dynamo::to_item(Key {
        aggregate_id: &event.aggregate_id,
        version: event.version,
    })
    .expect("a key encodes");
    record.change.sequence_number = Some(sequence_number.to_string());
    record
}

/// A stream event of records.
pub fn stream_event(records: Vec<EventRecord>) -> Event {
    let mut event = Event::default();
    event.records = records;
    event
}

/// Counts the DynamoDB requests a client sends (every HTTP attempt, retries included) and the capacity
/// they cost, per operation. Install it with `aws_sdk_dynamodb::config::Builder::interceptor`; the tests that
/// bound an append's requests and `cargo xtask bench store` read it.
///
/// Capacity comes two ways. `reported_units` sums what DynamoDB answers to `ReturnConsumedCapacity: TOTAL`
/// (the store asks on every request): real on AWS, but moto reports constants (0.5 per read, nothing for a
/// transaction). `read_units`/`write_units` are modelled from the items' sizes with DynamoDB's documented
/// on-demand rules, so the figures mean something on the local endpoint: a strongly consistent read costs
/// 1 RCU per started 4 KB per item (GetItem, BatchGetItem; at least 1 per key asked, found or not), a
/// Query 1 RCU per started 4 KB of everything it returned; a transactional write 2 WCU per started 1 KB of
/// each item, a plain write 1 WCU per started 1 KB; an item with `event_type` is also written to the GSI
/// (1 WCU per started 1 KB).
#[derive(Debug, Clone, Default)]
pub struct DynamoMeter {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Usage>>>,
}

/// Requests and capacity of one operation (or of all, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub requests: u64,
    /// What DynamoDB reported (`ConsumedCapacity`); see [`DynamoMeter`] for moto's.
    pub reported_units: f64,
    /// Modelled read capacity units.
    pub read_units: f64,
    /// Modelled write capacity units.
    pub write_units: f64,
}

impl Usage {
    fn plus(self, u: Usage) -> Usage {
        Usage {
            requests: self.requests + u.requests,
            reported_units: self.reported_units + u.reported_units,
            read_units: self.read_units + u.read_units,
            write_units: self.write_units + u.write_units,
        }
    }
}

impl DynamoMeter {
    /// Usage per operation name (`GetItem`, `TransactWriteItems`, ...) since the last `reset`.
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, Usage> {
        self.counts.lock().unwrap().clone()
    }

    /// Usage of every operation together since the last `reset`.
    pub fn total(&self) -> Usage {
        self.by_operation()
            .values()
            .fold(Usage::default(), |a, u| a.plus(*u))
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    fn add(&self, operation: &str, usage: Usage) {
        let mut counts = self.counts.lock().unwrap();
        let entry = counts.entry(operation.to_string()).or_default();
        *entry = entry.plus(usage);
    }
}

/// The keys a BatchGetItem asked for, carried from its input to its output (each key costs at least 1 RCU).
#[derive(Debug, Clone)]
struct KeysAsked(usize);

impl aws_smithy_types::config_bag::Storable for KeysAsked {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

fn read_units(item: &Item) -> f64 {
    crate::size::item_size(item).div_ceil(4096).max(1) as f64
}

fn write_units(item: &Item, transactional: bool) -> f64 {
    let kb = crate::size::item_size(item).div_ceil(1024).max(1) as f64;
    let table = if transactional { 2.0 * kb } else { kb };
    let index = if item.contains_key("event_type") && item.contains_key("timestamp") {
        kb
    } else {
        0.0
    };
    table + index
}

impl aws_sdk_dynamodb::config::Intercept for DynamoMeter {
    fn name(&self) -> &'static str {
        "DynamoMeter"
    }

    fn read_before_serialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemInput, put_item::PutItemInput,
            transact_write_items::TransactWriteItemsInput,
        };
        let input = context.input();
        if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
            let keys = i
                .request_items()
                .map_or(0, |r| r.values().map(|k| k.keys().len()).sum());
            cfg.interceptor_state().store_put(KeysAsked(keys));
        } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            let units = i
                .transact_items()
                .iter()
                .filter_map(|t| t.put())
                .map(|p| write_units(p.item(), true))
                .sum();
            self.add(
                "TransactWriteItems",
                Usage {
                    write_units: units,
                    ..Usage::default()
                },
            );
        } else if let Some(i) = input.downcast_ref::<PutItemInput>()
            && let Some(item) = i.item()
        {
            self.add(
                "PutItem",
                Usage {
                    write_units: write_units(item, false),
                    ..Usage::default()
                },
            );
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or(target);
        self.add(
            operation,
            Usage {
                requests: 1,
                ..Usage::default()
            },
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, put_item::PutItemOutput,
            query::QueryOutput, scan::ScanOutput, transact_write_items::TransactWriteItemsOutput,
        };
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let units =
            |c: Option<&ConsumedCapacity>| c.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let sum = |cs: &[ConsumedCapacity]| cs.iter().map(|c| units(Some(c))).sum::<f64>();
        let (operation, reported_units, read) =
            if let Some(o) = output.downcast_ref::<GetItemOutput>() {
                (
                    "GetItem",
                    units(o.consumed_capacity()),
                    o.item().map_or(1.0, read_units),
                )
            } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
                let found: Vec<&Item> = o
                    .responses()
                    .into_iter()
                    .flat_map(|r| r.values().flatten())
                    .collect();
                let asked = cfg.load::<KeysAsked>().map_or(found.len(), |k| k.0);
                let read = found.iter().map(|i| read_units(i)).sum::<f64>()
                    + asked.saturating_sub(found.len()) as f64;
                ("BatchGetItem", sum(o.consumed_capacity()), read)
            } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
                ("TransactWriteItems", sum(o.consumed_capacity()), 0.0)
            } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
                let bytes: usize = o.items().iter().map(crate::size::item_size).sum();
                (
                    "Query",
                    units(o.consumed_capacity()),
                    bytes.div_ceil(4096).max(1) as f64,
                )
            } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
                ("PutItem", units(o.consumed_capacity()), 0.0)
            } else if let Some(o) = output.downcast_ref::<ScanOutput>() {
                let bytes: usize = o.items().iter().map(crate::size::item_size).sum();
                (
                    "Scan",
                    units(o.consumed_capacity()),
                    bytes.div_ceil(4096).max(1) as f64,
                )
            } else {
                return Ok(());
            };
        self.add(
            operation,
            Usage {
                reported_units,
                read_units: read,
                ..Usage::default()
            },
        );
        Ok(())
    }
}
