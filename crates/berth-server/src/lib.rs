//! The berth server. Its modules form layers; each imports only from layers
//! below it:
//!
//! - `http`: the API (axum): routes, auth, the role policy, audit, error
//!   statuses, NDJSON streams, WebSocket sessions, serving over TLS (`http::tls`),
//!   and the web console (`http::console`), a client of the API in the process.
//!   Nothing else knows axum.
//! - operations the API offers: `apps`, `builds`, `releases`, `processes`,
//!   `oneoff` (run, exec), `timers`, `volumes`, `certs`, `acme` and `ocsp`, `tokens`,
//!   `prune`, `drains` (log forwarding), `settings` (the log retention, set at run time);
//! - `lifecycle`: rollouts and scale, the one way a process stops (`retire`),
//!   health checks and the reconciler;
//! - `spec` (the container of a process or one-off) over `volumes`;
//! - `cluster_ca` (the cluster's CA in `DATA/ca/`), `rack` (shared state: store,
//!   runtime, router handle, what is observed),
//!   `error`, `progress`, `views`, `logs`, `engine`, `disk`.
//!
//! `run` starts it all: the store, the engine, the router process, a first
//! reconcile pass that adopts what runs, then the background tasks and the API.

pub mod acme;
pub mod apps;
pub mod backup;
pub mod builds;
pub mod certs;
pub mod cluster_ca;
pub mod disk;
pub mod drains;
pub mod engine;
pub mod error;
pub mod http;
pub mod instances;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod ocsp;
pub mod oneoff;
pub mod processes;
pub mod progress;
pub mod prune;
pub mod rack;
pub mod releases;
pub mod resource_upgrade;
pub mod resources;
pub mod settings;
pub mod spec;
pub mod timers;
pub mod tokens;
pub mod update;
pub mod views;
pub mod volumes;

pub use error::Error;

use berth_runtime::Runtime;
use berth_store::{MasterKey, Store};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub domain: String,
    pub router: RouterConfig,
    /// Automatic certificates over ACME HTTP-01; `None`: off.
    pub acme: Option<acme::AcmeConfig>,
    /// App networks get a /24 of this pool; `None`: the engine's default pools.
    pub network_pool: Option<berth_runtime::subnets::NetworkPool>,
    /// Largest source or image upload accepted, bytes (`--max-upload`).
    pub max_upload: u64,
    /// Run processes on the Docker Swarm whose manager the engine is, with a
    /// router on every node (`--swarm`).
    pub swarm: bool,
    /// Whether and with which certificate the API is served over HTTPS.
    pub api_tls: ApiTls,
    /// Serve Prometheus metrics at `/metrics` on this address (`--metrics`).
    pub metrics_addr: Option<SocketAddr>,
    /// App log retention (`--log-retention`, `--log-max-size`) while none
    /// was set at run time (`berth rack set`), which wins.
    pub log_retention: logs::Retention,
    /// Stop the router when the server stops (`berth start`, which leaves nothing
    /// running); `berth server`'s router outlives it.
    pub stop_router: bool,
    /// The API's listening socket, already bound (passed on by an update, see
    /// `update::inherited_api_socket`); `None`: bind `api_addr`.
    pub api_listener: Option<Arc<std::net::TcpListener>>,
}

/// How [`run`] ended.
#[derive(Debug)]
pub enum Exit {
    /// The shutdown future resolved.
    Stopped,
    /// `berth rack update` asked the server to hand over: the caller runs
    /// [`update::switch`] with the API's socket, still open so that clients wait
    /// rather than being refused.
    Update(std::net::TcpListener),
}

/// How long API connections (log follows, sessions) may stay open once the
/// server stops serving.
const API_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTPS for the API. It is served over HTTPS whenever its address is not a
/// loopback one ([`ApiTls::https`]), with a certificate of the cluster CA
/// (`DATA/ca/`) unless `files` are given.
#[derive(Debug, Clone, Default)]
pub struct ApiTls {
    /// HTTPS on a loopback address too (`--tls`).
    pub force: bool,
    /// A PEM certificate chain and its PEM key to serve instead of a certificate of
    /// the cluster CA (`--tls-cert`, `--tls-key`).
    pub files: Option<(PathBuf, PathBuf)>,
    /// More names (DNS or IP) for the cluster CA's certificate (`--api-name`).
    pub names: Vec<String>,
}

