//! Signals as messages: a thread of its own waits for SIGINT, SIGTERM and SIGHUP and sends
//! each on a channel, so that a loop can wait for a signal or a deadline.

use anyhow::Context as _;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM (the number): stop.
    Stop(i32),
    /// SIGHUP: read the configuration again.
    Reload,
}

/// Installs the handlers and returns the channel the signals arrive on.
pub fn listen() -> anyhow::Result<Receiver<Signal>> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    // Unbounded, but a signal is one small message and a sender faster than the loop is a
    // person at a keyboard.
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("avpd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let signal = match signal {
                    SIGHUP => Signal::Reload,
                    other => Signal::Stop(other),
                };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}
