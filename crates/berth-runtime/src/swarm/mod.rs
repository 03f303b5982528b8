//! `Runtime` on a Docker Swarm: the manager's Engine API (bollard) for what
//! the cluster knows, and one engine per node ([`NodeEngines`]) for what
//! only a node has.
//!
//! - A **process** is a Swarm service of one replica (`berth-<rack>-<app>-<process>`,
//!   DNS round robin, no restart policy, berth's labels on the service and its
//!   task's container) on the app's attachable overlay, under its service name
//!   as alias; Swarm picks the node. Its id is the service id; its state,
//!   node and address come from its newest task (and that task's container on
//!   its node). Its output, stats and execs are its task container's, on its node.
//! - **Node-local** containers (one-offs, volume helpers) are plain containers
//!   on one node (the Ready node running the fewest berth tasks, or the one
//!   holding their volumes) on the same overlay; their ids are
//!   `<node id>/<container id>` and exec ids `<node id>/<exec id>`, so each
//!   later call finds the node again.
//! - **Volumes** are node-local: listed and removed on every node, created by
//!   the node a process or helper lands on (with the labels `ensure_volume`
//!   was given), and a process with volumes stays on the node holding them.
//! - **Images** are built and loaded on the manager's engine and reach the
//!   nodes through `distribute_image` (only the layers a node lacks travel);
//!   services name an image by id, so no node ever asks a registry.
//!
//! Module layers (each uses only those below it): this module (the type and
//! the trait impl) over `processes` (services) over `local` (one node's
//! containers and volumes) over `distribute`, `events`, `engines` and `model`.

mod distribute;
mod engines;
mod events;
mod local;
mod model;
mod processes;

pub use engines::{DirectNodeEngines, NodeEngines, Prober};

use self::model::{hostname, node_ready, split_local};
use crate::docker::convert::map_err;
use crate::docker::{DockerRuntime, NetworkKind};
use crate::{
    BuildRequest, ContainerInfo, ContainerSpec, ImageDetails, ImageInfo, LogLine, NodeInfo,
    ProcessStats, Result, Runtime, RuntimeError, RuntimeEvent, Session, VolumeInfo,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::Node;
use bollard::query_parameters::ListNodesOptions;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Volume name → the labels `ensure_volume` was given for it.
type VolumeLabels = HashMap<String, BTreeMap<String, String>>;

/// The Swarm implementation of [`Runtime`]. Cheap to clone.
#[derive(Clone)]
pub struct SwarmRuntime {
    manager: DockerRuntime,
    nodes: Arc<dyn NodeEngines>,
    /// The manager engine's own node, where probes go first.
    manager_node: String,
    /// Nodes create volumes themselves (for a mount, or a one-off's bind),
    /// so the labels to give them are kept from `ensure_volume`.
    volume_labels: Arc<std::sync::Mutex<VolumeLabels>>,
    /// One image distribution at a time: concurrent starts of one release
    /// would otherwise each export and send the same image.
    distributing: Arc<tokio::sync::Mutex<()>>,
    /// Where exported images are spooled on their way to the nodes.
    temp_dir: PathBuf,
    /// Process address → the node (id) its task runs on, as last seen: a
    /// health check goes from that node first, so it does not depend on the
    /// overlay between nodes (slow to settle after a node comes back).
    addresses: Arc<std::sync::Mutex<HashMap<IpAddr, String>>>,
    /// Makes health checks instead of the node engines, when given.
    prober: Option<Arc<dyn Prober>>,
}

impl std::fmt::Debug for SwarmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmRuntime")
            .field("manager", &self.manager.endpoint())
            .field("manager_node", &self.manager_node)
            .finish_non_exhaustive()
    }
}

impl SwarmRuntime {
    /// Connects to the manager engine `DOCKER_HOST` names (else the standard
    /// socket), which must be a Swarm manager.
    pub async fn connect(nodes: Arc<dyn NodeEngines>) -> Result<Self> {
        Self::new(DockerRuntime::connect().await?, nodes).await
    }

    /// Over a connected manager engine; refuses one that is not a Swarm manager.
    pub async fn new(manager: DockerRuntime, nodes: Arc<dyn NodeEngines>) -> Result<Self> {
        let info = manager.client().info().await.map_err(map_err)?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.control_available != Some(true) {
            let state = match swarm.local_node_state.map(|s| s.to_string()).as_deref() {
                Some("active") => "it is a worker of its swarm".to_string(),
                Some("" | "inactive") | None => "it is in no swarm".to_string(),
                Some(other) => format!("its swarm state is {other}"),
            };
            return Err(RuntimeError::NotSwarmManager {
                endpoint: manager.endpoint(),
                state,
            });
        }
        Ok(Self {
            manager,
            nodes,
            manager_node: swarm.node_id.unwrap_or_default(),
            volume_labels: Arc::default(),
            distributing: Arc::default(),
            temp_dir: std::env::temp_dir(),
            addresses: Arc::default(),
            prober: None,
        })
    }

