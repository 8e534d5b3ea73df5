//! TLS over one non-blocking socket, for mio event loops: a rustls connection as one more
//! sans-IO stage between the socket and the protocol session, in the shape of rustls's
//! `tlsserver-mio` example (the node's server side and the load generator's client side).
//!
//! [`TlsStream::read`] reads TLS records from the socket into the caller's buffer, hands them
//! to rustls (`read_tls`), decrypts them (`process_new_packets`) and puts the plaintext
//! (`reader()`) in their place, until the buffer is full or the socket is drained: a short
//! read means the socket is drained, as on plain TCP, which is what edge-triggered readiness
//! needs. [`TlsStream::write`] encrypts
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

/// A non-blocking socket and the TLS connection over it (`rustls::ServerConnection` or
/// `rustls::ClientConnection`).
pub struct TlsStream<C, S> {
    sock: S,
    tls: C,
    /// Bytes of records read from the socket so far.
    records_read: u64,
}

impl<C, S, D> TlsStream<C, S>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
    S: Read + Write,
{
    /// The TLS connection `tls` over the connected socket `sock`.
    pub fn new(sock: S, tls: C) -> TlsStream<C, S> {
        TlsStream {
            sock,
            tls,
            records_read: 0,
        }
    }

    /// How many bytes of TLS records were read from the socket so far: with the plaintext
    /// [`TlsStream::read`] returns, a caller can tell that a record has begun and not ended.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
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
        let (mut filled, mut ended) = self.plaintext(buf)?;
        while filled < buf.len() && !ended {
            let free = buf.len() - filled;
            // The records are read into `buf` itself, behind the plaintext: one system call
            // for as much as `buf` holds (rustls would read 4 KiB at a time).
            let n = match self.sock.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.records_read += n as u64;
            if n == 0 {
                // Reading nothing is how rustls learns of the end of the stream.
                self.tls.read_tls(&mut io::empty())?;
                let (more, _) = self.plaintext(&mut buf[filled..])?;
                return Ok(filled + more);
            }
            (filled, ended) = self.decrypt_in_place(buf, filled, n)?;
            // A short read drained the socket: another would only say WouldBlock (saved, as
            // on plain TCP). Without plaintext, read on: only the socket's WouldBlock may say
            // WouldBlock (a FIN that came with the last bytes raises no new event).
            if n < free && filled > 0 {
                return Ok(filled);
            }
        }
        Ok(filled)
    }

    /// Hands the `n` bytes of records at `buf[filled..]` to rustls and puts their plaintext
    /// at `buf[filled..]`; returns the new `filled`, and true when the stream ended.
    ///
    /// Plaintext is written only before the records not handed over yet: a record's
    /// plaintext is shorter than the record. A record whose start came in an earlier read can
    /// give more plaintext than that room; it goes after the last record, and what `buf`
    /// cannot take waits in rustls (at most one record's worth, under rustls's limit of
    /// 16 KiB that makes `read_tls` refuse).
    fn decrypt_in_place(
        &mut self,
        buf: &mut [u8],
        mut filled: usize,
        n: usize,
    ) -> io::Result<(usize, bool)> {
        let end = filled + n;
        let mut at = filled;
        let mut ended = false;
        while at < end {
            let mut records = &buf[at..end];
            let taken = self.tls.read_tls(&mut records)?;
            if taken == 0 {
                // After close_notify rustls takes nothing more; what follows is ignored.
                break;
            }
            at += taken;
            self.process()?;
            let (more, end_seen) = self.plaintext(&mut buf[filled..at])?;
            filled += more;
            ended |= end_seen;
        }
        let (more, end_seen) = self.plaintext(&mut buf[filled..])?;
        Ok((filled + more, ended || end_seen))
    }

    /// Moves the plaintext rustls holds into `buf`; returns how much, and true when the
    /// stream ended (close_notify, or the end of the socket's stream).
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut n = 0;
        while n < buf.len() {
            match self.tls.reader().read(&mut buf[n..]) {
                Ok(0) => return Ok((n, true)),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((n, true)),
                Err(e) => return Err(e),
            }
        }
        Ok((n, false))
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
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// A socket in memory: reads what the test put in `inbox` (WouldBlock when it is empty,
    /// the end of the stream once `eof` is set), keeps what is written in `outbox`.
    #[derive(Default)]
    struct Pipe {
        inbox: VecDeque<u8>,
        outbox: Vec<u8>,
        eof: bool,
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.inbox.is_empty(), self.eof) {
                (true, true) => Ok(0),
                (true, false) => Err(io::ErrorKind::WouldBlock.into()),
                (false, _) => self.inbox.read(buf),
            }
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.outbox.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    type Server = TlsStream<ServerConnection, Pipe>;

    /// A server stream over a [`Pipe`] and a client connection that trusts its certificate.
    fn pair() -> (Server, ClientConnection) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = CertificateDer::from(cert.cert);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server = ServerConnection::new(Arc::new(server)).unwrap();
        let client = ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap());
        (TlsStream::new(Pipe::default(), server), client.unwrap())
    }

    /// Moves what the client has to send into the server's socket, and what the server sent
    /// to the client; returns the plaintext the client received.
    fn exchange(server: &mut Server, client: &mut ClientConnection) -> Vec<u8> {
        while client.wants_write() {
            client.write_tls(&mut server.socket_mut().inbox).unwrap();
        }
        server.flush().unwrap();
        let sent = std::mem::take(&mut server.socket_mut().outbox);
        let mut sent = &sent[..];
        let mut plaintext = Vec::new();
        while !sent.is_empty() {
            client.read_tls(&mut sent).unwrap();
            client.process_new_packets().unwrap();
            // WouldBlock once it is all read.
            let _ = client.reader().read_to_end(&mut plaintext);
        }
        plaintext
    }

    /// Reads everything the server stream gives, `sizes` bytes at a time in turn, until it
    /// would block or ends; returns it and whether it ended.
    fn read_all(server: &mut Server, sizes: &[usize]) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        for size in sizes.iter().cycle() {
            let mut buf = vec![0; *size];
            match server.read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (got, false),
                Err(e) => panic!("read failed: {e}"),
            }
        }
        unreachable!("cycle() never ends")
    }

    #[test]
    fn plaintext_comes_out_whole_through_buffers_of_any_size() {
        let (mut server, mut client) = pair();
        // The handshake: the server reads records and has nothing to give yet.
        exchange(&mut server, &mut client);
        assert_eq!(read_all(&mut server, &[4096]), (Vec::new(), false));
        exchange(&mut server, &mut client);
        assert_eq!(read_all(&mut server, &[4096]), (Vec::new(), false));
        exchange(&mut server, &mut client);
        assert!(!client.is_handshaking());
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in sent.chunks(30_000) {
            client.writer().write_all(chunk).unwrap();
            exchange(&mut server, &mut client);
        }
        // Small buffers leave plaintext in rustls, large ones take several records at once.
        let (got, ended) = read_all(&mut server, &[1, 7, 100, 5000, 16 * 1024, 64 * 1024, 3]);
        assert!(!ended);
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the plaintext differs");
        // close_notify, then the end of the socket's stream: the end of the plaintext.
        client.writer().write_all(b"last").unwrap();
        client.send_close_notify();
        exchange(&mut server, &mut client);
        server.socket_mut().eof = true;
        assert_eq!(read_all(&mut server, &[2]), (b"last".to_vec(), true));
    }

    #[test]
    fn answers_reach_the_client_and_a_bad_record_is_a_failure() {
        let (mut server, mut client) = pair();
        for _ in 0..3 {
            exchange(&mut server, &mut client);
            assert!(read_all(&mut server, &[4096]).0.is_empty());
        }
        let answer = vec![7u8; 100_000];
        let mut written = 0;
        while written < answer.len() {
            written += server.write(&answer[written..]).unwrap();
        }
        assert!(!server.wants_write(), "the pipe takes everything");
        assert!(exchange(&mut server, &mut client) == answer);
        // A record that does not decrypt ends the stream with a failure rustls explains.
        server
            .socket_mut()
            .inbox
            .extend([23, 3, 3, 0, 20].iter().chain(&[0u8; 20]));
        let e = read_all_err(&mut server);
        assert!(failure(&e).is_some_and(|f| !f.handshake), "{e}");
    }

    fn read_all_err(server: &mut Server) -> io::Error {
        let mut buf = [0u8; 4096];
        loop {
            if let Err(e) = server.read(&mut buf) {
                return e;
            }
        }
    }

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
