//! The rack's shared state and the operations on it that touch the engine:
//! starting and stopping processes, route-table rebuilds, app deletion.

use crate::logs::LogBook;
use berth_core::Manifest;
use berth_router::{Backend, Route, RouteTable, RouterLink};
use berth_runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_APP, LABEL_PROCESS, LABEL_RACK,
    LABEL_RELEASE, LABEL_SERVICE, Runtime,
};
use berth_store::{ProcessRow, ReleaseRow, Store};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RackError {
    #[error("{0}")]
    Store(#[from] berth_store::StoreError),
    #[error("{0}")]
    Runtime(#[from] berth_runtime::RuntimeError),
    #[error("{0}")]
    Manifest(#[from] berth_core::ManifestError),
    #[error("{0}")]
    Name(#[from] berth_core::NameError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Failed { message: String, logs: Vec<String> },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The data dir's disk is full; the message says where and how to fix it.
    #[error("{0}")]
    DiskFull(String),
}

pub type Result<T> = std::result::Result<T, RackError>;

/// What the server knows about a process's container right now (never persisted:
/// it is re-read from the engine after a restart).
#[derive(Debug, Clone)]
pub struct Observed {
    pub container_id: String,
    pub addr: Option<SocketAddr>,
    pub started: Option<String>,
    pub running: bool,
    pub healthy: bool,
    pub failures: u32,
    pub last_check: Option<Instant>,
}

pub struct Rack {
    pub store: Store,
    pub runtime: Arc<dyn Runtime>,
    pub router: Arc<RouterLink>,
    pub logs: LogBook,
    pub rack_id: String,
    pub domain: String,
    pub router_url: String,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub engine: String,
    /// Whether the engine answers (it may restart while the server runs).
    pub engine_watch: crate::engine::EngineWatch,
    /// Per-app lock: deploys, scale, restart, env promotion and deletion of one app
    /// never overlap; the reconciler skips an app whose lock is held.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// (app, process id) → what the engine shows.
    pub observed: Mutex<HashMap<(String, String), Observed>>,
    manifests: Mutex<HashMap<(String, String), Arc<Manifest>>>,
    /// Wakes the reconciler early (engine events, deletions).
    pub nudge: tokio::sync::Notify,
    /// Container ids whose output is being collected.
    pub collectors: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// app → its one-off containers as last listed, so `berth ps` does not ask
    /// the engine on every call (a container listing is most of its cost).
    oneoff_view: Mutex<OneoffView>,
}

/// Listings are dropped on any engine event for the app and whenever berth
/// itself creates or removes a one-off; `generation` keeps a listing that
/// raced with such a change from being stored.
#[derive(Default)]
struct OneoffView {
    generation: u64,
    by_app: HashMap<String, (Instant, Vec<ContainerInfo>)>,
}

/// A safety net for engine events lost while the event stream reconnects.
const ONEOFF_VIEW_MAX_AGE: Duration = Duration::from_secs(5);

impl Rack {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        router: Arc<RouterLink>,
        logs: LogBook,
        rack_id: String,
        domain: String,
        router_url: String,
        data_dir: PathBuf,
        engine: String,
    ) -> Rack {
        Rack {
            store,
            runtime,
            router,
            logs,
            rack_id,
            domain,
            router_url,
            data_dir,
            started: Instant::now(),
            engine,
            engine_watch: Default::default(),
            locks: Mutex::new(HashMap::new()),
            observed: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            nudge: tokio::sync::Notify::new(),
            collectors: Mutex::new(HashMap::new()),
            oneoff_view: Mutex::new(OneoffView::default()),
        }
    }

    /// The app's one-off containers if listed recently, else `Err(generation)`
    /// to hand back to [`Rack::remember_oneoffs`] with a fresh listing.
    pub fn cached_oneoffs(&self, app: &str) -> std::result::Result<Vec<ContainerInfo>, u64> {
        let view = self.oneoff_view.lock().unwrap_or_else(|p| p.into_inner());
        match view.by_app.get(app) {
            Some((at, list)) if at.elapsed() < ONEOFF_VIEW_MAX_AGE => Ok(list.clone()),
            _ => Err(view.generation),
        }
    }

    pub fn remember_oneoffs(&self, app: &str, generation: u64, list: Vec<ContainerInfo>) {
        let mut view = self.oneoff_view.lock().unwrap_or_else(|p| p.into_inner());
        if view.generation == generation {
            view.by_app.insert(app.to_string(), (Instant::now(), list));
        }
    }

    /// Something about `app`'s containers changed (`None`: anything may have).
    pub fn forget_oneoffs(&self, app: Option<&str>) {
        let mut view = self.oneoff_view.lock().unwrap_or_else(|p| p.into_inner());
        view.generation += 1;
        match app {
            Some(app) => {
                view.by_app.remove(app);
            }
            None => view.by_app.clear(),
        }
    }

    pub fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(app.to_string()).or_default().clone()
    }

    pub fn network_name(&self, app: &str) -> String {
        format!("berth-{}-{app}", self.rack_id)
    }

    pub fn container_name(&self, app: &str, process: &str) -> String {
        format!("berth-{}-{app}-{process}", self.rack_id)
    }

    pub fn default_host(&self, app: &str, service: &str) -> String {
        format!("{service}.{app}.{}", self.domain)
    }

    /// The URLs a service is reachable at through the router.
    pub fn service_urls(&self, app: &str, service: &str, manifest: &Manifest) -> Vec<String> {
        let Some(svc) = manifest.services.get(service) else {
            return vec![];
        };
        if svc.port.is_none() {
            return vec![];
        }
        let port = self.router_url.rsplit(':').next().unwrap_or("80");
        let suffix = if port == "80" {
            String::new()
        } else {
            format!(":{port}")
        };
        std::iter::once(self.default_host(app, service))
            .chain(svc.domains.iter().cloned())
            .map(|h| format!("http://{h}{suffix}/"))
            .collect()
    }

    pub fn manifest(&self, release: &ReleaseRow) -> Result<Arc<Manifest>> {
        let key = (release.app.clone(), release.id.clone());
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(m.clone());
        }
        let m = Arc::new(berth_core::parse_manifest("berth.yml", &release.manifest)?);
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, m.clone());
        Ok(m)
    }

    pub fn labels(&self, app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_RACK.to_string(), self.rack_id.clone()),
            (LABEL_APP.to_string(), app.to_string()),
        ])
    }

    /// Creates and starts the container of one process row.
    pub async fn start_process(&self, row: &ProcessRow) -> Result<ContainerInfo> {
        let (spec, port) = self.process_spec(row).await?;
        let info = self.runtime.run_container(&spec).await?;
        self.observe(&row.app, &row.id, &info, port, false);
        Ok(info)
    }

    /// The container of one process (row or one-off): the release's image, the
    /// app's env and the service's volumes on the app network; its network is
    /// ensured. Also returns the service's port.
    pub async fn process_spec(&self, row: &ProcessRow) -> Result<(ContainerSpec, Option<u16>)> {
        let release = self.store.release(&row.app, &row.release)?;
        let manifest = self.manifest(&release)?;
        let svc = manifest.services.get(&row.service).ok_or_else(|| {
            RackError::NotFound(format!(
                "service {} is not in release {} of app {}",
                row.service, row.release, row.app
            ))
        })?;
        let image = match &svc.source {
            berth_core::ImageSource::Image(name) => name.clone(),
            berth_core::ImageSource::Build(_) => {
                let build_id = release.build.as_deref().ok_or_else(|| {
                    RackError::NotFound(format!("release {} has no build", release.id))
                })?;
                let build = self.store.build(&row.app, build_id)?;
                build.images.get(&row.service).cloned().ok_or_else(|| {
                    RackError::NotFound(format!(
                        "build {build_id} has no image for service {}; deploy again",
                        row.service
                    ))
                })?
            }
        };
        let env = self.store.env(&row.app, release.env_version)?;
        let mut labels = self.labels(&row.app);
        labels.insert(LABEL_SERVICE.into(), row.service.clone());
        labels.insert(LABEL_RELEASE.into(), row.release.clone());
        labels.insert(LABEL_PROCESS.into(), row.id.clone());
        let network = self.network_name(&row.app);
        self.runtime
            .ensure_network(&network, &self.labels(&row.app))
            .await?;
        let mut env = manifest.service_env(&row.service, &env);
        env.insert("BERTH_APP".into(), row.app.clone());
        env.insert("BERTH_SERVICE".into(), row.service.clone());
        env.insert("BERTH_RELEASE".into(), row.release.clone());
        env.insert("BERTH_PROCESS".into(), row.id.clone());
        if let Some(port) = svc.port {
            env.entry("PORT".into()).or_insert_with(|| port.to_string());
        }
        let spec = ContainerSpec {
            name: self.container_name(&row.app, &row.id),
            image,
            command: svc.command.clone(),
            env,
            labels,
            network,
            aliases: vec![row.service.clone()],
            hostname: Some(row.id.clone()),
            memory_mib: row.memory,
            cpu: row.cpu,
            volumes: svc
                .volumes
                .iter()
                .map(|v| {
                    (
                        format!("berth-{}-{}-{}", self.rack_id, row.app, v.volume),
                        v.path.clone(),
                    )
                })
                .collect(),
            stop_grace: svc.termination.grace,
            ..Default::default()
        };
        // Labelled volumes, made before the engine would make unlabelled ones.
        crate::volumes::ensure_for(self, &row.app, &spec.volumes).await?;
        Ok((spec, svc.port))
    }

    /// Records what the engine shows for a process. `healthy` is kept when the
    /// same container is seen again, so a resync doesn't undo health checks.
    pub fn observe(
        &self,
        app: &str,
        process: &str,
        info: &ContainerInfo,
        port: Option<u16>,
        assume_healthy: bool,
    ) {
        let running = info.state == ContainerState::Running;
        let addr = match (info.ip, port) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        let key = (app.to_string(), process.to_string());
        match observed.get_mut(&key) {
            Some(o) if o.container_id == info.id => {
                o.running = running;
                o.healthy &= running;
                if addr.is_some() {
                    o.addr = addr;
                }
            }
            _ => {
                observed.insert(
                    key,
                    Observed {
                        container_id: info.id.clone(),
                        addr,
                        started: info.started_at.clone(),
                        running,
                        healthy: running && assume_healthy,
                        failures: 0,
                        last_check: None,
                    },
                );
            }
        }
    }

    pub fn observed(&self, app: &str, process: &str) -> Option<Observed> {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(app.to_string(), process.to_string()))
            .cloned()
    }

    pub fn set_healthy(&self, app: &str, process: &str, healthy: bool) -> bool {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match observed.get_mut(&(app.to_string(), process.to_string())) {
            Some(o) if o.healthy != healthy => {
                o.healthy = healthy;
                true
            }
            _ => false,
        }
    }

    pub fn forget(&self, app: &str, process: &str) {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(app.to_string(), process.to_string()));
    }

    /// Stops and removes one process's container (SIGTERM, SIGKILL after grace),
    /// then deletes its row.
    pub async fn stop_process(&self, row: &ProcessRow, grace: u32) -> Result<()> {
        let container = self
            .observed(&row.app, &row.id)
            .map(|o| o.container_id)
            .unwrap_or_else(|| self.container_name(&row.app, &row.id));
        self.runtime.stop_container(&container, grace).await?;
        self.runtime.remove_container(&container).await?;
        self.forget(&row.app, &row.id);
        self.store.delete_process(&row.app, &row.id)?;
        Ok(())
    }

    /// The grace a process's release gives it between SIGTERM and SIGKILL.
    pub fn grace_of(&self, row: &ProcessRow) -> u32 {
        self.store
            .release(&row.app, &row.release)
            .ok()
            .and_then(|r| self.manifest(&r).ok())
            .and_then(|m| m.services.get(&row.service).map(|s| s.termination.grace))
            .unwrap_or(10)
    }

    /// Rebuilds the router's table from the store and what is observed: every
    /// active, running, healthy process of a routed service.
    pub fn refresh_routes(&self) {
        let mut table = RouteTable::default();
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(error = %e, "cannot rebuild routes");
                return;
            }
        };
        let processes = self.store.processes(None).unwrap_or_default();
        for app in apps {
            let Some(release_id) = &app.release else {
                continue;
            };
            let Ok(release) = self.store.release(&app.name, release_id) else {
                continue;
            };
            let Ok(manifest) = self.manifest(&release) else {
                continue;
            };
            for (name, svc) in &manifest.services {
                if svc.port.is_none() {
                    continue;
                }
                let backends = processes
                    .iter()
                    .filter(|p| p.app == app.name && &p.service == name && p.state == "active")
                    .filter_map(|p| {
                        let o = self.observed(&p.app, &p.id)?;
                        (o.running && o.healthy)
                            .then_some(())
                            .and(o.addr)
                            .map(|addr| Backend {
                                addr,
                                process: p.id.clone(),
                            })
                    })
                    .collect();
                let route = Arc::new(Route {
                    app: app.name.clone(),
                    service: name.clone(),
                    backends,
                    timeout: Duration::from_secs(u64::from(svc.timeout)),
                    tls_redirect: svc.tls.redirect,
                });
                table
                    .hosts
                    .insert(self.default_host(&app.name, name), route.clone());
                for domain in &svc.domains {
                    table
                        .hosts
                        .insert(domain.to_ascii_lowercase(), route.clone());
                }
            }
        }
        self.router.update(table);
    }

    /// [`Rack::refresh_routes`], then waits (at most 5 s) until the router runs the
    /// new table: a deploy or scale reports success only once its processes take
    /// requests on their domains.
    pub async fn refresh_routes_and_wait(&self) {
        const ROUTER_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
        self.refresh_routes();
        if !self.router.synced(ROUTER_SYNC_TIMEOUT).await {
            tracing::warn!(
                "the router did not take the new table within {ROUTER_SYNC_TIMEOUT:?}; \
                 it serves the previous one until it does"
            );
        }
    }

    /// The last lines a process printed, for error reports.
    pub async fn last_lines(&self, app: &str, process: &str, n: usize) -> Vec<String> {
        let container = self
            .observed(app, process)
            .map(|o| o.container_id)
            .unwrap_or_else(|| self.container_name(app, process));
        match self.runtime.tail_logs(&container, n).await {
            Ok(lines) => lines
                .into_iter()
                .map(|l| format!("{process}: {}", l.text))
                .collect(),
            Err(_) => vec![],
        }
    }
}
