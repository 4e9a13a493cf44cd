//! The typed stack pipeline: YAML config -> validated plan -> rendered CloudFormation -> checked template.
//!
//! **Architecture Invariant:** this crate does no AWS I/O and has no AWS SDK dependency; it is pure
//! data and pure functions, so every rule here is testable without an endpoint.

pub mod plan;

pub use plan::*;
