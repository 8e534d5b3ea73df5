//! Property tests for both codecs: round trips, never panicking on arbitrary input, prefixes,
//! streams split at arbitrary points, datagrams, and the binary encoding rules.

use avp_proto::avp::{read_uint, uint_width, AvpIter};
use avp_proto::{
    decode_datagram, decode_frame, Attribute, Body, Codec, Decoded, FleetState, InvalidReason,
    Message, MessageType, NodeState, Report, Status, MAX_PAUSE_SECS,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use std::borrow::Cow;

const CODECS: [Codec; 2] = [Codec::Binary, Codec::Json];

/// The first attribute number after those the protocol defines (numbered from 1).
const FIRST_UNKNOWN: u8 = Attribute::ALL.len() as u8 + 1;

/// UTF-8 text of at most 255 bytes and at least `min_bytes` (0 or 1).
fn text(min_bytes: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        vec(prop::char::range('a', 'z'), min_bytes..40),
        vec(any::<char>(), min_bytes..=255),
    ];
    chars.prop_map(|chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > 255 {
                break;
            }
            s.push(c);
        }
        s
    })
}

/// Printable text of 1 to 255 bytes, as NODE_ID and TARGET hold (no control characters).
fn name() -> impl Strategy<Value = String> {
    text(1).prop_map(|mut s| {
        s.retain(|c| !c.is_control());
        if s.is_empty() {
            s.push('x');
        }
        s
    })
}

fn sequence() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=u32::MAX as u64,
        any::<u64>(),
        Just(u32::MAX as u64),
        Just(u32::MAX as u64 + 1),
        Just(u64::MAX),
    ]
}

/// A pushed row's state.
fn fleet_state() -> impl Strategy<Value = FleetState> {
    (
        0..=NodeState::MAX,
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(|(state, received_ms, paused_until_ms)| FleetState {
            state: NodeState::from_u8(state).unwrap(),
            received_ms,
            paused_until_ms,
        })
}

/// Any message that satisfies every rule of the protocol.
fn message() -> impl Strategy<Value = Message<'static>> {
    let body = prop_oneof![
        (
            prop_oneof![1..=MAX_PAUSE_SECS, Just(1), Just(MAX_PAUSE_SECS)],
            option::of(name())
        )
            .prop_map(|(duration_secs, target)| Body::Pause {
                target: target.map(Cow::Owned),
                duration_secs,
            }),
        option::of(name()).prop_map(|target| Body::Resume {
            target: target.map(Cow::Owned)
        }),
        (100u16..=999, option::of(text(0)), option::of(name())).prop_map(|(code, info, node)| {
            Body::CommandResponse {
                node: node.map(Cow::Owned),
                code,
                info: info.map(Cow::Owned),
            }
        }),
        (
            0u8..=100,
            0u8..=100,
            option::of(any::<u64>()),
            option::of(name()),
            option::of(any::<u64>()),
            option::of(fleet_state()),
        )
            .prop_map(
                |(cpu_percent, mem_percent, timestamp_ms, node_id, instance, fleet)| {
                    Body::StatReport(Report {
                        fleet,
                        cpu_percent,
                        mem_percent,
                        timestamp_ms,
                        node_id: node_id.map(Cow::Owned),
                        instance,
                    })
                }
            ),
        Just(Body::StatReportAck),
    ];
    (option::of(sequence()), body).prop_map(|(sequence, body)| Message { sequence, body })
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Binary), Just(Codec::Json)]
}

fn encode(codec: Codec, msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = codec
        .encode(msg, &mut out)
        .expect("a valid message encodes");
    assert_eq!(n, out.len(), "encode returns the bytes it wrote");
    out
}

/// A binary frame with the given type byte and body (the length field is set correctly).
fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 3) as u16).to_be_bytes().to_vec();
    v.push(msg_type);
    v.extend_from_slice(body);
    v
}

/// A frame body made of AVPs, mostly with known attributes so the rules get exercised.
fn avp_soup() -> impl Strategy<Value = Vec<u8>> {
    let attr = prop_oneof![4 => 1u8..=9, 1 => any::<u8>()];
    let value = prop_oneof![vec(any::<u8>(), 0..=9), vec(any::<u8>(), 0..=255)];
    (vec((attr, value), 0..6), vec(any::<u8>(), 0..3)).prop_map(|(avps, tail)| {
        let mut body = Vec::new();
        for (a, v) in avps {
            body.push(a);
            body.push(v.len() as u8);
            body.extend_from_slice(&v);
        }
        body.extend_from_slice(&tail);
        body
    })
}

