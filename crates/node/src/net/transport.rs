//! The byte stream under a connection: plain TCP, or TLS over TCP ([`super::tls`]).
//!
//! An enum rather than a trait object: a plain connection pays one branch per call and no
//! indirection, and keeps its socket inline; only a TLS connection holds a box.

use super::tls::TlsConn;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// A connection's byte stream.
pub enum Transport {
    /// Plain TCP: reads and writes go straight to the socket.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsConn>),
}

impl Transport {
    /// Reads into `buf` at `now`; a short read means the socket is drained (see
    /// [`super::tls`]).
    #[inline]
    pub fn read(&mut self, buf: &mut [u8], now: Instant) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf, now),
        }
    }

    /// Writes some of `buf`.
    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.stream.write(buf),
        }
    }

    /// Sends what the transport itself holds (TLS records); true when nothing is left.
    #[inline]
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(t) => t.stream.flush(),
        }
    }

    /// True when the transport holds bytes for the socket (TLS records not sent yet).
    #[inline]
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.stream.wants_write(),
        }
    }

    /// When a TLS handshake must be complete, while it is not.
    #[inline]
    pub fn handshake_deadline(&self) -> Option<Instant> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => t.handshake_deadline(),
        }
    }

    /// When a TLS record coming in must be complete (see [`TlsConn::record_deadline`]).
    #[inline]
    pub fn record_deadline(&self, frame_timeout: Duration) -> Option<Instant> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => t.record_deadline(frame_timeout),
        }
    }

    /// Ends the stream politely before the socket closes: TLS sends close_notify.
    pub fn close(&mut self) {
        if let Transport::Tls(t) = self {
            t.stream.close();
        }
    }

    fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.stream.socket_mut(),
        }
    }
}

impl Source for Transport {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.socket_mut().register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.socket_mut().reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket_mut().deregister(registry)
    }
}
