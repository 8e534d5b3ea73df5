//! One thread per `--connect` endpoint: keeps the link up (its session acknowledges every
//! pushed report), sends the operator's commands, and tells the display what happened through
//! a channel.

use super::command::Command;
use avp_endpoint::Endpoint;
use avp_proto::peer::{PeerEvent, Request};
use avp_proto::{Codec, Report};
use avpd_client::{ClientConfig, ClientEvent, Link, LinkStatus, PeerLink, UnsupportedScheme};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// How often a link thread looks for commands while its socket is quiet.
const TICK: Duration = Duration::from_millis(50);

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
    /// A report arrived (already acknowledged).
    Report(Report<'static>),
    /// The answer to a command.
    Response {
        /// RESULT_CODE.
        code: u16,
        /// INFO, empty when absent.
        info: String,
    },
    /// A command could not be sent.
    NotSent {
        /// Which command.
        command: Command,
        /// Why not.
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
    /// Starts one thread per endpoint, reaching `tls://` endpoints with `tls`. The threads
    /// end when the `LinkSet` is dropped.
    pub fn spawn(
        endpoints: &[Endpoint],
        codec: Option<Codec>,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<LinkSet, SpawnError> {
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let mut commands = Vec::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let link = Link::with_tls(vec![endpoint.clone()], Duration::MAX, tls.clone())
                .map_err(SpawnError::Scheme)?;
            let link = PeerLink::over(link, codec, ANSWER_TIMEOUT);
            let (tx, rx) = crossbeam_channel::unbounded();
            let update_tx = update_tx.clone();
            std::thread::Builder::new()
                .name(format!("link-{index}"))
                .spawn(move || run_link(index, link, &rx, &update_tx))
                .map_err(SpawnError::Thread)?;
            commands.push(tx);
        }
        Ok(LinkSet {
            updates,
            commander: Commander(commands),
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

/// Sends commands to the links (one sender per link, in `--connect` order).
#[derive(Clone)]
pub struct Commander(Vec<Sender<Command>>);

impl Commander {
    /// Sends `command` on every link.
    pub fn broadcast(&self, command: Command) {
        for i in 0..self.0.len() {
            self.send(i, command);
        }
    }

    /// Sends `command` on link number `link` (ignored when there is no such link).
    pub fn send(&self, link: usize, command: Command) {
        if let Some(tx) = self.0.get(link) {
            // A send fails only when the link thread is gone, i.e. the program is ending.
            let _ = tx.send(command);
        }
    }
}

/// How long a terminal waits for the answer to a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of one link thread; returns when the commands or updates channel closes.
fn run_link(
    index: usize,
    mut link: PeerLink<Command>,
    commands: &Receiver<Command>,
    updates: &Sender<Update>,
) {
    let emit = |kind| updates.send(Update { link: index, kind }).is_ok();
    loop {
        loop {
            let command = match commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            };
            let request = match command {
                Command::Pause(duration_secs) => Request::Pause {
                    target: None,
                    duration_secs,
                },
                Command::Resume => Request::Resume { target: None },
            };
            if let Err(e) = link.send(Instant::now(), &request, command) {
                let reason = e.to_string();
                if !emit(UpdateKind::NotSent { command, reason }) {
                    return;
                }
            }
        }
        let mut kinds = Vec::new();
        let status = link.status();
        link.poll(Instant::now() + TICK, &mut |event| {
            if let Some(kind) = update_of(event, status) {
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
/// `status`); `None` for events it does not show.
fn update_of(event: ClientEvent<'_, Command>, status: LinkStatus) -> Option<UpdateKind> {
    Some(match event {
        ClientEvent::Up => UpdateKind::Connected,
        ClientEvent::Down { reason, retry_in } => UpdateKind::Down {
            reason,
            retry_at: match status {
                LinkStatus::Reconnecting { retry_at } => retry_at.max(Instant::now() + retry_in),
                LinkStatus::Connected => Instant::now() + retry_in,
            },
        },
        // Pushed reports are acknowledged by the session.
        ClientEvent::Peer(PeerEvent::Pushed { report, .. }) => {
            UpdateKind::Report(report.into_owned())
        }
        ClientEvent::Peer(PeerEvent::Answered {
            response: Some(r), ..
        }) => UpdateKind::Response {
            code: r.code,
            info: r.info.map(|i| i.into_owned()).unwrap_or_default(),
        },
        ClientEvent::Peer(PeerEvent::Invalid(e)) => {
            warn!("invalid message from the peer: {e}");
            return None;
        }
        ClientEvent::Peer(PeerEvent::TimedOut { sent }) => UpdateKind::NotSent {
            command: sent.tag,
            reason: "no answer in time".into(),
        },
        ClientEvent::Peer(_) => return None,
    })
}
