//! How a stored report is laid out in the stream: a small envelope around the frame as
//! received. The layout is part of the documented schema (docs/OPERATIONS.md).
//!
//! ```text
//! byte  0       version (1)
//! bytes 1..9    received at, ms since the Unix epoch, u64 big-endian
//! byte  9       peer address family: 4 or 6
//! next  4 or 16 peer address, then 2 bytes peer port (big-endian)
//! next  1       length of the collector id, then the collector id (UTF-8)
//! rest          the binary frame of the report, exactly as received (a report received in
//!               the JSON form is stored as its binary encoding)
//! ```

use std::net::{IpAddr, SocketAddr};

/// The envelope's layout version.
pub const VERSION: u8 = 1;

/// A stored report, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// When the collector received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// Who sent it.
    pub peer: SocketAddr,
    /// The collector that received it.
    pub collector: &'a str,
    /// The binary frame.
    pub frame: &'a [u8],
}

/// Appends the envelope of `frame` to `out`.
pub fn encode(
    received_ms: u64,
    peer: SocketAddr,
    collector: &str,
    frame: &[u8],
    out: &mut Vec<u8>,
) {
    out.push(VERSION);
    out.extend_from_slice(&received_ms.to_be_bytes());
    match peer.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&peer.port().to_be_bytes());
    let collector = &collector.as_bytes()[..collector.len().min(255)];
    out.push(collector.len() as u8);
    out.extend_from_slice(collector);
    out.extend_from_slice(frame);
}

/// Reads an envelope; `None` when it is not one of this version.
pub fn decode(bytes: &[u8]) -> Option<Stored<'_>> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    let received_ms = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let (&family, rest) = rest[8..].split_first()?;
    let (ip, rest): (IpAddr, &[u8]) = match family {
        4 => {
            let a: [u8; 4] = rest.get(..4)?.try_into().ok()?;
            (a.into(), &rest[4..])
        }
        6 => {
            let a: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            (a.into(), &rest[16..])
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let (&len, rest) = rest[2..].split_first()?;
    let collector = std::str::from_utf8(rest.get(..usize::from(len))?).ok()?;
    Some(Stored {
        received_ms,
        peer: SocketAddr::new(ip, port),
        collector,
        frame: &rest[usize::from(len)..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_back_for_both_families() {
        for peer in ["10.0.0.7:4000", "[2001:db8::1]:7700"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut out = Vec::new();
            encode(1_700_000_000_123, peer, "node-a", &[0, 3, 1], &mut out);
            let s = decode(&out).unwrap();
            assert_eq!(
                s,
                Stored {
                    received_ms: 1_700_000_000_123,
                    peer,
                    collector: "node-a",
                    frame: &[0, 3, 1]
                }
            );
            for cut in 0..out.len() - 3 {
                assert!(
                    decode(&out[..cut]).is_none() || cut >= out.len() - 3,
                    "{cut}"
                );
            }
        }
        assert!(decode(&[2, 0]).is_none());
    }
}
