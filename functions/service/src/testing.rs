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
/// `event_type` + `timestamp` projecting ALL, stream NEW_IMAGE) and the projections table (`aggregate_id` S
/// HASH), both on demand, and waits until they are active.
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
    for table in [events, projections] {
        client
            .wait_until_table_exists()
            .table_name(table)
            .wait(std::time::Duration::from_secs(60))
            .await?;
    }
    Ok(())
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
