//! Checks shared by the fuzz targets: what every decoded frame must satisfy, whatever bytes it
//! came from.

use avp_proto::{Body, Codec, Decoded, Message, Status};

const CODECS: [Codec; 2] = [Codec::Binary, Codec::Json];

/// Decodes `data` as a byte stream, frame after frame, until the codec needs more bytes or
/// reports a framing error, and checks every complete frame with [`check_decoded`].
pub fn check_stream(codec: Codec, data: &[u8]) {
    let mut rest = data;
    loop {
        check_report_run(codec, rest);
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

/// A run of reports acknowledged in one pass must answer what decoding its frames one by one
/// and acknowledging each report does, up to the output room (taken from the data so that
/// the bound is exercised too).
fn check_report_run(codec: Codec, data: &[u8]) {
    let room = match data.len() % 4 {
        0 => usize::MAX,
        _ => data.len() % 97 + 1,
    };
    let mut acks = Vec::new();
    let Some(run) = codec.ack_report_run(data, room, &mut acks) else {
        assert!(acks.is_empty(), "no run, yet {} bytes written", acks.len());
        return;
    };
    let mut expected = Vec::new();
    let mut rest = data;
    let mut last = None;
    for _ in 0..run.count {
        assert!(expected.len() < room, "a run answered past its room");
        match codec.decode(rest) {
            Ok(Status::Complete((Decoded::Message(msg), used))) => {
                let Body::StatReport(report) = msg.body else {
                    panic!("a run took {msg:?}");
                };
                codec
                    .encode(&Message::ack(msg.sequence), &mut expected)
                    .unwrap();
                last = Some(report);
                rest = &rest[used..];
            }
            other => panic!("a run took {other:?}"),
        }
    }
    assert_eq!(acks, expected);
    // It stopped at the room or at a frame that is not a canonical report.
    if expected.len() < room {
        let mut one = Vec::new();
        assert!(codec.ack_report_run(rest, usize::MAX, &mut one).is_none());
    }
    assert_eq!(run.bytes, data.len() - rest.len());
    assert_eq!(Some(run.last), last);
}