impl ApiTls {
    /// Whether an API on `addr` is served over HTTPS.
    pub fn https(&self, addr: SocketAddr) -> bool {
        self.force || self.files.is_some() || !addr.ip().is_loopback()
    }

    /// The names the cluster CA's certificate for an API on `addr` carries: the
    /// machine's (see [`cluster_ca::machine_names`]) and the `--api-name`s.
    pub fn cert_names(&self, addr: SocketAddr) -> Vec<String> {
        let mut names = cluster_ca::machine_names(addr.ip());
        for name in &self.names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// How the server starts its router process (see `berth_router::control`).
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The berth binary, run as `berth router`.
    pub exe: PathBuf,
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// What clients may send (`--max-body`, `--max-header-size`, `--body-timeout`).
    pub limits: berth_router::Limits,
    /// Address the router serves HTTPS on, if any.
    pub https: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data dir {path}: {source}; check that it is writable by this user or pass --data DIR")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] berth_store::StoreError),
    #[error("{0}")]
    Seal(#[from] berth_store::SealError),
    #[error("{0}")]
    Runtime(#[from] berth_runtime::RuntimeError),
    #[error("{0}")]
    Router(#[from] berth_router::ControlError),
    #[error("{0}")]
    Acme(#[from] acme::AcmeError),
    #[error("{0}")]
    Ca(#[from] cluster_ca::CaError),
    #[error(
        "cannot serve the API over HTTPS with {}: {reason}; pass a PEM certificate chain with --tls-cert and its PEM private key with --tls-key, or leave both out to use a certificate of the cluster CA",
        path.display()
    )]
    TlsFiles { path: PathBuf, reason: String },
    #[error("swarm mode: {0}")]
    Swarm(String),
    #[error("cannot read the rack's settings: {0}")]
    Settings(String),
    #[error(
        "cannot listen on {addr} ({what}): {source}; is another berth server running? pick another address with {flag}"
    )]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the API on {addr} stopped serving: {source}; start berth server again (apps and the router keep running)"
    )]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What `init` found or made in the data dir.
#[derive(Debug)]
pub struct InitOutcome {
    /// The admin token, only when this start created it (print it once).
    pub new_admin_token: Option<String>,
}

fn data_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

fn open_store(data_dir: &Path) -> Result<Store, ServerError> {
    let (key, _) = MasterKey::load_or_create(&data_dir.join("master.key"))?;
    Ok(Store::open(&data_dir.join("berth.db"), key)?)
}

/// Creates the data dir, store, master key, rack id and admin token when absent.
pub fn init(data_dir: &Path) -> Result<InitOutcome, ServerError> {
    std::fs::create_dir_all(data_dir).map_err(data_err(data_dir))?;
    // Before the store opens: an interrupted update may have to put it back.
    update::recover_interrupted(data_dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(data_err(data_dir))?;
    }
    let store = open_store(data_dir)?;
    if store.meta("rack_id")?.is_none() {
        store.set_meta("rack_id", &hex::encode(rand::random::<[u8; 4]>()))?;
    }
    if store.meta("admin_token_created")?.is_some() {
        return Ok(InitOutcome {
            new_admin_token: None,
        });
    }
    let (_, secret) = store.create_token("admin", None)?;
    let path = data_dir.join("admin.token");
    berth_store::seal::write_private(&path, format!("{secret}\n").as_bytes())
        .map_err(data_err(&path))?;
    store.set_meta("admin_token_created", &berth_store::now_rfc3339())?;
    Ok(InitOutcome {
        new_admin_token: Some(secret),
    })
}

/// Gives the rack of `data_dir` (after [`init`]) the id `rack_id` instead of a random
/// one: `berth start` derives it from the source directory, so that its next start
/// finds and removes what a crashed one left on the engine (every object carries
/// `berth.rack`).
pub fn pin_rack_id(data_dir: &Path, rack_id: &str) -> Result<(), ServerError> {
    Ok(open_store(data_dir)?.set_meta("rack_id", rack_id)?)
}

/// Runs the server until `shutdown` resolves. Apps keep running afterwards:
/// nothing here stops containers on the way out.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Exit, ServerError> {
    init(&config.data_dir)?;
    let update_role = update::role(&config.data_dir);
    // Bad ACME flags stop the start, before anything is touched.
    let acme = config.acme.clone().map(acme::Acme::new).transpose()?;
    let store = open_store(&config.data_dir)?;
    let rack_id = store.meta("rack_id")?.unwrap_or_else(|| "default".into());
    let ca = Arc::new(cluster_ca::ClusterCa::load_or_create(&config.data_dir)?);
    let https = config.api_tls.https(config.api_addr);
    let api_tls = if https {
        match &config.api_tls.files {
            None => tracing::info!(
                fingerprint = %ca.fingerprint(),
                "the API is served over HTTPS; clients trust the cluster CA with `berth login URL --token T --ca-sha256 FINGERPRINT`"
            ),
            Some((cert, _)) => tracing::info!(
                cert = %cert.display(),
                "the API is served over HTTPS with the given certificate"
            ),
        }
        Some(api_tls_config(&config, &ca)?)
    } else {
        None
    };
    let logs =
        logs::LogBook::new(config.data_dir.join("logs")).map_err(data_err(&config.data_dir))?;
    let retention = settings::stored_retention(&store, config.log_retention)
        .map_err(|e| ServerError::Settings(e.to_string()))?;
    logs.set_retention(retention);
    let listen_err = |source| ServerError::Listen {
        addr: config.api_addr,
        what: "API",
        flag: "--api",
        source,
    };
    let api_socket = match &config.api_listener {
        Some(listener) => listener.try_clone(),
        None => std::net::TcpListener::bind(config.api_addr),
    }
    .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
    .map_err(listen_err)?;
    // Kept for an update's hand-over (see `Exit::Update`).
    let api_kept = api_socket.try_clone().map_err(listen_err)?;
    let api_listener = tokio::net::TcpListener::from_std(api_socket).map_err(listen_err)?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    addr,
                    what: "metrics",
                    flag: "--metrics",
                    source,
                })?,
        ),
        None => None,
    };
    let Engine {
        runtime,
        router,
        access_lines,
        agents,
        version: engine,
    } = if config.swarm {
        swarm_engine(&config, &rack_id, &ca).await?
    } else {
        single_engine(&config).await?
    };
    let http_addr = router.http_addr();
    let rack = Arc::new(rack::Rack::new(rack::Parts {
        store,
        runtime,
        router,
        logs,
        rack_id,
        domain: config.domain.clone(),
        data_dir: config.data_dir.clone(),
        engine: engine.clone(),
        max_upload: config.max_upload,
        swarm: config.swarm,
        api_url: format!(
            "{}://{}",
            if https { "https" } else { "http" },
            config.api_addr
        ),
        agents,
        ca,
    }));
    if https && config.api_tls.files.is_some() {
        rack.set_api_cert_given();
    }
    // Stored log drains resume before any line is written.
    if let Err(e) = drains::hub(&rack) {
        tracing::error!("log drains not started: {e}");
    }
    // Leftovers of an interrupted upload are never needed again.
    let _ = std::fs::remove_dir_all(config.data_dir.join("tmp"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let rack = rack.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => {}
                () = rack.restart.requested() => {}
            }
            let _ = stop_tx.send(true);
        });
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(http::metrics::serve(
            listener,
            rack.clone(),
            stop_rx.clone(),
        ));
    }
    let api_stop = stop_rx.clone();
    let api = {
        let app = http::app(rack.clone());
        async move {
            match api_tls {
                Some(tls) => http::tls::serve(api_listener, tls, app, api_stop).await,
                None => {
                    let mut api_stop = api_stop;
                    axum::serve(api_listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = api_stop.wait_for(|s| *s).await;
                        })
                        .await
                }
            }
        }
    };
    // On a swarm, the first pass must see the processes on every node with
    // their addresses, which needs the agents' links, which needs their
    // hellos: the API serves them (and refuses the rest) meanwhile.
    let has_processes = rack.store.processes(None).is_ok_and(|p| !p.is_empty());
    let api = if config.swarm && has_processes {
        rack.starting
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let api = tokio::spawn(api);
        wait_for_agents(&rack, std::time::Duration::from_secs(20)).await;
        futures_util::future::Either::Left(async move {
            api.await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        })
    } else {
        futures_util::future::Either::Right(api)
    };
    lifecycle::reconcile::recover(&rack).await;
    // Adopt what runs before anything can rebuild the route table: a table built from
    // nothing observed would take every process out of the (still running) router.
    if let Err(e) = lifecycle::reconcile::converge(&rack, &mut Default::default(), true).await {
        tracing::warn!(error = %e, "first reconcile pass failed; the router keeps its table");
    }
    rack.starting
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let reconciler = tokio::spawn(lifecycle::reconcile::run(rack.clone()));
    let timers = tokio::spawn(timers::run(rack.clone()));
    let sampler = tokio::spawn(rack::usage::sample(rack.clone()));
    let retention = tokio::spawn(apply_log_retention(rack.clone()));
    let access = tokio::spawn(write_access_lines(rack.clone(), access_lines));
    certs::push_to_router(&rack);
    let acme = acme.map(|acme| tokio::spawn(acme::run(rack.clone(), acme)));
    let ocsp = tokio::spawn(ocsp::run(rack.clone()));
    tracing::info!(api = %rack.api_url, router = %http_addr, engine, rack = %rack.rack_id, version = berth_core::version::version(), "berth server ready");
    update::on_ready(&rack, &update_role).await;
    let mut stopped = stop_rx;
    let served = tokio::select! {
        served = api => served,
        () = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(API_DRAIN).await;
        } => {
            tracing::info!("API connections still open {API_DRAIN:?} after the stop; closing them");
            Ok(())
        }
    };
    drains::shutdown(&rack, std::time::Duration::from_secs(3)).await;
    reconciler.abort();
    timers.abort();
    sampler.abort();
    retention.abort();
    if let Some(acme) = acme {
        acme.abort();
    }
    ocsp.abort();
    if rack.restart.is_requested() {
        // The next server collects output and access lines from here on: two
        // collectors would write every line twice.
        access.abort();
        let collectors: Vec<_> = rack
            .collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, collector) in collectors {
            collector.abort();
        }
        tracing::info!("berth server stopped for an update; apps and the router keep running");
    } else if config.stop_router {
        access.abort();
        rack.router.shut_down().await;
        tracing::info!("berth server stopped, and its router");
    } else {
        tracing::info!("berth server stopped; apps and the router keep running");
    }
    served.map_err(|source| ServerError::Serve {
        addr: config.api_addr,
        source,
    })?;
    Ok(match rack.restart.update() {
        Some(_) => Exit::Update(api_kept),
        None => Exit::Stopped,
    })
}

