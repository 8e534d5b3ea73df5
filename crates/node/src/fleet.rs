//! The fleet view: the latest report of every reporting node.
//!
//! Workers record reports into a [`FleetShard`] of their own (no lock, no shared state) and
//! hand its contents to the management plane as a batch over a crossbeam channel; the
//! management plane merges batches into the [`FleetView`] ([`view`]) it pushes to terminals.

pub mod view;

pub use view::{FleetRules, FleetView, RowView};

use avp_proto::Report;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Latest known state of one reporting node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's NODE_ID, or its peer's IP address when it sent none (so that a reporter
    /// that reconnects from another port stays one node).
    pub node: String,
    /// CPU usage, percent.
    pub cpu_percent: u8,
    /// Memory usage, percent.
    pub mem_percent: u8,
    /// When the sample was taken (or received, if it carried no TIMESTAMP), ms since the epoch.
    pub timestamp_ms: u64,
    /// When a collector received it, ms since the epoch (to within a worker tick).
    pub received_ms: u64,
    /// The collector that received it, when another node did (through a shared store).
    pub collector: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_percent: u8,
    mem_percent: u8,
    timestamp_ms: u64,
    received_ms: u64,
}

impl Sample {
    fn of(report: &Report<'_>, received_ms: u64) -> Self {
        Sample {
            cpu_percent: report.cpu_percent,
            mem_percent: report.mem_percent,
            timestamp_ms: report.timestamp_ms.unwrap_or(received_ms),
            received_ms,
        }
    }

    fn into_report(self, node: String) -> NodeReport {
        NodeReport {
            node,
            cpu_percent: self.cpu_percent,
            mem_percent: self.mem_percent,
            timestamp_ms: self.timestamp_ms,
            received_ms: self.received_ms,
            collector: None,
        }
    }
}

/// One worker's reports since its last flush, keyed by NODE_ID or else by peer IP address.
#[derive(Debug)]
pub struct FleetShard {
    named: FxHashMap<Box<str>, Sample>,
    unnamed: FxHashMap<IpAddr, Sample>,
    max_nodes: usize,
    dropped: u64,
}

impl FleetShard {
    /// A shard that holds at most `max_nodes` distinct nodes between flushes.
    pub fn new(max_nodes: usize) -> Self {
        FleetShard {
            named: FxHashMap::default(),
            unnamed: FxHashMap::default(),
            max_nodes,
            dropped: 0,
        }
    }

    /// Holds at most `max_nodes` distinct nodes between flushes from now on.
    pub fn set_max_nodes(&mut self, max_nodes: usize) {
        self.max_nodes = max_nodes;
    }

    /// Records `report` from `peer`, received at `received_ms`; counted as dropped when the
    /// shard is full.
    ///
    /// Allocates only the first time a node is seen since the last flush.
    #[inline]
    pub fn record(&mut self, peer: SocketAddr, report: &Report<'_>, received_ms: u64) {
        let sample = Sample::of(report, received_ms);
        self.insert(report.node_id.as_deref(), peer, sample);
    }

    fn insert(&mut self, name: Option<&str>, peer: SocketAddr, sample: Sample) {
        let full = self.named.len() + self.unnamed.len() >= self.max_nodes;
        let slot = match name {
            Some(name) => match self.named.get_mut(name) {
                Some(slot) => Some(slot),
                None if full => None,
                None => Some(self.named.entry(name.into()).or_insert(sample)),
            },
            None if full && !self.unnamed.contains_key(&peer.ip()) => None,
            None => Some(self.unnamed.entry(peer.ip()).or_insert(sample)),
        };
        match slot {
            Some(slot) => *slot = sample,
            None => self.dropped += 1,
        }
    }

    /// True when nothing was recorded since the last flush.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.unnamed.is_empty()
    }

    /// Reports that found the shard full since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Takes every recorded node, leaving the shard empty.
    pub fn drain(&mut self) -> Vec<NodeReport> {
        let named = self
            .named
            .drain()
            .map(|(name, s)| s.into_report(name.into()));
        let unnamed = self
            .unnamed
            .drain()
            .map(|(ip, s)| s.into_report(ip.to_string()));
        named.chain(unnamed).collect()
    }
}

/// The latest report of the node a connection speaks for, kept on the connection so that the
/// per-report path neither hashes nor allocates; the worker flushes it into its shard each tick.
///
/// A connection speaks for the node named in its first report (or, if that report has no
/// NODE_ID, for its peer address). Reports for any other node go straight to the shard.
#[derive(Debug, Default)]
pub struct LatestReport {
    /// The connection's own node, when its first report named one.
    node: Option<Box<str>>,
    timestamp_ms: u64,
    cpu_percent: u8,
    mem_percent: u8,
    state: u8,
}

