//! `avpd term ... pause ws-17 200` and the other one-shot forms, for scripts: send one `pause`
//! or `resume` on every link as soon as it connects, print each node's result as
//! `NODE: CODE INFO` and each link's answer as `URL: CODE INFO` as they come, wait for every
//! answer (up to a timeout), and succeed only when every target answered 200 ([`Tally`]).
//!
//! `freeze` and `unfreeze` are refused here: they act on the connection they arrive on, and a
//! one-shot command's connection closes when it exits.

use super::command::Command;
use super::links::{LinkSet, UpdateKind};
use super::tally::{LinkOutcome, Shortfall, Tally};
use std::io::Write;
use std::time::{Duration, Instant};

/// A command that cannot be a one-shot: `freeze` or `unfreeze`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOneShot(pub Command);

impl std::fmt::Display for NotOneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` acts on the pushes to a running terminal, and a one-shot command's \
             connection closes when it exits: press f on the full screen, or type it on a \
             plain terminal's stdin",
            self.0
        )
    }
}

impl std::error::Error for NotOneShot {}

/// A `pause` or `resume` to send once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShot(Command);

impl OneShot {
    /// `command` as a one-shot; refused for `freeze` and `unfreeze`.
    pub fn new(command: Command) -> Result<OneShot, NotOneShot> {
        if command.target().is_some() {
            Ok(OneShot(command))
        } else {
            Err(NotOneShot(command))
        }
    }

    /// Sends the command on every link as soon as it connects and waits up to `timeout` for
    /// every answer.
    pub fn run(self, links: &LinkSet, timeout: Duration) -> Result<(), Shortfall> {
        let OneShot(command) = self;
        let deadline = Instant::now() + timeout;
        let commander = links.commander();
        let id = commander.new_id();
        let names: Vec<String> = links.endpoints().iter().map(|e| e.to_string()).collect();
        let mut tally = Tally::new(id, command.clone(), names.len());
        let mut out = std::io::stdout().lock();
        // Lines go to a reader that may have gone away: the exit code still tells the outcome.
        while !tally.is_done() {
            let Ok(update) = links.updates.recv_deadline(deadline) else {
                break;
            };
            let link = &names[update.link];
            match &update.kind {
                UpdateKind::Connected => {
                    if matches!(tally.links()[update.link], LinkOutcome::Pending(_)) {
                        commander.send(update.link, id, &command);
                        tally.sent(update.link);
                    }
                }
                UpdateKind::Down { reason, .. } => tally.waiting(update.link, reason.clone()),
                UpdateKind::Row(_) => {}
                kind => {
                    if !tally.apply(&update) {
                        continue;
                    }
                    let _ = match kind {
                        UpdateKind::NodeResult {
                            node, code, info, ..
                        } => writeln!(
                            out,
                            "{}: {code} {}",
                            avp_units::printable(node),
                            avp_units::printable(info)
                        ),
                        UpdateKind::Answer { code, info, .. } => {
                            writeln!(out, "{link}: {code} {}", avp_units::printable(info))
                        }
                        UpdateKind::Failed { reason, .. } => {
                            writeln!(out, "{link}: failed: {reason}")
                        }
                        _ => Ok(()),
                    };
                }
            }
        }
        for (link, outcome) in names.iter().zip(tally.links()) {
            let _ = match outcome {
                LinkOutcome::Sent => writeln!(out, "{link}: no answer within {timeout:?}"),
                LinkOutcome::Pending(None) => {
                    writeln!(out, "{link}: not connected within {timeout:?}")
                }
                LinkOutcome::Pending(Some(reason)) => {
                    writeln!(out, "{link}: not connected within {timeout:?}: {reason}")
                }
                LinkOutcome::Answered { .. } | LinkOutcome::Failed(_) => Ok(()),
            };
        }
        let _ = out.flush();
        tally.verdict()
    }
}
