//! The management plane's part of relaying commands: a terminal's PAUSE or RESUME with TARGET
//! is resolved against the fleet view, relayed to every matching agent, and answered with one
//! result per node and then the command's own answer (docs/PROTOCOL.md, section 4).

use super::{key_of, Worker};
use crate::relay::{CommandQueue, RelayRequest, Relayer, TakenCommand, RELAY_TIMEOUT};
use avp_proto::server::Action;
use avp_proto::{result_code, Body, Message};
use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much longer than one relay a command may take before its missing results are given up
/// on (a relay answers within [`RELAY_TIMEOUT`] by itself; this covers a lost reply).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Most fleet commands one terminal may have waiting for their results; one more is answered
/// 503 at once, so that a terminal cannot make the node relay without end.
pub const MAX_COMMANDS_IN_FLIGHT: usize = 8;

/// One node's result of a command: `(command id, node, code, info)`.
type NodeResult = (u64, Arc<str>, u16, String);

/// A command relayed and waiting for its results.
struct Pending {
    token: usize,
    sequence: Option<u64>,
    action: Action,
    targets: Vec<Arc<str>>,
    results: FxHashMap<Arc<str>, (u16, String)>,
    deadline: Instant,
}

/// The management plane's commands: taken from terminals, relayed, and answered.
pub struct CommandSide {
    pub(super) queue: CommandQueue,
    relayer: Relayer,
    results_tx: Sender<NodeResult>,
    results: Receiver<NodeResult>,
    waker: Arc<Waker>,
    pending: FxHashMap<u64, Pending>,
}

impl CommandSide {
    /// Commands relayed through `relayer`; `waker` wakes the worker when results come.
    pub fn new(relayer: Relayer, waker: Arc<Waker>) -> CommandSide {
        let (results_tx, results) = crossbeam_channel::unbounded();
        CommandSide {
            queue: CommandQueue::default(),
            relayer,
            results_tx,
            results,
            waker,
            pending: FxHashMap::default(),
        }
    }

    /// When the oldest command gives up on its missing results.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Relays `command` to `targets`, each `(node, the collector that holds it when another
    /// node does)`.
    fn start(
        &mut self,
        command: TakenCommand,
        targets: Vec<(Arc<str>, Option<Arc<str>>)>,
        now: Instant,
    ) {
        for (node, collector) in &targets {
            let (tx, waker, id, node_key) = (
                self.results_tx.clone(),
                self.waker.clone(),
                command.id,
                node.clone(),
            );
            self.relayer.relay(
                RelayRequest {
                    node: node.clone(),
                    key: 0,
                    action: command.action,
                    reply: Box::new(move |code, info| {
                        if tx.send((id, node_key, code, info)).is_ok() {
                            let _ = waker.wake();
                        }
                    }),
                },
                collector.as_deref(),
            );
        }
        let targets = targets.into_iter().map(|(node, _)| node).collect();
        self.pending.insert(
            command.id,
            Pending {
                token: command.token,
                sequence: command.sequence,
                action: command.action,
                targets,
                results: FxHashMap::default(),
                deadline: now + RELAY_TIMEOUT + COMMAND_TIMEOUT,
            },
        );
    }
}

