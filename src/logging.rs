//! Log set-up shared by every subcommand: the filter, the line format, and whether lines carry
//! colour.
//!
//! The format is a global option of `avpd` (`--log-format`), so `main` records it with
//! [`set_format`] before a subcommand starts; the subcommand then calls [`init`] with its own
//! filter. Both can change later, in a configuration reload ([`prepare`]).

use anyhow::Context as _;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

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

/// The subscriber's stack: the filter over the registry, then the line format.
type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
/// A line format, boxed so that a reload can change it.
type Lines = Box<dyn Layer<Filtered> + Send + Sync>;

/// What [`Reload::apply`] changes in the installed subscriber.
struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    lines: reload::Handle<Lines, Filtered>,
}

/// Set by [`init`].
static HANDLES: OnceLock<Handles> = OnceLock::new();

/// Installs the log subscriber: `filter`, else RUST_LOG, else `info`; output on stderr in the
/// format given to [`set_format`]. Fails on a filter that does not parse.
pub fn init(filter: Option<&str>) -> anyhow::Result<()> {
    let (filter, filter_handle) = reload::Layer::new(env_filter(filter)?);
    let (lines, lines_handle) =
        reload::Layer::new(lines(FORMAT.get().copied().unwrap_or_default()));
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .init();
    // Only the first call installs a subscriber; later calls keep the first one's handles.
    let _ = HANDLES.set(Handles {
        filter: filter_handle,
        lines: lines_handle,
    });
    Ok(())
}

/// A filter and a format checked for a configuration reload, not applied yet.
pub struct Reload {
    filter: EnvFilter,
    format: LogFormat,
}

/// Checks `filter` and `format` for [`Reload::apply`]: an error leaves everything as it is.
pub fn prepare(filter: Option<&str>, format: LogFormat) -> anyhow::Result<Reload> {
    Ok(Reload {
        filter: env_filter(filter)?,
        format,
    })
}

impl Reload {
    /// Changes the running subscriber's filter and format.
    pub fn apply(self) -> anyhow::Result<()> {
        let handles = HANDLES.get().context("logging is not set up")?;
        handles
            .filter
            .reload(self.filter)
            .context("cannot change the log filter")?;
        handles
            .lines
            .reload(lines(self.format))
            .context("cannot change the log format")
    }
}

/// The filter `filter` (an error when it does not parse), else RUST_LOG's, else `info`.
fn env_filter(filter: Option<&str>) -> anyhow::Result<EnvFilter> {
    match filter {
        Some(f) => EnvFilter::try_new(f).with_context(|| format!("bad log filter {f:?}")),
        None => Ok(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))),
    }
}

/// The line format `format` on stderr.
fn lines(format: LogFormat) -> Lines {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_ansi(false).boxed(),
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
