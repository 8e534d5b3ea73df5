//! TLS settings shared by the node and the client programs: PEM files in, rustls
//! configurations out.
//!
//! A node serves with a certificate chain and its key ([`ServerTls`]), and with a client CA it
//! refuses, during the handshake, every peer that does not present a certificate that CA
//! issued. A client trusts the CA in `--ca` (no system roots: a collector's certificate comes
//! from the operator's own CA) and may present its own certificate ([`ClientFiles`]).
//!
//! It also moves the bytes of a TLS connection over a non-blocking socket, for the mio event
//! loops ([`stream`]); blocking clients use rustls's own `StreamOwned`. Every configuration
//! uses rustls's ring provider with its safe defaults (TLS 1.3 and 1.2), AES-128-GCM
//! preferred.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod stream;

pub use rustls;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable of the kind expected.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected in it ("certificate", "private key").
        what: &'static str,
        /// What the PEM reader said.
        source: pem::Error,
    },
    /// A CA file's certificate cannot be used as a trust anchor.
    Anchor {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the certificate, the key or the pair of them.
    Config(rustls::Error),
    /// The client CA cannot verify client certificates.
    ClientVerifier(rustls::server::VerifierBuilderError),
    /// A client certificate was given without its key, or a key without its certificate.
    IncompleteIdentity,
    /// A client identity was given without a CA to check the server against.
    IdentityWithoutCa,
    /// The host cannot be checked against a certificate (not a DNS name or an IP address).
    ServerName(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, what, source } => {
                write!(f, "{}: cannot read a PEM {what}: {source}", path.display())
            }
            TlsError::Anchor { path, source } => {
                write!(f, "{}: not usable as a CA: {source}", path.display())
            }
            TlsError::Config(e) => write!(f, "TLS certificate or key refused: {e}"),
            TlsError::ClientVerifier(e) => write!(f, "client CA refused: {e}"),
            TlsError::IncompleteIdentity => f.write_str("--cert and --key must be given together"),
            TlsError::IdentityWithoutCa => f.write_str(
                "--cert and --key need --ca (the CA that issued the server's certificate)",
            ),
            TlsError::ServerName(host) => {
                write!(
                    f,
                    "{host:?} is not a DNS name or an IP address a certificate can name"
                )
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::Anchor { source, .. } | TlsError::Config(source) => Some(source),
            TlsError::ClientVerifier(e) => Some(e),
            _ => None,
        }
    }
}

/// The crypto provider of every configuration built here: ring's, with the AES-128-GCM suites
/// preferred to AES-256-GCM (ring's order otherwise). Both are safe here; AES-128 runs 10
/// rounds a block instead of 14, and the data plane encrypts every answer.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite::{
        TLS13_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    };
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(provider)
}

/// Every certificate in the PEM file at `path` (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    if certs.is_empty() {
        return Err(error(pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        source,
    })
}

/// The certificates of the PEM file at `path` as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::Anchor {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// What a node serves TLS with: its certificate, and whether clients must present one.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_auth: bool,
}

impl ServerTls {
    /// Serves the chain in `cert` with the key in `key` (PEM files). With `client_ca`, a peer
    /// must present a certificate issued by a CA in that file, or the handshake fails.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let chain = load_certs(cert)?;
        let key = load_key(key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(load_roots(ca)?.into(), provider())
                        .build()
                        .map_err(TlsError::ClientVerifier)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        Ok(ServerTls {
            config: Arc::new(config),
            client_auth: client_ca.is_some(),
        })
    }

    /// The rustls configuration every connection is made with.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// True when a peer must present a certificate the client CA issued.
    pub fn authenticates_clients(&self) -> bool {
        self.client_auth
    }
}

/// A client's TLS files: the CA it trusts and, optionally, its own certificate and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ClientFiles {
    /// For tls:// endpoints: PEM file of the CA that issued the server's certificate.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub ca: Option<PathBuf>,
    /// For tls:// endpoints: PEM certificate chain to present to the server (with --key),
    /// for a server that authenticates its clients.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE", requires = "key"))]
    pub cert: Option<PathBuf>,
    /// For tls:// endpoints: PEM private key of --cert.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE", requires = "cert"))]
    pub key: Option<PathBuf>,
}

impl ClientFiles {
    /// The client configuration these files describe, or `None` when no CA is given (then
    /// the client cannot connect to tls:// endpoints).
    pub fn config(&self) -> Result<Option<Arc<ClientConfig>>, TlsError> {
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(TlsError::IncompleteIdentity),
        };
        match &self.ca {
            Some(ca) => client_config(ca, identity).map(Some),
            None if identity.is_some() => Err(TlsError::IdentityWithoutCa),
            None => Ok(None),
        }
    }
}

/// A client configuration that trusts the CAs in the PEM file `ca` and presents
/// `identity` (certificate chain file, key file) when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(load_roots(ca)?);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a server's certificate must carry for `host` (a DNS name, or an IP address,
/// IPv6 with or without brackets).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first() {
        let suites = &provider().cipher_suites;
        assert_eq!(
            suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }

    #[test]
    fn server_names_of_hosts() {
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("collector.example").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("not a host").is_err());
    }

    #[test]
    fn client_files_go_together() {
        let files = ClientFiles {
            cert: Some("c.pem".into()),
            ..ClientFiles::default()
        };
        assert!(matches!(files.config(), Err(TlsError::IncompleteIdentity)));
        let files = ClientFiles {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ca: None,
        };
        assert!(matches!(files.config(), Err(TlsError::IdentityWithoutCa)));
        assert!(ClientFiles::default().config().unwrap().is_none());
    }

    #[test]
    fn missing_files_say_which() {
        let err = ServerTls::from_files(Path::new("/nonexistent/cert.pem"), Path::new("k"), None)
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
