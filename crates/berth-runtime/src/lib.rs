//! The only door to a container engine: the `Runtime` trait and its two
//! implementations. The trait speaks of labelled containers, images, networks
//! and volumes, not of one engine's API or network kind, so that another
//! engine plugs in behind it without a change above (the in-memory engine of
//! `berth-testkit` does so for tests).
//!
//! What runs where:
//! - [`DockerRuntime`] (`docker/`): one Docker engine does everything. A
//!   process is a container on the app's bridge network; health checks
//!   connect from this process (or, given a probe image, from a container on
//!   the engine, for an engine on another machine).
//! - [`SwarmRuntime`] (`swarm/`): a Docker Swarm. The manager's engine (the
//!   one `DOCKER_HOST` names) builds and holds images and runs the cluster: a
//!   process is a one-replica Swarm service on the app's attachable overlay,
//!   placed by Swarm, its id the service id. Each node's own engine, reached
//!   through [`NodeEngines`] (the server's agents, or [`DirectNodeEngines`]
//!   over sockets), does what only it can: the output, stats and execs of
//!   the processes on it, one-offs and volume helpers (plain containers,
//!   ids `<node id>/<container id>`), its volumes, loading the images
//!   `distribute_image` sends it (only the layers it lacks, no registry), and
//!   health checks from inside the overlays.
//! - `probe`: the HTTP health check the in-process path uses; `subnets`: the
//!   /24s app bridges get from `--network-pool`.

mod docker;
/// The HTTP health check (its own crate, so the router can make it too).
pub use berth_probe as probe;
pub mod subnets;
pub mod swarm;

pub use berth_core::layers::chain_ids;
pub use docker::DockerRuntime;
pub use swarm::{DirectNodeEngines, NodeEngines, Prober, SwarmRuntime};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

/// Labels berth puts on everything it creates; strays are found by them.
pub const LABEL_APP: &str = "berth.app";
pub const LABEL_SERVICE: &str = "berth.service";
pub const LABEL_RELEASE: &str = "berth.release";
pub const LABEL_PROCESS: &str = "berth.process";
pub const LABEL_BUILD: &str = "berth.build";
/// Marks a rack: which `berth server` (data dir) owns the object, so that two racks
/// (or parallel test servers) on one engine never touch each other's containers.
pub const LABEL_RACK: &str = "berth.rack";
/// Marks a one-off process (`berth run`, timers) with its id: it has no process
/// row, and the reconciler leaves it alone while it runs.
pub const LABEL_ONEOFF: &str = "berth.oneoff";
/// The timer that started a one-off process.
pub const LABEL_TIMER: &str = "berth.timer";
/// Unix seconds after which a one-off process is stopped (`--timeout`).
pub const LABEL_DEADLINE: &str = "berth.deadline";
/// `true` on a one-off whose output nobody is attached to (`--detach`).
pub const LABEL_DETACHED: &str = "berth.detached";

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(
        "cannot reach the Docker engine: {0}; is dockerd running and is its socket readable (DOCKER_HOST)?"
    )]
    Connect(String),
    #[error(
        "image {0} is not on the Docker engine; build it or load it there first (no registry is used)"
    )]
    ImageMissing(String),
    #[error("build failed: {0}")]
    Build(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("Docker engine error: {0}")]
    Engine(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// One node of a swarm cannot be reached; the others (and the manager) may be fine.
    #[error(
        "cannot reach the engine of node {node}: {reason}; is the node up (`docker node ls`) and its berth agent running?"
    )]
    NodeUnreachable { node: String, reason: String },
    #[error(
        "the Docker engine at {endpoint} is not a Swarm manager ({state}); berth server --swarm needs one: run it on a manager node or point DOCKER_HOST at one, make this engine a manager with `docker swarm init`, or start berth server without --swarm"
    )]
    NotSwarmManager { endpoint: String, state: String },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Everything needed to start one process.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Engine-level container name, unique per rack (e.g. `berth-<rack>-<app>-<process>`).
    pub name: String,
    pub image: String,
    /// `None`: the image's own entrypoint/cmd.
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The app's network; the container joins it with `aliases`.
    pub network: String,
    pub aliases: Vec<String>,
    pub hostname: Option<String>,
    pub memory_mib: Option<u64>,
    pub cpu: Option<f64>,
    /// (engine volume name, path in container)
    pub volumes: Vec<(String, String)>,
    /// Seconds between SIGTERM and SIGKILL when the engine stops it.
    pub stop_grace: u32,
    /// Allocate a pseudo-terminal (interactive one-off processes).
    pub tty: bool,
    /// Keep stdin open for one attached client (closed when it detaches).
    pub stdin: bool,
    /// Where it may run, as Swarm placement constraints
    /// (`node.labels.disk==ssd`); a single engine has one place and ignores them.
    pub placement: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    /// Exited, dead or being removed; `code` is the exit code when known.
    Exited {
        code: Option<i64>,
        oom_killed: bool,
    },
    Other(String),
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Address on the container's first (app) network, when running.
    pub ip: Option<IpAddr>,
    /// RFC 3339, as the engine reports it. `list_containers` leaves it `None` for
    /// running containers (the list endpoint lacks it); inspect for it.
    pub started_at: Option<String>,
    /// The node it runs on (its hostname), where the runtime has several;
    /// `None` on a single engine.
    pub node: Option<String>,
}

