//! Logging set-up shared by the three binaries: JSON lines (CloudWatch and the local function host both
//! parse them), filtered by `RUST_LOG` (default `info`), without ANSI colours.
//!
//! `RUST_LOG` is read as `target=level` directives (`info`, `warn,service=debug`), tracing-subscriber's
//! `Targets`, not as an `EnvFilter`: the deployed value is always a bare level (`functions.<f>.log_level` in
//! the config), and `EnvFilter`'s span and field-value matching would link a regex engine with its Unicode
//! tables into every function binary for nothing.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON tracing subscriber. Call once at the start of `main`.
pub fn init_json_logs() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_current_span(false)
        .with_target(false)
        .finish()
        .with(filter)
        .init();
}

/// The filter for a `RUST_LOG` value: its directives, or everything at `info` when it is unset, empty or
/// not understood.
pub fn log_filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_target_directives_filter_as_documented() {
        let info = log_filter(None);
        assert!(info.would_enable("service::append", &Level::INFO));
        assert!(!info.would_enable("service::append", &Level::DEBUG));

        let debug = log_filter(Some("debug"));
        assert!(debug.would_enable("aws_smithy_runtime", &Level::DEBUG));
        assert!(!debug.would_enable("aws_smithy_runtime", &Level::TRACE));

        let mixed = log_filter(Some("warn,service=debug"));
        assert!(mixed.would_enable("service::projector", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper_util", &Level::INFO));

        // Not understood: the default, as before.
        let bad = log_filter(Some("service=loud"));
        assert!(bad.would_enable("service", &Level::INFO));
        assert!(!bad.would_enable("service", &Level::DEBUG));
        assert!(log_filter(Some("")).would_enable("x", &Level::INFO));
    }
}
