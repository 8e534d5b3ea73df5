//! The Wireshark dissector (`contrib/wireshark/avp.lua`) on captures built from the fixtures:
//! text2pcap wraps the frames in TCP or UDP headers, tshark decodes them with the dissector,
//! and each packet's fields, expert infos and Info column are compared with what the frames
//! say. Covers TCP reassembly (a frame split over two segments, two frames in one), UDP's one
//! frame per datagram, the JSON text form, and malformed framing.
//!
//! Skipped, with a note on stderr, where tshark or text2pcap is not installed (Debian
//! packages tshark and wireshark-common).

mod fixtures;

use avp_proto::{Codec, Decoded, Status};
use fixtures::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A STAT_REPORT with an unknown attribute (100, skipped) before CPU_USAGE 30, then a
/// MEM_USAGE whose value length (9) runs past the end of the frame (so MEM_USAGE, required,
/// is also missing).
const OVERRUN: &[u8] = &[
    0x00, 0x0C, 0x03, 0x64, 0x01, 0xFF, 0x01, 0x01, 0x1E, 0x02, 0x09, 0x35,
];

/// A frame whose length field (1) is below the 3-byte header.
const UNFRAMEABLE: &[u8] = &[0x00, 0x01, 0x03];

/// The fields every test reads, in this order, after the ones it asks for.
const CHECK_FIELDS: [&str; 2] = ["_ws.col.Info", "_ws.expert.message"];

/// The protocol's expert infos, reported as one column: the names of those present.
const EXPERTS: [&str; 4] = [
    "avp.malformed",
    "avp.invalid",
    "avp.unknown_type",
    "avp.unknown_attr",
];

/// True when both tools run; otherwise says why the test is skipped.
fn tools_present() -> bool {
    for tool in ["tshark", "text2pcap"] {
        if Command::new(tool).arg("-v").output().is_err() {
            // avp-proto's tests depend on nothing else: the test kit's rule, written out.
            assert!(
                std::env::var_os("AVP_REQUIRE_TOOLS").is_none(),
                "{tool} is missing, and AVP_REQUIRE_TOOLS is set: the test may not be skipped"
            );
            eprintln!("SKIPPED: {tool} is not installed (apt-get install tshark wireshark-common)");
            return false;
        }
    }
    true
}

/// A capture named `name` of one packet per entry of `payloads`, with the headers text2pcap
/// makes from `headers` (`-T SRC,DST` for TCP, `-u SRC,DST` for UDP).
fn capture(name: &str, headers: &[&str], payloads: &[Vec<u8>]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut dump = String::new();
    for payload in payloads {
        for (i, line) in payload.chunks(16).enumerate() {
            dump.push_str(&format!("{:06x}", i * 16));
            for b in line {
                dump.push_str(&format!(" {b:02x}"));
            }
            dump.push('\n');
        }
    }
    let text = dir.join(format!("{name}.txt"));
    let pcap = dir.join(format!("{name}.pcap"));
    std::fs::write(&text, dump).expect("write the hex dump");
    let out = Command::new("text2pcap")
        .arg("-q")
        .args(headers)
        .arg(&text)
        .arg(&pcap)
        .output()
        .expect("run text2pcap");
    assert!(
        out.status.success(),
        "text2pcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcap
}

/// One row per packet: the values of `fields`, then a column naming the protocol's expert
/// infos present (`EXPERTS`, joined by `,`), then the Info column.
fn decode(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/wireshark/avp.lua"
    );
    let mut cmd = Command::new("tshark");
    cmd.arg("-X")
        .arg(format!("lua_script:{script}"))
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]);
    for field in fields.iter().chain(&EXPERTS).chain(&CHECK_FIELDS) {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("run tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("Lua"),
        "tshark {}: {stderr}",
        out.status
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let (values, rest) = columns.split_at(fields.len());
            let (experts, checks) = rest.split_at(EXPERTS.len());
            let expert_messages = checks[1];
            assert!(
                !expert_messages.contains("Lua Error"),
                "the dissector failed: {expert_messages}"
            );
            let present: Vec<&str> = EXPERTS
                .iter()
                .zip(experts)
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, _)| name.trim_start_matches("avp."))
                .collect();
            let mut row: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            row.push(present.join(","));
            row.push(checks[0].to_string());
            row
        })
        .collect()
}

