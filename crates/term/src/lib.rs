//! The avpd admin terminal. Watches one or more management endpoints, full screen
//! ([`screen`]) or one line per row ([`plain`]), or sends one command to agents and exits
//! ([`oneshot`]). Every link runs in its own thread ([`links`]), reconnecting by itself.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod clock;
pub mod command;
pub mod filter;
pub mod fleet;
pub mod history;
pub mod links;
pub mod oneshot;
pub mod plain;
pub mod screen;
pub mod tally;
