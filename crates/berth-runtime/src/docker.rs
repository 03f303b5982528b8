//! `Runtime` on a Docker Engine, through its HTTP API (bollard).

use crate::subnets::{self, NetworkPool};
use crate::{
    BuildRequest, ContainerInfo, ContainerSpec, ContainerState, ImageInfo, LogLine, LogStream,
    Result, Runtime, RuntimeError, RuntimeEvent, Session, SessionOutput,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, EndpointSettings, EventMessage, HostConfig, Ipam, IpamConfig,
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
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
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
    pub async fn from_client(docker: Docker) -> Result<Self> {
        let docker = docker.negotiate_version().await.map_err(map_err)?;
        Ok(Self {
            docker,
            network_pool: None,
        })
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

    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let _guard = NETWORK_LOCK.lock().await;
        if self.network_exists(name).await? {
            return Ok(());
        }
        let ipam = match &self.network_pool {
            Some(pool) => Some(self.subnet_from_pool(pool, name).await?),
            None => None,
        };
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
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
        crate::storage::ensure_volume(&self.docker, name, labels).await
    }

    async fn list_volumes(&self, key: &str, value: &str) -> Result<Vec<crate::VolumeInfo>> {
        crate::storage::list_volumes(&self.docker, key, value).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        crate::storage::remove_volume(&self.docker, name).await
    }

    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String> {
        crate::storage::create_helper(&self.docker, name, image, labels, volumes).await
    }

    fn download_archive(&self, container: &str, path: &str) -> BoxStream<'static, Result<Bytes>> {
        crate::storage::download_archive(&self.docker, container, path)
    }

    async fn upload_archive(
        &self,
        container: &str,
        path: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()> {
        crate::storage::upload_archive(&self.docker, container, path, tar).await
    }

    fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        crate::storage::export_image(&self.docker, name)
    }

    async fn load_image(
        &self,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<Vec<String>> {
        crate::storage::load_image(&self.docker, tar).await
    }

    async fn image_details(&self, name: &str) -> Result<Option<crate::ImageDetails>> {
        crate::storage::image_details(&self.docker, name).await
    }

    async fn layer_chains(&self) -> Result<std::collections::BTreeSet<String>> {
        crate::storage::layer_chains(&self.docker).await
    }
}

type RawOutput =
    std::pin::Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, BollardError>> + Send>>;

fn session(
    output: RawOutput,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) -> Session {
    let output = output
        .filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdErr { message }) => Some(Ok(SessionOutput::Stderr(message))),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(SessionOutput::Stdout(message)))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(map_err(e))),
            }
        })
        .boxed();
    Session { output, input }
}

pub(crate) fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])
}

pub(crate) fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The error and its causes, `: `-joined: hyper's own messages ("client error
/// (Connect)") hide the useful part ("Connection refused") in the sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn map_err(err: BollardError) -> RuntimeError {
    match err {
        BollardError::SocketNotFoundError(path) => {
            RuntimeError::Connect(format!("socket {path} does not exist"))
        }
        BollardError::HyperLegacyError { err } if err.is_connect() => {
            RuntimeError::Connect(error_chain(&err))
        }
        BollardError::IOError { err }
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            RuntimeError::Connect(error_chain(&err))
        }
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Engine(format!("{message} (HTTP {status_code})")),
        BollardError::RequestTimeoutError => {
            RuntimeError::Engine("the engine did not answer in time".to_string())
        }
        other => RuntimeError::Engine(error_chain(&other)),
    }
}

fn ip_of(endpoint: &EndpointSettings) -> Option<IpAddr> {
    [&endpoint.ip_address, &endpoint.global_ipv6_address]
        .into_iter()
        .flatten()
        .find_map(|a| a.parse().ok())
}

/// The address on `preferred` if given, else on the first network (by name,
/// for a stable answer) that has one.
fn pick_ip(
    networks: Option<&HashMap<String, EndpointSettings>>,
    preferred: Option<&str>,
) -> Option<IpAddr> {
    let networks = networks?;
    if let Some(name) = preferred {
        return networks.get(name).and_then(ip_of);
    }
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(|n| ip_of(&networks[n]))
}

