//! The embedded default: everything needed to run the stack on one machine without an AWS account.
//!
//! The local AWS endpoint ([`endpoint`]) holds the stack's resources; the function host ([`host`]), the HTTP
//! gateway ([`gateway`]) and the stream poller ([`poller`]) stand in for Lambda, API Gateway and the event
//! source mapping, which the endpoint cannot run. [`engine`] starts the three together, [`deployed`] reads
//! what was deployed so the engine serves exactly that, and [`daemon`] runs the engine in the background.

pub mod bench;
pub mod daemon;
pub mod deployed;
pub mod endpoint;
pub mod engine;
pub mod gateway;
pub mod host;
pub mod poller;
pub mod startup;
pub mod state;

pub use engine::{Engine, EngineConfig, EngineError, EngineHandle, StreamSettings};
