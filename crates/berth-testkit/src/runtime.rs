//! [`MemoryRuntime`]: the `Runtime` trait on the in-memory engine, and the
//! handles tests use to set up images and inject failures.

use crate::images::{ImageConfig, describe_layer};
use crate::network::Network;
use crate::state::{Bus, DEFAULT_NETWORK, Engine, random_id, single};
use crate::{build, image_archive, lifecycle, sessions, volumes};
use async_trait::async_trait;
use berth_runtime::{
    BuildRequest, ContainerInfo, ContainerSpec, ImageDetails, ImageInfo, LogLine, NodeInfo,
    ProcessStats, Result, Runtime, RuntimeError, RuntimeEvent, Session, VolumeInfo,
};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// An in-memory container engine behind [`Runtime`], with the observable
/// behaviour of `DockerRuntime`. Cheap to create (one per test) and to clone
/// (clones share one engine); when the last clone is dropped, every program
/// it runs ends and its listeners close.
#[derive(Clone)]
pub struct MemoryRuntime {
    engine: Arc<Engine>,
}

/// An image for [`MemoryRuntime::add_image_spec`], as a Dockerfile would make it.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// E.g. `shop:dev`; `shop` means `shop:latest`.
    pub tag: String,
    pub labels: BTreeMap<String, String>,
    /// `CMD`: the program containers run unless their spec names one.
    pub cmd: Vec<String>,
    /// `ENTRYPOINT`: put before the command.
    pub entrypoint: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `EXPOSE`d TCP ports.
    pub exposed_tcp: Vec<u16>,
}

/// What [`MemoryRuntime::network`] tells about a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    /// E.g. `127.64.3.0/24`.
    pub subnet: String,
    pub labels: BTreeMap<String, String>,
}

impl Default for MemoryRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRuntime {
    /// A new engine with no images, containers or volumes, and the default
    /// network `bridge` (where a container without a network goes).
    pub fn new() -> MemoryRuntime {
        MemoryRuntime {
            engine: Engine::new(),
        }
    }

    /// Adds an image tagged `tag` whose containers run `command` (its `CMD`;
    /// see the crate doc for the vocabulary). Returns its id.
    pub fn add_image(
        &self,
        tag: &str,
        labels: &BTreeMap<String, String>,
        command: &[&str],
    ) -> String {
        self.add_image_spec(ImageSpec {
            tag: tag.to_string(),
            labels: labels.clone(),
            cmd: command.iter().map(|w| w.to_string()).collect(),
            ..ImageSpec::default()
        })
    }

    /// Adds an image as `spec` describes it, with one small layer. Returns its id.
    pub fn add_image_spec(&self, spec: ImageSpec) -> String {
        let layers: Vec<_> = describe_layer(&format!("berth-testkit image {}", spec.tag))
            .into_iter()
            .collect();
        let non_empty = |words: Vec<String>| (!words.is_empty()).then_some(words);
        let config = ImageConfig {
            labels: spec.labels,
            env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cmd: non_empty(spec.cmd),
            entrypoint: non_empty(spec.entrypoint),
            exposed: spec
                .exposed_tcp
                .iter()
                .map(|p| format!("{p}/tcp"))
                .collect(),
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        };
        let mut state = self.engine.lock();
        let id = state.images.insert(config.to_json(), config, None, layers);
        state.images.tag(&spec.tag, &id);
        id
    }

