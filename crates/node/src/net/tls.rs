//! The node's side of TLS: the server connection each `tls://` connection gets (the byte
//! work is [`avp_tls::stream`]'s) with the time its handshake must be complete by, and the
//! rate limit on the log lines about refused handshakes.

use crate::loglimit::CountedLine;
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use avp_tls::stream::failure;

/// A TLS server connection over an accepted socket.
pub type TlsStream = avp_tls::stream::TlsStream<ServerConnection, TcpStream>;

/// A TLS connection and the deadline of its handshake.
pub struct TlsConn {
    /// The TLS connection.
    pub stream: TlsStream,
    handshake_by: Instant,
}

impl TlsConn {
    /// When the handshake must be complete, while it is not.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        self.stream.is_handshaking().then_some(self.handshake_by)
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
