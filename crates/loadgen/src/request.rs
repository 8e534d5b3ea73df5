//! What the loadgen sends: the request kinds of the mix and their encoding through avpd's codec.
//!
//! Reports carry SEQUENCE, NODE_ID, TIMESTAMP and CPU/MEM values that wander like a real
//! host's; a PAUSE always carries a short DURATION ([`PAUSE_SECS`]) so the mix's resumes follow
//! it. Encoding appends to the connection's output buffer and allocates only when that grows.

use avp_proto::{report_frame, Body, Codec, Message, MessageType, Report, MINIMAL_REPORT_LEN};
use std::borrow::Cow;

/// PAUSE length sent in the mix, in seconds.
pub const PAUSE_SECS: u64 = 1;

/// Reports between two CPU/MEM samples of a connection's simulated host.
const SAMPLE_EVERY: u32 = 64;

/// The request kinds a mix can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RequestKind {
    /// STAT_REPORT, answered by STAT_REPORT_ACK.
    Report = 0,
    /// PAUSE with DURATION, answered by COMMAND_RESPONSE 200.
    Pause = 1,
    /// RESUME, answered by COMMAND_RESPONSE 200.
    Resume = 2,
}

impl RequestKind {
    /// Every kind, indexed by its discriminant.
    pub const ALL: [RequestKind; 3] =
        [RequestKind::Report, RequestKind::Pause, RequestKind::Resume];

    /// The name used in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Report => "report",
            RequestKind::Pause => "pause",
            RequestKind::Resume => "resume",
        }
    }

    /// The kind a `--mix` name stands for.
    pub fn from_name(name: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The message type that answers this kind.
    pub fn answer_type(self) -> MessageType {
        match self {
            RequestKind::Report => MessageType::StatReportAck,
            RequestKind::Pause | RequestKind::Resume => MessageType::CommandResponse,
        }
    }
}

/// Which attributes a STAT_REPORT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFields {
    /// CPU, MEM, SEQUENCE, TIMESTAMP and NODE_ID, as a real agent sends (about 40 bytes).
    #[default]
    Full,
    /// CPU, MEM and SEQUENCE only: the 15-byte report of `limit_client.c`, for calibrating the
    /// loadgen against it with the same bytes on the wire.
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

/// A canonical minimal report as the two overlapping 8-byte words it is written with.
#[derive(Debug, Clone, Copy)]
struct MinimalWords {
    /// Bytes 0..8 of the frame.
    head: [u8; 8],
    /// Bytes 7..11 of the frame, the part of the second word before SEQUENCE.
    tail_prefix: [u8; 4],
}

impl MinimalWords {
    #[inline(always)]
    fn new(frame: [u8; MINIMAL_REPORT_LEN]) -> Self {
        let [h0, h1, h2, h3, h4, h5, h6, h7, t0, t1, t2, ..] = frame;
        MinimalWords {
            head: [h0, h1, h2, h3, h4, h5, h6, h7],
            tail_prefix: [h7, t0, t1, t2],
        }
    }

    /// Bytes 7..15 of the frame with SEQUENCE `seq`.
    #[inline(always)]
    fn tail(&self, seq: u32) -> [u8; 8] {
        let [p0, p1, p2, p3] = self.tail_prefix;
        let [s0, s1, s2, s3] = seq.to_be_bytes();
        [p0, p1, p2, p3, s0, s1, s2, s3]
    }
}

/// Builds the requests of one connection: its node name and a plausible CPU/MEM random walk.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    codec: Codec,
    fields: ReportFields,
    node_id: String,
    rng: u64,
    cpu: u8,
    mem: u8,
}

impl RequestWriter {
    /// A writer for connection number `index`, speaking `codec`, sending reports with
    /// `fields`.
    pub fn new(codec: Codec, fields: ReportFields, index: usize) -> Self {
        RequestWriter {
            codec,
            fields,
            node_id: format!("loadgen-{index:05}"),
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            cpu: 20 + (index % 50) as u8,
            mem: 40 + (index % 30) as u8,
        }
    }

    /// Appends one request of `kind` with `seq` to `out`; `epoch_ms` is the report's TIMESTAMP.
    /// Returns the bytes written.
    pub fn write(
        &mut self,
        kind: RequestKind,
        seq: u32,
        epoch_ms: u64,
        out: &mut Vec<u8>,
    ) -> usize {
        self.write_run(kind, seq, 1, epoch_ms, out)
    }

    /// Appends `n` requests of `kind` with SEQUENCE `first_seq`, `first_seq + 1`... to `out`;
    /// `epoch_ms` is the reports' TIMESTAMP. Returns the bytes written.
    ///
    /// Minimal binary reports are written as canonical frames in one pass (exactly what the
    /// codec would encode); everything else goes through the codec.
    #[inline(always)]
    pub fn write_run(
        &mut self,
        kind: RequestKind,
        first_seq: u32,
        n: usize,
        epoch_ms: u64,
        out: &mut Vec<u8>,
    ) -> usize {
        let start = out.len();
        let report = kind == RequestKind::Report;
        if report && self.fields == ReportFields::Minimal && self.codec == Codec::Binary {
            out.resize(start + n * MINIMAL_REPORT_LEN, 0);
            // The frame is built again only when a new sample is taken; in between, only its
            // SEQUENCE (the last four bytes) changes. Each frame is written as two overlapping
            // 8-byte words: bytes 0..8, fixed between samples, and bytes 7..15, whose last four
            // are SEQUENCE.
            let mut words = MinimalWords::new(self.minimal_report(first_seq));
            let seqs = (0..).map(|i| first_seq.wrapping_add(i));
            for (frame, seq) in out[start..].chunks_exact_mut(MINIMAL_REPORT_LEN).zip(seqs) {
                if seq % SAMPLE_EVERY == 0 {
                    self.wander();
                    words = MinimalWords::new(self.minimal_report(seq));
                }
                frame[..8].copy_from_slice(&words.head);
                frame[7..].copy_from_slice(&words.tail(seq));
            }
        } else {
            for seq in (0..n).map(|i| first_seq.wrapping_add(i as u32)) {
                if report {
                    self.sample(seq);
                }
                self.encode(kind, seq, epoch_ms, out);
            }
        }
        out.len() - start
    }