/// A state bit of a `LatestReport`: the connection's first report was seen (so `node` is decided).
const DECIDED: u8 = 1;
/// A state bit of a `LatestReport`: it holds a report not flushed yet.
const UNFLUSHED: u8 = 2;

impl LatestReport {
    /// Records `report`, received at `received_ms` on the connection from `peer`. Returns true
    /// when the connection now holds a report to flush and held none before.
    #[inline(always)]
    pub fn record(
        &mut self,
        shard: &mut FleetShard,
        peer: SocketAddr,
        report: &Report<'_>,
        received_ms: u64,
    ) -> bool {
        let name = report.node_id.as_deref();
        if self.state & DECIDED == 0 {
            self.node = name.map(Into::into);
            self.state |= DECIDED;
        }
        if self.node.as_deref() != name {
            shard.record(peer, report, received_ms);
            return false;
        }
        let sample = Sample::of(report, received_ms);
        self.timestamp_ms = sample.timestamp_ms;
        self.cpu_percent = sample.cpu_percent;
        self.mem_percent = sample.mem_percent;
        let was_clean = self.state & UNFLUSHED == 0;
        self.state |= UNFLUSHED;
        was_clean
    }

    /// The node the connection speaks for, once its first report named one.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Moves the latest unflushed report into `shard`, as received at `now_ms` (the cache
    /// keeps no receive time of its own: it is flushed every worker tick).
    pub fn flush(&mut self, shard: &mut FleetShard, peer: SocketAddr, now_ms: u64) {
        if self.state & UNFLUSHED != 0 {
            self.state &= !UNFLUSHED;
            let sample = Sample {
                cpu_percent: self.cpu_percent,
                mem_percent: self.mem_percent,
                timestamp_ms: self.timestamp_ms,
                received_ms: now_ms,
            };
            shard.insert(self.node.as_deref(), peer, sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: Option<&str>, cpu: u8) -> Report<'_> {
        Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: 50,
            timestamp_ms: None,
            node_id: node.map(Into::into),
            instance: None,
        }
    }

    #[test]
    fn shard_keeps_latest_per_node_and_falls_back_to_peer() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut shard = FleetShard::new(10);
        shard.record(peer, &report(Some("a"), 1), 7);
        shard.record(peer, &report(Some("a"), 2), 8);
        shard.record(peer, &report(None, 3), 9);
        let mut nodes = shard.drain();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (nodes[0].node.as_str(), nodes[0].cpu_percent),
            ("10.0.0.1", 3)
        );
        assert_eq!(
            (
                nodes[1].node.as_str(),
                nodes[1].cpu_percent,
                nodes[1].timestamp_ms
            ),
            ("a", 2, 8)
        );
        assert!(shard.is_empty());
    }

    #[test]
    fn the_shard_is_bounded() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut shard = FleetShard::new(1);
        shard.record(peer, &report(Some("a"), 1), 0);
        shard.record(peer, &report(Some("b"), 1), 0);
        shard.record(peer, &report(Some("a"), 9), 0);
        assert_eq!(shard.take_dropped(), 1);
        let nodes = shard.drain();
        assert_eq!((nodes.len(), nodes[0].cpu_percent), (1, 9));
    }

    #[test]
    fn connection_cache_keeps_its_own_node_and_passes_others_through() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut shard = FleetShard::new(10);
        let mut conn = LatestReport::default();
        assert!(
            conn.record(&mut shard, peer, &report(Some("own"), 1), 0),
            "now dirty"
        );
        assert!(!conn.record(&mut shard, peer, &report(Some("other"), 2), 0));
        assert!(
            !conn.record(&mut shard, peer, &report(Some("own"), 3), 0),
            "already dirty"
        );
        assert_eq!(
            shard.drain().len(),
            1,
            "only the other node went to the shard"
        );
        conn.flush(&mut shard, peer, 0);
        conn.flush(&mut shard, peer, 0);
        let nodes = shard.drain();
        assert_eq!(
            (nodes.len(), nodes[0].node.as_str(), nodes[0].cpu_percent),
            (1, "own", 3)
        );
        assert!(
            conn.record(&mut shard, peer, &report(Some("own"), 4), 0),
            "dirty again after a flush"
        );
    }
}