/// An expected cell that the decoded one must contain rather than equal (TCP's own Info text
/// varies between Wireshark versions).
const CONTAINS: &str = "~";

/// Compares decoded rows with the expected ones, packet by packet.
fn check(rows: &[Vec<String>], expected: &[&[&str]]) {
    assert_eq!(rows.len(), expected.len(), "packets: {rows:#?}");
    for (i, (row, want)) in rows.iter().zip(expected).enumerate() {
        let matches = row.len() == want.len()
            && row
                .iter()
                .zip(want.iter())
                .all(|(got, want)| match want.strip_prefix(CONTAINS) {
                    Some(part) => got.contains(part),
                    None => got == want,
                });
        assert!(matches, "packet {}: got {row:?}, expected {want:?}", i + 1);
    }
}

/// The reason this crate gives for an invalid binary frame, as the dissector shows it.
fn invalid_reason(bytes: &[u8]) -> String {
    match Codec::Binary.decode(bytes) {
        Ok(Status::Complete((Decoded::Invalid(e), _))) => format!("[invalid: {e}]"),
        other => panic!("{bytes:02x?} is not an invalid frame: {other:?}"),
    }
}

#[test]
fn tcp_frames_decode_with_reassembly_and_marked_errors() {
    if !tools_present() {
        return;
    }
    let payloads = vec![
        SEED_REPORT.to_vec(),
        REPORT_SEQ.to_vec(),
        REPORT_SEQ_ACK.to_vec(),
        PAUSE_200_SEQ.to_vec(),
        PAUSE_200_RESPONSE.to_vec(),
        RESUME.to_vec(),
        BAD_CPU.to_vec(),
        BAD_CPU_RESPONSE.to_vec(),
        UNKNOWN_TYPE.to_vec(),
        UNKNOWN_TYPE_RESPONSE.to_vec(),
        PAUSE_200_WIDE.to_vec(),
        REPORT_SEQ[..5].to_vec(),
        REPORT_SEQ[5..].to_vec(),
        [SEED_REPORT, RESUME].concat(),
        OVERRUN.to_vec(),
        UNFRAMEABLE.to_vec(),
    ];
    let pcap = capture("tcp", &["-T", "40000,7700"], &payloads);
    let fields = [
        "avp.type",
        "avp.cpu",
        "avp.mem",
        "avp.sequence",
        "avp.duration",
        "avp.result_code",
        "avp.info",
    ];
    let bad_cpu = format!("STAT_REPORT mem=53 {}", invalid_reason(BAD_CPU));
    let overrun = format!("STAT_REPORT cpu=30 {}", invalid_reason(OVERRUN));
    check(
        &decode(&pcap, &fields),
        &[
            &["3", "30", "53", "", "", "", "", "", "STAT_REPORT cpu=30 mem=53"],
            &["3", "30", "53", "7", "", "", "", "", "STAT_REPORT cpu=30 mem=53 sequence=7"],
            &["4", "", "", "7", "", "", "", "", "STAT_REPORT_ACK sequence=7"],
            &["0", "", "", "8", "200", "", "", "", "PAUSE duration=200 sequence=8"],
            &[
                "2",
                "",
                "",
                "8",
                "",
                "200",
                "paused for 200 s",
                "",
                "COMMAND_RESPONSE result_code=200 OK info=paused for 200 s sequence=8",
            ],
            &["1", "", "", "", "", "", "", "", "RESUME"],
            &["3", "130", "53", "", "", "", "", "invalid", &bad_cpu],
            &[
                "2",
                "",
                "",
                "",
                "",
                "400",
                "CPU_USAGE 130 is out of range 0..=100",
                "",
                "COMMAND_RESPONSE result_code=400 BAD_REQUEST info=CPU_USAGE 130 is out of range 0..=100",
            ],
            &["9", "", "", "", "", "", "", "unknown_type", "unknown type 9"],
            &[
                "2",
                "",
                "",
                "7",
                "",
                "501",
                "unsupported message type 9",
                "",
                "COMMAND_RESPONSE result_code=501 UNSUPPORTED_TYPE info=unsupported message type 9 sequence=7",
            ],
            &["0", "", "", "", "200", "", "", "", "PAUSE duration=200"],
            // The first half of a split frame: nothing yet, the frame shows in the second.
            &["", "", "", "", "", "", "", "", "~TCP segment of a reassembled PDU"],
            &["3", "30", "53", "7", "", "", "", "", "STAT_REPORT cpu=30 mem=53 sequence=7"],
            &["3|1", "30", "53", "", "", "", "", "", "STAT_REPORT cpu=30 mem=53, RESUME"],
            &["3", "30", "", "", "", "", "", "malformed,invalid,unknown_attr", &overrun],
            &["", "", "", "", "", "", "", "malformed", "unframeable (length 1)"],
        ],
    );
}

