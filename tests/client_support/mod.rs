//! Helpers for the tests of the `avpd` binary: start it and read its output, and speak the
//! protocol from a test thread (the shared kit in `avp-testkit`).
#![allow(dead_code)] // each test file uses its own subset

pub use avp_testkit::*;

/// Starts `avpd ARGS` with debug logging and piped stdin, stdout and stderr.
pub fn avpd(args: &[&str]) -> Program {
    Program::start(env!("CARGO_BIN_EXE_avpd"), args)
}