/// A text frame whose body is a JSON object built from the protocol's field names.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::{json, Value};
    let key = prop_oneof![
        Just("type"),
        Just("seq"),
        Just("node"),
        Just("ts"),
        Just("duration"),
        Just("code"),
        Just("info"),
        Just("other"),
    ];
    let leaf = prop_oneof![
        prop_oneof![
            Just("report"),
            Just("report-ack"),
            Just("pause"),
            Just("resume"),
            Just("cmd-ack"),
            Just("30%"),
            Just(""),
        ]
        .prop_map(|s| json!(s)),
        any::<u64>().prop_map(|n| json!(n)),
        (0u64..1000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        ".{0,300}".prop_map(|s| json!(s)),
        (option::of(0u64..200), option::of(".{0,8}")).prop_map(|(cpu, mem)| {
            json!({"CPU Usage": cpu, "Mem usage": mem.map(|m| format!("{m}%"))})
        }),
    ];
    vec((key, leaf), 0..7).prop_map(|fields| {
        let obj: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let body = serde_json::to_vec(&Value::Object(obj)).unwrap();
        let mut out = format!("{}\n", body.len()).into_bytes();
        out.extend_from_slice(&body);
        out
    })
}

/// Checks what a complete decoded frame must satisfy, whatever it came from: a valid message
/// re-encodes in both codecs and decodes to itself; an invalid one gets an encodable answer.
fn check_decoded(decoded: Decoded<'_>) -> Result<(), TestCaseError> {
    match decoded {
        Decoded::Message(msg) => {
            for codec in CODECS {
                let bytes = encode(codec, &msg);
                match codec.decode(&bytes) {
                    Ok(Status::Complete((Decoded::Message(back), used))) => {
                        prop_assert_eq!(used, bytes.len());
                        prop_assert_eq!(&back, &msg);
                    }
                    other => prop_assert!(false, "{:?} re-decoded as {:?}", codec, other),
                }
            }
        }
        Decoded::Invalid(err) => {
            let answer =
                Message::command_response(err.sequence, err.result_code(), err.to_string());
            for codec in CODECS {
                let mut out = Vec::new();
                let encoded = codec.encode(&answer, &mut out);
                prop_assert!(
                    encoded.is_ok(),
                    "error answer for {:?} does not encode in {:?}: {:?}",
                    err,
                    codec,
                    encoded
                );
            }
        }
    }
    Ok(())
}

