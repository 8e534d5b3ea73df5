//! One thread per `--connect` endpoint: keeps the link up (its session acknowledges every
//! pushed row), sends the operator's commands, and tells the display what happened through a
//! channel: rows, each node's result of a targeted command, and each command's answer, all
//! tagged with the command they belong to.

use super::command::Command;
use avp_endpoint::Endpoint;
use avp_proto::peer::{PeerEvent, Request};
use avp_proto::{Codec, Report};
use avpd_client::{ClientEvent, LinkStatus, PeerLink, UnsupportedScheme};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// How often a link thread looks for commands while its socket is quiet.
const TICK: Duration = Duration::from_millis(50);
/// How long a terminal waits for the answer to a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Names one command sent by this terminal (the same on every link it went to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// Something that happened on link number `link` (its index in `--connect` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Index of the link.
    pub link: usize,
    /// What happened.
    pub kind: UpdateKind,
}

/// What happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    /// The link is connected.
    Connected,
    /// The link is down; the next attempt is due at `retry_at`.
    Down {
        /// Why it went down.
        reason: String,
        /// When it tries again.
        retry_at: Instant,
    },
    /// A row of the fleet view arrived (already acknowledged).
    Row(Report<'static>),
    /// One node's result of a targeted command.
    NodeResult {
        /// The command.
        command: CommandId,
        /// NODE_ID.
        node: String,
        /// RESULT_CODE.
        code: u16,
        /// INFO, empty when absent.
        info: String,
    },
    /// The answer to a command (for a targeted one, after every node's result).
    Answer {
        /// The command.
        command: CommandId,
        /// RESULT_CODE.
        code: u16,
        /// INFO, empty when absent.
        info: String,
    },
    /// A command was not sent, or its answer will not come.
    Failed {
        /// The command.
        command: CommandId,
        /// Why.
        reason: String,
    },
}

/// Why the links could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// An endpoint cannot carry a terminal's link.
    Scheme(UnsupportedScheme),
    /// A link's thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Scheme(e) => e.fmt(f),
            SpawnError::Thread(e) => write!(f, "cannot start a link thread: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// The running link threads.
pub struct LinkSet {
    /// Updates from every link, in arrival order.
    pub updates: Receiver<Update>,
    commander: Commander,
    /// The endpoints, in `--connect` order.
    endpoints: Vec<Endpoint>,
}

impl LinkSet {
    /// Starts one thread per endpoint. The threads end when the `LinkSet` is dropped.
    pub fn spawn(endpoints: &[Endpoint], codec: Option<Codec>) -> Result<LinkSet, SpawnError> {
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let mut senders = Vec::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let link = PeerLink::new(endpoint.clone(), codec, ANSWER_TIMEOUT)
                .map_err(SpawnError::Scheme)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let update_tx = update_tx.clone();
            std::thread::Builder::new()
                .name(format!("link-{index}"))
                .spawn(move || run_link(index, link, &rx, &update_tx))
                .map_err(SpawnError::Thread)?;
            senders.push(tx);
        }
        Ok(LinkSet {
            updates,
            commander: Commander {
                senders,
                next_id: Arc::default(),
            },
            endpoints: endpoints.to_vec(),
        })
    }

    /// The endpoints, in `--connect` order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Sends commands to the links; clone it to send from another thread.
    pub fn commander(&self) -> &Commander {
        &self.commander
    }
}

/// A command on its way to one link.
struct Outgoing {
    id: CommandId,
    request: Request<'static>,
}

/// Sends commands to the links (one sender per link, in `--connect` order).
#[derive(Clone)]
pub struct Commander {
    senders: Vec<Sender<Outgoing>>,
    next_id: Arc<AtomicU64>,
}

