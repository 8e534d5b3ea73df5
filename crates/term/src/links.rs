//! One thread per `--connect` endpoint: keeps the link up, acknowledges every report, sends the
//! operator's commands, and tells the display what happened through a channel.

use super::command::Command;
use avp_endpoint::Endpoint;
use avp_proto::{result_code, Body, Codec, Message, Report};
use avpd_client::{Link, LinkEvent, LinkStatus};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
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
    pub fn spawn(endpoints: &[Endpoint], codec: Option<Codec>) -> anyhow::Result<LinkSet> {
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let mut commands = Vec::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let link = Link::new(endpoint.clone(), codec)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let update_tx = update_tx.clone();
            std::thread::Builder::new()
                .name(format!("link-{index}"))
                .spawn(move || run_link(index, link, &rx, &update_tx))?;
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

/// The body of one link thread; returns when the commands or updates channel closes.
fn run_link(index: usize, mut link: Link, commands: &Receiver<Command>, updates: &Sender<Update>) {
    let mut next_seq: u64 = 1;
    let emit = |kind| updates.send(Update { link: index, kind }).is_ok();
    loop {
        loop {
            let command = match commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            };
            let body = match command {
                Command::Pause(duration_secs) => Body::Pause { duration_secs },
                Command::Resume => Body::Resume,
            };
            let msg = Message {
                sequence: Some(next_seq),
                body,
            };
            next_seq = next_seq % u64::from(u32::MAX) + 1;
            if let Err(e) = link.send(&msg) {
                let reason = e.to_string();
                if !emit(UpdateKind::NotSent { command, reason }) {
                    return;
                }
            }
        }
        let kind = match link.poll(Instant::now() + TICK) {
            LinkEvent::Idle => continue,
            LinkEvent::Up => UpdateKind::Connected,
            LinkEvent::Down { reason, .. } => match link.status() {
                LinkStatus::Reconnecting { retry_at } => UpdateKind::Down { reason, retry_at },
                LinkStatus::Connected => continue,
            },
            LinkEvent::Invalid(e) => {
                warn!("{}: invalid message from the peer: {e}", link.endpoint());
                continue;
            }
            LinkEvent::Message(msg) => match msg.body {
                Body::StatReport(report) => {
                    // A failed ack takes the link down; the next poll reports it.
                    let _ = link.send(&Message::ack(msg.sequence));
                    UpdateKind::Report(report)
                }
                Body::CommandResponse { code, info } => UpdateKind::Response {
                    code,
                    info: info.map(|i| i.into_owned()).unwrap_or_default(),
                },
                Body::Pause { .. } | Body::Resume => {
                    // A terminal pushes nothing, so there is nothing to pause: say so.
                    let answer = Message::command_response(
                        msg.sequence,
                        result_code::OK,
                        "a terminal sends no reports",
                    );
                    let _ = link.send(&answer);
                    continue;
                }
                Body::StatReportAck => continue,
            },
        };
        if !emit(kind) {
            return;
        }
    }
}
