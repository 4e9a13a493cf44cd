//! The typed stack pipeline: YAML config -> validated plan -> rendered CloudFormation -> checked template.
//!
//! **Architecture Invariant:** this crate does no AWS I/O and has no AWS SDK dependency; it is pure
//! data and pure functions (besides reading `config/`), so every rule here is testable without an endpoint.

// Product code stays in named steps: a function over the threshold in clippy.toml is split (CI runs clippy).
#![warn(clippy::too_many_lines)]

pub mod arns;
pub mod config;
pub mod oidc;
pub mod placeholders;
pub mod plan;
pub mod render;
pub mod template;
pub mod validate;

use std::path::Path;

pub use arns::{Arns, function_arn};
pub use config::{ConfigError, ConfigProblem};
pub use plan::*;
pub use render::{RenderError, RenderedTemplate};
pub use validate::{ValidationErrors, Violation};

/// Any failure of [`load_checked`].
///
/// ### Handling
/// All three mean "invalid input" (exit code 2): nothing has touched AWS. `Config` is the user's to fix
/// (every problem names its file and key); `Render` and `Invalid` point at `templates/` or at a config
/// value the templates cannot express.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

/// Loads and validates `config_dir/<env>.yaml`, renders its template and checks it against the plan.
pub fn load_checked(config_dir: &Path, env: &str) -> Result<(Plan, RenderedTemplate), StackError> {
    let plan = config::load(config_dir, env)?;
    let template = render::render(&plan)?;
    validate::validate(&plan, &template)?;
    Ok((plan, template))
}