/// Decodes every complete frame at the front of `buf`, checking each, until the codec asks
/// for more bytes or reports a framing error.
fn drain(codec: Codec, buf: &[u8]) -> Result<(), TestCaseError> {
    let mut rest = buf;
    loop {
        match codec.decode(rest) {
            Ok(Status::Complete((decoded, used))) => {
                prop_assert!(
                    used > 0 && used <= rest.len(),
                    "used {} of {}",
                    used,
                    rest.len()
                );
                check_decoded(decoded)?;
                rest = &rest[used..];
            }
            Ok(Status::Partial) => {
                if codec == Codec::Binary {
                    // Partial only while the length field or the announced frame is incomplete.
                    prop_assert!(
                        rest.len() < 2
                            || rest.len() < u16::from_be_bytes([rest[0], rest[1]]) as usize
                    );
                }
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Feeds `bytes` to a network-style buffer in the given chunks, decoding after each chunk and
/// removing consumed bytes; returns the messages in the order they completed.
fn feed(
    codec: Codec,
    bytes: &[u8],
    cuts: &[usize],
) -> Result<Vec<Message<'static>>, TestCaseError> {
    let mut pending = Vec::new();
    let mut got = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
        pending.extend_from_slice(&bytes[from..to]);
        from = to;
        let mut start = 0;
        loop {
            match codec.decode(&pending[start..]) {
                Ok(Status::Complete((Decoded::Message(msg), used))) => {
                    got.push(msg.into_owned());
                    start += used;
                }
                Ok(Status::Partial) => break,
                other => {
                    prop_assert!(false, "unexpected {:?}", other);
                }
            }
        }
        pending.drain(..start);
    }
    prop_assert!(pending.is_empty(), "{} bytes left over", pending.len());
    Ok(got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn binary_round_trip(msg in message(), before in vec(any::<u8>(), 0..8)) {
        let mut out = before.clone();
        let n = Codec::Binary.encode(&msg, &mut out).unwrap();
        prop_assert_eq!(&out[..before.len()], &before[..], "encode appends");
        let bytes = &out[before.len()..];
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]) as usize, n);
        prop_assert_eq!(bytes[2], msg.msg_type() as u8);
        match Codec::Binary.decode(bytes) {
            Ok(Status::Complete((Decoded::Message(back), used))) => {
                prop_assert_eq!(used, n);
                prop_assert_eq!(back, msg);
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn json_round_trip(msg in message(), before in vec(any::<u8>(), 0..8)) {
        let mut out = before.clone();
        let n = Codec::Json.encode(&msg, &mut out).unwrap();
        prop_assert_eq!(&out[..before.len()], &before[..], "encode appends");
        let bytes = &out[before.len()..];
        prop_assert_eq!(n, bytes.len());
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&bytes[..newline]).unwrap();
        prop_assert_eq!(header.parse::<usize>().unwrap(), n - newline - 1);
        let body: serde_json::Value = serde_json::from_slice(&bytes[newline + 1..]).unwrap();
        prop_assert!(body.is_object());
        match Codec::Json.decode(bytes) {
            Ok(Status::Complete((Decoded::Message(back), used))) => {
                prop_assert_eq!(used, n);
                prop_assert_eq!(back, msg);
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn binary_integers_use_the_width_rules(msg in message()) {
        let bytes = encode(Codec::Binary, &msg);
        for avp in AvpIter::new(&bytes[3..]) {
            let avp = avp.unwrap();
            let attr = Attribute::from_u8(avp.attribute).unwrap();
            if attr.is_text() {
                continue;
            }
            let v = read_uint(avp.value).unwrap();
            let want = match attr {
                Attribute::Sequence if v > u32::MAX as u64 => 8,
                Attribute::Sequence => 4,
                _ => uint_width(v),
            };
            prop_assert_eq!(avp.value.len(), want, "{}", attr);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        for codec in CODECS {
            drain(codec, &bytes)?;
        }
        if let Ok(frame) = decode_datagram(&bytes) {
            check_decoded(Message::parse(frame).into())?;
        }
    }

    #[test]
    fn arbitrary_binary_frames_never_panic(msg_type in 0u8..=6, body in avp_soup()) {
        let bytes = frame(msg_type, &body);
        drain(Codec::Binary, &bytes)?;
        let parsed = Message::parse(decode_datagram(&bytes).unwrap());
        check_decoded(parsed.into())?;
    }

    #[test]
    fn arbitrary_json_frames_never_panic(bytes in json_soup()) {
        drain(Codec::Json, &bytes)?;
        prop_assert!(matches!(Codec::Json.decode(&bytes), Ok(Status::Complete(_))));
    }

    #[test]
    fn every_strict_prefix_is_partial(codec in codec(), msg in message()) {
        let bytes = encode(codec, &msg);
        for n in 0..bytes.len() {
            let got = codec.decode(&bytes[..n]);
            prop_assert!(matches!(got, Ok(Status::Partial)), "prefix {} of {:?}: {:?}", n, codec, got);
        }
    }

    #[test]
    fn split_stream_yields_the_messages_in_order(
        codec in codec(),
        msgs in vec(message(), 1..12),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let mut bytes = Vec::new();
        for msg in &msgs {
            codec.encode(msg, &mut bytes).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(feed(codec, &bytes, &cuts)?, msgs);
    }

    #[test]
    fn datagram_holds_exactly_one_frame(msg in message(), extra in vec(any::<u8>(), 1..8), cut in any::<Index>()) {
        let bytes = encode(Codec::Binary, &msg);
        let frame = decode_datagram(&bytes).unwrap();
        prop_assert_eq!(Message::parse(frame).unwrap(), msg.clone());

        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(decode_datagram(&longer).is_err(), "trailing bytes");
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        prop_assert!(decode_datagram(&two).is_err(), "two frames");
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(decode_datagram(short).is_err(), "strict prefix");
    }

    #[test]
    fn datagram_accepted_iff_length_equals_size(bytes in vec(any::<u8>(), 0..40), fix_length in any::<bool>()) {
        let mut bytes = bytes;
        if fix_length && bytes.len() >= 2 {
            let len = (bytes.len() as u16).to_be_bytes();
            bytes[..2].copy_from_slice(&len);
        }
        let one_frame = bytes.len() >= 3 && u16::from_be_bytes([bytes[0], bytes[1]]) as usize == bytes.len();
        match decode_datagram(&bytes) {
            Ok(frame) => {
                prop_assert!(one_frame);
                prop_assert_eq!(frame.msg_type, bytes[2]);
                prop_assert_eq!(frame.body, &bytes[3..]);
                let via_stream = decode_frame(&bytes).unwrap();
                prop_assert_eq!(via_stream, Status::Complete((frame, bytes.len())));
            }
            Err(_) => prop_assert!(!one_frame),
        }
    }

    #[test]
    fn unknown_attributes_are_skipped(
        msg in message(),
        unknown in vec((prop_oneof![Just(0u8), FIRST_UNKNOWN..=255], vec(any::<u8>(), 0..20), any::<Index>()), 1..6),
    ) {
        let bytes = encode(Codec::Binary, &msg);
        let mut avps: Vec<Vec<u8>> = AvpIter::new(&bytes[3..])
            .map(|a| {
                let a = a.unwrap();
                let mut v = vec![a.attribute, a.value.len() as u8];
                v.extend_from_slice(a.value);
                v
            })
            .collect();
        for (attr, value, at) in unknown {
            let mut v = vec![attr, value.len() as u8];
            v.extend_from_slice(&value);
            avps.insert(at.index(avps.len() + 1), v);
        }
        let bytes = frame(bytes[2], &avps.concat());
        match Codec::Binary.decode(&bytes) {
            Ok(Status::Complete((Decoded::Message(back), _))) => prop_assert_eq!(back, msg),
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn a_repeated_known_attribute_is_invalid(msg in message(), which in any::<Index>()) {
        let bytes = encode(Codec::Binary, &msg);
        let avps: Vec<_> = AvpIter::new(&bytes[3..]).map(Result::unwrap).collect();
        prop_assume!(!avps.is_empty());
        let dup = avps[which.index(avps.len())];
        let mut body = bytes[3..].to_vec();
        body.extend_from_slice(&[dup.attribute, dup.value.len() as u8]);
        body.extend_from_slice(dup.value);
        match Codec::Binary.decode(&frame(bytes[2], &body)) {
            Ok(Status::Complete((Decoded::Invalid(err), _))) => {
                let attr = Attribute::from_u8(dup.attribute).unwrap();
                prop_assert_eq!(&err.reason, &InvalidReason::Duplicate(attr));
                prop_assert_eq!(err.result_code(), 400);
                prop_assert_eq!(err.sequence, msg.sequence, "the answer can echo SEQUENCE");
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn unknown_types_are_501_whatever_the_body(msg_type in 5u8..=255, body in avp_soup()) {
        match Codec::Binary.decode(&frame(msg_type, &body)) {
            Ok(Status::Complete((Decoded::Invalid(err), used))) => {
                prop_assert_eq!(used, body.len() + 3);
                prop_assert_eq!(&err.reason, &InvalidReason::UnknownType(msg_type));
                prop_assert_eq!(err.result_code(), 501);
                prop_assert_eq!(err.msg_type, None::<MessageType>);
                // The answer echoes the first well-formed SEQUENCE before any truncated AVP.
                let sequence = AvpIter::new(&body)
                    .map_while(Result::ok)
                    .find(|a| a.attribute == Attribute::Sequence as u8)
                    .and_then(|a| read_uint(a.value).ok());
                prop_assert_eq!(err.sequence, sequence);
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }
}

/// Every message type, fed one byte at a time in both codecs, comes out whole and in order.
#[test]
fn byte_by_byte_stream() {
    let msgs = vec![
        Message {
            sequence: Some(1),
            body: Body::Pause {
                target: None,
                duration_secs: 200,
            },
        },
        Message {
            sequence: None,
            body: Body::Resume { target: None },
        },
        Message::command_response(Some(2), 200, "paused for 200 s"),
        Message {
            sequence: Some(u64::MAX),
            body: Body::StatReport(Report {
                fleet: None,
                cpu_percent: 30,
                mem_percent: 53,
                timestamp_ms: Some(1_700_000_000_000),
                node_id: Some("ws-1".into()),
                instance: None,
            }),
        },
        Message::ack(Some(3)),
    ];
    for codec in CODECS {
        let mut bytes = Vec::new();
        for msg in &msgs {
            codec.encode(msg, &mut bytes).unwrap();
        }
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(feed(codec, &bytes, &cuts).unwrap(), msgs, "{codec:?}");
    }
}
