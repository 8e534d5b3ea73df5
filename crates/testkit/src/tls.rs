//! Certificates for the TLS tests, made with rcgen: a CA, and server and client certificates it
//! issues, written as PEM files into a temporary directory that lives as long as the [`Pki`];
//! and a blocking TLS [`Peer`] that trusts that CA.

use crate::peer::{Peer, PeerStream};
use crate::WAIT;
use avp_proto::Codec;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use tempfile::TempDir;

/// A certificate file and its key file.
#[derive(Debug, Clone)]
pub struct Identity {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A test CA and the directory its files are written to.
pub struct Pki {
    dir: TempDir,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name` (which also prefixes its files).
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let pki = Pki {
            dir: tempfile::tempdir().expect("temporary directory"),
            name: name.to_string(),
            ca,
        };
        std::fs::write(pki.ca(), pki.ca.pem()).expect("write the CA");
        pki
    }

    /// The CA certificate's PEM file.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join(format!("{}-ca.pem", self.name))
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn server(&self) -> Identity {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        self.issue("server", names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> Identity {
        self.issue(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, name: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose) -> Identity {
        let mut params = CertificateParams::new(sans).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("certificate");
        let path = |what: &str| {
            self.dir
                .path()
                .join(format!("{}-{name}-{what}.pem", self.name))
        };
        let identity = Identity {
            cert: path("cert"),
            key: path("key"),
        };
        std::fs::write(&identity.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&identity.key, key.serialize_pem()).expect("write the key");
        identity
    }
}

/// A blocking TLS client stream.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl PeerStream for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

impl Pki {
    /// Connects to `addr` over TLS, trusting this CA, presenting `identity` when given, and
    /// completes the client's side of the handshake (within [`WAIT`]). In TLS 1.3 a server
    /// that refuses the client's certificate says so after that: the peer's first read fails.
    pub fn connect(
        &self,
        addr: SocketAddr,
        identity: Option<&Identity>,
    ) -> io::Result<Peer<TlsStream>> {
        let config = avp_tls::client_config(
            &self.ca(),
            identity.map(|i| (i.cert.as_path(), i.key.as_path())),
        )
        .map_err(io::Error::other)?;
        let name = avp_tls::server_name(&addr.ip().to_string()).map_err(io::Error::other)?;
        let mut tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut tcp = TcpStream::connect_timeout(&addr, WAIT)?;
        tcp.set_read_timeout(Some(WAIT))?;
        tcp.set_write_timeout(Some(WAIT))?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp)?;
        }
        Ok(Peer::new(StreamOwned::new(tls, tcp), Codec::Binary))
    }
}

impl Pki {
    /// What a client that trusts this CA and presents `identity` sees when the server at
    /// `addr` refuses it: the error of its handshake, or (TLS 1.3: the server checks the
    /// client's certificate after the client is done) of its first read. Panics if the
    /// server answers its report instead.
    pub fn refused(&self, addr: SocketAddr, identity: Option<&Identity>) -> io::Error {
        match self.connect(addr, identity) {
            Ok(peer) => refusal(peer),
            Err(e) => e,
        }
    }
}

/// The error that ends `peer`'s stream once it has sent a report.
fn refusal(mut peer: Peer<TlsStream>) -> io::Error {
    if let Err(e) = peer.stream.write_all(&crate::report(1)) {
        return e;
    }
    let mut chunk = [0u8; 4096];
    loop {
        match peer.stream.read(&mut chunk) {
            Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
            Ok(_) => panic!("the node answered a peer it should have refused"),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e,
        }
    }
}
