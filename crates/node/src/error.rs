//! Why a node or a management plane could not start.

use avp_endpoint::Endpoint;
use std::fmt;
use std::io;

/// A node (or a management plane) could not start; nothing keeps running.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// An endpoint's host could not be resolved to an address.
    Resolve {
        /// The endpoint.
        endpoint: Endpoint,
        /// What the resolver said.
        source: io::Error,
    },
    /// A listener could not be bound (the port is taken, the address is not this host's...).
    Bind {
        /// The endpoint.
        endpoint: Endpoint,
        /// What the system said.
        source: io::Error,
    },
    /// The management plane runs over TCP; this endpoint is not TCP.
    AdminScheme(Endpoint),
    /// A `tls://` endpoint, but no certificate and key to serve it with.
    TlsNotConfigured(Endpoint),
    /// Protected mode: a management endpoint other hosts can reach that does not
    /// authenticate its clients.
    Unprotected(Endpoint),
    /// A poll instance, a waker or a thread could not be created.
    Setup(io::Error),
    /// The store could not be reached or set up.
    Store(avpd_store::StoreError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Resolve { endpoint, source } => {
                write!(f, "cannot resolve {endpoint}: {source}")
            }
            StartError::Bind { endpoint, source } => write!(f, "binding {endpoint}: {source}"),
            StartError::AdminScheme(endpoint) => write!(
                f,
                "{endpoint}: the management plane runs over TCP (tcp://, json+tcp:// or tls://)"
            ),
            StartError::TlsNotConfigured(endpoint) => write!(
                f,
                "{endpoint}: a tls:// endpoint needs a certificate and its key \
                 (--tls-cert FILE --tls-key FILE)"
            ),
            StartError::Unprotected(endpoint) => write!(
                f,
                "protected mode: the management plane {endpoint} is reachable from other \
                 hosts but does not authenticate terminals; serve it as tls:// with \
                 --tls-cert, --tls-key and --tls-client-ca FILE (client certificates), bind \
                 it to a loopback address, or add --admin-insecure to accept any terminal"
            ),
            StartError::Setup(e) => write!(f, "cannot start the node's threads: {e}"),
            StartError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Resolve { source, .. } | StartError::Bind { source, .. } => Some(source),
            StartError::Setup(e) => Some(e),
            StartError::Store(e) => e.source(),
            StartError::AdminScheme(_)
            | StartError::TlsNotConfigured(_)
            | StartError::Unprotected(_) => None,
        }
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Setup(e)
    }
}

/// Resolves `endpoint` to its first address.
pub(crate) fn resolve(endpoint: &Endpoint) -> Result<std::net::SocketAddr, StartError> {
    endpoint
        .resolve_first()
        .map_err(|source| StartError::Resolve {
            endpoint: endpoint.clone(),
            source,
        })
}

/// Wraps a bind failure of `endpoint`.
pub(crate) fn bind_error(endpoint: &Endpoint) -> impl FnOnce(io::Error) -> StartError + '_ {
    move |source| StartError::Bind {
        endpoint: endpoint.clone(),
        source,
    }
}
