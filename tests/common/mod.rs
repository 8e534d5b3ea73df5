//! Shared harness for the node's integration tests: an in-process node on ephemeral loopback
//! ports, and blocking clients that read frames with generous timeouts.
#![allow(dead_code)] // each test binary uses a different subset

use avpd::endpoint::{Endpoint, Scheme};
use avpd::node::{Config, Node};
use avpd::proto::{Codec, Decoded, Message, Status};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Every network wait in the tests gives up after this long.
pub const WAIT: Duration = Duration::from_secs(20);

/// A node config on ephemeral loopback ports (tcp, udp, json+tcp), no admin plane.
pub fn config() -> Config {
    let listen = [
        "tcp://127.0.0.1:0",
        "udp://127.0.0.1:0",
        "json+tcp://127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.parse::<Endpoint>().unwrap())
    .collect();
    let mut config = Config {
        listen,
        workers: 2,
        ..Config::default()
    };
    config.admin.listen.clear();
    config
}

/// Starts a node with the defaults of [`config`].
pub fn start() -> Node {
    Node::start(config()).expect("node starts")
}

/// A blocking client connection with a read timeout and a decode buffer.
pub struct Client {
    pub stream: TcpStream,
    codec: Codec,
    buf: Vec<u8>,
    // INVARIANT: start <= buf.len(); buf[start..] is not yet decoded.
    start: usize,
}

impl Client {
    pub fn connect(node: &Node, scheme: Scheme) -> Client {
        Client::connect_addr(
            node.local_addr(scheme).expect("endpoint bound"),
            scheme.codec(),
        )
    }

    pub fn connect_addr(addr: SocketAddr, codec: Codec) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            codec,
            buf: Vec::new(),
            start: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send_msg(&mut self, msg: &Message<'_>) {
        let mut out = Vec::new();
        self.codec.encode(msg, &mut out).unwrap();
        self.send(&out);
    }

    /// Reads the next message, or None on a clean EOF. Panics on timeout or a bad frame.
    pub fn recv(&mut self) -> Option<Message<'static>> {
        loop {
            let pending = &self.buf[self.start..];
            if let Status::Complete((decoded, used)) =
                self.codec.decode(pending).expect("server framing")
            {
                let msg = match decoded {
                    Decoded::Message(m) => m.into_owned(),
                    Decoded::Invalid(e) => panic!("server sent an invalid message: {e}"),
                };
                self.start += used;
                return Some(msg);
            }
            self.buf.drain(..self.start);
            self.start = 0;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "EOF inside a frame");
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed (timeout is {WAIT:?}): {e}"),
            }
        }
    }

    pub fn expect(&mut self) -> Message<'static> {
        self.recv().expect("a message, not EOF")
    }

    /// Waits for the server to close the connection (EOF or reset), ignoring any messages.
    pub fn expect_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("expected the server to close (timeout is {WAIT:?}): {e}"),
            }
        }
    }
}

/// The binary encoding of a report with SEQUENCE `seq`.
pub fn report(seq: u64) -> Vec<u8> {
    let msg = Message {
        sequence: Some(seq),
        body: avpd::proto::Body::StatReport(avpd::proto::Report {
            cpu_percent: (seq % 101) as u8,
            mem_percent: 53,
            timestamp_ms: None,
            node_id: None,
        }),
    };
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

/// A raw frame of `msg_type` around `body`.
pub fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 3) as u16).to_be_bytes().to_vec();
    v.push(msg_type);
    v.extend_from_slice(body);
    v
}

/// Asserts `msg` is a COMMAND_RESPONSE with `code` and `seq`, and returns its INFO.
pub fn command_response(msg: &Message<'_>, code: u16, seq: Option<u64>) -> String {
    match &msg.body {
        avpd::proto::Body::CommandResponse { code: c, info } => {
            assert_eq!((*c, msg.sequence), (code, seq), "{msg:?}");
            info.as_deref().unwrap_or_default().to_string()
        }
        _ => panic!("expected COMMAND_RESPONSE {code}, got {msg:?}"),
    }
}
