//! The command function: `POST /events` and `POST /aggregates/{aggregateId}/events` behind API Gateway v2.
//!
//! `main` only sets up logging, builds the DynamoDB client once (endpoint, region and credentials from the
//! standard AWS variables, so the same binary runs on AWS and on the local engine) and runs the handler.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

use std::sync::Arc;

use aws_config::BehaviorVersion;
use lambda_http::{Error, Request, service_fn};
use service::{Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    service::telemetry::init_json_logs();
    let config = Config::from_env(false)?;
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config,
    ));
    lambda_http::run(service_fn(move |request: Request| {
        let store = Arc::clone(&store);
        async move { Ok::<_, Error>(service::http::handle_command(store.as_ref(), request).await) }
    }))
    .await
}
