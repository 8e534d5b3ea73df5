//! A peer address in 16 bytes instead of `SocketAddr`'s 32: IPv4 inline, IPv6 (rarer, and
//! larger) boxed. An idle node holds one per connection.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// A connection's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 peer.
    V4(SocketAddrV4),
    /// An IPv6 peer.
    V6(Box<SocketAddrV6>),
}

impl PeerAddr {
    /// The address.
    pub fn get(&self) -> SocketAddr {
        match self {
            PeerAddr::V4(a) => SocketAddr::V4(*a),
            PeerAddr::V6(a) => SocketAddr::V6(**a),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => PeerAddr::V4(a),
            SocketAddr::V6(a) => PeerAddr::V6(Box::new(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip_in_sixteen_bytes() {
        for a in ["10.1.2.3:7700", "[::1]:7700", "[fe80::1%2]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(PeerAddr::from(a).get(), a);
        }
        assert_eq!(std::mem::size_of::<PeerAddr>(), 16);
    }
}
