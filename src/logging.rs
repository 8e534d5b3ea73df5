//! Log set-up shared by every subcommand: the filter, the line format, and whether lines carry
//! colour.
//!
//! The format is a global option of `avpd` (`--log-format`), so `main` records it with
//! [`set_format`] before a subcommand starts; the subcommand then calls [`init`] with its own
//! filter.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event; coloured only on a terminal without NO_COLOR.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields.
    Json,
}

/// The format chosen on the command line; [`LogFormat::Text`] until [`set_format`] is called.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Records the format [`init`] will use; only the first call counts.
pub fn set_format(format: LogFormat) {
    // A second call could only repeat the command line's choice: ignoring it is correct.
    let _ = FORMAT.set(format);
}

/// Installs the log subscriber: `filter`, else RUST_LOG, else `info`; output on stderr in the
/// format given to [`set_format`].
pub fn init(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}

/// True when text lines should carry colour: stderr is a terminal and NO_COLOR is unset or
/// empty (<https://no-color.org>).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR is unset");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
