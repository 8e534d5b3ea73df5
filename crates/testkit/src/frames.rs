//! Frames and messages the tests send or expect.

use avp_proto::{Body, FleetState, Message, Report};

/// The binary encoding of a report with SEQUENCE `seq` (CPU `seq % 101`, MEM 53, nothing
/// else).
pub fn report(seq: u64) -> Vec<u8> {
    let msg = Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: (seq % 101) as u8,
            mem_percent: 53,
            timestamp_ms: None,
            node_id: None,
            instance: None,
        }),
    };
    let mut out = Vec::new();
    msg.encode(&mut out).expect("a valid report");
    out
}

/// A raw binary frame of `msg_type` around `body`.
pub fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(body.len() + 3)
        .expect("a body that fits a frame")
        .to_be_bytes()
        .to_vec();
    v.push(msg_type);
    v.extend_from_slice(body);
    v
}

/// A STAT_REPORT from `node` with `cpu` and `mem`, as an agent without a clock would send it.
pub fn named_report(seq: u64, node: &str, cpu: u8, mem: u8) -> Message<'static> {
    Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: mem,
            timestamp_ms: None,
            node_id: Some(node.to_string().into()),
            instance: None,
        }),
    }
}

/// A STAT_REPORT as a node pushes it to a terminal.
pub fn pushed_report(seq: u64, node: &str, cpu: u8, mem: u8, ts: u64) -> Message<'static> {
    let mut msg = named_report(seq, node, cpu, mem);
    if let Body::StatReport(r) = &mut msg.body {
        r.timestamp_ms = Some(ts);
    }
    msg
}

/// A STAT_REPORT as a node pushes it to a terminal, with the row's STATE, RECEIVED and
/// PAUSED_UNTIL.
pub fn pushed_row(
    seq: u64,
    node: &str,
    cpu: u8,
    mem: u8,
    ts: u64,
    fleet: FleetState,
) -> Message<'static> {
    let mut msg = pushed_report(seq, node, cpu, mem, ts);
    if let Body::StatReport(r) = &mut msg.body {
        r.fleet = Some(fleet);
    }
    msg
}

/// One node's result of a targeted command: a COMMAND_RESPONSE with NODE_ID, echoing `seq`.
pub fn node_result(seq: Option<u64>, node: &str, code: u16, info: &str) -> Message<'static> {
    Message {
        sequence: seq,
        body: Body::CommandResponse {
            code,
            info: Some(info.to_string().into()),
            node: Some(node.to_string().into()),
        },
    }
}

/// Asserts `msg` is a COMMAND_RESPONSE with `code` and `seq`, and returns its INFO.
pub fn command_response(msg: &Message<'_>, code: u16, seq: Option<u64>) -> String {
    match &msg.body {
        Body::CommandResponse { code: c, info, .. } => {
            assert_eq!((*c, msg.sequence), (code, seq), "{msg:?}");
            info.as_deref().unwrap_or_default().to_string()
        }
        _ => panic!("expected COMMAND_RESPONSE {code}, got {msg:?}"),
    }
}
