//! `Runtime` on a Docker Engine, through its HTTP API (bollard).
//!
//! Layers, top to bottom (each uses only those below it):
//! - this module: the engine client and the `Runtime` impl;
//! - `storage`: volumes, archives and image transfer; `remote_probe`: health
//!   checks from a container on the engine, for an engine on another machine;
//! - `logs`: the engine's log and attach frames turned into lines and chunks;
//! - `convert`: engine models to berth's types, engine errors to `RuntimeError`.

pub(crate) mod convert;
mod logs;
mod remote_probe;
mod storage;

use self::convert::{
    info_from_inspect, info_from_summary, label_filter, map_err, network_error, runtime_event,
    status_of, to_hash_map,
};
use self::logs::{LineBuffer, log_lines, session};
use crate::subnets::{self, NetworkPool};
use crate::{
    BuildRequest, ContainerInfo, ContainerSpec, ContainerState, ImageDetails, ImageInfo, LogLine,
    NodeInfo, ProcessStats, Result, Runtime, RuntimeError, RuntimeEvent, Session, VolumeInfo,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    AttachContainerOptions, ResizeContainerTTYOptions, WaitContainerOptions,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, EventsOptions, ListContainersOptions,
    ListImagesOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, StopContainerOptions,
};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio_util::io::ReaderStream;

/// bollard's timeout covers the wait for the response head. A build's head comes
/// only after the whole context is uploaded and the first step has printed, so
/// builds get far longer than the 2-minute default.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);
/// Extra log messages `tail_logs` asks for; see there.
const TAIL_MARGIN: usize = 16;
/// Added to a stop's grace period: the engine answers a stop only once the
/// container is gone, which can take the full grace period.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// Serialises `ensure_network` within the process. The engine's own duplicate
/// check (`CheckDuplicate`) is check-then-create without a lock (measured on
/// 20.10: three concurrent creates made three networks of one name), so callers
/// racing each other must be kept apart here. Network names are per rack, and a
/// rack has one server process, so this covers the races that can happen.
static NETWORK_LOCK: Mutex<()> = Mutex::const_new(());

/// The Docker Engine implementation of [`Runtime`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// Where app networks get their subnets; `None`: the engine's default pools.
    network_pool: Option<NetworkPool>,
    /// The engine's address as `endpoint()` reports it.
    endpoint: String,
    /// An image with `sh` and `nc` to probe processes from a container on the
    /// engine; `None`: probes connect from this process.
    probe_image: Option<String>,
}

/// The kind of an app network the runtime makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkKind {
    /// One engine's bridge, with a subnet from the network pool when set.
    Bridge,
    /// A Swarm overlay that plain containers may join too (one-offs), from
    /// the swarm's own address pools.
    AttachableOverlay,
}

