//! Relaying a terminal's PAUSE or RESUME to the agents it names.
//!
//! The management plane takes the command ([`CommandQueue`]), resolves its TARGET against the
//! fleet view, and asks the [`Relayer`] to carry it to each target. The relayer knows, from the
//! [`AgentRegistry`], which data-plane worker holds each agent's connection and hands the
//! request to that worker over a channel ([`RelayRequest`]). The worker sends the command on
//! the agent's connection and, when the agent answers (or does not, within
//! [`RELAY_TIMEOUT`]), calls the request's [`Reply`] with the result. Nothing here blocks a
//! worker: registry updates happen once per connection, not per message.

use avp_proto::result_code;
use avp_proto::server::{Action, FleetCommand};
use avpd_store::Store;
use crossbeam_channel::Sender;
use mio::Waker;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an agent may take to answer a relayed command.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(5);

/// Called once with a relayed command's result: the agent's result code and text, or 404 / 504.
pub type Reply = Box<dyn FnOnce(u16, String) + Send>;

/// A command to carry to one agent.
pub struct RelayRequest {
    /// The agent's NODE_ID.
    pub node: Arc<str>,
    /// Its connection's key in its worker (filled in by the [`Relayer`]).
    pub key: usize,
    /// What to ask of it.
    pub action: Action,
    /// Where its result goes.
    pub reply: Reply,
}

/// Agents' connections: NODE_ID to (worker, connection key).
type Agents = FxHashMap<Arc<str>, (usize, usize)>;

/// Which data-plane worker holds the connection of each agent, and under which key.
#[derive(Debug, Default, Clone)]
pub struct AgentRegistry {
    agents: Arc<Mutex<Agents>>,
}

impl AgentRegistry {
    /// Records that connection `key` of worker `worker` speaks for `node` (the latest
    /// connection of a node wins).
    pub fn register(&self, node: Arc<str>, worker: usize, key: usize) {
        self.lock().insert(node, (worker, key));
    }

    /// Forgets `node`'s connection if it is still connection `key` of worker `worker`.
    pub fn unregister(&self, node: &str, worker: usize, key: usize) {
        let mut agents = self.lock();
        if agents.get(node) == Some(&(worker, key)) {
            agents.remove(node);
        }
    }

    /// The worker and connection key of `node`'s connection.
    pub fn lookup(&self, node: &str) -> Option<(usize, usize)> {
        self.lock().get(node).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Agents> {
        // The map stays consistent whatever panicked while holding it: one insert or remove.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Carries commands to the data-plane workers that hold the agents' connections, and through
/// the store to other nodes.
#[derive(Clone)]
pub struct Relayer {
    registry: AgentRegistry,
    workers: Vec<(Sender<RelayRequest>, Arc<Waker>)>,
    remote: Option<Arc<Store>>,
}

impl Relayer {
    /// A relayer over `registry` and the workers' request channels (by worker id).
    pub fn new(registry: AgentRegistry, workers: Vec<(Sender<RelayRequest>, Arc<Waker>)>) -> Self {
        Relayer {
            registry,
            workers,
            remote: None,
        }
    }

    /// The same relayer, reaching the agents of other nodes through `store`.
    pub fn with_remote(self, store: Arc<Store>) -> Self {
        Relayer {
            remote: Some(store),
            ..self
        }
    }

    /// True when `node` is connected to this node.
    pub fn is_connected(&self, node: &str) -> bool {
        self.registry.lookup(node).is_some()
    }

    /// Hands `request` to the worker of its agent; when the agent is not connected here but
    /// `collector` (another node) holds it, relays it there through the store; replies 404
    /// at once otherwise.
    pub fn relay(&self, mut request: RelayRequest, collector: Option<&str>) {
        if let (Some(store), Some(collector), false) =
            (&self.remote, collector, self.is_connected(&request.node))
        {
            if collector != store.collector() {
                let RelayRequest {
                    node,
                    action,
                    reply,
                    ..
                } = request;
                return store.relay(collector, &node, action, reply);
            }
        }
        let found = self.registry.lookup(&request.node);
        let target = found.and_then(|(w, key)| Some((self.workers.get(w)?, key)));
        match target {
            Some(((tx, waker), key)) => {
                request.key = key;
                if let Err(e) = tx.send(request) {
                    let request = e.into_inner();
                    (request.reply)(result_code::OVERLOADED, "the node is stopping".into());
                    return;
                }
                if let Err(e) = waker.wake() {
                    tracing::warn!("cannot wake a worker for a relayed command: {e}");
                }
            }
            None => (request.reply)(result_code::NOT_FOUND, NOT_CONNECTED.into()),
        }
    }
}

/// The text of a 404 for a node no collector holds.
pub const NOT_CONNECTED: &str = "not connected to any collector";

/// A fleet command a terminal sent this round, with its terminal's connection token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenCommand {
    /// The terminal's connection, by its token in the worker's poll.
    pub token: usize,
    /// The id its answer waits under.
    pub id: u64,
    /// Its SEQUENCE.
    pub sequence: Option<u64>,
    /// Its TARGET.
    pub target: String,
    /// What it asks.
    pub action: Action,
}

/// The management plane's commands taken from terminals and not yet started.
#[derive(Debug, Default)]
pub struct CommandQueue {
    next_id: u64,
    taken: Vec<TakenCommand>,
}

impl CommandQueue {
    /// Takes `command` from the terminal of `token`; returns the id its answer waits under.
    pub fn take(&mut self, token: usize, command: &FleetCommand<'_>) -> u64 {
        self.next_id += 1;
        self.taken.push(TakenCommand {
            token,
            id: self.next_id,
            sequence: command.sequence,
            target: command.target.to_string(),
            action: command.action,
        });
        self.next_id
    }

    /// The commands taken since the last call.
    pub fn drain(&mut self) -> Vec<TakenCommand> {
        std::mem::take(&mut self.taken)
    }
}

/// A data-plane worker's relayed commands waiting for their agents' answers.
#[derive(Default)]
pub struct RelayDesk {
    next_id: u64,
    waiting: FxHashMap<u64, (Reply, Instant)>,
    /// Answers received this round: `(id, code, info)`.
    pub answered: Vec<(u64, u16, String)>,
}

impl RelayDesk {
    /// Keeps `reply` until the answer to command `id` comes, or `deadline`; returns `id`.
    pub fn wait(&mut self, reply: Reply, deadline: Instant) -> u64 {
        self.next_id += 1;
        self.waiting.insert(self.next_id, (reply, deadline));
        self.next_id
    }

    /// Passes the answers received this round to their replies.
    pub fn deliver(&mut self) {
        for (id, code, info) in self.answered.drain(..) {
            if let Some((reply, _)) = self.waiting.remove(&id) {
                reply(code, info);
            }
        }
    }

    /// Replies 504 to every command whose deadline passed at `now`.
    pub fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((reply, _)) = self.waiting.remove(&id) {
                reply(
                    result_code::TIMED_OUT,
                    format!(
                        "no answer within {}",
                        avp_units::format_duration(RELAY_TIMEOUT)
                    ),
                );
            }
        }
    }
}