impl Worker {
    /// Starts the commands terminals sent, takes in the results that came, and answers the
    /// commands that are complete (or out of time).
    pub(super) fn run_commands(&mut self, now: Instant, now_ms: u64) {
        let (Some(side), Some(plane)) = (self.commands.as_mut(), self.push.as_ref()) else {
            return;
        };
        let mut done: Vec<(u64, Pending)> = Vec::new();
        let mut refused: Vec<TakenCommand> = Vec::new();
        for command in side.queue.drain() {
            let in_flight = side
                .pending
                .values()
                .filter(|p| p.token == command.token)
                .count();
            if in_flight >= MAX_COMMANDS_IN_FLIGHT {
                refused.push(command);
                continue;
            }
            let targets: Vec<(Arc<str>, Option<Arc<str>>)> = plane
                .view
                .matching(&command.target)
                .into_iter()
                .map(|node| {
                    let collector = plane.view.collector_of(&node);
                    (node, collector)
                })
                .collect();
            if targets.is_empty() {
                let pending = Pending {
                    token: command.token,
                    sequence: command.sequence,
                    action: command.action,
                    targets: Vec::new(),
                    results: FxHashMap::default(),
                    deadline: now,
                };
                done.push((command.id, pending));
            } else {
                side.start(command, targets, now);
            }
        }
        for (id, node, code, info) in side.results.try_iter() {
            if let Some(p) = side.pending.get_mut(&id) {
                p.results.insert(node, (code, info));
            }
        }
        let finished: Vec<u64> = side
            .pending
            .iter()
            .filter(|(_, p)| p.results.len() == p.targets.len() || now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in finished {
            let p = side.pending.remove(&id).expect("listed above");
            done.push((id, p));
        }
        for (id, p) in done {
            self.answer_command(id, p, now, now_ms);
        }
        for command in refused {
            self.counters.command_overloaded += 1;
            let info = format!(
                "{MAX_COMMANDS_IN_FLIGHT} commands of this terminal are still waiting for \
                 their results"
            );
            let answer = [Message::command_response(
                command.sequence,
                result_code::OVERLOADED,
                info,
            )];
            self.drive_one(key_of(command.token), now, now_ms, |_, conn, ctx| {
                conn.complete_command(command.id, &answer, ctx)
            });
        }
    }

    /// Sends a command's results and answer to its terminal, and records the pauses it set.
    fn answer_command(&mut self, id: u64, p: Pending, now: Instant, now_ms: u64) {
        let (verb, paused_until) = match p.action {
            Action::Pause { duration_secs } => ("paused", Some(now_ms + duration_secs * 1000)),
            Action::Resume => ("resumed", None),
        };
        let mut answers = Vec::with_capacity(p.targets.len() + 1);
        let mut first_failure = None;
        let mut ok = 0;
        for node in &p.targets {
            let (code, info) = p.results.get(node).cloned().unwrap_or_else(|| {
                (
                    result_code::TIMED_OUT,
                    "no answer from the agent's collector".to_string(),
                )
            });
            if code == result_code::OK {
                ok += 1;
                if let Some(plane) = self.push.as_mut() {
                    plane.view.set_paused(node, paused_until, now_ms);
                }
            } else {
                first_failure.get_or_insert(code);
            }
            answers.push(Message {
                sequence: p.sequence,
                body: Body::CommandResponse {
                    code,
                    info: Some(Cow::Owned(clip(info))),
                    node: Some(Cow::Owned(node.to_string())),
                },
            });
        }
        let summary = if p.targets.is_empty() {
            Message::command_response(p.sequence, result_code::NOT_FOUND, "no node matches")
        } else {
            let code = first_failure.unwrap_or(result_code::OK);
            let info = format!("{verb} {ok} of {} nodes", p.targets.len());
            Message::command_response(p.sequence, code, info)
        };
        answers.push(summary);
        for answer in &answers {
            if let Body::CommandResponse { code, .. } = answer.body {
                let c = &mut self.counters;
                match code {
                    result_code::OK => {}
                    result_code::NOT_FOUND => c.command_not_found += 1,
                    result_code::OVERLOADED => c.command_overloaded += 1,
                    result_code::TIMED_OUT => c.command_timed_out += 1,
                    _ => c.command_failed += 1,
                }
            }
        }
        self.drive_one(key_of(p.token), now, now_ms, |_, conn, ctx| {
            conn.complete_command(id, &answers, ctx)
        });
    }
}

/// An agent's text cut to what an INFO AVP holds, on a character boundary.
fn clip(mut info: String) -> String {
    let max = avp_proto::avp::MAX_VALUE_LEN;
    if info.len() > max {
        let mut end = max;
        while !info.is_char_boundary(end) {
            end -= 1;
        }
        info.truncate(end);
    }
    info
}