#[test]
fn udp_datagrams_are_one_frame_each() {
    if !tools_present() {
        return;
    }
    let payloads = vec![
        SEED_REPORT.to_vec(),
        UNKNOWN_TYPE_RESPONSE.to_vec(),
        [SEED_REPORT, &[0]].concat(),
        [SEED_REPORT, RESUME].concat(),
        vec![0x00, 0x03],
    ];
    let pcap = capture("udp", &["-u", "40000,7700"], &payloads);
    let fields = [
        "avp.type",
        "avp.cpu",
        "avp.mem",
        "avp.result_code",
        "avp.length",
    ];
    check(
        &decode(&pcap, &fields),
        &[
            &["3", "30", "53", "", "9", "", "STAT_REPORT cpu=30 mem=53"],
            &[
                "2",
                "",
                "",
                "501",
                "41",
                "",
                "COMMAND_RESPONSE result_code=501 UNSUPPORTED_TYPE info=unsupported message type 9 sequence=7",
            ],
            &["", "", "", "", "9", "malformed", "datagram not exactly one frame"],
            &["", "", "", "", "9", "malformed", "datagram not exactly one frame"],
            &["", "", "", "", "", "malformed", "short datagram"],
        ],
    );
}

#[test]
fn json_frames_decode_on_their_port() {
    if !tools_present() {
        return;
    }
    let payloads = vec![
        JSON_REPORT.to_vec(),
        JSON_REPORT_ACK.to_vec(),
        JSON_PAUSE.to_vec(),
        JSON_RESUME.to_vec(),
        JSON_CMD_ACK.to_vec(),
        JSON_RESUME[..7].to_vec(),
        JSON_RESUME[7..].to_vec(),
        [JSON_RESUME, JSON_REPORT_ACK].concat(),
        b"16\n{\"type\":\"dance\"}".to_vec(),
        b"x\n{}".to_vec(),
    ];
    let pcap = capture("json", &["-T", "40001,7703"], &payloads);
    let fields = [
        "avp.type",
        "avp.json_type",
        "avp.cpu",
        "avp.mem",
        "avp.sequence",
        "avp.duration",
        "avp.result_code",
        "avp.info",
    ];
    check(
        &decode(&pcap, &fields),
        &[
            &[
                "3",
                "report",
                "30",
                "53",
                "",
                "",
                "",
                "",
                "",
                "STAT_REPORT cpu=30 mem=53",
            ],
            &[
                "4",
                "report-ack",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "STAT_REPORT_ACK",
            ],
            &[
                "0",
                "pause",
                "",
                "",
                "",
                "200",
                "",
                "",
                "",
                "PAUSE duration=200",
            ],
            &["1", "resume", "", "", "", "", "", "", "", "RESUME"],
            &[
                "2",
                "cmd-ack",
                "",
                "",
                "3",
                "",
                "200",
                "paused for 200 s",
                "",
                "COMMAND_RESPONSE sequence=3 result_code=200 info=paused for 200 s",
            ],
            &[
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "~TCP segment of a reassembled PDU",
            ],
            &["1", "resume", "", "", "", "", "", "", "", "RESUME"],
            &[
                "1|4",
                "resume|report-ack",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "RESUME, STAT_REPORT_ACK",
            ],
            &[
                "",
                "dance",
                "",
                "",
                "",
                "",
                "",
                "",
                "unknown_type",
                "type \"dance\"",
            ],
            &[
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "malformed",
                "unframeable JSON header",
            ],
        ],
    );
}