    /// While `true`, every call fails with `RuntimeError::Connect`, as with a
    /// stopped dockerd, and open event streams yield that error and end.
    /// What runs keeps running; calls succeed again once it is `false`.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.engine.set_unreachable(unreachable);
    }

    /// Makes a running container's program exit with `code` at once, as a
    /// crash would (a `die` event with that code; no `kill`). Returns once it
    /// has exited; an error when the container is absent or not running.
    pub async fn kill(&self, container: &str, code: i64) -> Result<()> {
        lifecycle::kill(&self.engine, container, code).await
    }

    /// The spec a container (id, name or id prefix) was created from.
    pub fn container_spec(&self, container: &str) -> Option<ContainerSpec> {
        Some(self.engine.lock().container(container)?.spec.clone())
    }

    /// A file's content in a volume (`path` relative to the volume's root).
    pub fn read_volume_file(&self, volume: &str, path: &str) -> Option<Bytes> {
        volumes::read_file(&self.engine, volume, path)
    }

    /// The last TTY size given to a container or exec.
    pub fn tty_size(&self, container_or_exec: &str) -> Option<(u16, u16)> {
        let state = self.engine.lock();
        match state.execs.get(container_or_exec) {
            Some(exec) => exec.tty_size,
            None => state.container(container_or_exec)?.tty_size,
        }
    }

    /// A network's labels and the subnet its containers get addresses from.
    pub fn network(&self, name: &str) -> Option<NetworkInfo> {
        let state = self.engine.lock();
        let network = state.networks.get(name)?;
        Some(NetworkInfo {
            name: name.to_string(),
            subnet: network.subnet(),
            labels: network.labels.clone(),
        })
    }
}

#[async_trait]
impl Runtime for MemoryRuntime {
    async fn version(&self) -> Result<String> {
        self.engine.check()?;
        Ok("memory 1 (test engine)".into())
    }

