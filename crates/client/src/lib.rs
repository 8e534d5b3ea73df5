//! Client-side networking shared by `avpd agent` and `avpd term`: a reconnecting [`Link`]
//! with exponential [`Backoff`] that moves bytes over TCP or TLS, and the [`PeerLink`] that puts a
//! [`avp_proto::PeerSession`] on it.
//!
//! This crate owns connections; the protocol is the session's, and what the messages mean is
//! the business of each program.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod link;
pub mod peer_link;
mod stream;

pub use backoff::Backoff;
pub use link::{Link, LinkIo, LinkStatus, UnsupportedScheme, WriteError};
pub use peer_link::{ClientEvent, PeerLink, SendError};
pub use rustls::ClientConfig;
