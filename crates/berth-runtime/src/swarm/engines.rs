//! The engines of a swarm's nodes, for work only a node can do (its
//! containers' output, stats and execs, one-offs, volumes, image loading).

use crate::docker::DockerRuntime;
use crate::{Result, Runtime, RuntimeError};
use async_trait::async_trait;
use bollard::Docker;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

/// One `Runtime` per Swarm node, by node id (as the manager names nodes).
/// The server's implementation reaches each node through its berth agent;
/// [`DirectNodeEngines`] reaches node engines over their sockets.
#[async_trait]
pub trait NodeEngines: Send + Sync + 'static {
    /// The engine of node `node_id`. Fails with `RuntimeError::Connect` (or
    /// `NodeUnreachable`) when it cannot be reached now.
    async fn engine(&self, node_id: &str) -> Result<Arc<dyn Runtime>>;
    /// The engines known now, by node id.
    async fn engines(&self) -> Vec<(String, Arc<dyn Runtime>)>;
}

/// Who makes health checks of processes on a swarm, when not the node
/// engines (the server's routers, which are on every app network).
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    /// One check of `addr`; `node` is the node id the process was last seen
    /// on, if known (a check from there does not cross the overlay).
    async fn probe(
        &self,
        node: Option<&str>,
        addr: std::net::SocketAddr,
        host: &str,
        path: &str,
        timeout: std::time::Duration,
    ) -> std::result::Result<u16, String>;
}

/// Node engines reached directly over their sockets (node id → a
/// [`DockerRuntime`] on `unix://…`): for a server that can reach every
/// node's engine itself, and for tests against a lab swarm. Clients are
/// made on first use, so a node that is down at start is no error until
/// something needs it.
pub struct DirectNodeEngines {
    sockets: BTreeMap<String, String>,
    probe_image: Option<String>,
    connected: Mutex<HashMap<String, Arc<dyn Runtime>>>,
}

impl DirectNodeEngines {
    /// `sockets`: (node id, engine address, e.g. `unix:///run/swarmlab/node2/docker.sock`).
    pub fn new(sockets: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            sockets: sockets.into_iter().collect(),
            probe_image: None,
            connected: Mutex::new(HashMap::new()),
        }
    }

    /// This process cannot reach the overlay networks processes are on, so
    /// health checks run in a container of `image` on the node (busybox-style
    /// `sh` and `nc` needed, present on every node); without it they fail.
    pub fn with_probe_image(mut self, image: impl Into<String>) -> Self {
        self.probe_image = Some(image.into());
        self
    }

    async fn connect(&self, node_id: &str, address: &str) -> Result<Arc<dyn Runtime>> {
        let path = address.strip_prefix("unix://").ok_or_else(|| {
            RuntimeError::Engine(format!(
                "the engine address of node {node_id} is {address}; give a unix:// socket address"
            ))
        })?;
        let docker = Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(crate::docker::convert::map_err)?;
        let mut runtime = DockerRuntime::from_client(docker)
            .await?
            .with_endpoint(address);
        if let Some(image) = &self.probe_image {
            runtime = runtime.with_probe_image(image.clone());
        }
        Ok(Arc::new(runtime))
    }
}

#[async_trait]
impl NodeEngines for DirectNodeEngines {
    async fn engine(&self, node_id: &str) -> Result<Arc<dyn Runtime>> {
        let mut connected = self.connected.lock().await;
        if let Some(engine) = connected.get(node_id) {
            return Ok(Arc::clone(engine));
        }
        let address = self
            .sockets
            .get(node_id)
            .ok_or_else(|| RuntimeError::NodeUnreachable {
                node: node_id.to_string(),
                reason: "no engine address is known for it".into(),
            })?;
        let engine = self.connect(node_id, address).await?;
        connected.insert(node_id.to_string(), Arc::clone(&engine));
        Ok(engine)
    }

    async fn engines(&self) -> Vec<(String, Arc<dyn Runtime>)> {
        let mut out = Vec::new();
        for node in self.sockets.keys() {
            if let Ok(engine) = self.engine(node).await {
                out.push((node.clone(), engine));
            }
        }
        out
    }
}
