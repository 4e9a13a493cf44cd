//! Logging set-up shared by the three binaries: JSON lines (CloudWatch and the local function host both
//! parse them), filtered by `RUST_LOG` (default `info`), without ANSI colours.

/// Installs the JSON tracing subscriber. Call once at the start of `main`.
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_current_span(false)
        .with_target(false)
        .init();
}
