//! The seed examples as byte-exact fixtures (`tests/fixtures/`): each decodes to the expected
//! message, and re-encodes to the same bytes where the fixture is in canonical form.
//!
//! The same files seed the fuzz corpus (see `fuzz/README.md`).

mod fixtures;

use avp_proto::avp::{read_uint, Avp, AvpIter};
use avp_proto::{decode_datagram, Attribute, Body, Codec, Decoded, Message, Report, Status};
use fixtures::*;

/// Decodes `bytes` as exactly one complete, valid frame of `codec`.
fn decode(codec: Codec, bytes: &[u8]) -> Message<'_> {
    match codec.decode(bytes) {
        Ok(Status::Complete((Decoded::Message(msg), used))) => {
            assert_eq!(used, bytes.len(), "fixture must be exactly one frame");
            msg
        }
        other => panic!("fixture {bytes:02x?} did not decode to a message: {other:?}"),
    }
}

fn encode(codec: Codec, msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = codec
        .encode(msg, &mut out)
        .expect("fixture message encodes");
    assert_eq!(n, out.len());
    out
}

/// Checks the fixture decodes to `expected` and, being canonical, re-encodes to itself.
fn check_canonical(codec: Codec, bytes: &[u8], expected: &Message<'_>) {
    let msg = decode(codec, bytes);
    assert_eq!(&msg, expected);
    assert_eq!(
        encode(codec, &msg),
        bytes,
        "re-encoding must give the fixture back"
    );
    if codec == Codec::Binary {
        let frame = decode_datagram(bytes).expect("a fixture frame is also a valid datagram");
        assert_eq!(&Message::parse(frame).unwrap(), expected);
    }
}

fn report(cpu: u8, mem: u8, sequence: Option<u64>) -> Message<'static> {
    Message {
        sequence,
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: mem,
            timestamp_ms: None,
            node_id: None,
            instance: None,
        }),
    }
}

fn pause(secs: u64, sequence: Option<u64>) -> Message<'static> {
    Message {
        sequence,
        body: Body::Pause {
            target: None,
            duration_secs: secs,
        },
    }
}

#[test]
fn seed_report() {
    assert_eq!(
        SEED_REPORT,
        [0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35]
    );
    check_canonical(Codec::Binary, SEED_REPORT, &report(30, 53, None));
}

#[test]
fn seed_report_is_the_two_seed_avps() {
    assert_eq!(&SEED_REPORT[3..6], CPU_AVP);
    assert_eq!(&SEED_REPORT[6..], MEM_AVP);
}

#[test]
fn cpu_and_memory_avps() {
    for (bytes, attr, value) in [
        (CPU_AVP, Attribute::CpuUsage, 30),
        (MEM_AVP, Attribute::MemUsage, 53),
    ] {
        let avps: Vec<Avp<'_>> = AvpIter::new(bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(avps.len(), 1);
        assert_eq!(Attribute::from_u8(avps[0].attribute), Some(attr));
        assert_eq!(read_uint(avps[0].value), Ok(value));
    }
}

#[test]
fn pause_200() {
    check_canonical(Codec::Binary, PAUSE_200, &pause(200, None));
}

#[test]
fn pause_200_in_a_wide_integer_is_accepted_and_re_encoded_shortest() {
    // Receivers accept every integer width; senders use the shortest, so this one is not
    // canonical and re-encodes to the 6-byte form.
    let msg = decode(Codec::Binary, PAUSE_200_WIDE);
    assert_eq!(msg, pause(200, None));
    assert_eq!(encode(Codec::Binary, &msg), PAUSE_200);
}

#[test]
fn pause_with_sequence_and_its_response() {
    check_canonical(Codec::Binary, PAUSE_200_SEQ, &pause(200, Some(8)));
    check_canonical(
        Codec::Binary,
        PAUSE_200_RESPONSE,
        &Message::command_response(Some(8), 200, "paused for 200 s"),
    );
}

#[test]
fn resume() {
    check_canonical(
        Codec::Binary,
        RESUME,
        &Message {
            sequence: None,
            body: Body::Resume { target: None },
        },
    );
}

#[test]
fn report_with_sequence_and_its_ack() {
    assert_eq!(REPORT_SEQ.len(), 15, "the load tools' report is 15 bytes");
    check_canonical(Codec::Binary, REPORT_SEQ, &report(30, 53, Some(7)));
    check_canonical(Codec::Binary, REPORT_SEQ_ACK, &Message::ack(Some(7)));
}

