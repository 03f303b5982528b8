//! The engine's state: images, networks, volumes, containers and execs under
//! one lock, the event bus, and the switch that makes the engine unreachable.

use crate::fs::{Files, SharedFs};
use crate::images::{ImageStore, User};
use crate::network::Network;
use crate::output::{Output, Phase};
use crate::process::Signal;
use crate::sync::lock;
use berth_runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ProcessStats, Result, RuntimeError, RuntimeEvent,
};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::DuplexStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;

/// The network a container without one joins, as on a Docker engine.
pub(crate) const DEFAULT_NETWORK: &str = "bridge";

pub(crate) struct Engine {
    pub instance: u64,
    state: Mutex<State>,
    bus: broadcast::Sender<Bus>,
    unreachable: AtomicBool,
}

#[derive(Clone)]
pub(crate) enum Bus {
    Event(RuntimeEvent),
    /// The engine became unreachable: event streams end.
    Disconnected,
}

#[derive(Default)]
pub(crate) struct State {
    pub images: ImageStore,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    /// By id.
    pub containers: BTreeMap<String, Container>,
    pub execs: HashMap<String, Exec>,
}

pub(crate) struct Volume {
    pub labels: BTreeMap<String, String>,
    pub files: SharedFs,
}

/// Where a container is in its life; waiters watch it change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running { run: u64 },
    Exited { code: i64, oom_killed: bool },
}

pub(crate) struct Container {
    pub id: String,
    pub name: String,
    /// The image as named at create.
    pub image: String,
    pub image_id: String,
    /// The spec it was created from, for tests to look at.
    pub spec: ContainerSpec,
    /// The image's labels overlaid by the spec's.
    pub labels: BTreeMap<String, String>,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `None`: no network at all (a helper).
    pub network: Option<String>,
    /// (normalized path in the container, volume name)
    pub mounts: Vec<(String, String)>,
    /// Files written outside the mounts: the container's own layer.
    pub own_files: SharedFs,
    pub status: watch::Sender<Status>,
    /// Exit code of the last run (or of a start that failed: 127).
    pub last_exit: i64,
    pub runs: u64,
    pub ip: Option<Ipv4Addr>,
    pub started_at: Option<String>,
    /// When the current run started, for its CPU time.
    pub started: Option<std::time::Instant>,
    pub output: Arc<Output>,
    /// The client end of stdin, for the first attach that asks for it.
    pub stdin_client: Option<DuplexStream>,
    /// The program's end of stdin, for the first run.
    pub stdin_program: Option<DuplexStream>,
    pub run: Option<Run>,
    pub tty_size: Option<(u16, u16)>,
}

pub(crate) struct Exec {
    pub container: String,
    pub output: Arc<Output>,
    /// `None` while it runs.
    pub exit_code: Option<i64>,
    pub run: Option<Run>,
    pub tty_size: Option<(u16, u16)>,
}

/// A running program: how to signal it, and its task, aborted when dropped.
pub(crate) struct Run {
    pub signals: mpsc::UnboundedSender<Signal>,
    task: Option<AbortHandle>,
}

impl Run {
    pub(crate) fn new(signals: mpsc::UnboundedSender<Signal>, task: AbortHandle) -> Run {
        Run {
            signals,
            task: Some(task),
        }
    }

    /// The task ended by itself; nothing left to abort.
    pub(crate) fn finished(mut self) {
        self.task = None;
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Followers of its output (logs, attach) end with it.
        self.output.set_phase(Phase::Ended);
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        self.output.set_phase(Phase::Ended);
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Container {
    pub(crate) fn current(&self) -> Status {
        *self.status.borrow()
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self.current(), Status::Running { .. })
    }

    pub(crate) fn mark_started(&mut self, run: u64, ip: Option<Ipv4Addr>) {
        self.runs = run;
        self.ip = ip;
        self.started_at = Some(rfc3339_now());
        self.started = Some(std::time::Instant::now());
        self.status.send_replace(Status::Running { run });
        self.output.set_phase(Phase::Live);
    }

    /// As the engine reports it; `listed`: as its list does, which leaves out
    /// the start time of what runs.
    pub(crate) fn info(&self, listed: bool) -> ContainerInfo {
        let state = match self.current() {
            Status::Created => ContainerState::Created,
            Status::Running { .. } => ContainerState::Running,
            Status::Exited { code, oom_killed } => ContainerState::Exited {
                code: Some(code),
                oom_killed,
            },
        };
        let started_at = match state {
            ContainerState::Running if listed => None,
            _ => self.started_at.clone(),
        };
        ContainerInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            labels: self.labels.clone(),
            state,
            ip: self.ip.map(IpAddr::V4),
            started_at,
            node: None,
        }
    }

    fn cpu_nanos(&self) -> u64 {
        self.started
            .map(|t| (t.elapsed().as_nanos() / 100) as u64)
            .unwrap_or(0)
    }

