//! The projector function: DynamoDB stream batches of the events table -> read models, reporting
//! `batchItemFailures` for the records it could not apply.
//!
//! `main` only sets up logging, builds the DynamoDB client once (endpoint, region and credentials from the
//! standard AWS variables, so the same binary runs on AWS and on the local engine) and runs the handler.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use service::{Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    service::telemetry::init_json_logs();
    let config = Config::from_env(true)?;
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let store = Arc::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config)
            .with_views_table(Config::views_table_from_env()),
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let store = Arc::clone(&store);
        async move { Ok::<_, Error>(service::projector::handle(store.as_ref(), event.payload).await) }
    }))
    .await
}