/// An invalid message and the error answer built from it the way the session does
/// (`command_response(err.sequence, err.result_code(), err.to_string())`).
fn check_error_answer(request: &[u8], code: u16, response: &[u8]) {
    let err = match Codec::Binary.decode(request) {
        Ok(Status::Complete((Decoded::Invalid(err), used))) => {
            assert_eq!(used, request.len());
            err
        }
        other => panic!("{request:02x?} must be well-framed but invalid: {other:?}"),
    };
    assert_eq!(err.result_code(), code);
    let answer = Message::command_response(err.sequence, err.result_code(), err.to_string());
    check_canonical(Codec::Binary, response, &answer);
}

#[test]
fn out_of_range_cpu_gets_400() {
    check_error_answer(BAD_CPU, 400, BAD_CPU_RESPONSE);
}

#[test]
fn unknown_type_gets_501_with_its_sequence() {
    check_error_answer(UNKNOWN_TYPE, 501, UNKNOWN_TYPE_RESPONSE);
}

#[test]
fn json_seed_bodies() {
    check_canonical(Codec::Json, JSON_REPORT, &report(30, 53, None));
    check_canonical(Codec::Json, JSON_REPORT_ACK, &Message::ack(None));
    check_canonical(Codec::Json, JSON_PAUSE, &pause(200, None));
    check_canonical(
        Codec::Json,
        JSON_RESUME,
        &Message {
            sequence: None,
            body: Body::Resume { target: None },
        },
    );
    check_canonical(
        Codec::Json,
        JSON_CMD_ACK,
        &Message::command_response(Some(3), 200, "paused for 200 s"),
    );
}

#[test]
fn binary_and_json_fixtures_mean_the_same() {
    for (binary, json) in [
        (SEED_REPORT, JSON_REPORT),
        (PAUSE_200, JSON_PAUSE),
        (RESUME, JSON_RESUME),
    ] {
        assert_eq!(decode(Codec::Binary, binary), decode(Codec::Json, json));
    }
}

/// The JSON rules that docs/PROTOCOL.md states beyond the seed examples.
#[test]
fn json_rules_stated_in_the_protocol_doc() {
    fn text_frame(body: &str) -> Vec<u8> {
        format!("{}\n{body}", body.len()).into_bytes()
    }
    fn invalid(body: &str) -> avp_proto::MessageError {
        match Codec::Json.decode(&text_frame(body)) {
            Ok(Status::Complete((Decoded::Invalid(err), _))) => err,
            other => panic!("{body} must be invalid: {other:?}"),
        }
    }
    for header in [&b"x\n"[..], b"\n", b"65536\n", b"123456", b" 5\n"] {
        assert!(Codec::Json.decode(header).is_err(), "{header:?} closes");
    }
    assert!(matches!(
        Codec::Json.decode(b"00005\n{}"),
        Ok(Status::Partial)
    ));
    let resume = Message {
        sequence: None,
        body: Body::Resume { target: None },
    };
    let lenient = text_frame(r#" { "seq" : null , "other" : [1], "type" : "resume" } "#);
    assert_eq!(decode(Codec::Json, &lenient), resume);
    let percent = text_frame(r#"{"type":"report","info":{"CPU Usage":30,"Mem usage":" 53 %"}}"#);
    assert_eq!(decode(Codec::Json, &percent), report(30, 53, None));
    let err = invalid(r#"{"type":"dance","seq":"x"}"#);
    assert_eq!(
        err.result_code(),
        400,
        "known fields are read before the type"
    );
    let err = invalid(r#"{"type":"dance","seq":4}"#);
    assert_eq!((err.result_code(), err.sequence), (501, Some(4)));
    for body in [
        r#"{"type":"pause","duration":-1}"#,
        r#"{"type":"pause","duration":1.5}"#,
        r#"{"type":"pause","duration":1,"duration":2}"#,
        r#"{"type":"report","info":{"CPU Usage":"1%","Mem usage":"2%"},"duration":5}"#,
        r#"{"type":"report","info":{"CPU Usage":"1%","Mem usage":"2%"},"node":""}"#,
        r#"{"seq":1}"#,
        "[]",
    ] {
        assert_eq!(invalid(body).result_code(), 400, "{body}");
    }
    let err = invalid(r#"{"type":"cmd-ack","code":"x"}"#);
    assert!(!err.is_answer(), "an unreadable answer has no known type");
    assert!(invalid(r#"{"type":"cmd-ack","code":5}"#).is_answer());
}
