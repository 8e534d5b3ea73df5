//! What the loadgen sends: reports whose CPU and memory figures wander like a real host's, and
//! the PAUSE and RESUME of the mix. Encoding is the protocol session's
//! ([`avp_proto::PeerSession::send_reports`]); this module only says what to send.

use avp_proto::peer::{Request, RequestKind};
use avp_proto::Report;
use std::borrow::Cow;
use std::fmt::Write as _;

/// PAUSE length sent in the mix, in seconds.
pub const PAUSE_SECS: u64 = 1;

/// Reports between two CPU/MEM samples of a connection's simulated host.
pub const SAMPLE_EVERY: u32 = 64;

/// Which attributes a STAT_REPORT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFields {
    /// CPU, MEM, TIMESTAMP, NODE_ID, INSTANCE and SEQUENCE, as a real agent sends (48 bytes
    /// with the default names).
    #[default]
    Full,
    /// CPU, MEM and SEQUENCE only: the 15-byte minimal report, for calibrating the loadgen
    /// against a C client that sends the same bytes.
    Minimal,
}

impl ReportFields {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ReportFields::Full => "full",
            ReportFields::Minimal => "minimal",
        }
    }
}

/// The NODE_IDs reports carry: `<prefix>-<i>`, where `i` is the connection's number in at
/// least five digits (`loadgen-00042`, the names the C yardstick clients give, so that both
/// send reports of the same size), or
/// with `cycle: Some(K)` one of K names, the next one at each report, so that a plain load
/// run at a rate of K reports a second has each of K nodes report once a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNames {
    /// The part before the number (`--node-prefix`).
    pub prefix: String,
    /// How many distinct NODE_IDs to cycle through (`--node-ids`), if not one per connection.
    pub cycle: Option<usize>,
}

impl Default for NodeNames {
    fn default() -> Self {
        NodeNames {
            prefix: "loadgen".into(),
            cycle: None,
        }
    }
}

/// The simulated host of one connection: its node name and a plausible CPU/MEM random walk.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    fields: ReportFields,
    prefix: String,
    /// `(K, stride, next)`: with `--node-ids K`, the next report is named `next`, then
    /// `next + stride` (the number of connections), modulo K.
    cycle: Option<(usize, usize, usize)>,
    node_id: String,
    /// The INSTANCE of full reports: one per connection and run, as an agent has one per
    /// installation, so that a store keeps every run's reports (they are not resends).
    instance: u64,
    rng: u64,
    cpu: u8,
    mem: u8,
}

impl RequestWriter {
    /// The host of connection number `index` of `connections`, sending reports with `fields`
    /// named by `names`.
    pub fn new(fields: ReportFields, names: &NodeNames, index: usize, connections: usize) -> Self {
        RequestWriter {
            fields,
            prefix: names.prefix.clone(),
            cycle: names
                .cycle
                .map(|k| (k.max(1), connections.max(1), index % k.max(1))),
            node_id: format!("{}-{index:05}", names.prefix),
            instance: new_instance(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            cpu: 20 + (index % 50) as u8,
            mem: 40 + (index % 30) as u8,
        }
    }

    /// The report of the current sample, stamped `epoch_ms`; a report sent with SEQUENCE
    /// `seq` at a multiple of [`SAMPLE_EVERY`] takes a new sample first, and with
    /// `--node-ids` every report takes the next name. The caller sends runs of one report
    /// ([`RequestWriter::run_length`]).
    pub fn report(&mut self, seq: u32, epoch_ms: u64) -> Report<'_> {
        if seq.is_multiple_of(SAMPLE_EVERY) {
            self.wander();
        }
        if let Some((k, stride, next)) = &mut self.cycle {
            self.node_id.clear();
            let _ = write!(self.node_id, "{}-{next:05}", self.prefix);
            *next = (*next + *stride) % *k;
        }
        let full = self.fields == ReportFields::Full;
        Report {
            fleet: None,
            cpu_percent: self.cpu,
            mem_percent: self.mem,
            timestamp_ms: full.then_some(epoch_ms),
            node_id: full.then_some(Cow::Borrowed(self.node_id.as_str())),
            instance: full.then_some(self.instance),
        }
    }

    /// How many of `wanted` reports starting at SEQUENCE `seq` are one report repeated: those
    /// of one sample, or one with `--node-ids` (each report has its own name).
    pub fn run_length(&self, seq: u32, wanted: u32) -> u32 {
        if self.cycle.is_some() {
            return wanted.min(1);
        }
        wanted.min(SAMPLE_EVERY - seq % SAMPLE_EVERY)
    }

    /// Moves CPU by -3..=+3 points within 1..=99 and memory by -1..=+1 within 5..=95.
    fn wander(&mut self) {
        // xorshift64: cheap, deterministic per connection.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let step = |v: u8, r: u64, span: u64, lo: u8, hi: u8| {
            let d = (r % (2 * span + 1)) as i16 - span as i16;
            (i16::from(v) + d).clamp(i16::from(lo), i16::from(hi)) as u8
        };
        self.cpu = step(self.cpu, self.rng, 3, 1, 99);
        self.mem = step(self.mem, self.rng >> 32, 1, 5, 95);
    }
}