impl Commander {
    /// A fresh id for a command about to be sent.
    pub fn new_id(&self) -> CommandId {
        CommandId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `command` on every link; returns its id.
    pub fn broadcast(&self, command: &Command) -> CommandId {
        let id = self.new_id();
        for link in 0..self.senders.len() {
            self.send(link, id, command);
        }
        id
    }

    /// Sends `command`, as `id`, on link number `link` (ignored when there is no such link).
    pub fn send(&self, link: usize, id: CommandId, command: &Command) {
        if let Some(tx) = self.senders.get(link) {
            // A send fails only when the link thread is gone, i.e. the program is ending.
            let _ = tx.send(Outgoing {
                id,
                request: command.request(),
            });
        }
    }
}

/// The body of one link thread; returns when the commands or updates channel closes.
fn run_link(
    index: usize,
    mut link: PeerLink<CommandId>,
    commands: &Receiver<Outgoing>,
    updates: &Sender<Update>,
) {
    let emit = |kind| updates.send(Update { link: index, kind }).is_ok();
    // The commands sent and not yet answered, oldest first: a node's result belongs to the
    // oldest (answers come in request order).
    let mut in_flight = VecDeque::new();
    loop {
        loop {
            let Outgoing { id, request } = match commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            };
            match link.send(Instant::now(), &request, id) {
                Ok(_) => in_flight.push_back(id),
                Err(e) => {
                    let reason = format!("not sent: {e}");
                    if !emit(UpdateKind::Failed {
                        command: id,
                        reason,
                    }) {
                        return;
                    }
                }
            }
        }
        let mut kinds = Vec::new();
        let status = link.status();
        link.poll(Instant::now() + TICK, &mut |event| {
            if let Some(kind) = update_of(event, status, &mut in_flight) {
                kinds.push(kind);
            }
        });
        for kind in kinds {
            if !emit(kind) {
                return;
            }
        }
    }
}

/// What the display learns from one event of a link (whose status before the poll was
/// `status`, with `in_flight` the commands awaiting their answer); `None` for events it does
/// not show.
fn update_of(
    event: ClientEvent<'_, CommandId>,
    status: LinkStatus,
    in_flight: &mut VecDeque<CommandId>,
) -> Option<UpdateKind> {
    let event = match event {
        ClientEvent::Up => return Some(UpdateKind::Connected),
        ClientEvent::Down { reason, retry_in } => {
            let retry_at = match status {
                LinkStatus::Reconnecting { retry_at } => retry_at.max(Instant::now() + retry_in),
                LinkStatus::Connected => Instant::now() + retry_in,
            };
            return Some(UpdateKind::Down { reason, retry_at });
        }
        ClientEvent::Peer(event) => event,
    };
    Some(match event {
        // Pushed rows are acknowledged by the session.
        PeerEvent::Pushed { report, .. } => UpdateKind::Row(report.into_owned()),
        PeerEvent::NodeResult { node, code, info } => {
            let Some(&command) = in_flight.front() else {
                warn!("a node's result with no command outstanding: {node} {code}");
                return None;
            };
            UpdateKind::NodeResult {
                command,
                node: node.into_owned(),
                code,
                info: info.map(|i| i.into_owned()).unwrap_or_default(),
            }
        }
        PeerEvent::Answered {
            sent,
            response: Some(r),
            ..
        } => UpdateKind::Answer {
            command: finished(in_flight, sent.tag),
            code: r.code,
            info: r.info.map(|i| i.into_owned()).unwrap_or_default(),
        },
        PeerEvent::Answered { sent, .. } => UpdateKind::Failed {
            command: finished(in_flight, sent.tag),
            reason: "answered with a message that is no COMMAND_RESPONSE".into(),
        },
        PeerEvent::TimedOut { sent } => UpdateKind::Failed {
            command: finished(in_flight, sent.tag),
            reason: format!("no answer within {ANSWER_TIMEOUT:?}"),
        },
        PeerEvent::Aborted { sent } => UpdateKind::Failed {
            command: finished(in_flight, sent.tag),
            reason: "the link went down before the answer".into(),
        },
        PeerEvent::Invalid(e) => {
            warn!("invalid message from the peer: {e}");
            return None;
        }
        PeerEvent::Paused { .. }
        | PeerEvent::Resumed { .. }
        | PeerEvent::PauseEnded
        | PeerEvent::Unsolicited { .. } => return None,
    })
}

/// Takes command `id`, answered or given up on, off `in_flight`; returns it.
fn finished(in_flight: &mut VecDeque<CommandId>, id: CommandId) -> CommandId {
    debug_assert_eq!(
        in_flight.front(),
        Some(&id),
        "answers come in request order"
    );
    in_flight.retain(|&i| i != id);
    id
}
