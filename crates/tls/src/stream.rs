//! TLS over one non-blocking socket, for mio event loops: a rustls connection as one more
//! sans-IO stage between the socket and the protocol session, in the shape of rustls's
//! `tlsserver-mio` example (the node's server side and the load generator's client side).
//!
//! [`TlsStream::read`] moves TLS records from the socket into rustls (`read_tls`), decrypts
//! them (`process_new_packets`) and hands out the plaintext (`reader()`), until the caller's
//! buffer is full or the socket would block: a short read means the socket is drained, as on
//! plain TCP, which is what edge-triggered readiness needs. [`TlsStream::write`] encrypts
//! (`writer()`) and sends the records (`write_tls`); plaintext is taken only once the records
//! of the previous write are on the wire, so what rustls holds stays bounded by one write.
//! The handshake runs inside these calls: its records go out with the next
//! [`TlsStream::flush`], which the caller makes after each read (and whenever
//! [`TlsStream::wants_write`] says records wait, with WRITABLE interest registered).
//!
//! A handshake or record failure comes back as an `io::Error` wrapping a [`TlsFailure`]
//! ([`failure`] finds it), so that a server can count refused handshakes. This module moves
//! bytes; it never looks at the frames inside.

use rustls::{ConnectionCommon, SideData};
use std::fmt;
use std::io::{self, Read, Write};
use std::ops::DerefMut;

/// Why TLS ended a connection: the peer's handshake was refused (no certificate, one the
/// client CA did not issue, not TLS at all...) or a record could not be decrypted.
#[derive(Debug)]
pub struct TlsFailure {
    /// True when the handshake had not completed: the peer was refused.
    pub handshake: bool,
    /// What rustls said.
    pub error: rustls::Error,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.handshake {
            true => write!(f, "TLS handshake refused: {}", self.error),
            false => write!(f, "TLS error: {}", self.error),
        }
    }
}

impl std::error::Error for TlsFailure {}

/// The [`TlsFailure`] inside `e`, when TLS caused it.
pub fn failure(e: &io::Error) -> Option<&TlsFailure> {
    e.get_ref()?.downcast_ref()
}

/// The socket as rustls reads it: notes whether a read returned less than was asked for.
struct Probe<'a, S> {
    sock: &'a mut S,
    short: bool,
}

impl<S: Read> Read for Probe<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// A non-blocking socket and the TLS connection over it (`rustls::ServerConnection` or
/// `rustls::ClientConnection`).
pub struct TlsStream<C, S> {
    sock: S,
    tls: C,
}

impl<C, S, D> TlsStream<C, S>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
    S: Read + Write,
{
    /// The TLS connection `tls` over the connected socket `sock`.
    pub fn new(sock: S, tls: C) -> TlsStream<C, S> {
        TlsStream { sock, tls }
    }

    /// The socket, for registration.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// Reads plaintext into `buf` until it is full or the socket would block (see the module
    /// documentation). `Ok(0)` is the end of the stream, with or without the peer's
    /// close_notify (frames are length-delimited, so a truncation cannot pass for a frame).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        // A read of the socket returned less than rustls asked for: the socket is drained.
        let mut drained = false;
        loop {
            match self.tls.reader().read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                // Another read would only say WouldBlock: save the system call, as plain TCP
                // does. Without plaintext, read on: only the socket's WouldBlock may say
                // WouldBlock (a FIN that came earlier raises no new event).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && drained && filled > 0 => {
                    return Ok(filled)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) => return Err(e),
            }
            let mut probe = Probe {
                sock: &mut self.sock,
                short: false,
            };
            match self.tls.read_tls(&mut probe) {
                // rustls notes the end of the stream; the reader reports it above.
                Ok(0) => {}
                Ok(_) => {
                    drained = probe.short;
                    self.process()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Decrypts the records read; on a failure, sends rustls's alert (best effort) and
    /// returns the failure.
    fn process(&mut self) -> io::Result<()> {
        let handshake = self.tls.is_handshaking();
        if let Err(error) = self.tls.process_new_packets() {
            // The alert that tells the peer why; the connection closes whatever happens.
            let _ = self.flush();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TlsFailure { handshake, error },
            ));
        }
        Ok(())
    }

    /// Encrypts as much of `buf` as rustls takes and sends it; WouldBlock while the records
    /// of an earlier write are still unsent.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.flush()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        // What the socket does not take now goes with the next write or flush.
        self.flush()?;
        match n {
            // Before the handshake completes, past rustls's buffer limit.
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    /// Sends the records rustls holds (answers, handshake messages, alerts) until none are
    /// left or the socket would block. Returns true when none are left.
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// True when records wait for the socket to take them.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends close_notify, best effort: the connection is being closed.
    pub fn close(&mut self) {
        self.tls.send_close_notify();
        // Nothing more can be done for a peer whose socket does not take it.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_found_inside_io_errors() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            TlsFailure {
                handshake: true,
                error: rustls::Error::NoCertificatesPresented,
            },
        );
        assert!(failure(&e).is_some_and(|f| f.handshake));
        assert!(failure(&io::ErrorKind::BrokenPipe.into()).is_none());
    }
}
