//! The data plane's part of relaying commands: listing each agent's connection in the
//! [`AgentRegistry`], sending the relayed PAUSE or RESUME on it, and passing the agent's
//! answer (or its absence) back to whoever asked.

use super::Worker;
use crate::relay::{AgentRegistry, RelayDesk, RelayRequest, NOT_CONNECTED, RELAY_TIMEOUT};
use avp_proto::result_code;
use crossbeam_channel::Receiver;
use std::time::Instant;

/// A data-plane worker's side of relaying.
pub struct RelaySide {
    /// Requests for this worker's agents.
    pub requests: Receiver<RelayRequest>,
    /// Where this worker lists its agents' connections.
    pub registry: AgentRegistry,
    /// Commands waiting for their agents' answers.
    pub(super) desk: RelayDesk,
}

impl RelaySide {
    /// Where the agents' answers of this round go.
    pub(super) fn desk_answers(&mut self) -> &mut Vec<(u64, u16, String)> {
        &mut self.desk.answered
    }

    /// The relaying side of a worker fed by `requests`, listing its agents in `registry`.
    pub fn new(requests: Receiver<RelayRequest>, registry: AgentRegistry) -> RelaySide {
        RelaySide {
            requests,
            registry,
            desk: RelayDesk::default(),
        }
    }
}

impl Worker {
    /// Sends the relayed commands that arrived to their agents, and passes on the answers
    /// that came in.
    pub(super) fn serve_relays(&mut self, now: Instant, now_ms: u64) {
        let Some(side) = self.relay.as_mut() else {
            return;
        };
        side.desk.deliver();
        let requests: Vec<RelayRequest> = side.requests.try_iter().collect();
        for request in requests {
            let key = request.key;
            let speaks_for_it = matches!(
                self.conns.get(key),
                Some(Some(conn)) if conn.listed_node() == Some(&*request.node)
            );
            if !speaks_for_it {
                (request.reply)(result_code::NOT_FOUND, NOT_CONNECTED.into());
                continue;
            }
            let side = self.relay.as_mut().expect("checked above");
            let id = side.desk.wait(request.reply, now + RELAY_TIMEOUT);
            self.drive_one(key, now, now_ms, |_, conn, ctx| {
                if let Err(e) = conn.send_command(request.action, id, ctx) {
                    tracing::warn!(peer = %conn.peer(), "cannot relay a command: {e}");
                }
            });
        }
    }

    /// Lists the connections whose first report named their node (called each tick for the
    /// connections that received reports), and times out relayed commands.
    pub(super) fn list_agents(&mut self, keys: &[usize], now: Instant) {
        let Some(side) = self.relay.as_mut() else {
            return;
        };
        for &key in keys {
            if let Some(Some(conn)) = self.conns.get_mut(key) {
                if let Some(node) = conn.newly_named() {
                    side.registry.register(node.into(), self.id, key);
                }
            }
        }
        side.desk.expire(now);
    }

    /// Takes a closing connection out of the agent registry.
    pub(super) fn unlist_agent(&mut self, key: usize, node: Option<&str>) {
        if let (Some(side), Some(node)) = (self.relay.as_ref(), node) {
            side.registry.unregister(node, self.id, key);
        }
    }
}