    /// What it uses: a program's CPU time is the time it has run (as if it kept
    /// one core a hundredth busy), and its memory a fixed base plus the output
    /// it holds, so tests see a running process use some of both.
    pub(crate) fn stats(&self) -> Option<ProcessStats> {
        const BASE: u64 = 1 << 20;
        matches!(self.current(), Status::Running { .. }).then(|| ProcessStats {
            cpu_nanos: self.cpu_nanos(),
            memory_bytes: BASE
                + self
                    .output
                    .chunks()
                    .iter()
                    .map(|c| c.bytes.len() as u64)
                    .sum::<u64>(),
            memory_limit: self.spec.memory_mib.map(|m| m << 20),
        })
    }
}

/// A stream of one item: how a streaming call answers what it knows at once
/// (an error, or an archive made in memory).
pub(crate) fn single<T: Send + 'static>(item: Result<T>) -> BoxStream<'static, Result<T>> {
    stream::once(async move { item }).boxed()
}

/// The engine's answer for a container it does not know.
pub(crate) fn no_such_container(reference: &str) -> RuntimeError {
    RuntimeError::Engine(format!("No such container: {reference} (HTTP 404)"))
}

pub(crate) fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl State {
    /// A container by id, name or unique id prefix, as the engine finds them.
    pub(crate) fn container_id(&self, reference: &str) -> Option<String> {
        if reference.is_empty() {
            return None;
        }
        if self.containers.contains_key(reference) {
            return Some(reference.to_string());
        }
        let name = reference.trim_start_matches('/');
        if let Some(c) = self.containers.values().find(|c| c.name == name) {
            return Some(c.id.clone());
        }
        let mut prefixed = self
            .containers
            .keys()
            .filter(|id| id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    pub(crate) fn container(&self, reference: &str) -> Option<&Container> {
        self.containers.get(&self.container_id(reference)?)
    }

    pub(crate) fn container_mut(&mut self, reference: &str) -> Option<&mut Container> {
        let id = self.container_id(reference)?;
        self.containers.get_mut(&id)
    }

    /// A container made from image `id`, running ones first.
    pub(crate) fn image_user(&self, id: &str) -> Option<User> {
        let mut users: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| c.image_id == id)
            .collect();
        users.sort_by_key(|c| !c.is_running());
        users.first().map(|c| User {
            container: c.id.clone(),
            running: c.is_running(),
        })
    }

    /// The files a program in `container` sees: its mounts and its own layer.
    pub(crate) fn files_of(&self, container: &Container) -> Files {
        let mounts = container
            .mounts
            .iter()
            .filter_map(|(path, volume)| {
                Some((path.clone(), self.volumes.get(volume)?.files.clone()))
            })
            .collect();
        Files::new(mounts, container.own_files.clone())
    }

    /// Hands the address back to the container's network.
    pub(crate) fn release_address(&mut self, container: &str) {
        let Some(c) = self.containers.get_mut(container) else {
            return;
        };
        let (Some(ip), Some(network)) = (c.ip.take(), c.network.as_ref()) else {
            return;
        };
        if let Some(network) = self.networks.get_mut(network) {
            network.release(ip);
        }
    }
}

impl Engine {
    pub(crate) fn new() -> Arc<Engine> {
        static INSTANCES: AtomicU64 = AtomicU64::new(1);
        let mut state = State::default();
        state.networks.insert(
            DEFAULT_NETWORK.to_string(),
            Network::new(random_id(), BTreeMap::new()),
        );
        Arc::new(Engine {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(state),
            bus: broadcast::channel(4096).0,
            unreachable: AtomicBool::new(false),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("memory://{}", self.instance)
    }

    /// `Err` while the engine is unreachable, as every call to a stopped dockerd fails.
    pub(crate) fn check(&self) -> Result<()> {
        if self.unreachable.load(Ordering::SeqCst) {
            Err(self.unreachable_error())
        } else {
            Ok(())
        }
    }

    pub(crate) fn unreachable_error(&self) -> RuntimeError {
        RuntimeError::Connect(format!(
            "{}: connection refused (MemoryRuntime::set_unreachable)",
            self.endpoint()
        ))
    }

    pub(crate) fn set_unreachable(&self, unreachable: bool) {
        let was = self.unreachable.swap(unreachable, Ordering::SeqCst);
        if unreachable && !was {
            let _ = self.bus.send(Bus::Disconnected);
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Bus> {
        self.bus.subscribe()
    }

    /// Publishes a container event, its labels plus `name`, `image` and
    /// `extra` (e.g. `exitCode`, `signal`) as the engine's attributes.
    pub(crate) fn emit(&self, container: &Container, action: &str, extra: &[(&str, String)]) {
        let mut labels = container.labels.clone();
        labels.insert("name".into(), container.name.clone());
        labels.insert("image".into(), container.image.clone());
        for (key, value) in extra {
            labels.insert((*key).to_string(), value.clone());
        }
        let event = RuntimeEvent {
            container_id: container.id.clone(),
            action: action.to_string(),
            exit_code: labels.get("exitCode").and_then(|c| c.parse().ok()),
            labels,
        };
        // No subscriber is not an error: nobody watches.
        let _ = self.bus.send(Bus::Event(event));
    }
}