/// A binary frame of type `code` with `body`.
fn frame(code: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 3) as u16).to_be_bytes().to_vec();
    out.push(code);
    out.extend_from_slice(body);
    out
}

#[test]
fn invalid_bodies_are_marked_with_the_receivers_reason() {
    if !tools_present() {
        return;
    }
    const CPU_MEM: [u8; 6] = [0x01, 0x01, 0x1E, 0x02, 0x01, 0x35];
    let invalid = [
        frame(3, &[&CPU_MEM[..], &[0x08, 0x02, 0xC3, 0x28]].concat()),
        frame(3, &[&CPU_MEM[..], &[0x08, 0x00]].concat()),
        frame(3, &[&CPU_MEM[..], &[0x06, 0x09], &[0; 9]].concat()),
        frame(3, &[&CPU_MEM[..], &[0x06, 0x00]].concat()),
        frame(3, &[&[0x01, 0x01, 0x1E][..], &CPU_MEM[..]].concat()),
        frame(3, &[&CPU_MEM[..], &[0x03, 0x01, 0x05]].concat()),
        frame(0, &[]),
    ];
    let pcap = capture("invalid", &["-T", "40000,7700"], &invalid);
    let rows = decode(&pcap, &[]);
    assert_eq!(rows.len(), invalid.len(), "{rows:#?}");
    for (row, bytes) in rows.iter().zip(&invalid) {
        let reason = invalid_reason(bytes);
        assert_eq!(row[0], "invalid", "{bytes:02x?}: {row:?}");
        assert!(
            row[1].ends_with(&reason),
            "{bytes:02x?}: {row:?}, expected {reason}"
        );
    }
}

#[test]
fn every_integer_width_is_read() {
    if !tools_present() {
        return;
    }
    // RESULT_CODE 200 in 1 to 8 bytes.
    let frames: Vec<Vec<u8>> = (1..=8)
        .map(|width| {
            let mut body = vec![0x04, width as u8];
            body.extend(&200u64.to_be_bytes()[8 - width..]);
            frame(2, &body)
        })
        .collect();
    let pcap = capture("widths", &["-T", "40000,7700"], &frames);
    let rows = decode(&pcap, &["avp.result_code"]);
    assert_eq!(rows.len(), 8, "{rows:#?}");
    for row in &rows {
        assert_eq!(row[..2], ["200", ""], "{row:?}");
        assert_eq!(row[2], "COMMAND_RESPONSE result_code=200 OK");
    }
}

#[test]
fn a_signed_report_and_its_refusal_show_the_authenticator_and_the_code_by_name() {
    if !tools_present() {
        return;
    }
    use avp_proto::auth::{sign, Key};
    use avp_proto::{Body, Message, Report};
    let mut signed = Vec::new();
    Message {
        sequence: Some(7),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: 30,
            mem_percent: 53,
            timestamp_ms: Some(1_700_000_000_000),
            node_id: Some("ws-1".into()),
            instance: Some(9),
        }),
    }
    .encode(&mut signed)
    .unwrap();
    sign(Codec::Binary, &mut signed, 0, &Key::new(b"secret")).unwrap();
    let mac: String = signed[signed.len() - 32..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut refusal = Vec::new();
    Message {
        sequence: Some(7),
        body: Body::CommandResponse {
            code: 401,
            info: Some("not signed with ws-1's key".into()),
            node: None,
        },
    }
    .encode(&mut refusal)
    .unwrap();
    let pcap = capture("signed", &["-T", "40000,7700"], &[signed, refusal]);
    let rows = decode(
        &pcap,
        &["avp.node_id", "avp.authenticator", "avp.result_code"],
    );
    check(
        &rows,
        &[
            &["ws-1", &mac, "", "", "~STAT_REPORT cpu=30 mem=53"],
            &["", "", "401", "", "~result_code=401 UNAUTHORIZED"],
        ],
    );
}
