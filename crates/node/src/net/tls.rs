//! The node's side of TLS: the server connection each `tls://` connection gets (the byte
//! work is [`avp_tls::stream`]'s) with the time its handshake must be complete by and the
//! deadline of a record still coming in, and the rate limit on the log lines about refused
//! handshakes.

use crate::loglimit::CountedLine;
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use avp_tls::stream::failure;

/// A TLS server connection over an accepted socket.
pub type TlsStream = avp_tls::stream::TlsStream<ServerConnection, TcpStream>;

/// A TLS connection, the deadline of its handshake, and since when a record has been coming in.
pub struct TlsConn {
    /// The TLS connection.
    pub stream: TlsStream,
    handshake_by: Instant,
    /// Since when records have been read with no plaintext from them, after the handshake: a
    /// record trickling in, which the session cannot see (its bytes wait inside rustls).
    record_since: Option<Instant>,
}

impl TlsConn {
    /// When the handshake must be complete, while it is not.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        self.stream.is_handshaking().then_some(self.handshake_by)
    }

    /// When the record coming in must be complete, `frame_timeout` after its first bytes: the
    /// frame deadline of the bytes the session does not see yet.
    pub fn record_deadline(&self, frame_timeout: Duration) -> Option<Instant> {
        self.record_since.map(|since| since + frame_timeout)
    }

    /// Reads plaintext into `buf` (see [`TlsStream::read`]) at `now`, noting a record that
    /// began and gave no plaintext yet.
    pub fn read(&mut self, buf: &mut [u8], now: Instant) -> std::io::Result<usize> {
        let (handshaking, before) = (self.stream.is_handshaking(), self.stream.records_read());
        let read = self.stream.read(buf);
        match read {
            Ok(n) if n > 0 => self.record_since = None,
            _ if !handshaking && self.stream.records_read() > before => {
                self.record_since.get_or_insert(now);
            }
            _ => {}
        }
        read
    }
}

/// Starts the server side of a handshake on an accepted socket; it must be complete by
/// `handshake_by`.
pub fn accept(
    sock: TcpStream,
    config: Arc<ServerConfig>,
    handshake_by: Instant,
) -> Result<TlsConn, rustls::Error> {
    Ok(TlsConn {
        stream: TlsStream::new(sock, ServerConnection::new(config)?),
        handshake_by,
        record_since: None,
    })
}

/// At most one log line a second about refused handshakes, with a count of the refusals
/// not logged since the last line: a scanner cannot fill the log.
#[derive(Debug)]
pub struct RefusalLog(CountedLine);

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog(CountedLine::new(Duration::from_secs(1)))
    }
}

impl RefusalLog {
    /// Records the refusal of `peer` for `reason` and logs it, with the count of those not
    /// logged since the last line, at most once a second.
    pub fn log(&mut self, peer: std::net::SocketAddr, reason: &dyn std::fmt::Display) {
        if let Some(unlogged) = self.note(Instant::now()) {
            let since = match unlogged {
                0 => String::new(),
                n => format!(" ({n} more refused since the last such line)"),
            };
            tracing::warn!(%peer, "closed: {reason}{since}");
        }
    }

    /// Records one refusal at `now`; returns the number of earlier refusals not logged when
    /// this one should be logged, `None` when it is only counted.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.0.note(1, now).map(|told| told - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_at_most_once_a_second() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.note(t0), Some(0));
        assert_eq!(log.note(t0 + Duration::from_millis(10)), None);
        assert_eq!(log.note(t0 + Duration::from_millis(900)), None);
        assert_eq!(log.note(t0 + Duration::from_millis(1000)), Some(2));
        assert_eq!(log.note(t0 + Duration::from_millis(1500)), None);
    }
}
