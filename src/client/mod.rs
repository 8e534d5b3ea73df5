//! Client-side code shared by `avpd agent` and `avpd term`: a reconnecting [`Link`] to an
//! endpoint with exponential [`Backoff`], and the `--codec` option.
//!
//! This module owns connections and framing for the clients; what a message means is the
//! business of each program.

pub mod backoff;
pub mod link;

pub use backoff::Backoff;
pub use link::{Link, LinkEvent, LinkStatus, SendError, UnsupportedScheme};

use crate::proto::Codec;

/// The `--codec` option: forces a wire form whatever the endpoint's scheme says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// Binary AVP frames.
    Binary,
    /// The JSON text form.
    Json,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Codec {
        match c {
            CodecArg::Binary => Codec::Binary,
            CodecArg::Json => Codec::Json,
        }
    }
}