/// The exit code from a list entry's status text, e.g. `Exited (137) 2 minutes ago`.
fn exit_code_from_status(status: &str) -> Option<i64> {
    let start = status.find('(')? + 1;
    let end = start + status[start..].find(')')?;
    status[start..end].parse().ok()
}

fn info_from_summary(c: ContainerSummary) -> ContainerInfo {
    let state = match c.state {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerSummaryStateEnum::EXITED
            | ContainerSummaryStateEnum::DEAD
            | ContainerSummaryStateEnum::REMOVING,
        ) => ContainerState::Exited {
            code: c.status.as_deref().and_then(exit_code_from_status),
            oom_killed: false,
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let ip = pick_ip(
        c.network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref()),
        None,
    );
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        state,
        ip,
        started_at: None,
    }
}

fn info_from_inspect(c: ContainerInspectResponse, network: Option<&str>) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let mapped = match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING,
        ) => ContainerState::Exited {
            code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let config = c.config.unwrap_or_default();
    let ip = pick_ip(
        c.network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref()),
        network,
    );
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        // The name it was created from (like the list reports), not the image id.
        image: config.image.or(c.image).unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        state: mapped,
        ip,
        // The engine reports the zero time for a container that never started.
        started_at: state
            .started_at
            .filter(|s| !s.is_empty() && !s.starts_with("0001-")),
    }
}

fn runtime_event(event: EventMessage) -> RuntimeEvent {
    let actor = event.actor.unwrap_or_default();
    let labels: BTreeMap<String, String> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    RuntimeEvent {
        container_id: actor.id.unwrap_or_default(),
        action: event.action.unwrap_or_default(),
        exit_code: labels.get("exitCode").and_then(|c| c.parse().ok()),
        labels,
    }
}

/// Build output arrives in chunks that need not end at a line boundary.
#[derive(Default)]
struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    fn push(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            lines.push(line.trim_end_matches(['\n', '\r']).to_string());
        }
        lines
    }

    fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.is_empty()).then_some(rest)
    }
}

/// Longest timestamp prefix we look for, e.g. `2024-01-02T03:04:05.123456789+00:00 `.
const MAX_TIMESTAMP_LEN: usize = 40;

/// A `<RFC 3339 timestamp> ` prefix: its time in ns since the epoch and the
/// prefix's length including the space.
fn split_timestamp(buf: &[u8]) -> Option<(i128, usize)> {
    let space = buf
        .iter()
        .take(MAX_TIMESTAMP_LEN)
        .position(|b| *b == b' ')?;
    let text = std::str::from_utf8(&buf[..space]).ok()?;
    let ts =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((ts.unix_timestamp_nanos(), space + 1))
}

/// One output stream's bytes on their way to lines.
#[derive(Default)]
struct LineAssembler {
    /// The current line's bytes; while `line_ts` is `None` they still start with
    /// (part of) its timestamp.
    pending: Vec<u8>,
    line_ts: Option<i128>,
    /// For lines that came without a timestamp of their own.
    last_ts: i128,
}

impl LineAssembler {
    fn push(&mut self, mut frame: &[u8], stream: LogStream, out: &mut VecDeque<LogLine>) {
        // The engine cuts lines longer than 16 KiB into several messages, each sent
        // with its own timestamp; a continuation's timestamp is not part of the text.
        if self.line_ts.is_some()
            && let Some((_, len)) = split_timestamp(frame)
        {
            frame = &frame[len..];
        }
        self.pending.extend_from_slice(frame);
        loop {
            if self.line_ts.is_none() {
                match split_timestamp(&self.pending) {
                    Some((ts, len)) => {
                        self.pending.drain(..len);
                        self.line_ts = Some(ts);
                        self.last_ts = ts;
                    }
                    None if self.pending.len() < MAX_TIMESTAMP_LEN
                        && !self.pending.iter().any(|b| *b == b' ' || *b == b'\n') =>
                    {
                        // Possibly a timestamp cut short by the chunk boundary.
                        return;
                    }
                    None => self.line_ts = Some(self.last_ts),
                }
            }
            let Some(newline) = self.pending.iter().position(|b| *b == b'\n') else {
                return;
            };
            let rest = self.pending.split_off(newline + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            out.push_back(self.make_line(&line, stream));
            self.line_ts = None;
        }
    }

    fn finish(&mut self, stream: LogStream, out: &mut VecDeque<LogLine>) {
        if self.line_ts.is_none()
            && let Some((ts, len)) = split_timestamp(&self.pending)
        {
            self.pending.drain(..len);
            self.line_ts = Some(ts);
        }
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            out.push_back(self.make_line(&line, stream));
        }
        self.line_ts = None;
    }

