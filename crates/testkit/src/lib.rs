//! Test support shared by the integration tests of the avpd crates: a blocking protocol peer,
//! a node played by the test for a terminal, frames built by hand, a runner for the programs
//! under test that collects their output, tmux for the full-screen ones, and certificates for
//! the TLS tests.
//!
//! Every wait has a deadline ([`WAIT`]); nothing sleeps to synchronise.
#![deny(missing_docs)]
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

/// The environment variable that turns a missing tool from a skipped test into a failed one:
/// `.ci/run` sets it, since CI installs every tool the tests drive.
pub const REQUIRE_TOOLS: &str = "AVP_REQUIRE_TOOLS";

/// Says on stderr that a test is skipped because `what` (a tool, and how to install it) is
/// missing; panics instead when [`REQUIRE_TOOLS`] is set.
pub fn skip_without(what: &str) {
    assert!(
        std::env::var_os(REQUIRE_TOOLS).is_none(),
        "{what} is missing, and {REQUIRE_TOOLS} is set: the test may not be skipped"
    );
    eprintln!("SKIPPED: {what} is missing");
}
