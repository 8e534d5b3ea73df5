//! Settings a running node can change without a restart ([`crate::Node::reconfigure`]), and
//! how they reach its threads.
//!
//! The node keeps them in one shared cell with a generation number. Each thread looks at the
//! number once per tick, never per message, and when it moved copies the settings and applies
//! its part: data-plane workers their connection bound, output bound, share of the memory
//! budget, fleet bound, TIMESTAMP window and session timeouts; the management plane its push
//! interval, fleet rules, unacknowledged-push bound and timeouts; UDP workers their source
//! allow-list, fleet bound and TIMESTAMP window; the status reporter its interval and the
//! budget it reports against. A session takes its timeouts and push bound when it is
//! accepted: connections already open keep theirs.

use crate::allow::Cidr;
use crate::fleet::FleetRules;
use crate::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The settings of a node that change while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Most data-plane connections open at once ([`Config::max_connections`]).
    pub max_connections: usize,
    /// Data-plane connections silent for this long are closed ([`Config::idle_timeout`]).
    pub idle_timeout: Duration,
    /// A frame must be complete this long after its first bytes, on both planes.
    pub frame_timeout: Duration,
    /// Terminals that leave pushes unacknowledged this long are closed.
    pub ack_timeout: Duration,
    /// Peers whose unsent output stays at its bound this long are closed, on both planes.
    pub slow_peer_timeout: Duration,
    /// Time between two pushes of the fleet view.
    pub report_interval: Duration,
    /// Time between two status log lines.
    pub status_interval: Duration,
    /// Unsent output at which a connection stops being read, on both planes
    /// ([`Config::max_output`]).
    pub max_output: usize,
    /// Bytes of buffers all connections may hold together ([`Config::max_buffer_memory`]).
    pub max_buffer_memory: usize,
    /// Unacknowledged pushes at which a terminal is not pushed more until it catches up.
    pub max_unacked: usize,
    /// How the fleet view's rows age, and how many nodes it holds.
    pub fleet: FleetRules,
    /// How far a signed report's TIMESTAMP may be from the node's clock; `None` when the
    /// node takes reports unsigned.
    pub auth_window: Option<Duration>,
    /// The only sources UDP datagrams are taken from; empty takes them from anywhere.
    pub udp_allow: Arc<[Cidr]>,
}

impl Live {
    /// The live part of `config`.
    pub fn of(config: &Config) -> Live {
        Live {
            max_connections: config.max_connections,
            idle_timeout: config.idle_timeout,
            frame_timeout: config.frame_timeout,
            ack_timeout: config.admin.ack_timeout,
            slow_peer_timeout: config.slow_peer_timeout,
            report_interval: config.admin.report_interval,
            status_interval: config.status_interval,
            max_output: config.max_output,
            max_buffer_memory: config.max_buffer_memory,
            max_unacked: config.admin.max_unacked,
            fleet: config.admin.fleet,
            auth_window: config.agent_keys.as_ref().map(|k| k.window()),
            udp_allow: config.udp_allow.as_slice().into(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    generation: AtomicU64,
    live: Mutex<Live>,
}

/// A thread's view of the live settings: it says when they changed. Clones share the
/// settings and each keeps its own note of what it has seen.
#[derive(Debug, Clone)]
pub struct LiveWatch {
    shared: Arc<Shared>,
    seen: u64,
}

impl LiveWatch {
    /// A watch on `live`, which it has seen.
    pub(crate) fn new(live: Live) -> LiveWatch {
        LiveWatch {
            shared: Arc::new(Shared {
                generation: AtomicU64::new(0),
                live: Mutex::new(live),
            }),
            seen: 0,
        }
    }

    /// Publishes `live` to every watch sharing this one's settings.
    pub(crate) fn publish(&self, live: Live) {
        *self.shared.live.lock().unwrap_or_else(|e| e.into_inner()) = live;
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// The settings, when they changed since this watch last returned them.
    pub(crate) fn changed(&mut self) -> Option<Live> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.seen {
            return None;
        }
        self.seen = generation;
        Some(
            self.shared
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_watch_sees_a_change_once() {
        let before = Live::of(&Config::default());
        let node = LiveWatch::new(before.clone());
        let (mut a, mut b) = (node.clone(), node.clone());
        assert_eq!(a.changed(), None, "nothing changed yet");
        let after = Live {
            max_connections: 1,
            ..before.clone()
        };
        node.publish(after.clone());
        assert_eq!(a.changed(), Some(after.clone()));
        assert_eq!(a.changed(), None, "seen already");
        assert_eq!(b.changed(), Some(after), "each watch sees it");
    }
}
