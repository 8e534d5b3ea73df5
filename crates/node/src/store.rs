//! The data plane's side of the store: what a worker does with each accepted report when the
//! node stores them, and the rule that keeps resends stored once.
//!
//! A report goes into the worker's batch for the store ([`avpd_store::WorkerStore`]). With
//! `--ack-after stored` its acknowledgement is held until the store confirms it; with
//! `received` it is acknowledged at once. When the store buffer is full the report is refused
//! (503): the agent keeps it and sends it again. A refusal is sticky for a report with an
//! INSTANCE: every later report of that connection is refused too, until the refused one comes
//! again, so that a node never stores SEQUENCE N+1 of an instance before N, which the store's
//! resend check (the highest SEQUENCE stored) relies on.

use crate::fleet::NodeReport;
use crate::loglimit::CountedLine;
use avp_proto::server::{Acceptance, AcceptedReport, Refusal};
use avp_proto::{Body, Codec, Message};
use avpd_store::{StoreConfig, WorkerStore};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A worker warns about the reports it refused for a full store buffer at most this often.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Where a node stores its reports, and what an acknowledgement waits for.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The store's servers, stream and bucket.
    pub config: StoreConfig,
    /// When acknowledgements go out.
    pub ack_after: AckAfter,
}

/// When a report's acknowledgement is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckAfter {
    /// Once the store has confirmed it: an ack means "stored".
    Stored,
    /// At once: an ack means "received and queued for the store".
    Received,
}

/// A worker's link to the store, and how it answers.
pub struct StoreIntake {
    /// The worker's batch and confirmations.
    pub link: WorkerStore,
    /// When acknowledgements go out.
    pub ack_after: AckAfter,
    /// Reports refused because the store buffer was full, since [`StoreIntake::take_refused`].
    refused: u64,
    /// When to warn about the refusals.
    refusal_log: CountedLine,
    /// The binary encoding of a report received in the JSON form.
    scratch: Vec<u8>,
}

/// The first report a connection refused, which must come again before any later one is
/// taken: its (INSTANCE, SEQUENCE).
pub type Refusing = Option<Box<(u64, u64)>>;

impl StoreIntake {
    /// The intake of a worker.
    pub fn new(link: WorkerStore, ack_after: AckAfter) -> StoreIntake {
        StoreIntake {
            link,
            ack_after,
            refused: 0,
            refusal_log: CountedLine::new(REFUSAL_LOG_EVERY),
            scratch: Vec::new(),
        }
    }

    /// The reports refused with 503 since the last call; warns about them, at most once per
    /// [`REFUSAL_LOG_EVERY`] (call it on every tick, so that the last ones are told too).
    pub fn take_refused(&mut self, now: Instant) -> u64 {
        let refused = std::mem::take(&mut self.refused);
        if let Some(untold) = self.refusal_log.note(refused, now) {
            tracing::warn!(
                "store: buffer full (--store-buffer): {untold} reports answered 503 since the \
                 last such line; their senders resend them"
            );
        }
        refused
    }

    /// Takes report `r` (received in `codec` from `peer` at `received_ms`) for the store and
    /// says how to answer it. On a stream, `refusing` is the connection's sticky refusal and
    /// the report's (INSTANCE, SEQUENCE) makes resends stored once; a datagram (`refusing`
    /// `None`) is stored as received, since datagrams keep no order.
    #[inline]
    pub fn take(
        &mut self,
        r: &AcceptedReport<'_>,
        codec: Codec,
        peer: SocketAddr,
        received_ms: u64,
        refusing: Option<&mut Refusing>,
    ) -> Acceptance {
        let Some(refusing) = refusing else {
            return self.add(r, codec, peer, received_ms, None).0;
        };
        let identity = r.report.instance.zip(r.sequence);
        if let Some(first) = refusing.as_deref() {
            if identity != Some(*first) {
                self.refused += 1;
                return Acceptance::Refuse(Refusal::Overloaded);
            }
            *refusing = None;
        }
        let (decision, full) = self.add(r, codec, peer, received_ms, identity);
        if let (true, Some(id)) = (full, identity) {
            *refusing = Some(Box::new(id));
        }
        decision
    }

    /// Hands a worker's fleet batch to the store, for the bucket of latest reports.
    pub fn publish_latest(&self, batch: &[NodeReport]) {
        self.link.publish_latest(batch.iter().map(|r| {
            (
                r.node.clone(),
                r.cpu_percent,
                r.mem_percent,
                r.timestamp_ms,
                r.received_ms,
            )
        }));
    }

    /// Adds `r` to the batch: the answer, and whether the buffer was full.
    fn add(
        &mut self,
        r: &AcceptedReport<'_>,
        codec: Codec,
        peer: SocketAddr,
        received_ms: u64,
        identity: Option<(u64, u64)>,
    ) -> (Acceptance, bool) {
        let frame = match codec {
            Codec::Binary => r.frame,
            Codec::Json => {
                self.scratch.clear();
                let msg = Message {
                    sequence: r.sequence,
                    body: Body::StatReport(r.report.clone()),
                };
                if msg.encode(&mut self.scratch).is_err() {
                    // A report the session accepted always encodes.
                    return (Acceptance::Ack, false);
                }
                &self.scratch
            }
        };
        let node = match r.report.node_id.as_deref() {
            Some(n) => std::borrow::Cow::Borrowed(n),
            None => std::borrow::Cow::Owned(unnamed_node(peer)),
        };
        match self.link.add(&node, identity, received_ms, peer, frame) {
            Some(ticket) => match self.ack_after {
                AckAfter::Stored => (Acceptance::Hold(ticket), false),
                AckAfter::Received => (Acceptance::Ack, false),
            },
            None => {
                self.refused += 1;
                (Acceptance::Refuse(Refusal::Overloaded), true)
            }
        }
    }
}

/// The node id under which a report without NODE_ID is kept: its sender's IP address, so that
/// a reporter that reconnects from another port stays one node.
fn unnamed_node(peer: SocketAddr) -> String {
    peer.ip().to_string()
}
