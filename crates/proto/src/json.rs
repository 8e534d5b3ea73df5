//! The JSON text codec: an ASCII decimal body length, `\n`, then a UTF-8 JSON body.
//!
//! The protocol's original form, kept for peers that speak text. Bodies map onto the same
//! [`Message`] model as the binary codec, through the same [`Fields`] rules, so the node's logic
//! is written once. Unknown JSON fields are ignored, as unknown AVPs are.
//!
//! | type | fields |
//! |---|---|
//! | `report` | `info: {"CPU Usage": "30%", "Mem usage": "53%"}`, `seq`, `node`, `ts`, `instance`, `auth` (last, see [`crate::auth`]) |
//! | `report-ack` | `seq` |
//! | `pause` | `duration`, `seq` |
//! | `resume` | `seq` |
//! | `cmd-ack` | `code`, `info` (text), `seq` |

use crate::avp::Attribute;
use crate::error::{EncodeError, FramingError, InvalidReason, MessageError};
use crate::frame::{Status, MAX_FRAME_LEN};
use crate::message::{Body, Fields, Message, MessageType};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::io::Write;

/// Longest length header: five decimal digits (65535).
pub const MAX_HEADER_DIGITS: usize = 5;
/// Largest body a text frame may carry.
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN;
/// Largest text frame: the longest length header, its newline and the largest body.
pub const MAX_TEXT_FRAME_LEN: usize = MAX_HEADER_DIGITS + 1 + MAX_BODY_LEN;

/// Splits the first text frame off `buf`: the JSON body and the bytes the frame occupies.
pub fn decode_text_frame(buf: &[u8]) -> Result<Status<(&[u8], usize)>, FramingError> {
    let mut len = 0usize;
    for (i, &b) in buf.iter().enumerate().take(MAX_HEADER_DIGITS + 1) {
        match b {
            b'\n' if i == 0 => return Err(FramingError::TextEmptyLength),
            b'\n' => {
                let end = i + 1 + len;
                if buf.len() < end {
                    return Ok(Status::Partial);
                }
                return Ok(Status::Complete((&buf[i + 1..end], end)));
            }
            b'0'..=b'9' if i < MAX_HEADER_DIGITS => {
                len = len * 10 + (b - b'0') as usize;
                if len > MAX_BODY_LEN {
                    return Err(FramingError::TextTooLong);
                }
            }
            b'0'..=b'9' => return Err(FramingError::TextTooLong),
            other => return Err(FramingError::TextNonDigit(other)),
        }
    }
    Ok(Status::Partial)
}

#[derive(Deserialize)]
struct JsonIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    node: Option<Cow<'a, str>>,
    ts: Option<u64>,
    instance: Option<u64>,
    duration: Option<u64>,
    code: Option<u64>,
    #[serde(borrow)]
    info: Option<InfoIn<'a>>,
    #[serde(borrow)]
    target: Option<Cow<'a, str>>,
    state: Option<u64>,
    received: Option<u64>,
    paused_until: Option<u64>,
    #[serde(borrow)]
    auth: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InfoIn<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Usage(UsageIn<'a>),
}

#[derive(Deserialize)]
struct UsageIn<'a> {
    #[serde(rename = "CPU Usage", borrow)]
    cpu: Option<PercentIn<'a>>,
    #[serde(rename = "Mem usage", borrow)]
    mem: Option<PercentIn<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PercentIn<'a> {
    Number(u64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

impl PercentIn<'_> {
    fn value(&self, attr: Attribute) -> Result<u64, InvalidReason> {
        match self {
            PercentIn::Number(n) => Ok(*n),
            PercentIn::Text(t) => {
                let digits = t.trim().trim_end_matches('%').trim_end();
                digits
                    .parse()
                    .map_err(|_| InvalidReason::NotAPercentage(attr))
            }
        }
    }
}

fn type_from_name(name: &str) -> Option<MessageType> {
    Some(match name {
        "pause" => MessageType::Pause,
        "resume" => MessageType::Resume,
        "cmd-ack" => MessageType::CommandResponse,
        "report" => MessageType::StatReport,
        "report-ack" => MessageType::StatReportAck,
        _ => return None,
    })
}

fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Pause => "pause",
        MessageType::Resume => "resume",
        MessageType::CommandResponse => "cmd-ack",
        MessageType::StatReport => "report",
        MessageType::StatReportAck => "report-ack",
    }
}

/// Parses a JSON body into a message, with the same rules as the binary codec.
pub fn parse_json(body: &[u8]) -> Result<Message<'_>, MessageError> {
    let invalid = |msg_type, sequence, reason, detail| MessageError {
        msg_type,
        sequence,
        reason,
        detail,
    };
    let json: JsonIn<'_> = serde_json::from_slice(body)
        .map_err(|e| invalid(None, None, InvalidReason::Json, Some(e.to_string().into())))?;
    let Some(msg_type) = type_from_name(&json.kind) else {
        let name = format!("{:?}", json.kind).into();
        return Err(invalid(
            None,
            json.seq,
            InvalidReason::UnknownTypeName,
            Some(name),
        ));
    };
    let seq = json.seq;
    fill_fields(json)
        .and_then(|fields| fields.into_message(msg_type))
        .map_err(|reason| invalid(Some(msg_type), seq, reason, None))
}

