//! `berth agent`: says hello to the server every few seconds (its node, its
//! tunnel's URL and key), serves the tunnel with the certificate the server
//! issues it, and keeps the node's router running as the server says.

use crate::{router, self_image, tunnel};
use berth_api::{AgentHello, AgentWelcome};
use berth_client::Client;
use bollard::Docker;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The tunnel's TLS, replaced when the server issues a new certificate.
type SharedTls = Arc<RwLock<Arc<rustls::ServerConfig>>>;

/// How often the agent says hello (the server counts it lost after 10 s).
const HELLO_EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The server's API, e.g. `https://manager:7070`.
    pub server: String,
    /// A node token (`berth instances join`).
    pub token: String,
    /// The cluster CA to trust the server with (PEM); `None`: the system's roots.
    pub ca_pem: Option<String>,
    /// Where the tunnel listens (`0.0.0.0:7071`).
    pub listen: SocketAddr,
    /// The host the server reaches this node at; `None`: the address this
    /// machine uses towards the server.
    pub advertise: Option<String>,
    /// The agent's own files (the router's control socket).
    pub data_dir: PathBuf,
    /// The berth binary, for berth's image on this node.
    pub exe: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the Docker engine of this node: {0}; is dockerd running (DOCKER_HOST)?")]
    Engine(String),
    #[error(
        "this node's engine is in no swarm ({0}); run `docker swarm join` with the manager's join token first"
    )]
    NoSwarm(String),
    #[error("cannot listen on {addr} for the server: {source}; pick another address with --listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Client(#[from] berth_client::Error),
    #[error(
        "cannot tell which address the server reaches this node at: {0}; give it with --advertise"
    )]
    Advertise(String),
}

/// The node's identity as its engine knows it.
struct Node {
    id: String,
    hostname: String,
}

async fn node(docker: &Docker) -> Result<Node, AgentError> {
    let info = docker
        .info()
        .await
        .map_err(|e| AgentError::Engine(e.to_string()))?;
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_default();
    match swarm
        .node_id
        .filter(|id| !id.is_empty() && state == "active")
    {
        Some(id) => Ok(Node {
            id,
            hostname: info.name.unwrap_or_default(),
        }),
        None => Err(AgentError::NoSwarm(format!(
            "its swarm state is {:?}",
            if state.is_empty() { "inactive" } else { &state }
        ))),
    }
}

/// The local address this machine sends from towards `server` (no packet is sent).
fn address_towards(server: &str) -> Result<IpAddr, AgentError> {
    let url = reqwest::Url::parse(server).map_err(|e| AgentError::Advertise(e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| AgentError::Advertise(format!("{server} has no host")))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
        .map_err(|e| AgentError::Advertise(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| AgentError::Advertise(format!("{host} has no address")))?;
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket =
        std::net::UdpSocket::bind(bind).map_err(|e| AgentError::Advertise(e.to_string()))?;
    socket
        .connect(target)
        .map_err(|e| AgentError::Advertise(format!("{target}: {e}")))?;
    socket
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| AgentError::Advertise(e.to_string()))
}

fn url_host(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => ip.to_string(),
    }
}

/// Runs the agent until `shutdown` resolves. The router stays up afterwards.
pub async fn run(
    options: AgentOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| AgentError::Engine(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| AgentError::Engine(e.to_string()))?;
    let node = node(&docker).await?;
    let host = match &options.advertise {
        Some(host) => host.clone(),
        None => address_towards(&options.server)?.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: options.listen,
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| AgentError::Listen {
            addr: options.listen,
            source,
        })?
        .port();
    let hello = AgentHello {
        node_id: node.id.clone(),
        hostname: node.hostname.clone(),
        url: format!("https://{}:{port}", url_host(&host)),
        key: hex::encode(rand::random::<[u8; 32]>()),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    // Over HTTPS, only the cluster CA is trusted when the agent was given it.
    let client = Client::with_ca(&options.server, &options.token, options.ca_pem.as_deref())?;
    let control_dir = options.data_dir.join("router");
    let targets = tunnel::Targets {
        engine: engine_socket(),
        router: control_dir.join("router.sock"),
    };
    tracing::info!(node = %node.id, hostname = %node.hostname, url = %hello.url, server = %options.server, "berth agent starting");

    let mut serving: Option<(tokio::task::JoinHandle<()>, SharedTls)> = None;
    let mut listener = Some(listener);
    let mut applied: Option<AgentWelcome> = None;
    let mut failing = false;
    let (wanted, wanted_rx) = tokio::sync::watch::channel(None);
    let routing = tokio::spawn(keep_router(
        docker.clone(),
        options.exe.clone(),
        control_dir.clone(),
        wanted_rx,
    ));
    let work = async {
        loop {
            match client.agent_hello(&hello).await {
                Ok(welcome) => {
                    if failing {
                        tracing::info!("the server answers again");
                        failing = false;
                    }
                    if applied.as_ref() != Some(&welcome) {
                        // The router is made in the background (berth's image takes a
                        // while the first time), so hellos keep coming meanwhile.
                        wanted.send_replace(Some(welcome.clone()));
                        match tunnel::server_config(&welcome.tls.cert_pem, &welcome.tls.key_pem) {
                            Ok(config) => {
                                let config = Arc::new(config);
                                match (&serving, listener.take()) {
                                    (Some((_, shared)), _) => {
                                        *shared.write().unwrap_or_else(|p| p.into_inner()) = config;
                                    }
                                    (None, Some(l)) => {
                                        let shared = Arc::new(RwLock::new(config));
                                        let task = tokio::spawn(tunnel::serve(
                                            l,
                                            shared.clone(),
                                            hello.key.clone(),
                                            targets.clone(),
                                        ));
                                        serving = Some((task, shared));
                                    }
                                    (None, None) => {}
                                }
                            }
                            Err(e) => {
                                tracing::warn!("the server's certificate for this agent: {e}")
                            }
                        }
                        applied = Some(welcome);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "cannot say hello to the server: {e}; the router keeps serving, retrying"
                        );
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(HELLO_EVERY).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
    if let Some((task, _)) = serving {
        task.abort();
    }
    routing.abort();
    tracing::info!("berth agent stopped; the node's router keeps serving");
    Ok(())
}

/// The node's engine socket (`DOCKER_HOST=unix://…`, else the standard one).
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Keeps the node's router as the latest welcome says (berth's image, the
/// router container), checking again every few seconds (someone may have
/// removed it).
async fn keep_router(
    docker: Docker,
    exe: PathBuf,
    control_dir: PathBuf,
    mut wanted: tokio::sync::watch::Receiver<Option<AgentWelcome>>,
) {
    let mut failing: Option<String> = None;
    loop {
        let welcome = wanted.borrow_and_update().clone();
        if let Some(welcome) = welcome {
            let outcome = async {
                let image = self_image::ensure(&docker, &exe)
                    .await
                    .map_err(|e| e.to_string())?;
                router::ensure(
                    &docker,
                    &welcome.rack_id,
                    &image,
                    &welcome.router,
                    &control_dir,
                )
                .await
                .map_err(|e| e.to_string())
            }
            .await;
            match outcome {
                Ok(()) => failing = None,
                Err(e) => {
                    if failing.as_deref() != Some(e.as_str()) {
                        tracing::warn!("{e}; trying again");
                    }
                    failing = Some(e);
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), wanted.changed()).await;
    }
}
