//! What can stop a load run, a sweep, a comparison or a plot.

use avp_endpoint::Endpoint;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the loadgen could not do what it was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The target's host could not be resolved.
    Resolve {
        /// The target.
        target: Endpoint,
        /// What the resolver said.
        source: io::Error,
    },
    /// A load thread could not start, or its event loop failed.
    Worker(io::Error),
    /// A load thread panicked.
    WorkerPanicked,
    /// A setting is out of its range; the text says which and why.
    Config(String),
    /// A file could not be read or written.
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file is not a report this version reads; the text says why.
    Report {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An output file cannot be what it was asked to be; the text says why.
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plot could not be drawn.
    Plot {
        /// The plot file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The embedded node could not start.
    #[cfg(feature = "embedded")]
    Node(avpd_node::StartError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { target, source } => write!(f, "cannot resolve {target}: {source}"),
            Error::Worker(e) => write!(f, "a load thread failed: {e}"),
            Error::WorkerPanicked => f.write_str("a load thread panicked"),
            Error::Config(text) => f.write_str(text),
            Error::File { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Report { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Output { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Plot { path, reason } => write!(f, "cannot draw {}: {reason}", path.display()),
            #[cfg(feature = "embedded")]
            Error::Node(e) => write!(f, "the embedded node did not start: {e}"),
        }
    }
}

/// No `source`: every message already ends with its cause's own text, which a source would
/// repeat in chains printed whole (`{:#}`).
impl std::error::Error for Error {}
