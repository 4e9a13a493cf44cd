//! The embedded default: everything needed to run the stack on one machine without an AWS account.
//!
//! The local AWS endpoint ([`endpoint`]) holds the stack's resources; the function host ([`host`]), the HTTP
//! gateway ([`gateway`]) and the stream poller ([`poller`]) stand in for Lambda, API Gateway and the event
//! source mapping, which the endpoint cannot run. [`engine`] starts the three together, [`deployed`] reads
//! what was deployed so the engine serves exactly that, [`daemon`] runs the engine in the background,
//! [`control`] lets a hotswap reload the changed functions of a running engine, [`canary`] runs a local
//! traffic shift on it, and [`process`] is the one
//! place that starts, identifies and signals the processes the tool leaves running. [`inspector`] is the
//! read-only page over a running local environment (event log, read models vs replay, pipeline, functions).

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod canary;
pub mod control;
pub mod daemon;
pub mod deployed;
pub mod endpoint;
pub mod engine;
pub mod gateway;
pub mod host;
pub mod inspector;
pub mod lock;
pub mod poller;
pub mod process;
pub mod state;

pub use engine::{Engine, EngineConfig, EngineError, EngineHandle, StreamSettings};
