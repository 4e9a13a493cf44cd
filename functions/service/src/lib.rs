//! The application half shared by the three function binaries: the event store (DynamoDB and in-memory),
//! the append logic with its guarantees, the HTTP router and handlers of the command and query functions,
//! and the projector.
//!
//! Handlers are plain async functions over an [`EventStore`], so tests call them directly with a constructed
//! request, against the in-memory store or against the local AWS endpoint.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod append;
pub mod dynamo;
pub mod http;
pub mod memory;
pub mod openapi;
pub mod projector;
pub mod routes;
pub mod size;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod views;

pub use dynamo::{Config, Deps, DynamoStore};
pub use memory::MemoryStore;
pub use store::{EventStore, ReadModel, StoreError, TypeQuery, ViewItem, ViewQuery};

// Re-exported so that tests and tools drive the handlers with exactly the versions the service uses.
pub use aws_lambda_events;
pub use aws_sdk_dynamodb;
pub use lambda_http;
pub use serde_dynamo;