    fn endpoint(&self) -> String {
        self.engine.endpoint()
    }

    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.engine.check()?;
        self.engine
            .lock()
            .networks
            .entry(name.to_string())
            .or_insert_with(|| Network::new(random_id(), labels.clone()));
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.engine.check()?;
        let mut state = self.engine.lock();
        let Some(network) = state.networks.get(name) else {
            return Ok(());
        };
        if name == DEFAULT_NETWORK {
            return Err(RuntimeError::Engine(format!(
                "{name} is a pre-defined network and cannot be removed (HTTP 403)"
            )));
        }
        if network.has_endpoints() {
            return Err(RuntimeError::Engine(format!(
                "error while removing network: network {name} id {} has active endpoints (HTTP 403)",
                network.id
            )));
        }
        state.networks.remove(name);
        Ok(())
    }

    async fn build_image(
        &self,
        request: BuildRequest<'_>,
        output: mpsc::Sender<String>,
    ) -> Result<String> {
        build::build(&self.engine, request, output).await
    }

    async fn image_exists(&self, name: &str) -> Result<bool> {
        self.engine.check()?;
        Ok(self.engine.lock().images.resolve(name).is_some())
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        self.engine.check()?;
        let mut state = self.engine.lock();
        // Out of the state for a moment, so the containers can be asked who uses what.
        let mut images = std::mem::take(&mut state.images);
        let result = {
            let view = &*state;
            images.remove(name, &|id: &str| view.image_user(id))
        };
        state.images = images;
        result.map_err(|message| RuntimeError::Engine(format!("{message} (HTTP 409)")))
    }

    async fn list_images(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>> {
        self.engine.check()?;
        Ok(self.engine.lock().images.list(key, value))
    }

    async fn run_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let id = lifecycle::create(&self.engine, spec).await?;
        if let Err(e) = lifecycle::start(&self.engine, &id) {
            // A container that never started is of no use; its name would
            // only collide with the next attempt.
            let _ = lifecycle::remove(&self.engine, &id).await;
            return Err(e);
        }
        lifecycle::inspect(&self.engine, &id)?
            .ok_or_else(|| RuntimeError::NotFound(spec.name.clone()))
    }

    async fn stop_container(&self, id: &str, grace: u32) -> Result<()> {
        lifecycle::stop(&self.engine, id, grace).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        lifecycle::remove(&self.engine, id).await
    }

    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        lifecycle::list(&self.engine, key, value)
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        lifecycle::inspect(&self.engine, id)
    }

    fn events(&self, key: &str, value: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        if let Err(e) = self.engine.check() {
            return single(Err(e));
        }
        let receiver = self.engine.subscribe();
        let (key, value) = (key.to_string(), value.to_string());
        let endpoint = self.engine.endpoint();
        stream::unfold(Some(receiver), move |receiver| {
            let (key, value, endpoint) = (key.clone(), value.clone(), endpoint.clone());
            async move {
                let mut receiver = receiver?;
                loop {
                    match receiver.recv().await {
                        Ok(Bus::Event(event)) => {
                            if event.labels.get(&key) == Some(&value) {
                                return Some((Ok(event), Some(receiver)));
                            }
                        }
                        Ok(Bus::Disconnected) => {
                            let error = RuntimeError::Connect(format!(
                                "{endpoint}: the event stream was cut (MemoryRuntime::set_unreachable)"
                            ));
                            return Some((Err(error), None));
                        }
                        // A slow reader misses events, as with the engine; the
                        // caller's resync covers them.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        })
        .boxed()
    }

    fn logs(&self, id: &str, since_secs: i64) -> BoxStream<'static, Result<LogLine>> {
        sessions::logs(&self.engine, id, since_secs)
    }

    async fn tail_logs(&self, id: &str, lines: usize) -> Result<Vec<LogLine>> {
        sessions::tail(&self.engine, id, lines)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        lifecycle::create(&self.engine, spec).await
    }

    async fn attach_container(&self, id: &str, stdin: bool) -> Result<Session> {
        sessions::attach(&self.engine, id, stdin)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        lifecycle::start(&self.engine, id)
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        lifecycle::wait(&self.engine, id).await
    }

    async fn resize_container(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        sessions::resize_container(&self.engine, id, rows, cols)
    }

    async fn exec(
        &self,
        container: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<(String, Session)> {
        sessions::exec(&self.engine, container, command, tty, stdin)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        sessions::exec_exit_code(&self.engine, exec_id)
    }

    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        sessions::resize_exec(&self.engine, exec_id, rows, cols)
    }

    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        volumes::ensure(&self.engine, name, labels)
    }

    async fn list_volumes(&self, key: &str, value: &str) -> Result<Vec<VolumeInfo>> {
        volumes::list(&self.engine, key, value)
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        volumes::remove(&self.engine, name)
    }

    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String> {
        lifecycle::create_helper(&self.engine, name, image, labels, volumes).await
    }

    fn download_archive(&self, container: &str, path: &str) -> BoxStream<'static, Result<Bytes>> {
        volumes::download(&self.engine, container, path)
    }

    async fn upload_archive(
        &self,
        container: &str,
        path: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()> {
        volumes::upload(&self.engine, container, path, tar).await
    }

    fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        image_archive::export(&self.engine, name)
    }

    async fn load_image(
        &self,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<Vec<String>> {
        image_archive::load(&self.engine, tar).await
    }

    async fn image_details(&self, name: &str) -> Result<Option<ImageDetails>> {
        self.engine.check()?;
        Ok(self.engine.lock().images.details(name))
    }

    async fn layer_chains(&self) -> Result<BTreeSet<String>> {
        self.engine.check()?;
        Ok(self.engine.lock().images.chains())
    }

    async fn stats(&self, id: &str) -> Result<ProcessStats> {
        self.engine.check()?;
        let engine = self.engine.lock();
        let container = engine
            .container(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        container
            .stats()
            .ok_or_else(|| RuntimeError::Engine(format!("container {id} is not running")))
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.engine.check()?;
        Ok(vec![NodeInfo {
            id: self.endpoint(),
            hostname: "memory".into(),
            role: "manager".into(),
            status: "ready".into(),
            availability: "active".into(),
            addr: None,
            labels: BTreeMap::new(),
            cpus: 1.0,
            memory: 1 << 30,
        }])
    }
}
