//! Checks of the authenticator path: a session whose sink holds agent keys.

use avp_proto::auth::{sign, Key, Marks, NodeKey, Verifier};
use avp_proto::server::{
    Acceptance, AcceptedReport, ReportSink, Role, ServerConfig, ServerSession, Tally,
};
use avp_proto::{Body, Codec, Message, Report, HEADER_LEN};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// The verifier's clock, ms since the Unix epoch.
const NOW_MS: u64 = 1_700_000_000_000;
/// How far a TIMESTAMP may be from it.
const WINDOW_MS: u64 = 60_000;
/// Nodes the input may name: the first two have keys, the third has none.
const NODES: [&str; 3] = ["ws-1", "ws-2", "ws-3"];

/// Keys for `ws-1` and `ws-2`, a fixed clock, and their replay marks.
struct Keys {
    keys: [Key; 2],
    marks: [Marks; 2],
}

impl Keys {
    fn new() -> Keys {
        Keys {
            keys: [Key::new(b"secret one"), Key::new(b"secret two")],
            marks: Default::default(),
        }
    }
}

impl Verifier for Keys {
    fn key(&self, node_id: &str) -> Option<NodeKey<'_>> {
        NODES[..2]
            .iter()
            .position(|n| *n == node_id)
            .map(|slot| NodeKey {
                key: &self.keys[slot],
                slot,
            })
    }

    fn generation(&self) -> u64 {
        0
    }

    fn now_ms(&self) -> u64 {
        NOW_MS
    }

    fn window_ms(&self) -> u64 {
        WINDOW_MS
    }

    fn advance(&mut self, slot: usize, instance: Option<u64>, sequence: u64) -> bool {
        self.marks[slot].advance(instance, sequence)
    }

    fn withdraw(&mut self, slot: usize, instance: Option<u64>, sequence: u64) {
        self.marks[slot].withdraw(instance, sequence);
    }
}

/// Records the reports it is handed and the failures; acknowledges every report.
struct Sink {
    keys: Keys,
    reports: Vec<Vec<u8>>,
    failures: Vec<String>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            keys: Keys::new(),
            reports: Vec::new(),
            failures: Vec::new(),
        }
    }
}

impl ReportSink for Sink {
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        self.reports.push(r.frame.to_vec());
        Acceptance::Ack
    }

    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        Some(&mut self.keys)
    }

    fn on_unauthorized(&mut self, failure: avp_proto::auth::AuthFailure) {
        self.failures.push(failure.to_string());
    }
}

/// What a session made of a stream: answers, bytes consumed, counts, reports, failures.
type Outcome = (
    Vec<u8>,
    Result<usize, String>,
    Tally,
    Vec<Vec<u8>>,
    Vec<String>,
);

fn answer(session: ServerSession, data: &[u8]) -> Outcome {
    let mut session = session;
    let mut sink = Sink::new();
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    let now = Instant::now();
    let used = session
        .handle_input(now, data, &mut out, usize::MAX, &mut sink, &mut tally)
        .map_err(|e| e.to_string());
    (out, used, tally, sink.reports, sink.failures)
}

/// What sessions of `config` make of the stream `data`, with their fast paths (which must
/// give what the general path gives).
fn answer_both_ways(config: &Arc<ServerConfig>, data: &[u8], what: &str) -> Outcome {
    let session = || ServerSession::new(config.clone(), Instant::now());
    let fast = answer(session(), data);
    let general = answer(session().without_fast_paths(), data);
    assert_eq!(fast, general, "{what}");
    fast
}

