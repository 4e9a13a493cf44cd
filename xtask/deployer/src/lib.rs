//! The AWS layer of the pipeline: everything that turns a validated [`stack::Plan`] and the function crates
//! into a deployed stack, and back.
//!
//! - [`build`]: one cargo (or cargo-lambda) invocation, reproducible zips ([`package`]), the ELF glibc-floor
//!   check ([`elf`]) and the release manifest ([`manifest`]).
//! - [`cargo`]: every cargo the tool starts, with the environment a user's shell would give it.
//! - [`pyvenv`]: the pinned Python tools (moto, cargo-lambda, the tests' linters), one install procedure.
//! - [`aws`]: SDK clients from the standard chain, role assumption, account check, retry configuration.
//! - [`artifacts`]: the artifact bucket the tool owns and content-addressed uploads.
//! - [`deploy`]: no-op detection, change sets, the deploy preview and its data-loss guard ([`preview`]),
//!   execution with live progress ([`stackops`], [`ui`]).
//! - [`permissions`]: every AWS operation the tool makes, its IAM action and target (checked against the deploy role).
//! - [`teardown`], [`status`], [`api`] (reading the HTTP API back), [`replay`], [`logs`] (CloudWatch Logs),
//!   [`drift`] (CloudFormation drift detection).
//!
//! **Architecture Invariant:** this crate (with `local-engine`) is the only one that does AWS I/O. It prints
//! nothing itself: every line for people goes through a [`ui::Ui`], so the CLI decides about terminals and
//! tests can record what would have been printed.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod api;
pub mod artifacts;
pub mod aws;
pub mod build;
pub mod cargo;
pub mod deploy;
pub mod domain_guard;
pub mod drift;
pub mod elf;
pub mod error;
pub mod hotswap;
pub mod logs;
pub mod manifest;
pub mod package;
pub mod permissions;
pub mod preview;
pub mod promote;
pub mod pyvenv;
pub mod replay;
pub mod rollback;
pub mod stackops;
pub mod status;
pub mod teardown;
pub mod template;
pub mod ui;
pub mod views;

pub use error::{Error, Result};