fn fill_fields(json: JsonIn<'_>) -> Result<Fields<'_>, InvalidReason> {
    let mut fields = Fields::default();
    let uints = [
        (Attribute::Sequence, json.seq),
        (Attribute::Timestamp, json.ts),
        (Attribute::Instance, json.instance),
        (Attribute::Duration, json.duration),
        (Attribute::ResultCode, json.code),
        (Attribute::State, json.state),
        (Attribute::PausedUntil, json.paused_until),
        (Attribute::Received, json.received),
    ];
    for (attr, value) in uints {
        if let Some(v) = value {
            fields.set_uint(attr, v)?;
        }
    }
    if let Some(node) = json.node {
        fields.set_text(Attribute::NodeId, node)?;
    }
    if let Some(target) = json.target {
        fields.set_text(Attribute::Target, target)?;
    }
    if let Some(auth) = json.auth {
        let attr = Attribute::Authenticator;
        if auth.len() % 2 != 0 || !auth.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidReason::NotHex(attr));
        }
        fields.set_octets(attr, auth.len() / 2)?;
    }
    match json.info {
        None => {}
        Some(InfoIn::Text(text)) => fields.set_text(Attribute::Info, text)?,
        Some(InfoIn::Usage(usage)) => {
            for (attr, pct) in [
                (Attribute::CpuUsage, usage.cpu),
                (Attribute::MemUsage, usage.mem),
            ] {
                if let Some(pct) = pct {
                    fields.set_uint(attr, pct.value(attr)?)?;
                }
            }
        }
    }
    Ok(fields)
}

/// A percentage as the text form writes it, `"30%"`.
struct Percent(u8);

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}%", self.0))
    }
}

#[derive(Serialize)]
struct UsageOut {
    #[serde(rename = "CPU Usage")]
    cpu: Percent,
    #[serde(rename = "Mem usage")]
    mem: Percent,
}

#[derive(Serialize)]
#[serde(untagged)]
enum InfoOut<'a> {
    Text(&'a str),
    Usage(UsageOut),
}

#[derive(Serialize)]
struct JsonOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<InfoOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_until: Option<u64>,
}

impl<'a> JsonOut<'a> {
    fn new(msg: &'a Message<'_>) -> Self {
        let mut out = JsonOut {
            kind: type_name(msg.msg_type()),
            code: None,
            duration: None,
            info: None,
            seq: msg.sequence,
            node: None,
            ts: None,
            instance: None,
            target: None,
            state: None,
            received: None,
            paused_until: None,
        };
        match &msg.body {
            Body::Pause {
                duration_secs,
                target,
            } => {
                out.duration = Some(*duration_secs);
                out.target = target.as_deref();
            }
            Body::Resume { target } => out.target = target.as_deref(),
            Body::CommandResponse { code, info, node } => {
                out.code = Some(*code);
                out.info = info.as_deref().map(InfoOut::Text);
                out.node = node.as_deref();
            }
            Body::StatReport(r) => {
                out.info = Some(InfoOut::Usage(UsageOut {
                    cpu: Percent(r.cpu_percent),
                    mem: Percent(r.mem_percent),
                }));
                out.node = r.node_id.as_deref();
                out.ts = r.timestamp_ms;
                out.instance = r.instance;
                if let Some(f) = &r.fleet {
                    out.state = Some(f.state as u8);
                    out.received = f.received_ms;
                    out.paused_until = f.paused_until_ms;
                }
            }
            Body::StatReportAck => {}
        }
        out
    }
}