    fn make_line(&self, bytes: &[u8], stream: LogStream) -> LogLine {
        let text = String::from_utf8_lossy(bytes);
        LogLine {
            ts_nanos: self.line_ts.unwrap_or(self.last_ts),
            stream,
            text: text.trim_end_matches(['\n', '\r']).to_string(),
        }
    }
}

/// Splits the engine's log frames into lines, keeping stdout and stderr apart.
#[derive(Default)]
struct LogSplitter {
    stdout: LineAssembler,
    stderr: LineAssembler,
}

impl LogSplitter {
    fn push(&mut self, frame: LogOutput, out: &mut VecDeque<LogLine>) {
        match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.push(&message, LogStream::Stdout, out)
            }
            LogOutput::StdErr { message } => self.stderr.push(&message, LogStream::Stderr, out),
            LogOutput::StdIn { .. } => {}
        }
    }

    fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        self.stdout.finish(LogStream::Stdout, out);
        self.stderr.finish(LogStream::Stderr, out);
    }
}

fn log_lines(
    frames: impl Stream<Item = std::result::Result<LogOutput, BollardError>> + Send + 'static,
    id: String,
) -> BoxStream<'static, Result<LogLine>> {
    struct State<S> {
        frames: S,
        splitter: LogSplitter,
        ready: VecDeque<LogLine>,
        error: Option<RuntimeError>,
        done: bool,
        id: String,
    }
    let state = State {
        frames: Box::pin(frames),
        splitter: LogSplitter::default(),
        ready: VecDeque::new(),
        error: None,
        done: false,
        id,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((Ok(line), s));
            }
            if let Some(err) = s.error.take() {
                return Some((Err(err), s));
            }
            if s.done {
                return None;
            }
            match s.frames.next().await {
                Some(Ok(frame)) => s.splitter.push(frame, &mut s.ready),
                Some(Err(e)) => {
                    s.splitter.finish(&mut s.ready);
                    s.error = Some(match status_of(&e) {
                        Some(404) => RuntimeError::NotFound(s.id.clone()),
                        _ => map_err(e),
                    });
                    s.done = true;
                }
                None => {
                    s.splitter.finish(&mut s.ready);
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}

/// Every app gets its own network, and dockerd's default address pools hold
/// only about 30 of them; say how to make room instead of passing on the
/// engine's terse message.
fn network_error(name: &str, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Engine(message) if is_pool_exhausted(&message) => {
            RuntimeError::Engine(format!(
                "cannot create network {name}: the Docker engine has no free address pool left ({message}); \
             each berth app uses one network, and dockerd's default pools hold about 30. Add more in \
             /etc/docker/daemon.json, e.g. \"default-address-pools\": [{{\"base\": \"10.200.0.0/14\", \"size\": 24}}], \
             restart dockerd; or start berth with `--network-pool 10.210.0.0/16` to give each app a /24 of that pool; \
             or delete unused apps and networks (`docker network prune`)"
            ))
        }
        other => other,
    }
}