/// `data` as a stream to a session that checks signatures: the fast paths give what the
/// general path gives, and a report reaches the sink only when it names a node with a key.
pub fn check_verified_stream(codec: Codec, data: &[u8]) {
    let config = Arc::new(ServerConfig::new(codec, Role::Data, Instant::now()));
    let (_, _, tally, reports, failures) = answer_both_ways(&config, data, "any input");
    assert_eq!(tally.unauthorized as usize, failures.len());
    for frame in reports {
        let named = NODES[..2].iter().any(|n| contains(&frame, n.as_bytes()));
        assert!(named, "a report without a keyed NODE_ID was accepted");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A stream of reports built and signed from `data`: each is accepted exactly when it names a
/// node with a key, is signed with that key, its TIMESTAMP is within the window and its
/// SEQUENCE above the ones accepted before; with one byte changed, none is. All of them in
/// one input, the changed ones among them, get from the fast paths (which check runs of
/// signed reports together) what they get from the general path.
pub fn check_signed(codec: Codec, data: &[u8]) {
    let keys = Keys::new();
    let mut accepted: Vec<(usize, Option<u64>, u64)> = Vec::new();
    let config = Arc::new(ServerConfig::new(codec, Role::Data, Instant::now()));
    let mut session = ServerSession::new(config.clone(), Instant::now());
    let mut sink = Sink::new();
    let mut tally = Tally::default();
    let mut stream = Vec::new();
    for chunk in data.chunks_exact(8) {
        let node = usize::from(chunk[0] % 3);
        let wrong_key = chunk[0] & 0x80 != 0;
        let sequence = u64::from(u16::from_be_bytes([chunk[1], chunk[2]]));
        let skew = i64::from(i16::from_be_bytes([chunk[3], chunk[4]])) * 10;
        let timestamp = NOW_MS.saturating_add_signed(skew);
        let msg = Message {
            sequence: Some(sequence),
            body: Body::StatReport(Report {
                cpu_percent: chunk[5] % 101,
                mem_percent: chunk[6] % 101,
                timestamp_ms: Some(timestamp),
                node_id: Some(Cow::Borrowed(NODES[node])),
                instance: (chunk[7] & 1 == 1).then_some(7),
                fleet: None,
            }),
        };
        let mut frame = Vec::new();
        codec
            .encode(&msg, &mut frame)
            .expect("a valid report encodes");
        let key = &keys.keys[(node + usize::from(wrong_key)) % 2];
        sign(codec, &mut frame, 0, key).expect("a report signs");
        // The same report with one byte changed first: it must not get through.
        let mut changed = frame.clone();
        let at = usize::from(chunk[7]) % changed.len();
        changed[at] ^= 1 << (chunk[6] % 8);
        let before = sink.reports.len();
        let mut out = Vec::new();
        // The text form's digits may be written in either case: that changes no value.
        let same_digit = codec == Codec::Json
            && changed[at].is_ascii_hexdigit()
            && changed[at].eq_ignore_ascii_case(&frame[at])
            && at + 2 + 64 >= frame.len();
        // A change in the header would frame the rest of the stream differently.
        let header = match codec {
            Codec::Binary => HEADER_LEN,
            Codec::Json => frame.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1),
        };
        if chunk[1] & 1 == 1 && at >= header {
            stream.extend_from_slice(&changed);
        }
        stream.extend_from_slice(&frame);
        if !same_digit {
            let mut scratch = ServerSession::new(config.clone(), Instant::now());
            let _ = scratch.handle_input(
                Instant::now(),
                &changed,
                &mut out,
                usize::MAX,
                &mut sink,
                &mut tally,
            );
            assert_eq!(
                sink.reports.len(),
                before,
                "a changed signed report was accepted"
            );
        }
        // Then the report itself.
        let instance = (chunk[7] & 1 == 1).then_some(7);
        let fresh = accepted
            .iter()
            .filter(|&&(n, i, _)| n == node && i == instance)
            .all(|&(_, _, s)| s < sequence);
        let expected = node < 2 && !wrong_key && skew.unsigned_abs() <= WINDOW_MS && fresh;
        let used = session
            .handle_input(
                Instant::now(),
                &frame,
                &mut out,
                usize::MAX,
                &mut sink,
                &mut tally,
            )
            .expect("a signed report frames");
        assert_eq!(used, frame.len());
        let taken = sink.reports.len() > before;
        assert_eq!(
            taken, expected,
            "{msg:?} signed with the wrong key: {wrong_key}"
        );
        if taken {
            accepted.push((node, instance, sequence));
        }
    }
    let _ = answer_both_ways(&config, &stream, "one input of signed reports");
}
