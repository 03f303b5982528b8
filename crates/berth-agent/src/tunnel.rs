//! The one way the server reaches a node: a TLS connection to the node's
//! agent that, after a one-line preamble naming the agent's key and a
//! target, becomes a plain byte pipe to a Unix socket on the node: the
//! node's Docker engine (`engine`) or its router's control socket
//! (`router`).
//!
//! The agent's certificate is issued by the cluster's CA (in its welcome),
//! so the server knows it talks to that node's agent; the key is a secret
//! the agent made and sent to the server over the authenticated API, so the
//! agent knows it talks to the server. Why a byte pipe and not an API of
//! the agent's own: the server already drives every node through Swarm, so
//! handing it the node's engine gives it nothing new, and every engine call
//! berth makes (image loads, logs, exec, stats) then works as on one engine,
//! through the same `DockerRuntime`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The preamble's first word; a later protocol gets another.
const MAGIC: &str = "BERTH-TUNNEL/1";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The preamble is a short line; anything longer is not ours.
const MAX_PREAMBLE: usize = 256;

/// What a tunnel leads to on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Engine,
    Router,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Engine => "engine",
            Target::Router => "router",
        }
    }

    fn parse(text: &str) -> Option<Target> {
        match text {
            "engine" => Some(Target::Engine),
            "router" => Some(Target::Router),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the {what} is not valid PEM: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("TLS set-up: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0:?} is not a host name or address to check the agent's certificate against")]
    ServerName(String),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: String, source: io::Error },
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TunnelError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TunnelError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TunnelError::Pem {
            what,
            detail: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The agent's TLS: its certificate (chain) and key, PEM.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, TunnelError> {
    let chain = certs(cert_pem, "agent certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TunnelError::Pem {
        what: "agent key",
        detail: e.to_string(),
    })?;
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?)
}

/// The server's TLS towards agents: trusts only the cluster's CA.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, TunnelError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem, "cluster CA")? {
        roots.add(cert)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Where the agent's targets are on its node.
#[derive(Debug, Clone)]
pub struct Targets {
    pub engine: PathBuf,
    pub router: PathBuf,
}

/// The agent's side: serves tunnels on `listener` until the task is dropped.
/// `tls` may be replaced while it runs (a new certificate from the server).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    key: String,
    targets: Targets,
) {
    let key = Arc::new(key);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("agent listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (key, targets) = (key.clone(), targets.clone());
        tokio::spawn(async move {
            if let Err(e) = accept(stream, config, &key, &targets).await {
                tracing::debug!(%peer, "tunnel refused: {e}");
            }
        });
    }
}

async fn accept(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    key: &str,
    targets: &Targets,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let opening = async {
        let tls = acceptor.accept(stream).await?;
        let mut reader = BufReader::new(tls);
        let mut line = Vec::new();
        (&mut reader)
            .take(MAX_PREAMBLE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        io::Result::Ok((reader, line))
    };
    let (reader, line) = tokio::time::timeout(HANDSHAKE_TIMEOUT, opening)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no preamble"))??;
    let line = String::from_utf8_lossy(&line);
    let mut words = line.trim_end().split(' ');
    let (Some(MAGIC), Some(given), Some(target), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(io::Error::other("not a tunnel preamble"));
    };
    if !same_secret(given, key) {
        return Err(io::Error::other("wrong key"));
    }
    let path = match Target::parse(target) {
        Some(Target::Engine) => &targets.engine,
        Some(Target::Router) => &targets.router,
        None => return Err(io::Error::other(format!("unknown target {target:?}"))),
    };
    let mut local = UnixStream::connect(path).await?;
    // Bytes the client sent right after the preamble are in the reader's buffer.
    let buffered = reader.buffer().to_vec();
    local.write_all(&buffered).await?;
    let mut tls = reader.into_inner();
    tokio::io::copy_bidirectional(&mut tls, &mut local).await?;
    Ok(())
}

fn same_secret(given: &str, key: &str) -> bool {
    let (a, b) = (given.as_bytes(), key.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How the server reaches one agent.
#[derive(Clone)]
pub struct Remote {
    /// `host:port` of the agent.
    pub addr: String,
    /// The name its certificate carries (the host part of its URL).
    pub name: ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    pub key: String,
}

/// The host part of an agent's URL (`https://HOST:PORT`), brackets removed.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && !host.contains('/')).then(|| host.to_string())
}

impl Remote {
    /// From the agent's URL (`https://10.0.0.12:7071`), its key and the CA.
    pub fn new(
        url: &str,
        key: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Remote, TunnelError> {
        let host = url_host(url).ok_or_else(|| TunnelError::ServerName(url.to_string()))?;
        let addr = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let name = ServerName::try_from(host.clone()).map_err(|_| TunnelError::ServerName(host))?;
        Ok(Remote {
            addr,
            name,
            tls,
            key: key.to_string(),
        })
    }

    /// Opens a tunnel to `target`.
    pub async fn open(
        &self,
        target: Target,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let opening = async {
            let tcp = TcpStream::connect(&self.addr).await?;
            let _ = tcp.set_nodelay(true);
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let mut tls = connector.connect(self.name.clone(), tcp).await?;
            let preamble = format!("{MAGIC} {} {}\n", self.key, target.as_str());
            tls.write_all(preamble.as_bytes()).await?;
            io::Result::Ok(tls)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, opening)
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the agent at {} did not answer", self.addr),
                )
            })?
    }
}

/// The server's side: a local Unix socket whose every connection is a
/// tunnel to one target of one agent, so local clients (bollard, the router
/// link) reach the node as if it were here. Stops when dropped.
pub struct Forwarder {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub fn start(path: &Path, remote: Remote, target: Target) -> Result<Forwarder, TunnelError> {
        let listen_err = |source| TunnelError::Listen {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(listen_err)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(listen_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(listen_err)?;
        }
        let remote = Arc::new(remote);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut local, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let remote = remote.clone();
                tokio::spawn(async move {
                    // A busy node may miss one opening; the local client
                    // (bollard, the router link) waits longer than both.
                    let mut opened = remote.open(target).await;
                    if let Err(e) = &opened {
                        tracing::info!(agent = %remote.addr, "tunnel: {e}; trying once more");
                        opened = remote.open(target).await;
                    }
                    match opened {
                        Ok(mut tunnel) => {
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut tunnel).await;
                        }
                        Err(e) => tracing::warn!(
                            agent = %remote.addr,
                            "cannot open a tunnel to the node's agent: {e}"
                        ),
                    }
                });
            }
        });
        Ok(Forwarder {
            path: path.to_path_buf(),
            task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn agent_urls_give_address_and_name() {
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let r = Remote::new("https://10.0.0.12:7071", "k", tls.clone()).unwrap();
        assert_eq!(r.addr, "10.0.0.12:7071");
        assert!(matches!(r.name, ServerName::IpAddress(_)));
        let r = Remote::new("https://node-2.example:7071/", "k", tls.clone()).unwrap();
        assert_eq!(r.addr, "node-2.example:7071");
        assert!(matches!(r.name, ServerName::DnsName(_)));
        let r = Remote::new("https://[fd00::2]:7071", "k", tls).unwrap();
        assert_eq!(r.addr, "[fd00::2]:7071");
    }
}
