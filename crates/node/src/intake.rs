//! What the data plane does with every accepted report: record it in the worker's fleet shard
//! (through the connection's latest-report cache on TCP) when something consumes the fleet
//! view, and acknowledge it.
//!
//! These are the [`ReportSink`]s the worker hands its sessions; they never see bytes, only the
//! reports the sessions decoded.

use crate::fleet::{FleetShard, LatestReport};
use avp_proto::server::{Acceptance, AcceptedReport, ReportSink};
use std::net::SocketAddr;

/// The sink of one TCP connection.
pub struct ConnIntake<'a> {
    /// The worker's fleet shard, unless nothing consumes the fleet view.
    pub shard: Option<&'a mut FleetShard>,
    /// The connection's cache of its own node's latest report.
    pub latest: &'a mut LatestReport,
    /// The connection's peer.
    pub peer: SocketAddr,
    /// Wall-clock time of the input, ms since the Unix epoch.
    pub received_ms: u64,
    /// Set when the cache now holds a report to flush and held none before.
    pub became_dirty: bool,
}

impl ReportSink for ConnIntake<'_> {
    #[inline(always)]
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        if let Some(shard) = self.shard.as_deref_mut() {
            self.became_dirty |= self
                .latest
                .record(shard, self.peer, &r.report, self.received_ms);
        }
        Acceptance::Ack
    }
}

/// The sink of one UDP datagram.
pub struct DatagramIntake<'a> {
    /// The worker's fleet shard, unless nothing consumes the fleet view.
    pub shard: Option<&'a mut FleetShard>,
    /// The datagram's source.
    pub peer: SocketAddr,
    /// Wall-clock time of the input, ms since the Unix epoch.
    pub received_ms: u64,
}

impl ReportSink for DatagramIntake<'_> {
    #[inline(always)]
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        if let Some(shard) = self.shard.as_deref_mut() {
            shard.record(self.peer, &r.report, self.received_ms);
        }
        Acceptance::Ack
    }
}
