//! What the router's test files share: HTTPS with the router's own rustls config (a
//! certificate from a test CA) and clients that trust that CA, so a test can send the
//! same bytes over plain HTTP and over TLS.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use berth_router::Router;
use berth_router::tls::{CertStore, TlsCert, server_config};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A byte stream to the router, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a test reaches the router.
#[derive(Clone)]
pub enum Transport {
    Plain(SocketAddr),
    /// TLS, ALPN `http/1.1`.
    Tls(SocketAddr, Arc<Https>),
}

impl Transport {
    pub async fn connect(&self) -> Box<dyn Io> {
        match self {
            Transport::Plain(addr) => Box::new(TcpStream::connect(addr).await.expect("connect")),
            Transport::Tls(addr, https) => {
                let client = https.client(&[b"http/1.1"]);
                Box::new(https.connect(&client, *addr, HOST).await)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transport::Plain(_) => "plain HTTP",
            Transport::Tls(..) => "HTTPS",
        }
    }
}

/// The host the certificate is for, and that tests route.
pub const HOST: &str = "shop.localhost";

/// A test CA and a certificate it issued for [`HOST`], served by the router's
/// `CertStore` (also to clients that send no SNI).
pub struct Https {
    certs: Arc<CertStore>,
    roots: Arc<rustls::RootCertStore>,
}

impl Https {
    pub fn new() -> Arc<Https> {
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])
            .expect("names")
            .signed_by(&key, &issuer)
            .expect("certificate");

        let certs = Arc::new(CertStore::default());
        certs.update(&[TlsCert {
            domains: vec![HOST.into()],
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            default: true,
            ocsp: None,
        }]);
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .expect("CA as root");
        Arc::new(Https {
            certs,
            roots: Arc::new(roots),
        })
    }

    /// Serves HTTPS for `router` on a new loopback port, with the rustls config the
    /// router process uses.
    pub async fn serve(&self, router: Arc<Router>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = server_config(self.certs.clone()).expect("server config");
        tokio::spawn(router.serve_tls(listener, config, std::future::pending()));
        addr
    }

    /// A client offering `alpn` (empty: no ALPN extension); it keeps sessions for
    /// resumption.
    pub fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(self.roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    pub async fn connect(
        &self,
        client: &TlsConnector,
        addr: SocketAddr,
        name: &str,
    ) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(name.to_string()).expect("server name");
        client.connect(name, tcp).await.expect("TLS handshake")
    }
}