fn is_pool_exhausted(message: &str) -> bool {
    message.contains("non-overlapping") && message.contains("address pool")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_exhausted_address_pool_says_how_to_add_pools() {
        let engine = RuntimeError::Engine(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        );
        let message = network_error("berth-r-shop", engine).to_string();
        assert!(message.contains("berth-r-shop"), "{message}");
        assert!(message.contains("default-address-pools"), "{message}");
        let other = network_error("n", RuntimeError::Engine("boom".into())).to_string();
        assert_eq!(other, "Docker engine error: boom");
    }
    use super::*;

    fn lines(frames: &[(&str, bool)]) -> Vec<(i128, LogStream, String)> {
        let mut splitter = LogSplitter::default();
        let mut out = VecDeque::new();
        for (text, stderr) in frames {
            let message = Bytes::copy_from_slice(text.as_bytes());
            let frame = if *stderr {
                LogOutput::StdErr { message }
            } else {
                LogOutput::StdOut { message }
            };
            splitter.push(frame, &mut out);
        }
        splitter.finish(&mut out);
        out.into_iter()
            .map(|l| (l.ts_nanos, l.stream, l.text))
            .collect()
    }

    const T1: &str = "2024-01-02T03:04:05.123456789Z";
    const T1_NS: i128 = 1_704_164_645_123_456_789;
    const T2: &str = "2024-01-02T03:04:06.000000001Z";
    const T2_NS: i128 = 1_704_164_646_000_000_001;

    #[test]
    fn parses_timestamp_prefix() {
        assert_eq!(
            split_timestamp(format!("{T1} hello").as_bytes()),
            Some((T1_NS, T1.len() + 1))
        );
        assert_eq!(
            split_timestamp(b"2024-01-02T04:04:05.5+01:00 x"),
            Some((1_704_164_645_500_000_000, 28))
        );
        assert_eq!(split_timestamp(b"hello world"), None);
        assert_eq!(split_timestamp(b"no-space-here"), None);
    }

    #[test]
    fn one_frame_per_line() {
        let got = lines(&[
            (&format!("{T1} one\n"), false),
            (&format!("{T2} two\n"), true),
        ]);
        assert_eq!(
            got,
            vec![
                (T1_NS, LogStream::Stdout, "one".to_string()),
                (T2_NS, LogStream::Stderr, "two".to_string()),
            ]
        );
    }

    #[test]
    fn chunks_across_line_and_timestamp_boundaries() {
        let all = format!("{T1} first line\r\n{T2} second\n{T1} tail");
        // Every split point, including inside a timestamp.
        for cut in 0..all.len() {
            let got = lines(&[(&all[..cut], false), (&all[cut..], false)]);
            assert_eq!(
                got,
                vec![
                    (T1_NS, LogStream::Stdout, "first line".to_string()),
                    (T2_NS, LogStream::Stdout, "second".to_string()),
                    (T1_NS, LogStream::Stdout, "tail".to_string()),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn long_line_continuations_drop_their_timestamps() {
        let got = lines(&[
            (&format!("{T1} aaaa"), false),
            (&format!("{T2} bbbb"), false),
            (&format!("{T2} cc\n"), false),
        ]);
        assert_eq!(got, vec![(T1_NS, LogStream::Stdout, "aaaabbbbcc".into())]);
    }

    #[test]
    fn lines_without_timestamps_keep_the_last_one() {
        let got = lines(&[(&format!("{T1} a\nplain text line\n"), false)]);
        assert_eq!(
            got,
            vec![
                (T1_NS, LogStream::Stdout, "a".into()),
                (T1_NS, LogStream::Stdout, "plain text line".into()),
            ]
        );
    }

    #[test]
    fn empty_lines_are_kept() {
        let got = lines(&[(&format!("{T1} \n"), false)]);
        assert_eq!(got, vec![(T1_NS, LogStream::Stdout, String::new())]);
    }

    #[test]
    fn build_output_lines() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push("Step 1/2 : FROM"), Vec::<String>::new());
        assert_eq!(
            b.push(" scratch\n ---> x\n"),
            vec!["Step 1/2 : FROM scratch", " ---> x"]
        );
        assert_eq!(b.push("end"), Vec::<String>::new());
        assert_eq!(b.finish(), Some("end".to_string()));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn exit_code_from_list_status() {
        assert_eq!(
            exit_code_from_status("Exited (137) 2 minutes ago"),
            Some(137)
        );
        assert_eq!(
            exit_code_from_status("Exited (0) Less than a second ago"),
            Some(0)
        );
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }
}
