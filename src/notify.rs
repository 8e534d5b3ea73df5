//! Telling the service manager how the node or the agent is doing (`sd_notify`): ready,
//! reloading, stopping, the node's status line, and the watchdog's keep-alive.
//!
//! Every call does nothing when `NOTIFY_SOCKET` is unset (not started by systemd with
//! `Type=notify`). A failed notification is logged, never fatal: the process serves either
//! way.

use sd_notify::NotifyState;
use std::time::Duration;

/// Sends `states` to the service manager, if there is one.
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// Started: every listener is bound (and the node's store connected, when it has one).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A configuration reload begins; [`ready`] ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::debug!("no monotonic clock for the reload notification: {e}");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// The process is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The service's one-line status (`systemctl status` shows it).
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// The watchdog's keep-alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send [`watchdog`]: half the service manager's `WATCHDOG_USEC`, when it set
/// one for this process.
pub fn watchdog_every() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