/// A machine processes run on: the engine itself on one engine, each Swarm node
/// on a swarm.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker` (a single engine counts as a manager).
    pub role: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub status: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// The node's address as the cluster knows it.
    pub addr: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Cores and bytes of memory the node offers.
    pub cpus: f64,
    pub memory: u64,
}

/// What a running container has used: counters the caller turns into rates by
/// sampling twice (the CPU share over an interval is the growth of `cpu_nanos`
/// over the interval's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    /// CPU time used since the container started, all cores together.
    pub cpu_nanos: u64,
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub created: i64,
}

/// What berth needs to know about an image on the engine.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    pub id: String,
    pub size: u64,
    /// TCP ports from `EXPOSE`, sorted.
    pub exposed_tcp: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    /// The image's layers, bottom first (`RootFS.Layers`, the diff ids).
    pub diff_ids: Vec<String>,
}

/// A named engine volume.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A container lifecycle event for a labelled container.
#[derive(Debug, Clone)]
pub struct RuntimeEvent {
    pub container_id: String,
    /// Engine action: `start`, `die`, `destroy`, `oom`, ...
    pub action: String,
    pub labels: BTreeMap<String, String>,
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    /// Nanoseconds since the epoch, from the engine's timestamp.
    pub ts_nanos: i128,
    pub stream: LogStream,
    /// One line, without its trailing newline.
    pub text: String,
}

