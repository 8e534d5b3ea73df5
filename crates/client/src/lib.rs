//! Client-side networking shared by `avpd agent` and `avpd term`: a reconnecting [`Link`] to
//! an endpoint with exponential [`Backoff`].
//!
//! This module owns connections and framing for the clients; what a message means is the
//! business of each program.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod link;

pub use backoff::Backoff;
pub use link::{Link, LinkEvent, LinkStatus, SendError, UnsupportedScheme};