/// Appends the text encoding of `msg` (length header, `\n`, JSON body) to `out`.
///
/// Returns the number of bytes written. On error nothing is left appended.
pub fn encode_json(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    msg.check_encodable()?;
    let start = out.len();
    serde_json::to_writer(&mut *out, &JsonOut::new(msg))
        .expect("writing JSON to a Vec cannot fail");
    let body_len = out.len() - start;
    let mut header = [0u8; MAX_HEADER_DIGITS + 1];
    let mut cursor = &mut header[..];
    writeln!(cursor, "{body_len}").expect("a body under 65536 bytes has at most 5 digits");
    let header_len = MAX_HEADER_DIGITS + 1 - cursor.len();
    out.splice(start..start, header[..header_len].iter().copied());
    Ok(header_len + body_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{result_code, Report};

    fn frame(body: &str) -> Vec<u8> {
        format!("{}\n{}", body.len(), body).into_bytes()
    }

    #[test]
    fn a_minimal_report_and_its_ack() {
        let body = r#"{"type":"report","info":{"CPU Usage":"30%","Mem usage":"53%"}}"#;
        let bytes = frame(body);
        let Status::Complete((json, used)) = decode_text_frame(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(used, bytes.len());
        let msg = parse_json(json).unwrap();
        assert_eq!(
            msg.body,
            Body::StatReport(Report {
                fleet: None,
                cpu_percent: 30,
                mem_percent: 53,
                timestamp_ms: None,
                node_id: None,
                instance: None
            })
        );
        let mut out = Vec::new();
        encode_json(&Message::ack(None), &mut out).unwrap();
        assert_eq!(out, frame(r#"{"type":"report-ack"}"#));
    }

    #[test]
    fn pause_resume_and_cmd_ack() {
        let msg = parse_json(br#"{"type":"pause","duration":200,"seq":3}"#).unwrap();
        assert_eq!(
            (msg.body, msg.sequence),
            (
                Body::Pause {
                    target: None,
                    duration_secs: 200
                },
                Some(3)
            )
        );
        assert_eq!(
            parse_json(br#"{"type":"resume"}"#).unwrap().body,
            Body::Resume { target: None }
        );
        let mut out = Vec::new();
        encode_json(&Message::command_response(Some(3), 200, "paused"), &mut out).unwrap();
        assert_eq!(
            out,
            frame(r#"{"type":"cmd-ack","code":200,"info":"paused","seq":3}"#)
        );
    }

    #[test]
    fn invalid_bodies() {
        let err = parse_json(b"{not json").unwrap_err();
        assert_eq!(err.result_code(), result_code::BAD_REQUEST);
        let err = parse_json(br#"{"type":"dance","seq":4}"#).unwrap_err();
        assert_eq!(
            (err.result_code(), err.sequence),
            (result_code::UNSUPPORTED_TYPE, Some(4))
        );
        let err = parse_json(br#"{"type":"report","info":{"CPU Usage":"130%","Mem usage":"5%"}}"#)
            .unwrap_err();
        assert_eq!(
            err.reason,
            InvalidReason::OutOfRange(Attribute::CpuUsage, 130)
        );
        let err = parse_json(br#"{"type":"pause"}"#).unwrap_err();
        assert_eq!(
            err.reason,
            InvalidReason::Missing(Attribute::Duration, MessageType::Pause)
        );
        let err = parse_json(br#"{"type":"report","info":{"CPU Usage":"lots","Mem usage":"5%"}}"#)
            .unwrap_err();
        assert_eq!(err.result_code(), result_code::BAD_REQUEST);
    }

    /// Regression (found by tests/proto_props.rs): serde_json quotes the offending string in
    /// its errors, and an unknown type name is quoted too, so an error text could pass 255
    /// bytes and the 400/501 answer carrying it could not be encoded.
    #[test]
    fn error_texts_fit_an_info_avp() {
        let long = r"\u0001é".repeat(200);
        let bodies = [
            format!(r#"{{"type":"pause","duration":"{long}"}}"#),
            format!(r#"{{"type":"{long}"}}"#),
            format!(r#"{{"type":"report","info":{{"CPU Usage":"{long}"}}}}"#),
        ];
        for body in &bodies {
            let err = parse_json(body.as_bytes()).unwrap_err();
            let text = err.to_string();
            assert!(text.len() <= 255, "{} bytes: {text}", text.len());
            assert!(err.detail.is_none() || text.ends_with("..."), "{text}");
            let answer = Message::command_response(err.sequence, err.result_code(), text);
            let mut out = Vec::new();
            answer.encode(&mut out).unwrap();
            encode_json(&answer, &mut out).unwrap();
        }
        let short = parse_json(br#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(short.to_string(), r#"unsupported message type "dance""#);
    }

    #[test]
    fn text_framing() {
        assert_eq!(decode_text_frame(b""), Ok(Status::Partial));
        assert_eq!(decode_text_frame(b"12"), Ok(Status::Partial));
        assert_eq!(decode_text_frame(b"5\nabc"), Ok(Status::Partial));
        assert_eq!(
            decode_text_frame(b"x\n"),
            Err(FramingError::TextNonDigit(b'x'))
        );
        assert_eq!(decode_text_frame(b"\n"), Err(FramingError::TextEmptyLength));
        assert_eq!(
            decode_text_frame(b"65536\n"),
            Err(FramingError::TextTooLong)
        );
        assert_eq!(decode_text_frame(b"100000"), Err(FramingError::TextTooLong));
        assert_eq!(
            decode_text_frame(b"0\n"),
            Ok(Status::Complete((&b""[..], 2)))
        );
    }

    #[test]
    fn every_type_round_trips() {
        let msgs = [
            Message {
                sequence: Some(1),
                body: Body::Pause {
                    target: None,
                    duration_secs: 9,
                },
            },
            Message {
                sequence: None,
                body: Body::Resume { target: None },
            },
            Message::command_response(Some(2), 400, "bad \"quote\""),
            Message::ack(Some(5)),
            Message {
                sequence: Some(6),
                body: Body::StatReport(Report {
                    fleet: None,
                    cpu_percent: 1,
                    mem_percent: 99,
                    timestamp_ms: Some(17),
                    node_id: Some("n\u{e9}".into()),
                    instance: None,
                }),
            },
        ];
        for msg in msgs {
            let mut out = Vec::new();
            encode_json(&msg, &mut out).unwrap();
            let Status::Complete((body, _)) = decode_text_frame(&out).unwrap() else {
                panic!()
            };
            assert_eq!(parse_json(body).unwrap(), msg);
        }
    }
}
