//! The domain of the event-sourced API: the `Aggregate` trait, the example `User` aggregate (the seed
//! article's user), the stored event envelope, input validation and the HTTP API's request/response types.
//!
//! It exists as its own crate so that the business rules can be tested and benchmarked without any AWS
//! dependency, and so that `cargo xtask smoke` can use the API types as a typed client.
//!
//! **Invariant:** no AWS SDK or Lambda runtime dependency here.

pub mod aggregate;
pub mod api;
pub mod event;
pub mod user;
pub mod validate;

pub use aggregate::{Aggregate, DomainError, replay};
pub use event::{Metadata, StoredEvent, now_timestamp};
pub use user::{User, UserEvent};