/// The socket bollard's `connect_with_local_defaults` uses on Unix: `DOCKER_HOST`
/// when it is a `unix://` address, else the standard socket. bollard keeps its
/// choice to itself, so the rule is repeated here; it ignores `tcp://` hosts.
fn local_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| host.starts_with("unix://"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` when it is a `unix://` address,
    /// else `/var/run/docker.sock`) and settles on the API version both sides speak.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(map_err)?;
        Self::from_client(docker).await
    }

    /// Wraps an existing client, negotiating the API version with its engine.
    /// bollard defaults to a newer API than older engines (20.10 speaks 1.41)
    /// accept, so a client that skipped negotiation would have every request refused.
    /// `endpoint()` reports the local engine's address, as for `connect`; give
    /// a client connected elsewhere its address with [`Self::with_endpoint`].
    pub async fn from_client(docker: Docker) -> Result<Self> {
        let docker = docker.negotiate_version().await.map_err(map_err)?;
        Ok(Self {
            docker,
            network_pool: None,
            endpoint: local_address(),
            probe_image: None,
        })
    }

    /// Probes processes from a short-lived container of `image` (which must
    /// have busybox-style `sh` and `nc`) on the engine's network holding the
    /// address, rather than from this process: for an engine on another
    /// machine, whose networks this process cannot reach (a Swarm node's
    /// engine reached over its socket, as `DirectNodeEngines` does).
    pub fn with_probe_image(mut self, image: impl Into<String>) -> Self {
        self.probe_image = Some(image.into());
        self
    }

    /// The address `endpoint()` reports, for a client that `from_client` cannot
    /// ask (bollard does not say where it connects to).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// App networks get a /24 each from `pool` rather than from the engine's
    /// default pools, which hold only about 30 networks.
    pub fn with_network_pool(mut self, pool: Option<NetworkPool>) -> Self {
        self.network_pool = pool;
        self
    }

    /// A free /24 of the pool for a new network; called under NETWORK_LOCK so two
    /// networks of this process never get the same one.
    async fn subnet_from_pool(&self, pool: &NetworkPool, name: &str) -> Result<Ipam> {
        let networks = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(map_err)?;
        let used = subnets::parse_used(
            networks
                .iter()
                .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
                .flatten()
                .filter_map(|c| c.subnet.as_deref()),
        );
        let subnet = pool.free_subnet(&used).ok_or_else(|| {
            RuntimeError::Engine(format!(
                "cannot create network {name}: all {} app networks of the pool {pool} are in use; \
                 give `berth server --network-pool` a larger pool (e.g. a /16) or delete unused apps",
                pool.capacity()
            ))
        })?;
        Ok(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        })
    }

    /// The underlying client, for engine calls the trait does not cover.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Creates the app network `name` of `kind` if absent, labelled; idempotent.
    pub(crate) async fn ensure_network_of(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        kind: NetworkKind,
    ) -> Result<()> {
        let _guard = NETWORK_LOCK.lock().await;
        if self.network_exists(name).await? {
            return Ok(());
        }
        let (driver, ipam) = match (kind, &self.network_pool) {
            (NetworkKind::Bridge, Some(pool)) => {
                ("bridge", Some(self.subnet_from_pool(pool, name).await?))
            }
            (NetworkKind::Bridge, None) => ("bridge", None),
            // The pool is carved for one engine's bridges; a swarm hands out
            // overlay subnets from its own pools (`docker swarm init --default-addr-pool`).
            (NetworkKind::AttachableOverlay, _) => ("overlay", None),
        };
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(driver.to_string()),
            attachable: (kind == NetworkKind::AttachableOverlay).then_some(true),
            labels: Some(to_hash_map(labels)),
            ipam,
            ..Default::default()
        };
        // Before API 1.44 the engine creates a second network with the same name
        // unless `CheckDuplicate` is set, and bollard's model (written for 1.44+,
        // where the check is always on) has no such field: send the body ourselves.
        // This keeps another process that created it since our check from getting
        // a twin (not fully: see NETWORK_LOCK).
        let mut body = serde_json::to_value(&request)
            .map_err(|e| RuntimeError::Engine(format!("encoding network request: {e}")))?;
        body["CheckDuplicate"] = serde_json::Value::Bool(true);
        let body = Bytes::from(body.to_string());
        let client = self.docker.clone().with_request_modifier(move |mut req| {
            if req.uri().path().ends_with("/networks/create") {
                *req.body_mut() = bollard::body_full(body.clone());
            }
            req
        });
        match client.create_network(request).await {
            Ok(_) => Ok(()),
            // Another process created it between our check and our create.
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(network_error(name, map_err(e))),
        }
    }

    async fn network_exists(&self, name: &str) -> Result<bool> {
        // The `name` filter matches substrings, hence the exact comparison.
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        };
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(map_err)?;
        Ok(networks.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    async fn inspect_raw(&self, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn log_stream(&self, id: &str, options: LogsOptions) -> BoxStream<'static, Result<LogLine>> {
        log_lines(self.docker.logs(id, Some(options)), id.to_string())
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn version(&self) -> Result<String> {
        let v = self.docker.version().await.map_err(map_err)?;
        Ok(format!(
            "docker {} (API {})",
            v.version.as_deref().unwrap_or("unknown"),
            self.docker.client_version()
        ))
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.ensure_network_of(name, labels, NetworkKind::Bridge)
            .await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn build_image(
        &self,
        request: BuildRequest<'_>,
        output: mpsc::Sender<String>,
    ) -> Result<String> {
        let file = tokio::fs::File::open(request.context_tar)
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("build context {}: {e}", request.context_tar.display()),
                )
            })?;
        let body = bollard::body_try_stream(ReaderStream::new(file));
        let options = BuildImageOptions {
            dockerfile: request.dockerfile.clone(),
            t: Some(request.tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(to_hash_map(&request.args)),
            labels: Some(to_hash_map(&request.labels)),
            ..Default::default()
        };
        let client = self.docker.clone().with_timeout(BUILD_TIMEOUT);
        let mut infos = client.build_image(options, None, Some(body));
        let mut lines = LineBuffer::default();
        // A dropped receiver means nobody watches the output; the build still counts.
        while let Some(info) = infos.next().await {
            match info {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in lines.push(&text) {
                            let _ = output.send(line).await;
                        }
                    }
                    let in_progress = info
                        .progress_detail
                        .is_some_and(|p| p.current.is_some() || p.total.is_some());
                    if let (Some(status), false) = (info.status, in_progress) {
                        let line = match info.id {
                            Some(id) => format!("{id}: {status}"),
                            None => status,
                        };
                        let _ = output.send(line).await;
                    }
                }
                Err(e) => {
                    let message = match e {
                        BollardError::DockerStreamError { error } => error,
                        // Errors found before the first step (no Dockerfile, bad syntax)
                        // arrive as an HTTP error instead of in the stream.
                        BollardError::DockerResponseServerError { message, .. } => message,
                        other => return Err(map_err(other)),
                    };
                    if let Some(rest) = lines.finish() {
                        let _ = output.send(rest).await;
                    }
                    let _ = output.send(message.clone()).await;
                    return Err(RuntimeError::Build(message));
                }
            }
        }
        if let Some(rest) = lines.finish() {
            let _ = output.send(rest).await;
        }
        // The id from the stream's `aux` message has a feature-dependent type in
        // bollard; the tag we just set is the stable way to it.
        match self.docker.inspect_image(&request.tag).await {
            Ok(image) => image
                .id
                .ok_or_else(|| RuntimeError::Engine(format!("image {} has no id", request.tag))),
            Err(e) if status_of(&e) == Some(404) => Err(RuntimeError::Build(format!(
                "the engine reported success but image {} does not exist",
                request.tag
            ))),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn image_exists(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            platforms: None,
        };
        match self.docker.remove_image(name, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list_images(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>> {
        let options = ListImagesOptions {
            filters: Some(label_filter(key, value)),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(map_err)?;
        Ok(images
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels.into_iter().collect(),
                created: i.created,
            })
            .collect())
    }

    async fn run_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let created_id = self.create_container(spec).await?;

        if let Err(e) = self.docker.start_container(&created_id, None).await {
            // A container that never started is of no use to anyone; leaving it
            // would only make the next attempt's name collide.
            let _ = self.remove_container(&created_id).await;
            return Err(map_err(e));
        }

        let inspected = self
            .inspect_raw(&created_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(spec.name.clone()))?;
        Ok(info_from_inspect(inspected, Some(&spec.network)))
    }

    async fn stop_container(&self, id: &str, grace: u32) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(grace).unwrap_or(i32::MAX)),
            signal: None,
        };
        let client = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u64::from(grace)) + STOP_SLACK);
        // An already stopped container answers 304, which bollard counts as success.
        match client.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // Someone else is already removing it: the outcome we want.
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(key, value)),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(map_err)?;

        // The list has no OOM flag and only a human-readable exit status, so the
        // (usually few) stopped containers are inspected; running ones are not.
        let infos = summaries.into_iter().map(|summary| async move {
            let info = info_from_summary(summary);
            if !matches!(info.state, ContainerState::Exited { .. }) {
                return Ok(Some(info));
            }
            // Gone since the list: leave it out, as a list made a moment later would.
            Ok(self
                .inspect_raw(&info.id)
                .await?
                .map(|c| info_from_inspect(c, None)))
        });
        let infos: Vec<Result<Option<ContainerInfo>>> = futures_util::future::join_all(infos).await;
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            out.extend(info?);
        }
        Ok(out)
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        Ok(self
            .inspect_raw(id)
            .await?
            .map(|c| info_from_inspect(c, None)))
    }

    fn events(&self, key: &str, value: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        let mut filters = label_filter(key, value);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        // The request goes out only when the stream is first polled; `since` = now
        // has the engine replay what happened in between, so that an action taken
        // right after subscribing is never missed.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let options = EventsOptions {
            since: Some(format!("{}.{:09}", now.as_secs(), now.subsec_nanos())),
            until: None,
            filters: Some(filters),
        };
        // bollard's stream owns what it needs (a clone of the client's transport),
        // so it outlives `self`.
        self.docker
            .events(Some(options))
            .map(|event| event.map(runtime_event).map_err(map_err))
            .boxed()
    }

    fn logs(&self, id: &str, since_secs: i64) -> BoxStream<'static, Result<LogLine>> {
        self.log_stream(
            id,
            LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since: i32::try_from(since_secs.max(0)).unwrap_or(i32::MAX),
                until: 0,
                timestamps: true,
                tail: "all".to_string(),
            },
        )
    }

    async fn tail_logs(&self, id: &str, lines: usize) -> Result<Vec<LogLine>> {
        // The engine's `tail` counts its log messages, and it stores a line longer
        // than 16 KiB as several; asking for some more and cutting here keeps such
        // a line whole unless it is very long.
        let stream = self.log_stream(
            id,
            LogsOptions {
                follow: false,
                stdout: true,
                stderr: true,
                since: 0,
                until: 0,
                timestamps: true,
                tail: lines.saturating_add(TAIL_MARGIN).to_string(),
            },
        );
        let mut all = stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let skip = all.len().saturating_sub(lines);
        all.drain(..skip);
        Ok(all)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.remove_container(&spec.name).await?;

        let host_config = HostConfig {
            memory: spec
                .memory_mib
                .map(|m| i64::try_from(m.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)),
            nano_cpus: spec.cpu.map(|c| (c * 1e9).round() as i64),
            binds: (!spec.volumes.is_empty()).then(|| {
                spec.volumes
                    .iter()
                    .map(|(volume, path)| format!("{volume}:{path}"))
                    .collect()
            }),
            network_mode: Some(spec.network.clone()),
            // docker-init as PID 1 forwards SIGTERM and reaps zombies: a program
            // that never installed a handler (busybox httpd, most scripts) would
            // otherwise ignore SIGTERM as PID 1 and wait out the whole grace.
            init: Some(true),
            // The reconciler decides about restarts; an engine restarting things
            // behind its back would fight it.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let endpoint = EndpointSettings {
            aliases: (!spec.aliases.is_empty()).then(|| spec.aliases.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(to_hash_map(&spec.labels)),
            hostname: spec.hostname.clone(),
            stop_timeout: Some(i64::from(spec.stop_grace)),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            tty: Some(spec.tty),
            open_stdin: Some(spec.stdin),
            stdin_once: Some(spec.stdin),
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            platform: String::new(),
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            // 404 also answers a missing network; only the image gets its own error.
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.starts_with("No such image") => {
                Err(RuntimeError::ImageMissing(spec.image.clone()))
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn attach_container(&self, id: &str, stdin: bool) -> Result<Session> {
        let options = AttachContainerOptions {
            stdin,
            stdout: true,
            stderr: true,
            stream: true,
            logs: true,
            detach_keys: None,
        };
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(map_err)?;
        Ok(session(attached.output, attached.input))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.docker.start_container(id, None).await.map_err(map_err)
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        let mut waits = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match waits.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(map_err(e)),
            None => Err(RuntimeError::Engine(format!(
                "the engine ended the wait for container {id} without an exit code"
            ))),
        }
    }

    async fn resize_container(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let options = ResizeContainerTTYOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        self.docker
            .resize_container_tty(id, options)
            .await
            .map_err(map_err)
    }

    async fn exec(
        &self,
        container: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<(String, Session)> {
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(command.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(map_err)?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(map_err)?;
        match started {
            StartExecResults::Attached { output, input } => {
                Ok((created.id, session(output, input)))
            }
            StartExecResults::Detached => Err(RuntimeError::Engine(
                "the engine started the exec detached".into(),
            )),
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let inspected = self.docker.inspect_exec(exec_id).await.map_err(map_err)?;
        Ok(if inspected.running == Some(true) {
            None
        } else {
            inspected.exit_code
        })
    }

    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        self.docker
            .resize_exec(
                exec_id,
                ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
            .map_err(map_err)
    }

    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        storage::ensure_volume(&self.docker, name, labels).await
    }

    async fn list_volumes(&self, key: &str, value: &str) -> Result<Vec<VolumeInfo>> {
        storage::list_volumes(&self.docker, key, value).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        storage::remove_volume(&self.docker, name).await
    }

    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String> {
        storage::create_helper(&self.docker, name, image, labels, volumes).await
    }

    fn download_archive(&self, container: &str, path: &str) -> BoxStream<'static, Result<Bytes>> {
        storage::download_archive(&self.docker, container, path)
    }

    async fn upload_archive(
        &self,
        container: &str,
        path: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()> {
        storage::upload_archive(&self.docker, container, path, tar).await
    }

    fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        storage::export_image(&self.docker, name)
    }

    async fn load_image(
        &self,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<Vec<String>> {
        storage::load_image(&self.docker, tar).await
    }

    async fn image_details(&self, name: &str) -> Result<Option<ImageDetails>> {
        storage::image_details(&self.docker, name).await
    }

    async fn layer_chains(&self) -> Result<std::collections::BTreeSet<String>> {
        storage::layer_chains(&self.docker).await
    }

    async fn stats(&self, id: &str) -> Result<ProcessStats> {
        // One shot: the engine answers at once instead of waiting a second for
        // a second sample; rates come from the caller's own two samples.
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut samples = self.docker.stats(id, Some(options));
        match samples.next().await {
            Some(Ok(sample)) => Ok(convert::process_stats(&sample)),
            Some(Err(e)) => Err(map_err(e)),
            None => Err(RuntimeError::NotFound(id.to_string())),
        }
    }

    async fn probe(
        &self,
        addr: std::net::SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::result::Result<u16, String> {
        match &self.probe_image {
            None => crate::probe::http_check(addr, host, path, timeout).await,
            Some(image) => {
                remote_probe::probe(&self.docker, image, addr, host, path, timeout).await
            }
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let info = self.docker.info().await.map_err(map_err)?;
        Ok(vec![NodeInfo {
            id: info.id.unwrap_or_default(),
            hostname: info.name.unwrap_or_default(),
            role: "manager".into(),
            status: "ready".into(),
            availability: "active".into(),
            addr: None,
            labels: BTreeMap::new(),
            cpus: info.ncpu.unwrap_or(0) as f64,
            memory: info.mem_total.unwrap_or(0).max(0) as u64,
        }])
    }
}