/// The API's TLS settings: the given certificate files, else a certificate of the
/// cluster CA for the API's names (kept in `DATA/ca/api.pem`, issued again when the
/// names change).
fn api_tls_config(
    config: &ServerConfig,
    ca: &cluster_ca::ClusterCa,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_pem, key_pem, cert_path, key_path) = match &config.api_tls.files {
        Some((cert_path, key_path)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|e| ServerError::TlsFiles {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            };
            (
                read(cert_path)?,
                read(key_path)?,
                cert_path.clone(),
                key_path.clone(),
            )
        }
        None => {
            let names = config.api_tls.cert_names(config.api_addr);
            let issued = ca.load_or_issue(&config.data_dir, "api", "berth API", &names)?;
            tracing::info!(names = %names.join(", "), "the API's certificate (cluster CA) names");
            let dir = config.data_dir.join("ca");
            (
                issued.cert_pem.into_bytes(),
                issued.key_pem.into_bytes(),
                dir.join("api.pem"),
                dir.join("api.key"),
            )
        }
    };
    let bad = |path: &PathBuf, reason: String| ServerError::TlsFiles {
        path: path.clone(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&cert_path, format!("not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(bad(&cert_path, "it holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad(&key_path, format!("not a PEM private key ({e})")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(berth_router::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&key_path, format!("it does not fit the certificate ({e})")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The router's order of suites decides, as on the HTTPS port.
    tls.ignore_client_order = true;
    Ok(Arc::new(tls))
}

/// The engine side of a server: where processes run and what routes to them.
struct Engine {
    runtime: Arc<dyn Runtime>,
    router: Arc<dyn berth_router::RouterHandle>,
    access_lines: tokio::sync::mpsc::Receiver<berth_router::AccessLine>,
    agents: Arc<rack::agents::Agents>,
    /// The engine's name and version.
    version: String,
}

/// One Docker engine, and the router as a process of this machine.
async fn single_engine(config: &ServerConfig) -> Result<Engine, ServerError> {
    let runtime = berth_runtime::DockerRuntime::connect()
        .await?
        .with_network_pool(config.network_pool);
    let version = runtime.version().await?;
    // The router is a process of its own that outlives this one: a server restart
    // attaches to it again, so the listening socket never closes.
    let (router, access_lines) = berth_router::RouterLink::start(berth_router::LinkOptions {
        exe: config.router.exe.clone(),
        http: config.http_addr,
        control: config.data_dir.join("router.sock"),
        log: config.data_dir.join("router.log"),
        threads: config.router.threads,
        limits: config.router.limits,
        https: config.router.https,
    })
    .await?;
    Ok(Engine {
        runtime: Arc::new(runtime),
        router,
        access_lines,
        agents: Default::default(),
        version,
    })
}

/// A Docker Swarm through its manager engine: processes as Swarm services,
/// each node reached through its agent, a router on every node.
async fn swarm_engine(
    config: &ServerConfig,
    rack_id: &str,
    ca: &cluster_ca::ClusterCa,
) -> Result<Engine, ServerError> {
    let manager = berth_runtime::DockerRuntime::connect().await?;
    let spool = config.data_dir.join("spool");
    std::fs::create_dir_all(&spool).map_err(data_err(&spool))?;
    let tls = rack::agents::agent_tls(ca.ca_pem()).map_err(ServerError::Swarm)?;
    let (access, access_lines) = tokio::sync::mpsc::channel(256);
    let agents = Arc::new(rack::agents::Agents::for_swarm(rack::agents::SwarmSetup {
        dir: config.data_dir.join("nodes"),
        rack_id: rack_id.to_string(),
        http: config.http_addr,
        tls,
        manager: manager.client().clone(),
        access,
        router: berth_api::RouterSettings {
            http: config.http_addr.to_string(),
            https: config.router.https.map(|a| a.to_string()),
            threads: config.router.threads,
            max_body: config.router.limits.max_body.unwrap_or(u64::MAX),
            max_head: config.router.limits.max_head,
            body_timeout: config.router.limits.body_timeout.as_secs(),
        },
    }));
    let fleet = rack::fleet::RouterFleet::new(agents.clone(), config.http_addr);
    let runtime = berth_runtime::SwarmRuntime::new(manager, agents.clone())
        .await?
        .with_temp_dir(spool)
        .with_prober(fleet.clone());
    let version = runtime.version().await?;
    Ok(Engine {
        runtime: Arc::new(runtime),
        router: fleet,
        access_lines,
        agents,
        version,
    })
}

/// Waits (at most `limit`) until every Ready node's agent is linked.
async fn wait_for_agents(rack: &rack::Rack, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ready: Vec<String> = match rack.runtime.nodes().await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.status == "ready")
                .map(|n| n.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        let missing: Vec<&String> = ready
            .iter()
            .filter(|id| rack.agents.link(id).is_none())
            .collect();
        if !ready.is_empty() && missing.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                nodes = missing.len(),
                "not every node's agent is linked yet; starting without them (their processes are adopted once they are)"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Writes the router's access log lines into each app's log stream.
async fn write_access_lines(
    rack: Arc<rack::Rack>,
    mut lines: tokio::sync::mpsc::Receiver<berth_router::AccessLine>,
) {
    while let Some(line) = lines.recv().await {
        // An app deleted since the request has no log stream any more.
        if rack.store.app(&line.app).is_ok() {
            rack.logs.append(&line.app, "router", &line.line);
        }
    }
}

/// How often the log retention is applied to apps that write little (a busy
/// app's log is trimmed as it writes).
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies the log retention to every app's log now and then.
async fn apply_log_retention(rack: Arc<rack::Rack>) {
    loop {
        let sweeper = rack.clone();
        let removed = tokio::task::spawn_blocking(move || sweeper.logs.sweep()).await;
        if let Ok(bytes) = removed
            && bytes > 0
        {
            tracing::debug!(bytes, "old log segments removed");
        }
        tokio::time::sleep(RETENTION_EVERY).await;
    }
}
