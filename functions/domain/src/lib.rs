//! The domain of the event-sourced API: the framework a user declares aggregates with (the `Aggregate` and
//! `Event` traits, the `events!` macro, schemas derived from the event types, upcasters, views), the one
//! registry that the rest of the system reads the domain through, the stored event envelope, input
//! validation and the HTTP API's request/response types.
//!
//! The user's own aggregates live in [`aggregates`], one module each, registered in one place
//! ([`aggregates::register`]). It exists as its own crate so that the business rules can be tested without
//! any AWS dependency, and so that `cargo xtask smoke` can use the API types as a typed client.
//!
//! **Invariant:** no AWS SDK or Lambda runtime dependency here.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod aggregate;
pub mod aggregates;
pub mod api;
pub mod event;
pub mod registry;
pub mod schema;
pub mod testing;
pub mod validate;

pub use aggregate::{Aggregate, DomainError, Event, Events, Upcaster, View};
pub use event::{Metadata, StoredEvent, now_timestamp};
pub use registry::{Description, Kind, Registry, State, registry};
pub use schema::FreeForm;

// Used by the `events!` macro in the user's modules.
#[doc(hidden)]
pub use serde_json;
