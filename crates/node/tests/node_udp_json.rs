//! The UDP data plane and the JSON text codec over real sockets.

mod common;

use avp_endpoint::Scheme;
use avp_proto::{Body, Codec, Message, Report};
use common::{command_response, connect, frame, report, start, udp_client, Peer};
use std::net::UdpSocket;

fn recv_datagram(socket: &UdpSocket) -> Message<'static> {
    let mut buf = [0u8; 65536];
    let n = socket.recv(&mut buf).expect("an answer datagram");
    let frame = avp_proto::decode_datagram(&buf[..n]).expect("one frame per datagram");
    Message::parse(frame).expect("valid answer").into_owned()
}

#[test]
fn udp_report_is_acked_to_the_sender() {
    let node = start();
    let socket = udp_client(&node);
    socket
        .send(&[0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35])
        .unwrap();
    assert_eq!(recv_datagram(&socket), Message::ack(None));
    socket.send(&report(5)).unwrap();
    assert_eq!(recv_datagram(&socket), Message::ack(Some(5)));
}

#[test]
fn udp_datagrams_that_are_not_one_frame_are_dropped() {
    let node = start();
    let socket = udp_client(&node);
    let two = [report(1), report(2)].concat();
    socket.send(&two).unwrap();
    socket.send(&report(1)[..10]).unwrap();
    socket.send(&[0, 1]).unwrap();
    socket.send(&report(3)).unwrap();
    assert_eq!(
        recv_datagram(&socket),
        Message::ack(Some(3)),
        "only the valid datagram is answered"
    );
}

#[test]
fn udp_invalid_body_gets_400() {
    let node = start();
    let socket = udp_client(&node);
    socket
        .send(&frame(3, &[6, 4, 0, 0, 0, 4, 1, 1, 250, 2, 1, 1]))
        .unwrap();
    command_response(&recv_datagram(&socket), 400, Some(4));
}

fn json_frame(body: &str) -> Vec<u8> {
    format!("{}\n{}", body.len(), body).into_bytes()
}

#[test]
fn json_seed_examples() {
    let node = start();
    let mut c = connect(&node, Scheme::JsonTcp);
    c.send(&json_frame(
        r#"{"type":"report","info":{"CPU Usage":"30%","Mem usage":"53%"}}"#,
    ));
    assert_eq!(c.expect(), Message::ack(None));
    c.send(&json_frame(r#"{"type":"pause","duration":200}"#));
    command_response(&c.expect(), 200, None);
    c.send(&json_frame(r#"{"type":"resume","seq":12}"#));
    command_response(&c.expect(), 200, Some(12));
}

#[test]
fn json_answers_are_the_seed_text() {
    let node = start();
    let mut c = connect(&node, Scheme::JsonTcp);
    c.send(&json_frame(r#"{"type":"report","seq":4,"node":"n1","ts":17,"info":{"CPU Usage":"30%","Mem usage":"53%"}}"#));
    let mut raw = [0u8; 64];
    let n = std::io::Read::read(&mut c.stream, &mut raw).unwrap();
    assert_eq!(&raw[..n], b"29\n{\"type\":\"report-ack\",\"seq\":4}");
}

#[test]
fn json_errors_are_answered_and_the_connection_stays_usable() {
    let node = start();
    let mut c = connect(&node, Scheme::JsonTcp);
    for (body, code) in [
        ("{oops", 400),
        (
            r#"{"type":"report","info":{"CPU Usage":"300%","Mem usage":"1%"}}"#,
            400,
        ),
        (r#"{"type":"pause"}"#, 400),
        (r#"{"type":"teleport","seq":1}"#, 501),
        ("", 400),
    ] {
        c.send(&json_frame(body));
        let answer = c.expect();
        assert!(
            matches!(answer.body, Body::CommandResponse { code: c, .. } if c == code),
            "{body}: {answer:?}"
        );
        let msg = Message {
            sequence: Some(8),
            body: Body::StatReport(Report {
                fleet: None,
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: None,
                node_id: None,
                instance: None,
            }),
        };
        c.send_msg(&msg);
        assert_eq!(c.expect(), Message::ack(Some(8)));
    }
}

#[test]
fn json_bad_headers_close_the_connection() {
    let node = start();
    for header in [&b"abc\n{}"[..], b"70000\n", b"\n{}"] {
        let mut c = connect(&node, Scheme::JsonTcp);
        c.send(header);
        c.expect_closed();
    }
    let mut c = Peer::connect(node.local_addr(Scheme::JsonTcp).unwrap(), Codec::Json);
    c.send(&json_frame(r#"{"type":"resume"}"#));
    command_response(&c.expect(), 200, None);
}
