//! What the data plane does with every accepted report: hand it to the store (when the node
//! stores reports, see [`crate::store`]), record it in the worker's fleet shard (through the
//! connection's latest-report cache on TCP) when something consumes the fleet view, and say
//! how to answer it.
//!
//! These are the [`ReportSink`]s the worker hands its sessions; they never see bytes, only the
//! reports the sessions decoded.

use crate::auth::WorkerVerifier;
use crate::fleet::{FleetShard, LatestReport};
use crate::relay::CommandQueue;
use crate::store::{Refusing, StoreIntake};
use avp_proto::auth::{AuthFailure, Verifier};
use avp_proto::server::{Acceptance, AcceptedReport, FleetCommand, ReportSink};
use avp_proto::Codec;
use std::net::SocketAddr;

/// The sink of one UDP datagram, and what the sink of a TCP connection shares with it: where
/// an accepted report goes.
pub struct Intake<'a> {
    /// The worker's fleet shard, unless nothing consumes the fleet view.
    pub shard: Option<&'a mut FleetShard>,
    /// The peer.
    pub peer: SocketAddr,
    /// Wall-clock time of the input, ms since the Unix epoch.
    pub received_ms: u64,
    /// The worker's store, when the node stores reports.
    pub store: Option<&'a mut StoreIntake>,
    /// The worker's agent keys, when reports must be signed.
    pub verifier: Option<&'a mut WorkerVerifier>,
}

impl Intake<'_> {
    /// Hands `r` (in `codec`'s wire form) to the store when the node stores reports: how to
    /// answer it, and the shard to record it in unless it is refused.
    #[inline(always)]
    fn take(
        &mut self,
        r: &AcceptedReport<'_>,
        codec: Codec,
        refusing: Option<&mut Refusing>,
    ) -> (Acceptance, Option<&mut FleetShard>) {
        let decision = match self.store.as_deref_mut() {
            Some(store) => store.take(r, codec, self.peer, self.received_ms, refusing),
            None => Acceptance::Ack,
        };
        let shard = match decision {
            Acceptance::Refuse(_) => None,
            _ => self.shard.as_deref_mut(),
        };
        (decision, shard)
    }
}

impl ReportSink for Intake<'_> {
    #[inline(always)]
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        self.verifier.as_deref_mut().map(|v| v as &mut dyn Verifier)
    }

    fn on_unauthorized(&mut self, failure: AuthFailure) {
        if let Some(v) = self.verifier.as_deref_mut() {
            v.log_failure(self.peer, failure);
        }
    }

    #[inline(always)]
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        let (peer, received_ms) = (self.peer, self.received_ms);
        let (decision, shard) = self.take(r, Codec::Binary, None);
        if let Some(shard) = shard {
            shard.record(peer, &r.report, received_ms);
        }
        decision
    }
}

/// The sink of one TCP connection.
pub struct ConnIntake<'a> {
    /// Where its accepted reports go.
    pub intake: Intake<'a>,
    /// The connection's cache of its own node's latest report.
    pub latest: &'a mut LatestReport,
    /// Set when the cache now holds a report to flush and held none before.
    pub became_dirty: bool,
    /// The connection's wire form.
    pub codec: Codec,
    /// The connection's sticky refusal.
    pub refusing: &'a mut Refusing,
    /// The connection's token in its worker's poll.
    pub token: usize,
    /// Where a terminal's fleet commands go (the management plane only).
    pub commands: Option<&'a mut CommandQueue>,
    /// Where an agent's answers to relayed commands go (the data plane).
    pub answered: Option<&'a mut Vec<(u64, u16, String)>>,
}

impl ReportSink for ConnIntake<'_> {
    #[inline(always)]
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        self.intake.verifier()
    }

    fn on_unauthorized(&mut self, failure: AuthFailure) {
        self.intake.on_unauthorized(failure);
    }

    #[inline(always)]
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        let (peer, received_ms) = (self.intake.peer, self.intake.received_ms);
        let (decision, shard) = self.intake.take(r, self.codec, Some(self.refusing));
        if let Some(shard) = shard {
            self.became_dirty |= self.latest.record(shard, peer, &r.report, received_ms);
        }
        decision
    }

    fn on_fleet_command(&mut self, command: &FleetCommand<'_>) -> Option<u64> {
        let queue = self.commands.as_deref_mut()?;
        Some(queue.take(self.token, command))
    }

    fn on_command_result(&mut self, id: u64, code: u16, info: Option<&str>) {
        if let Some(answered) = self.answered.as_deref_mut() {
            answered.push((id, code, info.unwrap_or_default().to_string()));
        }
    }
}