/// The request of a command kind of the mix; `None` for reports, which
/// [`RequestWriter::report`] builds.
pub fn command(kind: RequestKind) -> Option<Request<'static>> {
    match kind {
        RequestKind::Pause => Some(Request::Pause {
            target: None,
            duration_secs: PAUSE_SECS,
        }),
        RequestKind::Resume => Some(Request::Resume { target: None }),
        RequestKind::Report => None,
    }
}

/// A new INSTANCE for one connection of one run: random per process, and never the same
/// twice in it (a sweep's steps, each a run of its own, start their SEQUENCEs again, so they
/// must not look like resends to a store or to the replay rule); eight bytes wide like a
/// random agent's.
fn new_instance() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| RandomState::new().hash_one("avp-loadgen"));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (base ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1 << 63
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::peer::{PeerSession, Transport};
    use avp_proto::{Codec, Decoded, Message, Status};
    use std::time::{Duration, Instant};

    fn decode_all(codec: Codec, mut buf: &[u8]) -> Vec<Message<'static>> {
        let mut all = Vec::new();
        while !buf.is_empty() {
            match codec.decode(buf) {
                Ok(Status::Complete((Decoded::Message(m), used))) => {
                    all.push(m.into_owned());
                    buf = &buf[used..];
                }
                other => panic!("not a valid message: {other:?}"),
            }
        }
        all
    }

    #[test]
    fn full_reports_carry_every_field_and_minimal_ones_match_the_c_client() {
        for (fields, len) in [(ReportFields::Full, 48), (ReportFields::Minimal, 15)] {
            let mut w = RequestWriter::new(fields, &NodeNames::default(), 7, 10);
            let mut s: PeerSession =
                PeerSession::new(Codec::Binary, Transport::Stream, Duration::from_secs(1));
            let mut out = Vec::new();
            let report = w.report(9, 1_700_000_000_000).into_owned();
            s.send_reports(Instant::now(), &report, 3, (), &mut out)
                .unwrap();
            assert_eq!(out.len(), 3 * len, "{fields:?}");
            let msgs = decode_all(Codec::Binary, &out);
            assert_eq!(
                msgs.iter().map(|m| m.sequence).collect::<Vec<_>>(),
                [Some(0), Some(1), Some(2)]
            );
            if fields == ReportFields::Full {
                assert_eq!(report.node_id.as_deref(), Some("loadgen-00007"));
                assert_eq!(report.timestamp_ms, Some(1_700_000_000_000));
                let other = RequestWriter::new(fields, &NodeNames::default(), 8, 10)
                    .report(9, 0)
                    .instance;
                let next_run = RequestWriter::new(fields, &NodeNames::default(), 7, 10)
                    .report(9, 0)
                    .instance;
                assert!(report.instance.is_some() && other.is_some());
                assert_ne!(report.instance, other, "one INSTANCE per connection");
                assert_ne!(report.instance, next_run, "and per run");
            } else {
                assert_eq!(&out[..3], &[0x00, 0x0F, 0x03]);
            }
        }
    }

    #[test]
    fn load_values_wander_within_bounds_once_per_sample() {
        let mut w = RequestWriter::new(ReportFields::Full, &NodeNames::default(), 0, 1);
        let mut seen = std::collections::HashSet::new();
        for seq in 0..64_000u32 {
            let r = w.report(seq, 0);
            assert!((1..=99).contains(&r.cpu_percent) && (5..=95).contains(&r.mem_percent));
            seen.insert(r.cpu_percent);
        }
        assert!(seen.len() > 10, "cpu moves: {seen:?}");
        assert_eq!(w.run_length(60, 100), 4);
        assert_eq!(w.run_length(64, 10), 10);
        assert_eq!(w.run_length(u32::MAX, 10), 1);
    }

    #[test]
    fn node_ids_cycle_over_every_name_across_the_connections() {
        let names = NodeNames {
            prefix: "t".into(),
            cycle: Some(5),
        };
        let mut seen = std::collections::BTreeSet::new();
        for conn in 0..2 {
            let mut w = RequestWriter::new(ReportFields::Full, &names, conn, 2);
            assert_eq!(w.run_length(0, 10), 1, "each report has its own name");
            for seq in 0..3 {
                seen.insert(w.report(seq, 0).node_id.unwrap().into_owned());
            }
        }
        // Connection 0 names t-00000, t-00002, t-00004; connection 1 t-00001, t-00003, t-00000.
        let want: std::collections::BTreeSet<String> =
            (0..5).map(|i| format!("t-{i:05}")).collect();
        assert_eq!(seen, want);
        let plain = RequestWriter::new(ReportFields::Full, &NodeNames::default(), 3, 10)
            .report(1, 0)
            .node_id
            .unwrap()
            .into_owned();
        assert_eq!(plain, "loadgen-00003");
    }
}
