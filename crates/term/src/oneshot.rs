//! `avpd term ... pause DURATION` and `... resume`: send one command on every link, print each
//! answer as `URL: CODE INFO`, and succeed only when every answer is 200.

use super::command::Command;
use super::links::{LinkSet, UpdateKind};
use avp_proto::result_code;
use std::time::{Duration, Instant};

/// A one-shot command that was not answered 200 on every link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The command.
    pub command: Command,
    /// Links where it failed.
    pub failures: usize,
    /// Links it was sent on.
    pub links: usize,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed on {} of {} link(s)",
            self.command, self.failures, self.links
        )
    }
}

impl std::error::Error for Failed {}

/// The outcome on one link.
enum Outcome {
    /// Still waiting; the last connection error, if any.
    Waiting(Option<String>),
    /// Sent; waiting for the answer.
    Sent,
    /// The answer.
    Answered(u16, String),
    /// Failed after sending.
    Failed(String),
}

/// Sends `command` on every link as soon as it connects and waits up to `timeout` for the
/// answers.
pub fn run(links: &LinkSet, command: Command, timeout: Duration) -> Result<(), Failed> {
    let deadline = Instant::now() + timeout;
    let mut outcomes: Vec<Outcome> = links
        .endpoints()
        .iter()
        .map(|_| Outcome::Waiting(None))
        .collect();
    let done = |o: &Outcome| matches!(o, Outcome::Answered(..) | Outcome::Failed(_));
    while !outcomes.iter().all(done) {
        let Ok(update) = links.updates.recv_deadline(deadline) else {
            break;
        };
        let outcome = &mut outcomes[update.link];
        match (update.kind, &*outcome) {
            (UpdateKind::Connected, Outcome::Waiting(_)) => {
                links.commander().send(update.link, command);
                *outcome = Outcome::Sent;
            }
            (UpdateKind::Down { reason, .. }, Outcome::Waiting(_)) => {
                *outcome = Outcome::Waiting(Some(reason));
            }
            (UpdateKind::Down { reason, .. }, Outcome::Sent)
            | (UpdateKind::NotSent { reason, .. }, Outcome::Sent) => {
                *outcome = Outcome::Failed(reason);
            }
            (UpdateKind::Response { code, info }, Outcome::Sent) => {
                *outcome = Outcome::Answered(code, info);
            }
            _ => {}
        }
    }
    let mut failures = 0;
    for (link, outcome) in links.endpoints().iter().zip(&outcomes) {
        let text = match outcome {
            Outcome::Answered(code, info) => {
                if *code != result_code::OK {
                    failures += 1;
                }
                println!("{link}: {code} {info}");
                continue;
            }
            Outcome::Failed(reason) => format!("failed: {reason}"),
            Outcome::Sent => format!("no answer within {timeout:?}"),
            Outcome::Waiting(None) => format!("not connected within {timeout:?}"),
            Outcome::Waiting(Some(reason)) => {
                format!("not connected within {timeout:?}: {reason}")
            }
        };
        failures += 1;
        println!("{link}: {text}");
    }
    if failures > 0 {
        return Err(Failed {
            command,
            failures,
            links: outcomes.len(),
        });
    }
    Ok(())
}
