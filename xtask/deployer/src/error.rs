//! The one error type of the deployer. Each variant says how the CLI handles it (which exit code), in the
//! spirit of cqrs-es `AggregateError`.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A safety guard refused to go on (data loss, no confirmation possible, protected data).
    /// ### Handling
    /// Print the message (it says which flag overrides the guard) and exit 3.
    #[error("{0}")]
    Refused(String),
    /// The input is wrong (config, template, arguments, a binary the target cannot run).
    /// ### Handling
    /// Print the message and exit 2.
    #[error("{0}")]
    InvalidInput(String),
    /// A stack operation ended in a failed state. The message starts with the root cause.
    /// ### Handling
    /// Print the message and exit 1.
    #[error("{0}")]
    StackFailed(String),
    /// An AWS API call failed (after the SDK's retries).
    /// ### Handling
    /// Print the message and exit 1; rerunning is safe, every step is idempotent.
    #[error("{context}: {message}")]
    Aws { context: String, message: String },
    /// No AWS credentials could be found for an `aws` environment. The message says where the chain looked
    /// and what to do, in two lines; the chain's own details are logged at debug level (`-v`).
    /// ### Handling
    /// Print the message and exit 1.
    #[error("{0}")]
    Credentials(String),
    /// A local command (cargo, cargo-lambda, git, pip) failed.
    /// ### Handling
    /// Print the message and exit 1; the command's own output was already shown.
    #[error("{0}")]
    Tool(String),
    /// Reading or writing a local file failed.
    /// ### Handling
    /// Print the message and exit 1.
    #[error("{context} ({path}): {source}")]
    Io {
        context: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an SDK error with what we were doing; the full chain (service code and message) is kept.
    pub fn aws<E: std::error::Error>(context: impl Into<String>) -> impl FnOnce(E) -> Error {
        let context = context.into();
        move |err| Error::Aws {
            context,
            message: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        }
    }

    pub fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        let path = path.into();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }
}
