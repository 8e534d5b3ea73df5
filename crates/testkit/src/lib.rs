//! Test support shared by the integration tests of the avpd crates: a blocking protocol peer,
//! a node played by the test for a terminal, frames built by hand, a runner for the programs
//! under test that collects their output, tmux for the full-screen ones, and certificates for
//! the TLS tests.
//!
//! Every wait has a deadline ([`WAIT`]); nothing sleeps to synchronise.
#![forbid(unsafe_code)]

pub mod frames;
pub mod nats;
pub mod node;
pub mod peer;
pub mod process;
pub mod tls;
pub mod tmux;

pub use frames::{
    command_response, frame, named_report, node_result, pushed_report, pushed_row, report,
};
pub use node::FakeNode;
pub use peer::{accept, listener, Peer};
pub use process::{field, Lines, Program};
pub use tmux::Tmux;

use std::time::Duration;

/// Every network wait in the tests gives up after this long: CI runs on a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch now.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
