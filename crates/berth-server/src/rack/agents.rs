//! The agents of a swarm's nodes, as their hellos (`POST /agent/hello`, every
//! few seconds) made them known, and the link to each: its node's engine and
//! router, reached through the agent's tunnel (`berth_agent::tunnel`) from
//! local sockets in `DATA/nodes/`. Kept in memory: after a server restart the
//! agents say hello again within seconds.
//!
//! `Agents` is the swarm runtime's `NodeEngines`; `rack::fleet` drives the
//! routers of the links made here.

use super::Rack;
use berth_agent::tunnel::{self, Forwarder, Remote, Target};
use berth_api::AgentHello;
use berth_router::{AccessLine, RouterLink};
use berth_runtime::{DockerRuntime, NodeEngines, Runtime, RuntimeError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// An agent whose last hello is older than this counts as lost.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One node's agent as last heard from.
#[derive(Debug, Clone)]
pub struct Agent {
    pub hello: AgentHello,
    /// The id of the node token it introduced itself with.
    pub token: String,
    pub last_hello: Instant,
}

impl Agent {
    pub fn alive(&self) -> bool {
        self.last_hello.elapsed() < AGENT_TIMEOUT
    }
}

/// The server's way to one node: its engine and its router.
pub struct NodeLink {
    pub node_id: String,
    pub hostname: String,
    /// The agent's URL and key this link was made with.
    url: String,
    key: String,
    pub engine: Arc<DockerRuntime>,
    pub router: Arc<RouterLink>,
    _forwarders: [Forwarder; 2],
    /// App networks its router was joined to.
    networks: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl NodeLink {
    fn joined(&self, network: &str) -> bool {
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(network)
    }
}

/// What a swarm server gives the registry to make links with.
pub struct SwarmSetup {
    /// Where the local ends of the tunnels go (`DATA/nodes`).
    pub dir: PathBuf,
    pub rack_id: String,
    /// Where every node's router serves HTTP (the server's `--http`).
    pub http: SocketAddr,
    /// TLS towards the agents (trusting the cluster CA only).
    pub tls: Arc<rustls::ClientConfig>,
    /// The manager's engine, to list the rack's app networks.
    pub manager: bollard::Docker,
    /// Where the routers' access log lines go.
    pub access: mpsc::Sender<AccessLine>,
    /// How every node's router serves (sent in each welcome).
    pub router: berth_api::RouterSettings,
}

#[derive(Default)]
pub struct Agents {
    by_node: std::sync::Mutex<HashMap<String, Agent>>,
    links: std::sync::Mutex<HashMap<String, Arc<NodeLink>>>,
    /// Nodes a link is being made to now.
    connecting: std::sync::Mutex<std::collections::HashSet<String>>,
    /// `None` on a single engine: no links are made.
    setup: Option<SwarmSetup>,
    /// Counts link changes (`rack::fleet` hands new links the table).
    changes: watch::Sender<u64>,
    /// (node id, host) → the certificate issued for its agent, so every
    /// hello gets the same welcome.
    certs: std::sync::Mutex<HashMap<(String, String), berth_api::AgentTls>>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").finish_non_exhaustive()
    }
}

impl Agents {
    /// The registry of a swarm server.
    pub fn for_swarm(setup: SwarmSetup) -> Agents {
        Agents {
            setup: Some(setup),
            ..Agents::default()
        }
    }

    /// Records a hello; `true` when it is the first from this node or its
    /// address or key changed (the caller then has new work for it).
    pub fn hello(&self, token: &str, hello: AgentHello) -> bool {
        let mut agents = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let changed = agents
            .get(&hello.node_id)
            .is_none_or(|a| a.hello.url != hello.url || a.hello.key != hello.key || !a.alive());
        agents.insert(
            hello.node_id.clone(),
            Agent {
                hello,
                token: token.to_string(),
                last_hello: Instant::now(),
            },
        );
        changed
    }

    pub fn get(&self, node_id: &str) -> Option<Agent> {
        self.by_node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node_id)
            .cloned()
    }

    /// Every agent heard from recently.
    pub fn alive(&self) -> Vec<Agent> {
        self.by_node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|a| a.alive())
            .cloned()
            .collect()
    }

    /// The link to `node_id`, if made (whether or not its agent is alive now).
    pub fn link(&self, node_id: &str) -> Option<Arc<NodeLink>> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node_id)
            .cloned()
    }

    /// Links to the nodes whose agents are alive.
    pub fn live_links(&self) -> Vec<Arc<NodeLink>> {
        let links: Vec<Arc<NodeLink>> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        links
            .into_iter()
            .filter(|l| self.get(&l.node_id).is_some_and(|a| a.alive()))
            .collect()
    }

    /// How every node's router serves; `None` on a single engine.
    pub fn router_settings(&self) -> Option<&berth_api::RouterSettings> {
        self.setup.as_ref().map(|s| &s.router)
    }

    /// The certificate for `node_id`'s agent at `host`, issued once by `issue`.
    pub fn cert_for<E>(
        &self,
        node_id: &str,
        host: &str,
        issue: impl FnOnce() -> Result<berth_api::AgentTls, E>,
    ) -> Result<berth_api::AgentTls, E> {
        let key = (node_id.to_string(), host.to_string());
        if let Some(found) = self
            .certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let issued = issue()?;
        self.certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, issued.clone());
        Ok(issued)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Makes (again) the link to the node of a hello, unless it is up to
    /// date or being made. Runs in the background: the agent only serves its
    /// tunnel once the answer to its hello gave it a certificate.
    pub fn ensure_link(self: &Arc<Self>, node_id: &str) {
        let Some(agent) = self.get(node_id) else {
            return;
        };
        if self.setup.is_none()
            || self
                .link(node_id)
                .is_some_and(|l| l.url == agent.hello.url && l.key == agent.hello.key)
        {
            return;
        }
        if !self
            .connecting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string())
        {
            return;
        }
        let agents = self.clone();
        let node_id = node_id.to_string();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while let Some(agent) = agents.get(&node_id) {
                match agents.connect(&agent).await {
                    Ok(link) => {
                        tracing::info!(node = %link.hostname, url = %link.url, "linked to the node's agent");
                        agents
                            .links
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(node_id.clone(), Arc::new(link));
                        agents.changes.send_modify(|n| *n += 1);
                        break;
                    }
                    Err(e)
                        if Instant::now() < deadline
                            && agents.get(&node_id).is_some_and(|a| a.alive()) =>
                    {
                        tracing::debug!(node = %agent.hello.hostname, "cannot link to the agent yet: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        tracing::warn!(node = %agent.hello.hostname, "cannot link to the node's agent at {}: {e}", agent.hello.url);
                        break;
                    }
                }
            }
            agents
                .connecting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&node_id);
        });
    }

    async fn connect(&self, agent: &Agent) -> Result<NodeLink, String> {
        let setup = self.setup.as_ref().ok_or("not a swarm")?;
        let hello = &agent.hello;
        let remote =
            Remote::new(&hello.url, &hello.key, setup.tls.clone()).map_err(|e| e.to_string())?;
        // Unix socket paths are short (108 bytes): the node id's start names the dir.
        let dir = setup
            .dir
            .join(hello.node_id.chars().take(12).collect::<String>());
        let engine_fwd = Forwarder::start(&dir.join("engine.sock"), remote.clone(), Target::Engine)
            .map_err(|e| e.to_string())?;
        let router_fwd = Forwarder::start(&dir.join("router.sock"), remote, Target::Router)
            .map_err(|e| e.to_string())?;
        let socket = engine_fwd.path().display().to_string();
        let docker = bollard::Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| e.to_string())?;
        let engine = DockerRuntime::from_client(docker)
            .await
            .map_err(|e| e.to_string())?
            .with_endpoint(format!(
                "{} (node {}, through its agent)",
                hello.url, hello.hostname
            ));
        let describe = format!("the router on node {}", hello.hostname);
        let (router, mut lines) =
            RouterLink::attach(router_fwd.path().to_path_buf(), setup.http, &describe)
                .await
                .map_err(|e| e.to_string())?;
        let access = setup.access.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                if access.send(line).await.is_err() {
                    return;
                }
            }
        });
        let link = NodeLink {
            node_id: hello.node_id.clone(),
            hostname: hello.hostname.clone(),
            url: hello.url.clone(),
            key: hello.key.clone(),
            engine: Arc::new(engine),
            router,
            _forwarders: [engine_fwd, router_fwd],
            networks: Default::default(),
        };
        let networks = self.app_networks().await?;
        for network in networks {
            join_router(setup, &link, &network).await?;
        }
        Ok(link)
    }

    /// The rack's app networks (on the manager, which sees every overlay).
    async fn app_networks(&self) -> Result<Vec<String>, String> {
        let setup = self.setup.as_ref().ok_or("not a swarm")?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={}", berth_runtime::LABEL_RACK, setup.rack_id)],
        )]);
        let networks = setup
            .manager
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| format!("cannot list the app networks: {e}"))?;
        Ok(networks.into_iter().filter_map(|n| n.name).collect())
    }

    /// Joins every node's router to the app network `name` (made before a
    /// process on it may be routed to).
    pub async fn join_routers(&self, network: &str) -> Result<(), String> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        let links: Vec<Arc<NodeLink>> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let links: Vec<Arc<NodeLink>> = links.into_iter().filter(|l| !l.joined(network)).collect();
        let joins = links.iter().map(|link| join_router(setup, link, network));
        let mut failed = Vec::new();
        for (link, outcome) in links
            .iter()
            .zip(futures_util::future::join_all(joins).await)
        {
            if let Err(e) = outcome
                && self.get(&link.node_id).is_some_and(|a| a.alive())
            {
                failed.push(e);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// Joined before (by an earlier server): bridge networks say "already
/// exists", overlays "is already attached".
fn already_joined(e: &bollard::errors::Error) -> bool {
    let text = e.to_string();
    text.contains("already exists") || text.contains("already attached")
}

/// Connects the node's router container to `network`; already connected is fine.
async fn join_router(setup: &SwarmSetup, link: &NodeLink, network: &str) -> Result<(), String> {
    let container = berth_agent::router::container_name(&setup.rack_id);
    let request = bollard::models::NetworkConnectRequest {
        container: container.clone(),
        ..Default::default()
    };
    // Swarm's attachment of a container to an overlay can time out on a busy
    // manager ("context deadline exceeded"): tried three times.
    let mut outcome = link
        .engine
        .client()
        .connect_network(network, request.clone())
        .await;
    for _ in 0..2 {
        if outcome.as_ref().map_or_else(already_joined, |()| true) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        outcome = link
            .engine
            .client()
            .connect_network(network, request.clone())
            .await;
    }
    match outcome {
        Ok(()) => {}
        Err(e) if already_joined(&e) => {}
        Err(e) => Err(format!(
            "cannot join the router {container} on node {} to network {network}: {e}",
            link.hostname
        ))?,
    }
    link.networks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(network.to_string());
    Ok(())
}

#[async_trait::async_trait]
impl NodeEngines for Agents {
    async fn engine(&self, node_id: &str) -> berth_runtime::Result<Arc<dyn Runtime>> {
        match (self.link(node_id), self.get(node_id)) {
            (Some(link), Some(agent)) if agent.alive() => Ok(link.engine.clone()),
            (_, Some(agent)) if !agent.alive() => Err(RuntimeError::NodeUnreachable {
                node: agent.hello.hostname.clone(),
                reason: format!(
                    "its berth agent was last heard from {}s ago",
                    agent.last_hello.elapsed().as_secs()
                ),
            }),
            (_, Some(agent)) => Err(RuntimeError::NodeUnreachable {
                node: agent.hello.hostname.clone(),
                reason: "the server is still linking to its berth agent".into(),
            }),
            (_, None) => Err(RuntimeError::NodeUnreachable {
                node: node_id.to_string(),
                reason: "no berth agent runs on it; run the command `berth instances join` prints on that node".into(),
            }),
        }
    }

    async fn engines(&self) -> Vec<(String, Arc<dyn Runtime>)> {
        self.live_links()
            .into_iter()
            .map(|l| (l.node_id.clone(), l.engine.clone() as Arc<dyn Runtime>))
            .collect()
    }
}

/// The TLS towards agents, trusting `ca_pem` only.
pub fn agent_tls(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    tunnel::client_config(ca_pem)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

impl Rack {
    /// The agent of `node_id`, if one ever said hello.
    pub fn agent(&self, node_id: &str) -> Option<Agent> {
        self.agents.get(node_id)
    }
}