    /// Spools exported images in `dir` (e.g. the server's data dir's `tmp/`)
    /// rather than the system's temp dir.
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = dir.into();
        self
    }

    /// Health checks go to `prober` (e.g. the routers on the nodes) rather
    /// than to the node engines.
    pub fn with_prober(mut self, prober: Arc<dyn Prober>) -> Self {
        self.prober = Some(prober);
        self
    }

    /// The manager's engine, for calls the trait does not cover.
    pub fn manager(&self) -> &DockerRuntime {
        &self.manager
    }

    /// The node engines this runtime uses.
    pub fn node_engines(&self) -> &Arc<dyn NodeEngines> {
        &self.nodes
    }

    fn docker(&self) -> &Docker {
        self.manager.client()
    }

    async fn swarm_nodes(&self) -> Result<Vec<Node>> {
        self.docker()
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(map_err)
    }

    /// The engine of `node`; a node that cannot be reached is named as such,
    /// so it is not taken for the manager being gone.
    async fn engine(&self, node: &str) -> Result<Arc<dyn Runtime>> {
        self.nodes.engine(node).await.map_err(|e| on_node(node, e))
    }

    /// Where the container behind `id` is: (node id, its engine, container id).
    async fn locate(&self, id: &str) -> Result<(String, Arc<dyn Runtime>, String)> {
        let (node, container) = match split_local(id) {
            Some((node, container)) => (node.to_string(), container.to_string()),
            None => self.task_container(id).await?,
        };
        let engine = self.engine(&node).await?;
        Ok((node, engine, container))
    }

    fn remember_volume(&self, name: &str, labels: &BTreeMap<String, String>) {
        self.volume_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), labels.clone());
    }

    fn remember_address(&self, ip: IpAddr, node: &str) {
        if let Ok(mut addresses) = self.addresses.lock() {
            addresses.insert(ip, node.to_string());
        }
    }

    fn node_of_address(&self, ip: IpAddr) -> Option<String> {
        self.addresses.lock().ok()?.get(&ip).cloned()
    }

    fn volume_labels(&self) -> VolumeLabels {
        self.volume_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A node engine's errors, with the node named when it could not be reached.
fn on_node(node: &str, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Connect(reason) => RuntimeError::NodeUnreachable {
            node: node.to_string(),
            reason,
        },
        other => other,
    }
}

/// `on_node` for `map_err`.
fn at(node: &str) -> impl Fn(RuntimeError) -> RuntimeError + '_ {
    move |e| on_node(node, e)
}

/// A node engine's stream, its errors passed through `on_node`.
fn on_node_stream<T: Send + 'static>(
    node: String,
    stream: BoxStream<'static, Result<T>>,
) -> BoxStream<'static, Result<T>> {
    stream
        .map(move |item| item.map_err(|e| on_node(&node, e)))
        .boxed()
}