/// A build's context and options.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// A tar archive of the build context.
    pub context_tar: &'a Path,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    /// Full tag, e.g. `berth/shop:B3`.
    pub tag: String,
    pub args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The engine's name and version, e.g. `docker 20.10.24 (API 1.41)`.
    async fn version(&self) -> Result<String>;
    /// Where this runtime's engine is, for messages (e.g.
    /// `unix:///var/run/docker.sock`); says nothing about whether it answers.
    fn endpoint(&self) -> String;

    /// Creates the app network `name` if absent, labelled; idempotent. The
    /// runtime picks the kind of network (on one Docker engine, a bridge).
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    /// Removes the network; absent is not an error.
    async fn remove_network(&self, name: &str) -> Result<()>;

    /// Builds an image, sending each output line (without its newline) to `output`
    /// as it arrives, the error message of a failed build included.
    /// Returns the image id (`sha256:...`).
    async fn build_image(
        &self,
        request: BuildRequest<'_>,
        output: mpsc::Sender<String>,
    ) -> Result<String>;
    async fn image_exists(&self, name: &str) -> Result<bool>;
    /// Removes an image (by tag or id); absent is not an error.
    async fn remove_image(&self, name: &str) -> Result<()>;
    /// Images carrying label `key=value`.
    async fn list_images(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>>;

    /// Creates and starts a container; a leftover container of the same name is
    /// removed first. Returns its state after start (with its address).
    async fn run_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo>;
    /// SIGTERM, then SIGKILL after `grace` seconds. Absent or stopped is not an error.
    async fn stop_container(&self, id: &str, grace: u32) -> Result<()>;
    /// Force-removes a container; absent is not an error.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// All containers (running or not) carrying label `key=value`.
    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>>;
    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>>;

    /// Container events for containers carrying label `key=value`, from the moment
    /// of this call on (also when the stream is first polled later). `labels` holds
    /// the engine's event attributes: the container's labels plus `name`, `image`, ...
    /// The stream ends (or yields an error) when the engine connection drops; the
    /// caller reconnects.
    fn events(&self, key: &str, value: &str) -> BoxStream<'static, Result<RuntimeEvent>>;
    /// Follows a container's output from `since_secs` (unix seconds, 0 = all),
    /// one line per item; ends when the container stops.
    fn logs(&self, id: &str, since_secs: i64) -> BoxStream<'static, Result<LogLine>>;
    /// The last `lines` lines of a container's output (not following).
    async fn tail_logs(&self, id: &str, lines: usize) -> Result<Vec<LogLine>>;

    /// Creates a container without starting it (a leftover of the same name is
    /// removed first); returns its id. Attach before starting to miss no output.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    /// Attaches to a container's streams (stdin too when `stdin`), from the start
    /// of its output.
    async fn attach_container(&self, id: &str, stdin: bool) -> Result<Session>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Waits until the container exits; its exit code.
    async fn wait_container(&self, id: &str) -> Result<i64>;
    async fn resize_container(&self, id: &str, rows: u16, cols: u16) -> Result<()>;
    /// Runs `command` inside a running container, attached; returns the exec id
    /// (for `exec_exit_code` and `resize_exec`) and its streams.
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<(String, Session)>;
    /// The exit code of a finished exec; `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;
    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()>;

    // ---- volumes, archives, image transfer ----
    /// Creates the named volume if absent (labelled); idempotent.
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    /// Volumes carrying label `key=value`, sorted by name.
    async fn list_volumes(&self, key: &str, value: &str) -> Result<Vec<VolumeInfo>>;
    /// Removes a volume; absent is not an error, in use is.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Creates, never starts, a container of `image` mounting `volumes`
    /// ((engine volume, path)), so their content can be read and written
    /// through the archive API. Returns its id; remove it when done.
    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String>;
    /// A tar of `path` inside a container (`/dir/.` for the content only).
    fn download_archive(
        &self,
        container: &str,
        path: &str,
    ) -> BoxStream<'static, Result<bytes::Bytes>>;
    /// Extracts a tar into `path` inside a container.
    async fn upload_archive(
        &self,
        container: &str,
        path: &str,
        tar: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<()>;
    /// `docker save` of one image.
    fn export_image(&self, name: &str) -> BoxStream<'static, Result<bytes::Bytes>>;
    /// `docker load`; the references the engine reports loaded.
    async fn load_image(
        &self,
        tar: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<Vec<String>>;
    /// Id, size, exposed ports and labels of an image; `None` when absent.
    async fn image_details(&self, name: &str) -> Result<Option<ImageDetails>>;
    /// Chain ids of every layer of every image on the engine (which layers a
    /// `docker load` would not need the data of).
    async fn layer_chains(&self) -> Result<std::collections::BTreeSet<String>>;

    // ---- where processes run (one engine, or many nodes) ----
    /// One HTTP health check of a process at `addr` (its address as
    /// `ContainerInfo::ip` gives it), made from where processes can be reached:
    /// the status of a 2xx or 3xx answer, else why not. The default connects
    /// from this process, which reaches processes on a single engine's bridges.
    async fn probe(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::result::Result<u16, String> {
        probe::http_check(addr, host, path, timeout).await
    }
    /// CPU time and memory a running container has used, read at once (no
    /// waiting for a second sample).
    async fn stats(&self, id: &str) -> Result<ProcessStats>;
    /// The machines processes run on (one for a single engine).
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;
    /// Moves processes away from a node (`drain`) or lets them back (`active`).
    async fn set_node_availability(&self, node: &str, availability: &str) -> Result<()> {
        let _ = (node, availability);
        Err(RuntimeError::Engine(
            "a single engine has no nodes to drain; run berth server --swarm on a Swarm manager to spread apps over several".into(),
        ))
    }
    /// Makes an image that is on this runtime's (manager) engine available
    /// wherever processes may run, sending one progress line per step to
    /// `progress`; nothing to do on a single engine.
    async fn distribute_image(&self, image: &str, progress: mpsc::Sender<String>) -> Result<()> {
        let _ = (image, progress);
        Ok(())
    }
}

/// One chunk of an attached process's output, raw (a TTY's output is all `Stdout`).
#[derive(Debug, Clone)]
pub enum SessionOutput {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// Live streams of an attached container or exec.
pub struct Session {
    pub output: BoxStream<'static, Result<SessionOutput>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}
