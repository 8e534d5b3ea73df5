//! Checks shared by the fuzz targets: what every decoded frame must satisfy, whatever bytes it
//! came from; [`auth`] for the authenticator path.

pub mod auth;

use avp_proto::server::{
    Acceptance, AcceptedReport, CloseReason, Refusal, ReportSink, Role, ServerConfig,
    ServerSession, Tally,
};
use avp_proto::{Codec, Decoded, Message, Status};
use std::sync::Arc;
use std::time::Instant;

const CODECS: [Codec; 2] = [Codec::Binary, Codec::Json];

/// Decodes `data` as a byte stream, frame after frame, until the codec needs more bytes or
/// reports a framing error, and checks every complete frame with [`check_decoded`].
pub fn check_stream(codec: Codec, data: &[u8]) {
    let mut rest = data;
    loop {
        check_session(codec, rest);
        match codec.decode(rest) {
            Ok(Status::Complete((decoded, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                check_decoded(decoded);
                rest = &rest[used..];
            }
            Ok(Status::Partial) => {
                if codec == Codec::Binary {
                    // Partial only while the length field or the announced frame is incomplete.
                    assert!(
                        rest.len() < 2
                            || rest.len() < usize::from(u16::from_be_bytes([rest[0], rest[1]]))
                    );
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// A valid message must re-encode in both codecs and decode back to itself; an invalid one
/// must get an error answer (400/501 with the reason as INFO) that both codecs can encode.
pub fn check_decoded(decoded: Decoded<'_>) {
    match decoded {
        Decoded::Message(msg) => {
            for codec in CODECS {
                let mut out = Vec::new();
                let n = codec
                    .encode(&msg, &mut out)
                    .unwrap_or_else(|e| panic!("{msg:?} does not encode in {codec:?}: {e}"));
                assert_eq!(n, out.len());
                match codec.decode(&out) {
                    Ok(Status::Complete((Decoded::Message(back), used))) => {
                        assert_eq!(used, out.len());
                        assert_eq!(back, msg, "{codec:?} round trip");
                    }
                    other => panic!("{msg:?} re-decoded in {codec:?} as {other:?}"),
                }
            }
        }
        Decoded::Invalid(err) => {
            let answer =
                Message::command_response(err.sequence, err.result_code(), err.to_string());
            for codec in CODECS {
                let mut out = Vec::new();
                if let Err(e) = codec.encode(&answer, &mut out) {
                    panic!("error answer to {err:?} does not encode in {codec:?}: {e}");
                }
            }
        }
    }
}

/// What a session made of some input.
#[derive(Debug, PartialEq)]
struct Answered {
    out: Vec<u8>,
    consumed: usize,
    tally: Tally,
    reports: Vec<(Option<u64>, Vec<u8>)>,
    error: Option<CloseReason>,
}

/// Records every report handed over; acknowledges, holds or refuses as the input says.
struct Sink {
    reports: Vec<(Option<u64>, Vec<u8>)>,
    choice: u8,
    tickets: u64,
}

impl ReportSink for Sink {
    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        self.reports.push((r.sequence, r.frame.to_vec()));
        self.choice = self.choice.rotate_left(1);
        match self.choice & 3 {
            0 => {
                self.tickets += 1;
                Acceptance::Hold(self.tickets)
            }
            1 => Acceptance::Refuse(Refusal::Overloaded),
            _ => Acceptance::Ack,
        }
    }
}

fn answer_stream(session: ServerSession, data: &[u8], limit: usize, choice: u8) -> Answered {
    let mut session = session;
    let mut sink = Sink {
        reports: Vec::new(),
        choice,
        tickets: 0,
    };
    let mut out = Vec::new();
    let mut tally = Tally::default();
    let result = session.handle_input(Instant::now(), data, &mut out, limit, &mut sink, &mut tally);
    let (consumed, error) = match result {
        Ok(n) => (n, None),
        Err(e) => (0, Some(e)),
    };
    assert!(consumed <= data.len());
    // Everything held comes out, in order, once every ticket is confirmed.
    session.release(u64::MAX, &mut out);
    assert_eq!(session.held_len(), 0);
    Answered {
        out,
        consumed,
        tally,
        reports: sink.reports,
        error,
    }
}

/// The node's session answers `data` (a stream, and a datagram) with its fast paths exactly as
/// with its general path: the same bytes, frames consumed, counts and reports handed over;
/// and a datagram's answer is never larger than the datagram.
pub fn check_session(codec: Codec, data: &[u8]) {
    let config = Arc::new(ServerConfig::new(codec, Role::Data, Instant::now()));
    let session = || ServerSession::new(config.clone(), Instant::now());
    let limit = match data.len() % 4 {
        0 => usize::MAX,
        _ => data.len() % 97 + 1,
    };
    let choice = data.first().copied().unwrap_or(0);
    let fast = answer_stream(session(), data, limit, choice);
    let general = answer_stream(session().without_fast_paths(), data, limit, choice);
    assert_eq!(fast, general);
    if codec == Codec::Binary {
        let datagram = |mut s: ServerSession| {
            let mut sink = Sink {
                reports: Vec::new(),
                choice,
                tickets: 0,
            };
            let mut out = Vec::new();
            let mut tally = Tally::default();
            let answer = s.handle_datagram(Instant::now(), data, &mut out, &mut sink, &mut tally);
            assert!(
                out.len() <= data.len(),
                "a datagram answer larger than its datagram"
            );
            (answer, out, tally, sink.reports)
        };
        assert_eq!(
            datagram(session()),
            datagram(session().without_fast_paths())
        );
    }
}