/// A stream made by an async step first (finding a container's node).
fn deferred<T: Send + 'static>(
    find: impl std::future::Future<Output = Result<BoxStream<'static, Result<T>>>> + Send + 'static,
) -> BoxStream<'static, Result<T>> {
    stream::once(find)
        .flat_map(|found| match found {
            Ok(stream) => stream,
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
}

#[async_trait]
impl Runtime for SwarmRuntime {
    async fn version(&self) -> Result<String> {
        let engine = self.manager.version().await?;
        let nodes = self.swarm_nodes().await?;
        Ok(format!("{engine}, Swarm manager of {} nodes", nodes.len()))
    }

    fn endpoint(&self) -> String {
        self.manager.endpoint()
    }

    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.manager
            .ensure_network_of(name, labels, NetworkKind::AttachableOverlay)
            .await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.manager.remove_network(name).await
    }

    async fn build_image(
        &self,
        request: BuildRequest<'_>,
        output: mpsc::Sender<String>,
    ) -> Result<String> {
        self.manager.build_image(request, output).await
    }

    async fn image_exists(&self, name: &str) -> Result<bool> {
        self.manager.image_exists(name).await
    }

    /// On the manager, then on every node that can be reached (best effort:
    /// a node still using it keeps its copy until the next prune).
    async fn remove_image(&self, name: &str) -> Result<()> {
        let id = self.manager.image_details(name).await?.map(|d| d.id);
        self.manager.remove_image(name).await?;
        let Some(id) = id else { return Ok(()) };
        for node in self.swarm_nodes().await?.iter().filter(|n| node_ready(n)) {
            let Some(node_id) = node.id.as_deref() else {
                continue;
            };
            if node_id == self.manager_node {
                continue;
            }
            if let Ok(engine) = self.engine(node_id).await {
                let _ = engine.remove_image(&id).await;
            }
        }
        Ok(())
    }

    async fn list_images(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>> {
        self.manager.list_images(key, value).await
    }

    async fn run_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.run_process(spec).await
    }

    async fn stop_container(&self, id: &str, grace: u32) -> Result<()> {
        match split_local(id) {
            Some((node, container)) => self
                .engine(node)
                .await?
                .stop_container(container, grace)
                .await
                .map_err(at(node)),
            None => self.stop_process(id, grace).await,
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        match split_local(id) {
            Some((node, container)) => self.remove_local(node, container).await,
            None => self.remove_process(id).await,
        }
    }

    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        self.list(key, value).await
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        match split_local(id) {
            Some((node, container)) => self.inspect_local(node, container).await,
            None => self.process(id).await,
        }
    }

    fn events(&self, key: &str, value: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        events::task_events(self.docker().clone(), key, value)
    }

    fn logs(&self, id: &str, since_secs: i64) -> BoxStream<'static, Result<LogLine>> {
        let (this, id) = (self.clone(), id.to_string());
        deferred(async move {
            let (node, engine, container) = this.locate(&id).await?;
            Ok(on_node_stream(node, engine.logs(&container, since_secs)))
        })
    }

    async fn tail_logs(&self, id: &str, lines: usize) -> Result<Vec<LogLine>> {
        let (node, engine, container) = self.locate(id).await?;
        engine.tail_logs(&container, lines).await.map_err(at(&node))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.create_oneoff(spec).await
    }

    async fn attach_container(&self, id: &str, stdin: bool) -> Result<Session> {
        let (node, engine, container) = self.locate(id).await?;
        engine
            .attach_container(&container, stdin)
            .await
            .map_err(at(&node))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        match split_local(id) {
            Some((node, container)) => self
                .engine(node)
                .await?
                .start_container(container)
                .await
                .map_err(at(node)),
            None => self.start_process(id).await,
        }
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        match split_local(id) {
            Some((node, container)) => self
                .engine(node)
                .await?
                .wait_container(container)
                .await
                .map_err(at(node)),
            None => self.wait_process(id).await,
        }
    }

    async fn resize_container(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let (node, engine, container) = self.locate(id).await?;
        engine
            .resize_container(&container, rows, cols)
            .await
            .map_err(at(&node))
    }

    async fn exec(
        &self,
        container: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<(String, Session)> {
        let (node, engine, container) = self.locate(container).await?;
        let (exec, session) = engine
            .exec(&container, command, tty, stdin)
            .await
            .map_err(at(&node))?;
        Ok((model::local_id(&node, &exec), session))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let (node, exec) = split_exec(exec_id)?;
        self.engine(node)
            .await?
            .exec_exit_code(exec)
            .await
            .map_err(at(node))
    }

    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        let (node, exec) = split_exec(exec_id)?;
        self.engine(node)
            .await?
            .resize_exec(exec, rows, cols)
            .await
            .map_err(at(node))
    }

    /// Nothing is made here: the node a process or helper lands on makes the
    /// volume, with these labels, when it first mounts it.
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.remember_volume(name, labels);
        Ok(())
    }

    async fn list_volumes(&self, key: &str, value: &str) -> Result<Vec<VolumeInfo>> {
        self.volumes_everywhere(key, value).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.remove_volume_everywhere(name).await
    }

    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String> {
        self.helper(name, image, labels, volumes).await
    }

    fn download_archive(&self, container: &str, path: &str) -> BoxStream<'static, Result<Bytes>> {
        let (this, id, path) = (self.clone(), container.to_string(), path.to_string());
        deferred(async move {
            let (node, engine, container) = this.locate(&id).await?;
            Ok(on_node_stream(
                node,
                engine.download_archive(&container, &path),
            ))
        })
    }

    async fn upload_archive(
        &self,
        container: &str,
        path: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()> {
        let (node, engine, container) = self.locate(container).await?;
        engine
            .upload_archive(&container, path, tar)
            .await
            .map_err(at(&node))
    }

    fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        self.manager.export_image(name)
    }

    async fn load_image(
        &self,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<Vec<String>> {
        self.manager.load_image(tar).await
    }

    async fn image_details(&self, name: &str) -> Result<Option<ImageDetails>> {
        self.manager.image_details(name).await
    }

    async fn layer_chains(&self) -> Result<BTreeSet<String>> {
        self.manager.layer_chains().await
    }

    /// From the node the process at `addr` was last seen on, then the
    /// manager's node (its engine sees every swarm network), then any Ready
    /// node.
    async fn probe(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::result::Result<u16, String> {
        let home = self.node_of_address(addr.ip());
        if let Some(prober) = &self.prober {
            return prober
                .probe(home.as_deref(), addr, host, path, timeout)
                .await;
        }
        let nodes = self.swarm_nodes().await.map_err(|e| e.to_string())?;
        let mut order: Vec<&str> = nodes
            .iter()
            .filter(|n| node_ready(n))
            .filter_map(|n| n.id.as_deref())
            .collect();
        order.sort_by_key(|id| (Some(*id) != home.as_deref(), *id != self.manager_node));
        let mut unreachable = Vec::new();
        for node in order {
            match self.engine(node).await {
                Ok(engine) => return engine.probe(addr, host, path, timeout).await,
                Err(e) => unreachable.push(e.to_string()),
            }
        }
        Err(format!(
            "no node could probe {addr}: {}",
            if unreachable.is_empty() {
                "no node is ready".to_string()
            } else {
                unreachable.join("; ")
            }
        ))
    }

    async fn stats(&self, id: &str) -> Result<ProcessStats> {
        let (node, engine, container) = self.locate(id).await?;
        engine.stats(&container).await.map_err(at(&node))
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let mut nodes: Vec<NodeInfo> = self
            .swarm_nodes()
            .await?
            .iter()
            .map(model::node_info)
            .collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(nodes)
    }

    async fn set_node_availability(&self, node: &str, availability: &str) -> Result<()> {
        self.update_availability(node, availability).await
    }

    /// To every Ready node that lacks it. A node that cannot get it now is
    /// named in `progress` and left out when processes are placed; only an
    /// image no active node has is an error.
    async fn distribute_image(&self, image: &str, progress: mpsc::Sender<String>) -> Result<()> {
        let details = self
            .manager
            .image_details(image)
            .await?
            .ok_or_else(|| RuntimeError::ImageMissing(image.to_string()))?;
        let nodes = self.swarm_nodes().await?;
        let outcomes = self
            .send_image(image, &details.id, &nodes, Some(&progress))
            .await;
        let active: BTreeSet<String> = nodes
            .iter()
            .filter(|n| node_ready(n) && model::node_active(n))
            .filter_map(|n| n.id.clone())
            .collect();
        if outcomes
            .iter()
            .any(|((id, _), o)| o.has_image() && active.contains(id))
        {
            Ok(())
        } else {
            Err(distribute::nowhere(image, &outcomes))
        }
    }
}

fn split_exec(exec_id: &str) -> Result<(&str, &str)> {
    split_local(exec_id).ok_or_else(|| {
        RuntimeError::Engine(format!(
            "exec {exec_id} names no node; use the id this runtime's exec returned"
        ))
    })
}

impl SwarmRuntime {
    /// Sends `image` to every Ready node lacking it (one at a time per
    /// runtime, see `distributing`).
    async fn send_image(
        &self,
        image: &str,
        image_id: &str,
        nodes: &[Node],
        progress: Option<&mpsc::Sender<String>>,
    ) -> Vec<(distribute::Target, distribute::Outcome)> {
        let targets: Vec<distribute::Target> = nodes
            .iter()
            .filter(|n| node_ready(n))
            .filter_map(|n| Some((n.id.clone()?, hostname(n))))
            .collect();
        let _one_at_a_time = self.distributing.lock().await;
        distribute::distribute(
            &self.manager,
            &*self.nodes,
            image,
            image_id,
            &targets,
            &self.temp_dir,
            progress,
        )
        .await
    }

    async fn update_availability(&self, node: &str, availability: &str) -> Result<()> {
        let wanted = model::availability(availability).ok_or_else(|| {
            RuntimeError::Engine(format!(
                "node availability {availability:?} is not one of active, pause, drain"
            ))
        })?;
        let found = match self.docker().inspect_node(node).await {
            Ok(n) => n,
            Err(e) if crate::docker::convert::status_of(&e) == Some(404) => {
                return Err(RuntimeError::NotFound(format!(
                    "node {node} (see `docker node ls` for the ids)"
                )));
            }
            Err(e) => return Err(map_err(e)),
        };
        let version = found
            .version
            .as_ref()
            .and_then(|v| v.index)
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0);
        let mut spec = found.spec.unwrap_or_default();
        spec.availability = Some(wanted);
        let id = found.id.unwrap_or_else(|| node.to_string());
        self.docker()
            .update_node(
                &id,
                spec,
                bollard::query_parameters::UpdateNodeOptions { version },
            )
            .await
            .map_err(map_err)
    }
}
