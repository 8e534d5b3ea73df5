//! A blocking protocol peer over a test socket (plain TCP, or TLS: [`crate::tls`]), framing
//! through the protocol crate's codec.

use crate::WAIT;
use avp_proto::{Codec, Decoded, Message, Status};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A byte stream a [`Peer`] speaks over: a TCP socket, or a TLS stream over one.
pub trait PeerStream: Read + Write {
    /// The TCP socket underneath, for its timeouts.
    fn tcp(&self) -> &TcpStream;
}

impl PeerStream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// One end of a connection that speaks the protocol: sends messages or raw bytes, and reads
/// whole messages with a deadline.
pub struct Peer<S: PeerStream = TcpStream> {
    /// The stream, for tests that shut it down or write to it directly.
    pub stream: S,
    codec: Codec,
    buf: Vec<u8>,
}

impl Peer {
    /// Connects to `addr` (within [`WAIT`]).
    pub fn connect(addr: SocketAddr, codec: Codec) -> Peer {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Peer::new(stream, codec)
    }
}

impl<S: PeerStream> Peer<S> {
    /// Wraps an accepted or connected stream.
    pub fn new(stream: S, codec: Codec) -> Peer<S> {
        stream.tcp().set_nodelay(true).unwrap();
        Peer {
            stream,
            codec,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Encodes and writes `msg`.
    pub fn send_msg(&mut self, msg: &Message<'_>) {
        let mut out = Vec::new();
        self.codec.encode(msg, &mut out).unwrap();
        self.send(&out);
    }

    /// The next message; `None` at end of stream or once `timeout` has passed. Panics on a
    /// framing error or an invalid message.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Message<'static>> {
        match self.read_until(Instant::now() + timeout) {
            ReadOutcome::Message(m) => Some(m),
            ReadOutcome::Eof | ReadOutcome::TimedOut => None,
        }
    }

    /// The next message, or `None` at a clean end of stream; panics after [`WAIT`].
    pub fn recv(&mut self) -> Option<Message<'static>> {
        match self.read_until(Instant::now() + WAIT) {
            ReadOutcome::Message(m) => Some(m),
            ReadOutcome::Eof => None,
            ReadOutcome::TimedOut => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next message; panics at end of stream or after [`WAIT`].
    pub fn expect(&mut self) -> Message<'static> {
        self.recv().expect("a message, not the end of the stream")
    }

    /// Waits for the other side to close the connection (EOF or reset), ignoring any messages.
    pub fn expect_closed(&mut self) {
        self.stream.tcp().set_read_timeout(Some(WAIT)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("expected the peer to close (timeout is {WAIT:?}): {e}"),
            }
        }
    }

    fn read_until(&mut self, deadline: Instant) -> ReadOutcome {
        loop {
            if let Status::Complete((decoded, used)) =
                self.codec.decode(&self.buf).expect("valid framing")
            {
                let msg = match decoded {
                    Decoded::Message(m) => m.into_owned(),
                    Decoded::Invalid(e) => panic!("the peer sent an invalid message: {e}"),
                };
                self.buf.drain(..used);
                return ReadOutcome::Message(msg);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ReadOutcome::TimedOut;
            }
            self.stream.tcp().set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "end of stream inside a frame");
                    return ReadOutcome::Eof;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return ReadOutcome::TimedOut
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }
}

/// What one read attempt found.
enum ReadOutcome {
    Message(Message<'static>),
    Eof,
    TimedOut,
}

/// A listener on an ephemeral loopback port, and its `HOST:PORT`.
pub fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, format!("127.0.0.1:{port}"))
}

/// Accepts the next connection on `l` as a peer speaking `codec`.
pub fn accept(l: &TcpListener, codec: Codec) -> Peer {
    Peer::new(l.accept().unwrap().0, codec)
}
