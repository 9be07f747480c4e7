//! Logging to stderr, filtered by `RUST_LOG`.

/// Logs to stderr at `RUST_LOG`, else at `default_level`.
pub fn init_logging(default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
