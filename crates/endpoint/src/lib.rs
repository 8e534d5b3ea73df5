//! Endpoint URLs shared by every tool: `tcp://HOST:PORT`, `udp://HOST:PORT`,
//! `json+tcp://HOST:PORT`, `tls://HOST:PORT` (IPv6 hosts in brackets: `tcp://[::1]:7700`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use avp_proto::Codec;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Transport and wire form of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Binary frames over TCP.
    Tcp,
    /// One binary frame per UDP datagram.
    Udp,
    /// JSON text frames over TCP.
    JsonTcp,
    /// Binary frames over TLS over TCP.
    Tls,
}

impl Scheme {
    /// The URL prefix without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Udp => "udp",
            Scheme::JsonTcp => "json+tcp",
            Scheme::Tls => "tls",
        }
    }

    /// The codec spoken on this scheme.
    pub fn codec(self) -> Codec {
        match self {
            Scheme::Tcp | Scheme::Udp | Scheme::Tls => Codec::Binary,
            Scheme::JsonTcp => Codec::Json,
        }
    }
}

/// A parsed endpoint URL. The host is resolved when the endpoint is used, so a client that
/// reconnects follows DNS changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Transport and wire form.
    pub scheme: Scheme,
    /// `HOST:PORT`, as accepted by [`ToSocketAddrs`].
    pub authority: String,
}

impl Endpoint {
    /// An endpoint for an already resolved address.
    pub fn new(scheme: Scheme, addr: SocketAddr) -> Self {
        Endpoint {
            scheme,
            authority: addr.to_string(),
        }
    }

    /// The host part of the authority (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        self.authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(host, _)| host)
    }

    /// Resolves the host to the addresses it names (at least one, or an error).
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<_> = self.authority.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{self} resolves to no address"),
            ));
        }
        Ok(addrs)
    }

    /// Resolves the host and returns its first address.
    pub fn resolve_first(&self) -> io::Result<SocketAddr> {
        self.resolve().map(|a| a[0])
    }
}

/// Why an endpoint URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError(String);

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EndpointError {}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, authority) = s.split_once("://").ok_or_else(|| {
            EndpointError(format!(
                "{s:?}: expected SCHEME://HOST:PORT (tcp, udp, json+tcp or tls)"
            ))
        })?;
        let scheme = match scheme {
            "tcp" => Scheme::Tcp,
            "udp" => Scheme::Udp,
            "json+tcp" => Scheme::JsonTcp,
            "tls" => Scheme::Tls,
            "udp+tls" | "tls+udp" | "dtls" => {
                return Err(EndpointError(format!(
                    "{s:?}: UDP has no TLS; use tls:// (TLS over TCP) or plain udp://"
                )))
            }
            other => {
                return Err(EndpointError(format!(
                    "{s:?}: unknown scheme {other:?}; use tcp, udp, json+tcp or tls"
                )))
            }
        };
        let port_ok = authority
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(EndpointError(format!(
                "{s:?}: expected HOST:PORT after {scheme:?}"
            )));
        }
        Ok(Endpoint {
            scheme,
            authority: authority.to_string(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_ipv6() {
        let e: Endpoint = "json+tcp://127.0.0.1:7703".parse().unwrap();
        assert_eq!(
            (e.scheme, e.authority.as_str()),
            (Scheme::JsonTcp, "127.0.0.1:7703")
        );
        let e: Endpoint = "udp://[::1]:7700".parse().unwrap();
        assert_eq!(e.resolve_first().unwrap(), "[::1]:7700".parse().unwrap());
        assert_eq!(e.to_string(), "udp://[::1]:7700");
        let e: Endpoint = "tcp://localhost:1".parse().unwrap();
        assert!(!e.resolve().unwrap().is_empty());
        let e: Endpoint = "tls://[::1]:7704".parse().unwrap();
        assert_eq!((e.scheme, e.host()), (Scheme::Tls, "[::1]"));
        assert_eq!(e.scheme.codec(), Codec::Binary);
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "127.0.0.1:7700",
            "http://h:1",
            "tcp://h",
            "tcp://:1",
            "tcp://h:99999",
            "udp+tls://h:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
