//! The rack's shared state: the store, the engine (`Runtime`), the router
//! handle, the log book, per-app locks, the manifest cache and what the engine
//! was last seen to run. Everything else in the server works on a `Rack`; this
//! module knows nothing above it.

pub mod agents;
pub mod fleet;
pub mod metrics;
mod observed;
mod routes;
pub mod usage;

pub use observed::Observed;
pub use usage::Usage;

use crate::cluster_ca::ClusterCa;
use crate::engine::EngineWatch;
use crate::error::Result;
use crate::logs::LogBook;
use berth_core::{Manifest, Service};
use berth_router::RouterHandle;
use berth_runtime::{ContainerInfo, LABEL_APP, LABEL_RACK, Runtime};
use berth_store::{ProcessRow, ReleaseRow, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a rack is made of; see [`Rack::new`].
pub struct Parts {
    pub store: Store,
    pub runtime: Arc<dyn Runtime>,
    pub router: Arc<dyn RouterHandle>,
    pub logs: LogBook,
    /// This rack's id (`berth.rack` label), unique per data dir.
    pub rack_id: String,
    /// Apps are served at `<service>.<app>.<domain>`.
    pub domain: String,
    pub data_dir: PathBuf,
    /// The engine's name and version, as `Runtime::version` gave it.
    pub engine: String,
    /// Largest source or image upload accepted, bytes.
    pub max_upload: u64,
    /// Processes run on a Docker Swarm (nodes with agents), not one engine.
    pub swarm: bool,
    /// The API's URL as agents on other nodes reach it.
    pub api_url: String,
    /// The agents of a swarm's nodes (made before the rack: the swarm runtime
    /// and the routers reach the nodes through them).
    pub agents: Arc<agents::Agents>,
    /// The cluster's CA (`DATA/ca/`): the API's certificate, agents' trust.
    pub ca: Arc<ClusterCa>,
}

pub struct Rack {
    pub store: Store,
    pub runtime: Arc<dyn Runtime>,
    pub router: Arc<dyn RouterHandle>,
    pub logs: LogBook,
    pub rack_id: String,
    pub domain: String,
    pub router_url: String,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub engine: String,
    pub max_upload: u64,
    pub swarm: bool,
    pub api_url: String,
    /// Whether the engine answers (it may restart while the server runs).
    pub engine_watch: EngineWatch,
    /// Per-app lock: deploys, scale, restart, env promotion, `ps stop` and deletion
    /// of one app never overlap; the reconciler skips an app whose lock is held.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// (app, process id) → what the engine shows.
    observed: Mutex<HashMap<(String, String), Observed>>,
    manifests: Mutex<HashMap<(String, String), Arc<Manifest>>>,
    /// (app, process id) → the image it needs that the engine lacks (a rack
    /// restored onto an engine that lost its images), so `ps` and `apps` say so.
    images_missing: Mutex<HashMap<(String, String), String>>,
    /// Wakes the reconciler early (engine events, deletions).
    pub nudge: tokio::sync::Notify,
    /// Set while a swarm server starts: the API serves the agents (whose
    /// links the first reconcile pass needs) and refuses the rest.
    pub starting: std::sync::atomic::AtomicBool,
    /// Container ids whose output is being collected.
    pub collectors: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// app → its one-off containers as last listed, so `berth ps` does not ask
    /// the engine on every call (a container listing is most of its cost).
    oneoff_view: Mutex<OneoffView>,
    /// (app, process id) → its last sampled CPU and memory.
    usage: Mutex<HashMap<(String, String), usage::Sample>>,
    /// The agents of a swarm's nodes.
    pub agents: Arc<agents::Agents>,
    /// The cluster's CA.
    pub ca: Arc<ClusterCa>,
    /// The API serves a certificate given to it (`--tls-cert`), not one of `ca`.
    api_cert_given: std::sync::atomic::AtomicBool,
    /// The server's own counters (deploys, builds, API requests, ...).
    pub metrics: metrics::ServerMetrics,
    /// Set by `berth rack update`: the server stops serving and hands over.
    pub restart: Restart,
}

/// A request to stop serving so that the update named by its id can take over;
/// the rack only carries the request, the update module does the rest.
#[derive(Default)]
pub struct Restart {
    update: Mutex<Option<String>>,
    requested: tokio::sync::Notify,
}

impl Restart {
    /// Asks the server to stop serving for update `id`.
    pub fn request(&self, id: &str) {
        *self.update.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
        self.requested.notify_one();
    }

    /// Resolves once a restart was requested.
    pub async fn requested(&self) {
        self.requested.notified().await;
    }

    /// The update a restart was requested for, if any.
    pub fn update(&self) -> Option<String> {
        self.update
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a restart is under way (a second update is refused meanwhile).
    pub fn is_requested(&self) -> bool {
        self.update().is_some()
    }
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

/// Seconds a service gets between SIGTERM and SIGKILL, and to drain, when its
/// release can no longer be read.
const DEFAULT_GRACE: u32 = 10;
const DEFAULT_DRAIN: u32 = 10;

impl Rack {
    pub fn new(parts: Parts) -> Rack {
        let router_url = format!("http://{}", parts.router.http_addr());
        Rack {
            store: parts.store,
            runtime: parts.runtime,
            router: parts.router,
            logs: parts.logs,
            rack_id: parts.rack_id,
            domain: parts.domain,
            router_url,
            data_dir: parts.data_dir,
            started: Instant::now(),
            engine: parts.engine,
            max_upload: parts.max_upload,
            swarm: parts.swarm,
            api_url: parts.api_url,
            engine_watch: EngineWatch::default(),
            locks: Mutex::new(HashMap::new()),
            observed: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            images_missing: Mutex::new(HashMap::new()),
            nudge: tokio::sync::Notify::new(),
            starting: Default::default(),
            collectors: Mutex::new(HashMap::new()),
            oneoff_view: Mutex::new(OneoffView::default()),
            usage: Mutex::new(HashMap::new()),
            agents: parts.agents,
            ca: parts.ca,
            api_cert_given: Default::default(),
            metrics: Default::default(),
            restart: Restart::default(),
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

    /// Records that process `id` of `app` cannot start because the engine lacks
    /// `image` (`None`: it started, or is gone). Returns whether this changed
    /// what was recorded, so the news is logged once.
    pub fn set_image_missing(&self, app: &str, id: &str, image: Option<&str>) -> bool {
        let mut missing = self
            .images_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = (app.to_string(), id.to_string());
        match image {
            Some(image) => missing.insert(key, image.to_string()).as_deref() != Some(image),
            None => missing.remove(&key).is_some(),
        }
    }

    /// The image process `id` of `app` waits for, if the engine lacks it.
    pub fn image_missing(&self, app: &str, id: &str) -> Option<String> {
        self.images_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(app.to_string(), id.to_string()))
            .cloned()
    }

    /// Forgets missing images of processes `wanted` no longer names (rows gone).
    pub fn keep_images_missing(&self, wanted: impl Fn(&str, &str) -> bool) {
        self.images_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(app, id), _| wanted(app, id));
    }

    /// Whether any process of `app` waits for an image the engine lacks.
    pub fn app_images_missing(&self, app: &str) -> bool {
        self.images_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .any(|(a, _)| a == app)
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

    /// The engine volume behind app volume `volume`.
    pub fn volume_name(&self, app: &str, volume: &str) -> String {
        format!("berth-{}-{app}-{volume}", self.rack_id)
    }

    /// The container of a process: the one last seen, else the name it is created under.
    pub fn container_of(&self, app: &str, process: &str) -> String {
        self.observed(app, process)
            .map(|o| o.container_id)
            .unwrap_or_else(|| self.container_name(app, process))
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

    /// The promoted release's manifest, if the app has one.
    pub fn current_manifest(&self, app: &str) -> Result<Option<Arc<Manifest>>> {
        let Some(id) = self.store.app(app)?.release else {
            return Ok(None);
        };
        let release = self.store.release(app, &id)?;
        Ok(Some(self.manifest(&release)?))
    }

    /// The service a process row runs, as its release defines it.
    pub fn service_of(&self, row: &ProcessRow) -> Option<Service> {
        let release = self.store.release(&row.app, &row.release).ok()?;
        let manifest = self.manifest(&release).ok()?;
        manifest.services.get(&row.service).cloned()
    }

    /// The grace a process's release gives it between SIGTERM and SIGKILL.
    pub fn grace_of(&self, row: &ProcessRow) -> u32 {
        self.service_of(row)
            .map(|s| s.termination.grace)
            .unwrap_or(DEFAULT_GRACE)
    }

    /// Seconds a process's release lets its in-flight requests finish once it left
    /// the router (`drain:`).
    pub fn drain_of(&self, row: &ProcessRow) -> u32 {
        self.service_of(row)
            .map(|s| s.drain)
            .unwrap_or(DEFAULT_DRAIN)
    }

    /// The labels of everything berth makes for `app`.
    pub fn labels(&self, app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_RACK.to_string(), self.rack_id.clone()),
            (LABEL_APP.to_string(), app.to_string()),
        ])
    }

    /// Whether an engine object's labels say it belongs to this rack.
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(LABEL_RACK) == Some(&self.rack_id)
    }

    /// Marks the API's certificate as given (`--tls-cert`): agents trust it through
    /// their system's roots, not by the cluster CA's fingerprint.
    pub fn set_api_cert_given(&self) {
        self.api_cert_given
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What `berth agent` needs besides the server's URL and its token to trust
    /// the server: the cluster CA's fingerprint when the API is served over HTTPS
    /// with a certificate of it, nothing over plain HTTP or with a given certificate.
    pub fn agent_trust_flags(&self) -> String {
        let given = self
            .api_cert_given
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.api_url.starts_with("https://") && !given {
            format!("--ca-sha256 {}", self.ca.fingerprint())
        } else {
            String::new()
        }
    }

    /// The last lines a process printed, for error reports.
    pub async fn last_lines(&self, app: &str, process: &str, n: usize) -> Vec<String> {
        let container = self.container_of(app, process);
        match self.runtime.tail_logs(&container, n).await {
            Ok(lines) => lines
                .into_iter()
                .map(|l| format!("{process}: {}", l.text))
                .collect(),
            Err(_) => vec![],
        }
    }
}
