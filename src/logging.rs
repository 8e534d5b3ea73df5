//! Log set-up shared by every subcommand.

/// Installs the log subscriber: `filter`, else RUST_LOG, else `info`; output on stderr.
pub fn init(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
