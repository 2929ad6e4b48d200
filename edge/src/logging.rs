//! Logging setup shared by both binaries: a filter checked at start (`cli::log_filter`), lines on
//! stderr, JSON by default (one object per line, as CloudWatch Logs reads it).

use clap::ValueEnum;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for CloudWatch Logs.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Whether lines carry their own time. Lambda stamps every line it receives, so the sweeper's would
/// only repeat it; the sidecar's go through the container's log driver, which may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    Written,
    LeftToTheCollector,
}

/// Installs the global subscriber. `filter` was checked by [`crate::cli::log_filter`] when the
/// configuration was parsed; the fallback to `info` is never taken.
pub fn init(filter: &str, format: LogFormat, timestamps: Timestamps) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match (format, timestamps) {
        (LogFormat::Json, Timestamps::Written) => {
            builder.json().flatten_event(true).with_current_span(false).init()
        }
        (LogFormat::Json, Timestamps::LeftToTheCollector) => {
            builder.json().flatten_event(true).with_current_span(false).without_time().init()
        }
        (LogFormat::Text, Timestamps::Written) => builder.init(),
        (LogFormat::Text, Timestamps::LeftToTheCollector) => builder.without_time().init(),
    }
}