    /// A host's load moves slowly: a new CPU/MEM sample every [`SAMPLE_EVERY`] reports.
    #[inline(always)]
    fn sample(&mut self, seq: u32) {
        if seq % SAMPLE_EVERY == 0 {
            self.wander();
        }
    }

    /// The canonical minimal report of the current sample with `seq`.
    #[inline(always)]
    fn minimal_report(&self, seq: u32) -> [u8; MINIMAL_REPORT_LEN] {
        report_frame(self.cpu, self.mem, seq)
            .expect("the random walk keeps CPU and MEM within 1..=99")
    }

    /// One request through the codec, for every request without a canonical frame.
    #[inline(never)]
    fn encode(&self, kind: RequestKind, seq: u32, epoch_ms: u64, out: &mut Vec<u8>) {
        let body = match kind {
            RequestKind::Report => {
                let full = self.fields == ReportFields::Full;
                Body::StatReport(Report {
                    cpu_percent: self.cpu,
                    mem_percent: self.mem,
                    timestamp_ms: full.then_some(epoch_ms),
                    node_id: full.then_some(Cow::Borrowed(self.node_id.as_str())),
                })
            }
            RequestKind::Pause => Body::Pause {
                duration_secs: PAUSE_SECS,
            },
            RequestKind::Resume => Body::Resume,
        };
        let msg = Message {
            sequence: Some(u64::from(seq)),
            body,
        };
        self.codec
            .encode(&msg, out)
            .expect("the loadgen only builds messages whose values are in range");
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

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::{Decoded, Status};

    fn decode(codec: Codec, buf: &[u8]) -> Message<'static> {
        match codec.decode(buf) {
            Ok(Status::Complete((Decoded::Message(m), used))) => {
                assert_eq!(used, buf.len());
                m.into_owned()
            }
            other => panic!("not one valid message: {other:?}"),
        }
    }

    #[test]
    fn every_kind_encodes_to_a_valid_message_in_both_codecs() {
        for codec in [Codec::Binary, Codec::Json] {
            let mut w = RequestWriter::new(codec, ReportFields::Full, 7);
            for kind in RequestKind::ALL {
                let mut out = Vec::new();
                let n = w.write(kind, 42, 1_700_000_000_000, &mut out);
                assert_eq!(n, out.len());
                let m = decode(codec, &out);
                assert_eq!(m.sequence, Some(42));
                match (kind, m.body) {
                    (RequestKind::Report, Body::StatReport(r)) => {
                        assert_eq!(r.timestamp_ms, Some(1_700_000_000_000));
                        assert_eq!(r.node_id.as_deref(), Some("loadgen-00007"));
                        assert!(r.cpu_percent <= 100 && r.mem_percent <= 100);
                    }
                    (RequestKind::Pause, Body::Pause { duration_secs }) => {
                        assert_eq!(duration_secs, PAUSE_SECS)
                    }
                    (RequestKind::Resume, Body::Resume) => {}
                    (k, b) => panic!("{k:?} encoded as {b:?}"),
                }
            }
        }
    }

    #[test]
    fn minimal_reports_match_limit_client() {
        let mut w = RequestWriter::new(Codec::Binary, ReportFields::Minimal, 0);
        let mut out = Vec::new();
        assert_eq!(w.write(RequestKind::Report, 9, 0, &mut out), 15);
        assert_eq!(&out[..3], &[0x00, 0x0F, 0x03]);
        assert_eq!(&out[9..], &[0x06, 0x04, 0, 0, 0, 9]);
    }

    #[test]
    fn minimal_reports_are_what_the_codec_encodes() {
        let mut w = RequestWriter::new(Codec::Binary, ReportFields::Minimal, 3);
        for seq in 0..300 {
            let mut out = Vec::new();
            w.write(RequestKind::Report, seq, 0, &mut out);
            let m = decode(Codec::Binary, &out);
            let mut again = Vec::new();
            Codec::Binary.encode(&m, &mut again).unwrap();
            assert_eq!(out, again);
            assert_eq!(m.sequence, Some(u64::from(seq)));
        }
    }

    #[test]
    fn a_run_is_the_requests_one_by_one() {
        for (codec, fields) in [
            (Codec::Binary, ReportFields::Minimal),
            (Codec::Binary, ReportFields::Full),
            (Codec::Json, ReportFields::Minimal),
        ] {
            for kind in RequestKind::ALL {
                let mut one = RequestWriter::new(codec, fields, 5);
                let mut run = RequestWriter::new(codec, fields, 5);
                let (mut singly, mut together) = (Vec::new(), Vec::new());
                for seq in 60..200 {
                    one.write(kind, seq, 7, &mut singly);
                }
                assert_eq!(
                    run.write_run(kind, 60, 140, 7, &mut together),
                    together.len()
                );
                assert_eq!(singly, together, "{codec:?} {fields:?} {kind:?}");
            }
        }
    }

    #[test]
    fn load_values_wander_within_bounds() {
        let mut w = RequestWriter::new(Codec::Binary, ReportFields::Full, 0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            w.wander();
            assert!((1..=99).contains(&w.cpu) && (5..=95).contains(&w.mem));
            seen.insert(w.cpu);
        }
        assert!(seen.len() > 10, "cpu moves: {seen:?}");
    }
}
