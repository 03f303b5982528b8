//! Sending spooled lines to a receiver: one connection (syslog over TCP or
//! TLS) or HTTP client (OTLP) per drain, used by that drain's task only.

use super::format::{self, Line};
use super::target::Target;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub struct Sender {
    target: Target,
    hostname: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
    http: Option<Http>,
}

/// The TLS settings for a `syslog+tls` receiver: the system's roots and `ca_pem`'s.
pub fn tls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA is not a PEM certificate ({e})"))?;
        if certs.is_empty() {
            return Err("the CA holds no CERTIFICATE block".into());
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("the CA's certificate is not usable ({e})"))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Sender {
    pub fn new(target: Target, hostname: String, ca_pem: Option<&str>) -> Result<Sender, String> {
        let tls = match target {
            Target::SyslogTls { .. } => Some(tls_config(ca_pem)?),
            _ => None,
        };
        Ok(Sender {
            target,
            hostname,
            tls,
            conn: None,
            http: None,
        })
    }

    /// Sends `lines`; `Ok` once the receiver has them (written and flushed for
    /// syslog, a 2xx answer for OTLP).
    pub async fn send(&mut self, lines: &[Line]) -> Result<(), String> {
        let result = match &self.target {
            Target::Otlp { .. } => tokio::time::timeout(SEND_TIMEOUT, self.send_otlp(lines))
                .await
                .unwrap_or_else(|_| Err("the receiver did not answer in 15 s".into())),
            _ => tokio::time::timeout(SEND_TIMEOUT, self.send_syslog(lines))
                .await
                .unwrap_or_else(|_| Err("the receiver took no data for 15 s".into())),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn connect(&self) -> Result<Conn, String> {
        let authority = self.target.authority();
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&authority))
            .await
            .map_err(|_| format!("cannot connect to {authority} in 5 s"))?
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Conn::Tcp(tcp));
        };
        let (Target::SyslogTls { host, .. }
        | Target::SyslogTcp { host, .. }
        | Target::Otlp { host, .. }) = &self.target;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("no TLS handshake with {authority} in 5 s"))?
        .map_err(|e| format!("TLS with {authority}: {e}"))?;
        Ok(Conn::Tls(Box::new(stream)))
    }

    async fn send_syslog(&mut self, lines: &[Line]) -> Result<(), String> {
        // A receiver that went away closed its end: find out before writing,
        // since a write into a closed connection is taken by the kernel and lost.
        let alive = match &mut self.conn {
            Some(Conn::Tcp(s)) => still_open(s),
            Some(Conn::Tls(s)) => still_open(s.as_mut()),
            None => false,
        };
        if !alive {
            self.conn = Some(self.connect().await?);
        }
        let mut buf = Vec::new();
        for line in lines {
            buf.extend_from_slice(&format::syslog_frame(line, &self.hostname));
        }
        let authority = self.target.authority();
        let written = match &mut self.conn {
            Some(Conn::Tcp(s)) => write_flush(s, &buf).await,
            Some(Conn::Tls(s)) => write_flush(s.as_mut(), &buf).await,
            None => Err(std::io::Error::other("not connected")),
        };
        written.map_err(|e| format!("writing to {authority}: {e}"))
    }

    async fn send_otlp(&mut self, lines: &[Line]) -> Result<(), String> {
        let Target::Otlp { path, userinfo, .. } = &self.target else {
            return Err("not an OTLP drain".into());
        };
        let http = self.http.get_or_insert_with(|| {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http()
        });
        let url = format!("http://{}{path}", self.target.authority());
        let body = format::otlp_request(lines).encode_to_vec();
        let mut request = hyper::Request::post(&url)
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
        if let Some(userinfo) = userinfo {
            use base64::Engine;
            request = request.header(
                hyper::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(userinfo)
                ),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        let response = http
            .request(request)
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        // Read the answer through, so the connection can be used again.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url} answered {status}"))
        }
    }
}

/// Whether the other end has not closed the connection (anything it sent is
/// read and ignored: a syslog receiver sends nothing but TLS housekeeping).
fn still_open<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).now_or_never() {
            None => return true,
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(_)) => continue,
        }
    }
}

async fn write_flush<S: AsyncWrite + Unpin>(stream: &mut S, buf: &[u8]) -> std::io::Result<()> {
    stream.write_all(buf).await?;
    stream.flush().await
}
