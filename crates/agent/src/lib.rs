//! The avpd agent: samples this host and reports to a collector.
//!
//! [`reporter`] is the logic, free of IO (sampling schedule, what to send, what the answers
//! mean); [`queue`] is the bounded buffer of unacknowledged reports; [`spool`] keeps it on
//! disk across restarts (`--spool`); [`sampler`] reads the host; [`run`] is the loop that puts
//! them on an [`avpd_client::PeerLink`].
//!
//! Log lines (stderr, `RUST_LOG`): `info` for start, connect, pause and the final totals,
//! `warn` for a lost link or a dropped report, `debug` for every report (`report seq=N cpu=C
//! mem=M ts=T`) and every acknowledgement (`acked seq=N`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod queue;
pub mod reporter;
pub mod run;
pub mod sampler;
pub mod spool;
