//! The router as its own process, and the server's link to it.
//!
//! The router runs as `berth router`, a process the server spawns once and that
//! outlives it: when the server stops (upgrade, crash, SIGTERM) the router keeps
//! its listening socket, its table and its connections, so clients never see a
//! refused connection. The server talks to it over a unix socket in the data dir
//! (`router.sock`, mode 0600), one JSON line per request and per reply:
//!
//! - `hello`: the router's HTTP address and pid (a starting server uses this to
//!   attach to a router that is already running);
//! - `table`: replace the route table;
//! - `inflight`: requests in flight to one process (draining);
//! - `logs`: take the access log lines gathered since the last call;
//! - `certs`: replace the TLS certificates;
//! - `challenges`: replace the ACME HTTP-01 challenges answered for any host;
//! - `probe`: a health check of a process made from the router (on a swarm
//!   the router is the one on every app network; the server is not);
//! - `stop`: drain and exit;
//! - `handover` and `commit`: a new router process takes over from the running one
//!   (`berth router --takeover`, [`RouterLink::upgrade`]), see [`take_over`].
//!
//! On one engine the server spawns the router ([`RouterLink::start`]); on a
//! swarm each node's agent runs it in a container and the server reaches its
//! socket through the agent ([`RouterLink::attach`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, watch};

pub use crate::access_log::AccessLine;
use crate::handover;
use crate::{Backend, Drain, Limits, Route, RouteTable, Router};

/// The longest a control call may take before the router counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a spawned router may take to answer `hello`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server collects access log lines.
const LOG_POLL: Duration = Duration::from_millis(500);
/// How often the server checks that its router is alive.
const WATCHDOG: Duration = Duration::from_secs(2);
/// How long a router that handed over keeps an idle keep-alive connection open, so
/// that a client sending its next request gets it answered (with `Connection:
/// close`) rather than racing the close.
const HANDOVER_IDLE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot start the router ({exe}): {source}; check that the berth binary is executable")]
    Spawn {
        exe: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the router exited at start ({status}); its log {log} says:\n{tail}\nis another program listening on the --http address? pick another with --http"
    )]
    Exited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("the router did not answer on {socket} within {START_TIMEOUT:?}; see its log {log}")]
    Timeout { socket: String, log: String },
    #[error("router control socket {socket}: {source}")]
    Io {
        socket: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot listen on {addr} (router): {source}; is another berth router running? pick another address with --http"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(
        "no new router took over from the one on {socket}: {reason}; the running router keeps serving"
    )]
    Takeover { socket: String, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Hello,
    Table {
        routes: Vec<WireRoute>,
    },
    Inflight {
        process: String,
    },
    Logs,
    /// What the router counted ([`crate::RouterMetrics`]).
    Metrics,
    Stop,
    Certs {
        certs: Vec<crate::tls::TlsCert>,
    },
    Challenges {
        challenges: HashMap<String, String>,
    },
    Probe {
        addr: SocketAddr,
        host: String,
        path: String,
        timeout_ms: u64,
    },
    /// From a router process taking over: the listening sockets (passed beside the
    /// reply) and the state ([`Snapshot`]).
    Handover,
    /// From the router that took over, once it answers on the control socket: stop
    /// accepting, let open connections finish within `drain_ms`, exit.
    Commit {
        drain_ms: u64,
    },
}

/// What a router taking over starts from, so it serves the same routes from its
/// first accept.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    routes: Vec<WireRoute>,
    certs: Vec<crate::tls::TlsCert>,
    challenges: HashMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireRoute {
    hosts: Vec<String>,
    app: String,
    service: String,
    backends: Vec<(SocketAddr, String)>,
    timeout_ms: u64,
    #[serde(default)]
    tls_redirect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hsts: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    https: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// Made at the router's start: a new one means a new router process
    /// (in a container, the pid does not tell), which has an empty table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inflight: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    logs: Vec<AccessLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<crate::RouterMetrics>,
    /// A probe's outcome: the status, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<Result<u16, String>>,
    /// The berth version the router runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Snapshot>,
    /// This router took over and the old one may still accept for a moment (it has
    /// not confirmed the `commit` yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    committing: bool,
}

fn to_wire(table: &RouteTable) -> Vec<WireRoute> {
    let mut by_route: HashMap<*const Route, WireRoute> = HashMap::new();
    for (host, route) in &table.hosts {
        by_route
            .entry(Arc::as_ptr(route))
            .or_insert_with(|| WireRoute {
                hosts: vec![],
                app: route.app.clone(),
                service: route.service.clone(),
                backends: route
                    .backends
                    .iter()
                    .map(|b| (b.addr, b.process.clone()))
                    .collect(),
                timeout_ms: u64::try_from(route.timeout.as_millis()).unwrap_or(u64::MAX),
                tls_redirect: route.tls_redirect,
                hsts: route.hsts.clone(),
            })
            .hosts
            .push(host.clone());
    }
    by_route.into_values().collect()
}

fn from_wire(routes: Vec<WireRoute>) -> RouteTable {
    let mut table = RouteTable::default();
    for r in routes {
        let route = Arc::new(Route {
            app: r.app,
            service: r.service,
            backends: r
                .backends
                .into_iter()
                .map(|(addr, process)| Backend { addr, process })
                .collect(),
            timeout: Duration::from_millis(r.timeout_ms),
            tls_redirect: r.tls_redirect,
            hsts: r.hsts,
        });
        for host in r.hosts {
            table.hosts.insert(host, route.clone());
        }
    }
    table
}

/// How `berth router` runs.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub http: SocketAddr,
    /// The control socket; the pid file is written next to it (`.pid`).
    pub control: PathBuf,
    /// What clients may send.
    pub limits: Limits,
    /// Address to serve HTTPS on, if any.
    pub https: Option<SocketAddr>,
    /// HTTP event loops: the caller's, plus `loops - 1` on threads of their own,
    /// all accepting from the one listening socket.
    pub loops: usize,
    /// Count requests for the server's metrics (off only to measure what counting
    /// costs).
    pub metrics: bool,
    /// Take the listening sockets and the state over from the router answering on
    /// `control` instead of binding the addresses ([`take_over`]).
    pub takeover: bool,
    /// With `takeover`: how long the old router may go on finishing its requests and
    /// WebSockets before it closes what is left and exits.
    pub handover_drain: Duration,
    /// The berth version, told in `hello`.
    pub version: Option<String>,
}

/// The listening sockets of a router process.
struct Listeners {
    http: std::net::TcpListener,
    https: Option<std::net::TcpListener>,
}

impl Listeners {
    async fn bind(options: &RouterOptions) -> Result<Listeners, ControlError> {
        let bind = |addr| async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .and_then(tokio::net::TcpListener::into_std);
            listener.map_err(|source| ControlError::Listen { addr, source })
        };
        let http = bind(options.http).await?;
        let https = match options.https {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { http, https })
    }

    /// Copies of the sockets, for a router that takes over.
    fn duplicate(&self) -> io::Result<Vec<OwnedFd>> {
        let mut sockets = vec![OwnedFd::from(self.http.try_clone()?)];
        if let Some(https) = &self.https {
            sockets.push(OwnedFd::from(https.try_clone()?));
        }
        Ok(sockets)
    }
}

/// The router a new one takes over from: the connection the handover runs on.
struct OldRouter {
    stream: UnixStream,
    pid: Option<u32>,
}

/// Takes the listening sockets and the state over from the router answering on
/// `options.control`. The old router goes on serving until [`commit`]: nothing this
/// process does before that disturbs it, and a failure here leaves it as it was.
async fn take_over(
    options: &RouterOptions,
) -> Result<(Listeners, Snapshot, OldRouter), ControlError> {
    let socket = options.control.display().to_string();
    let failed = |reason: String| ControlError::Takeover {
        socket: socket.clone(),
        reason,
    };
    let exchange = async {
        let mut old = UnixStream::connect(&options.control).await.map_err(|e| {
            failed(format!(
                "no router answers there ({e}); start one without --takeover"
            ))
        })?;
        let mut line = serde_json::to_vec(&Request::Handover).map_err(|e| failed(e.to_string()))?;
        line.push(b'\n');
        old.write_all(&line)
            .await
            .map_err(|e| failed(format!("cannot ask it for its sockets: {e}")))?;
        let received = handover::receive_sockets(&old)
            .await
            .map_err(|e| failed(format!("cannot receive its sockets: {e}")))?;
        let mut answer = String::new();
        BufReader::new(&mut old)
            .read_line(&mut answer)
            .await
            .map_err(|e| failed(format!("cannot read its state: {e}")))?;
        let fds = match received {
            handover::Received::Sockets(fds) => fds,
            handover::Received::Refused(first) => {
                answer.insert(0, char::from(first));
                let why = serde_json::from_str::<Reply>(&answer)
                    .ok()
                    .and_then(|r| r.error)
                    .unwrap_or(answer);
                let why = why.trim();
                return Err(failed(if why.starts_with("bad control request") {
                    format!(
                        "it does not know how to hand over ({why}); it is older than this berth: stop it and start this one instead"
                    )
                } else {
                    format!("it refused: {why}")
                }));
            }
        };
        let reply: Reply = serde_json::from_str(&answer)
            .map_err(|e| failed(format!("its state makes no sense: {e}")))?;
        Ok((old, fds, reply))
    };
    let (old, fds, reply) = tokio::time::timeout(START_TIMEOUT, exchange)
        .await
        .map_err(|_| failed(format!("it did not hand over within {START_TIMEOUT:?}")))??;
    let (Some(http), Some(snapshot)) = (reply.http, reply.snapshot) else {
        return Err(failed("it sent no state".into()));
    };
    // A takeover keeps the addresses: the sockets are the old router's.
    if !listens_as_asked((http, reply.https), (options.http, options.https)) {
        return Err(failed(format!(
            "it listens on {http} (HTTPS {:?}), this one was asked for {} (HTTPS {:?}); a takeover keeps the addresses: give the same --http and --https, or stop it and start a new one",
            reply.https, options.http, options.https
        )));
    }
    let wanted = 1 + usize::from(reply.https.is_some());
    if fds.len() != wanted {
        return Err(failed(format!(
            "it passed {} sockets, not {wanted}",
            fds.len()
        )));
    }
    let mut fds = fds.into_iter();
    let mut listener = || -> Result<std::net::TcpListener, ControlError> {
        let fd = fds
            .next()
            .ok_or_else(|| failed("a socket is missing".into()))?;
        let listener = std::net::TcpListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|e| failed(format!("cannot use its socket: {e}")))?;
        Ok(listener)
    };
    let http = listener()?;
    let https = if reply.https.is_some() {
        Some(listener()?)
    } else {
        None
    };
    Ok((
        Listeners { http, https },
        snapshot,
        OldRouter {
            stream: old,
            pid: reply.pid,
        },
    ))
}

/// Tells the old router that this one answers on the control socket now: it stops
/// accepting and drains within `drain`. An old router that does not confirm is gone
/// or going; this one serves either way.
async fn commit(old: OldRouter, drain: Duration) {
    let OldRouter {
        stream: mut old,
        pid: old_pid,
    } = old;
    let request = Request::Commit {
        drain_ms: u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
    };
    let confirmed = async {
        let mut line = serde_json::to_vec(&request).map_err(io::Error::other)?;
        line.push(b'\n');
        old.write_all(&line).await?;
        let mut answer = String::new();
        BufReader::new(&mut old).read_line(&mut answer).await?;
        let reply: Reply = serde_json::from_str(&answer).map_err(io::Error::other)?;
        match reply.error {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    };
    match tokio::time::timeout(CALL_TIMEOUT, confirmed).await {
        Ok(Ok(())) => {
            tracing::info!(old = ?old_pid, "took over from the old router; it finishes its connections and exits");
        }
        Ok(Err(e)) => {
            tracing::warn!(old = ?old_pid, "the old router did not confirm the takeover: {e}")
        }
        Err(_) => {
            tracing::warn!(old = ?old_pid, "the old router did not confirm the takeover in time")
        }
    }
}

/// Runs a router process until `shutdown` resolves, the server sends `stop`, or a
/// newer router takes over; then in-flight requests finish (at most 10 s; after a
/// handover, at most the new router's `handover_drain`).
pub async fn run_router_process(
    options: RouterOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let io_err = |source| ControlError::Io {
        socket: options.control.display().to_string(),
        source,
    };
    let (listeners, snapshot, old) = if options.takeover {
        let (listeners, snapshot, old) = take_over(&options).await?;
        (listeners, Some(snapshot), Some(old))
    } else {
        (Listeners::bind(&options).await?, None, None)
    };
    let http = listeners.http.local_addr().map_err(io_err)?;
    let https = match &listeners.https {
        Some(l) => Some(l.local_addr().map_err(io_err)?),
        None => None,
    };
    let sockets = listeners.duplicate().map_err(io_err)?;

    let router = Router::build(options.limits, true, options.metrics);
    if let Some(addr) = https {
        let _ = router.https_port.set(addr.port());
    }
    let certs = Arc::new(crate::tls::CertStore::default());
    let mut cert_list = Vec::new();
    if let Some(snapshot) = snapshot {
        router.update(from_wire(snapshot.routes));
        certs.update(&snapshot.certs);
        cert_list = snapshot.certs;
        router.set_challenges(snapshot.challenges);
    }

    // A router taking over answers under a name of its own until it is ready, then
    // takes the control socket's name in one rename.
    let control_listener = if old.is_some() {
        take_control_socket(&options.control).map_err(io_err)?
    } else {
        // A socket file left by a router that died is in the way; a live one is not
        // ours to replace.
        if UnixStream::connect(&options.control).await.is_ok() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another router answers on this socket; stop it first, or start this one with --takeover",
            )));
        }
        let _ = std::fs::remove_file(&options.control);
        let listener = UnixListener::bind(&options.control).map_err(io_err)?;
        owner_only(&options.control).map_err(io_err)?;
        handover::replace_file(
            &pid_file(&options.control),
            &format!("{}\n", std::process::id()),
        )
        .map_err(io_err)?;
        listener
    };
    let pid_path = pid_file(&options.control);

    let stop = Arc::new(Notify::new());
    let (relisten_tx, relisten_rx) = mpsc::channel(1);
    let control = Arc::new(Control {
        router: router.clone(),
        http,
        https,
        version: options.version.clone(),
        boot: boot_id(),
        stop: stop.clone(),
        certs: certs.clone(),
        cert_list: Mutex::new(cert_list),
        sockets: Mutex::new(sockets),
        handing_over: AtomicBool::new(false),
        handed_over: AtomicBool::new(false),
        committing: AtomicBool::new(old.is_some()),
        closed: Notify::new(),
        path: options.control.clone(),
        relisten: relisten_tx,
    });
    let control_task = tokio::spawn(serve_control(
        control_listener,
        relisten_rx,
        control.clone(),
    ));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    // Independent event loops rather than one work-stealing runtime: a request
    // and the backend connection it uses stay on one thread (see `backend_client`).
    let listener = listeners.http;
    let tls = match listeners.https {
        Some(listener) => Some((
            listener,
            crate::tls::server_config(certs).map_err(|e| io_err(io::Error::other(e)))?,
        )),
        None => None,
    };
    let mut loops = Vec::new();
    for n in 1..options.loops.max(1) {
        let listener = listener.try_clone().map_err(io_err)?;
        // Every loop accepts HTTPS too, from its own copy of the one socket.
        let tls = match &tls {
            Some((listener, config)) => {
                Some((listener.try_clone().map_err(io_err)?, config.clone()))
            }
            None => None,
        };
        let router = router.clone();
        let stopping = stopping_rx.clone();
        let event_loop = move || -> io::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve_loop(router, listener, tls, stopping))
        };
        let thread = std::thread::Builder::new()
            .name(format!("router-loop-{n}"))
            .spawn(event_loop)
            .map_err(io_err)?;
        loops.push(thread);
    }
    let listener = tokio::net::TcpListener::from_std(listener).map_err(io_err)?;
    let tls_task = match tls {
        Some((listener, config)) => {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(io_err)?;
            Some(tokio::spawn(serve_tls_until(
                router.clone(),
                listener,
                config,
                stopping_rx.clone(),
            )))
        }
        None => None,
    };
    tracing::info!(%http, control = %options.control.display(), "berth router ready");
    if let Some(old) = old {
        commit(old, options.handover_drain).await;
        control.committing.store(false, Ordering::SeqCst);
    }
    let data_dir = options
        .control
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let stopping = control.clone();
    let served = router
        .serve(listener, async move {
            tokio::select! {
                () = shutdown => {}
                () = stop.notified() => {}
                () = orphaned(data_dir) => {
                    tracing::warn!("the data dir is gone; the router stops");
                }
            }
            // With no successor, new connections are refused from now on rather
            // than left waiting in the backlog of a socket nobody accepts from.
            stopping
                .sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            stopping_tx.send_replace(true);
        })
        .await;
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    for event_loop in loops {
        // Each drains on its own (bounded by the serve loop's drain timeout).
        let joined = tokio::task::spawn_blocking(move || event_loop.join()).await;
        if let Ok(Ok(Err(e))) = joined {
            tracing::warn!("a router event loop failed: {e}");
        }
    }
    control_task.abort();
    // After a handover the socket and the pid file are the new router's.
    if !control.handed_over.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(&options.control);
        let _ = std::fs::remove_file(&pid_path);
    }
    tracing::info!("berth router stopped");
    served.map_err(io_err)
}

/// The pid file of the router whose control socket is `control`.
fn pid_file(control: &Path) -> PathBuf {
    control.with_extension("pid")
}

/// Only the server's user may connect (it carries private keys).
fn owner_only(socket: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
}

/// Binds a control socket under a name of its own and moves it onto `control` in one
/// rename, with the pid file, while another process may still answer there: every
/// client reaches one of the two, never neither.
fn take_control_socket(control: &Path) -> io::Result<UnixListener> {
    let staged = handover::staging_path(control);
    let _ = std::fs::remove_file(&staged);
    let listener = UnixListener::bind(&staged)?;
    let published = owner_only(&staged).and_then(|()| handover::publish(&staged, control));
    if let Err(e) = published {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    handover::replace_file(&pid_file(control), &format!("{}\n", std::process::id()))?;
    Ok(listener)
}

/// One extra event loop: HTTP, and HTTPS when the router serves it, until the
/// router stops.
async fn serve_loop(
    router: Arc<Router>,
    listener: std::net::TcpListener,
    tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let tls_task = match tls {
        Some((listener, config)) => Some(tokio::spawn(serve_tls_until(
            router.clone(),
            tokio::net::TcpListener::from_std(listener)?,
            config,
            stopping.clone(),
        ))),
        None => None,
    };
    let served = router
        .serve(listener, async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await;
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    served
}

/// HTTPS on `listener` until `stopping` turns true.
async fn serve_tls_until(
    router: Arc<Router>,
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    router
        .serve_tls(listener, config, async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await
}

/// A number that differs between two starts of the router.
fn boot_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Resolves when the data dir was deleted: no server can ever attach again.
async fn orphaned(data_dir: PathBuf) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if !data_dir.as_os_str().is_empty() && !data_dir.exists() {
            return;
        }
    }
}

/// What the control socket answers from.
struct Control {
    router: Arc<Router>,
    http: SocketAddr,
    https: Option<SocketAddr>,
    version: Option<String>,
    boot: u64,
    stop: Arc<Notify>,
    certs: Arc<crate::tls::CertStore>,
    /// The certificates as last given, for a router that takes over.
    cert_list: Mutex<Vec<crate::tls::TlsCert>>,
    /// Copies of the listening sockets, for a router that takes over; emptied when
    /// this one stops, so that a stop with no successor closes them.
    sockets: Mutex<Vec<OwnedFd>>,
    /// A router is taking over (one at a time).
    handing_over: AtomicBool,
    /// A newer router took over: the control socket's name and the pid file are its.
    handed_over: AtomicBool,
    /// This router took over and waits for the old one to confirm it stopped accepting.
    committing: AtomicBool,
    /// Ends the accept loop of the control socket (after a handover).
    closed: Notify,
    /// The control socket's name.
    path: PathBuf,
    /// A listener bound again under `path`, for the accept loop (see
    /// [`Control::reclaim`]).
    relisten: mpsc::Sender<UnixListener>,
}

impl Control {
    /// After a takeover that did not complete: a router that took the control
    /// socket's name and died before its `commit` left the name to a dead socket;
    /// this router takes it back, so the server reaches it again.
    async fn reclaim(&self) {
        // Someone answers: this router, or the new one, which serves either way.
        if call(&self.path, &Request::Hello).await.is_ok() {
            return;
        }
        match take_control_socket(&self.path) {
            Ok(listener) => {
                tracing::warn!("the control socket led nowhere; this router answers on it again");
                let _ = self.relisten.send(listener).await;
            }
            Err(e) => tracing::warn!(
                "cannot answer on {} again: {e}; restart the router",
                self.path.display()
            ),
        }
    }

    fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    fn refuse(error: String) -> Reply {
        Reply {
            error: Some(error),
            ..Reply::default()
        }
    }

    /// The answer to one request; `handover` is this connection's part in a
    /// handover (it asked for the sockets).
    async fn answer(&self, request: Request, write: &UnixStream, handover: &mut bool) -> Reply {
        match request {
            Request::Hello => Reply {
                ok: true,
                http: Some(self.http),
                https: self.https,
                pid: Some(std::process::id()),
                boot: Some(self.boot),
                version: self.version.clone(),
                committing: self.committing.load(Ordering::SeqCst),
                ..Reply::default()
            },
            Request::Table { routes } => {
                self.router.update(from_wire(routes));
                Self::ok()
            }
            Request::Inflight { process } => Reply {
                ok: true,
                inflight: Some(self.router.inflight(&process) as u64),
                ..Reply::default()
            },
            Request::Certs { certs } => {
                self.certs.update(&certs);
                *self.cert_list.lock().unwrap_or_else(|p| p.into_inner()) = certs;
                Self::ok()
            }
            Request::Challenges { challenges } => {
                self.router.set_challenges(challenges);
                Self::ok()
            }
            Request::Logs => Reply {
                ok: true,
                logs: self.router.access.take(),
                ..Reply::default()
            },
            Request::Metrics => Reply {
                ok: true,
                metrics: Some(self.router.metrics()),
                ..Reply::default()
            },
            Request::Probe {
                addr,
                host,
                path,
                timeout_ms,
            } => {
                let timeout = Duration::from_millis(timeout_ms);
                Reply {
                    ok: true,
                    probe: Some(berth_probe::http_check(addr, &host, &path, timeout).await),
                    ..Reply::default()
                }
            }
            Request::Stop => {
                self.stop.notify_one();
                Self::ok()
            }
            Request::Handover => {
                if self.handing_over.swap(true, Ordering::SeqCst) {
                    return Self::refuse("another router is taking over already".into());
                }
                let sockets = self
                    .sockets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(OwnedFd::try_clone)
                    .collect::<io::Result<Vec<_>>>();
                let sent = match sockets {
                    Ok(sockets) if sockets.is_empty() => {
                        Err(io::Error::other("this router is stopping"))
                    }
                    Ok(sockets) => handover::send_sockets(write, &sockets).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    self.handing_over.store(false, Ordering::SeqCst);
                    return Self::refuse(format!("cannot pass the sockets: {e}"));
                }
                *handover = true;
                let certs = self
                    .cert_list
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                Reply {
                    ok: true,
                    http: Some(self.http),
                    https: self.https,
                    pid: Some(std::process::id()),
                    version: self.version.clone(),
                    snapshot: Some(Snapshot {
                        routes: to_wire(&self.router.table()),
                        certs,
                        challenges: self.router.challenges(),
                    }),
                    ..Reply::default()
                }
            }
            Request::Commit { drain_ms } => {
                if !*handover {
                    return Self::refuse("commit without handover".into());
                }
                let drain = Drain {
                    timeout: Duration::from_millis(drain_ms),
                    idle_grace: HANDOVER_IDLE_GRACE,
                };
                tracing::info!(
                    "a new router took over; finishing open connections (at most {:?}), then exiting",
                    drain.timeout
                );
                self.handed_over.store(true, Ordering::SeqCst);
                self.router.set_drain(drain);
                self.closed.notify_one();
                self.stop.notify_one();
                Self::ok()
            }
        }
    }
}

async fn serve_control(
    mut listener: UnixListener,
    mut relisten: mpsc::Receiver<UnixListener>,
    control: Arc<Control>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(again) = relisten.recv() => {
                listener = again;
                continue;
            }
            // The new router answers on the socket's name; this listener only still
            // holds connections queued before the rename, which get closed and retry.
            () = control.closed.notified() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("router control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let control = control.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut handover = false;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => control.answer(request, write.as_ref(), &mut handover).await,
                    Err(e) => Control::refuse(format!("bad control request: {e}")),
                };
                let mut out =
                    serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
                out.push(b'\n');
                if write.write_all(&out).await.is_err() {
                    break;
                }
            }
            if handover && !control.handed_over.load(Ordering::SeqCst) {
                control.handing_over.store(false, Ordering::SeqCst);
                tracing::warn!(
                    "the router taking over went away before it was ready; this one keeps serving"
                );
                control.reclaim().await;
            }
        });
    }
}

async fn call(socket: &Path, request: &Request) -> io::Result<Reply> {
    call_within(socket, request, CALL_TIMEOUT).await
}

async fn call_within(socket: &Path, request: &Request, limit: Duration) -> io::Result<Reply> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        let reply: Reply = serde_json::from_str(&answer).map_err(io::Error::other)?;
        if !reply.ok {
            return Err(io::Error::other(
                reply.error.unwrap_or_else(|| "request refused".into()),
            ));
        }
        Ok(reply)
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// How the server starts its router process.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// The berth binary (`berth router` is run).
    pub exe: PathBuf,
    pub http: SocketAddr,
    pub control: PathBuf,
    /// The router's log file (appended).
    pub log: PathBuf,
    /// Worker threads of the router; `None`: one per core.
    pub threads: Option<usize>,
    pub limits: Limits,
    pub https: Option<SocketAddr>,
}

/// The server's handle on its router process: pushes tables, asks for in-flight
/// counts, collects access log lines, and restarts the router if it dies.
pub struct RouterLink {
    options: LinkOptions,
    /// Whether this link starts the router when none answers (one engine),
    /// or only attaches to one run by someone else (a node's agent).
    spawns: bool,
    http: SocketAddr,
    table: Mutex<Arc<RouteTable>>,
    /// `None` until the server gives them: a server that just started must not
    /// push "no certificates" with its first table to a router that has some.
    certs: Mutex<Option<Arc<Vec<crate::tls::TlsCert>>>>,
    /// ACME HTTP-01 challenges: token → key authorization.
    challenges: Mutex<Arc<HashMap<String, String>>>,
    generation: watch::Sender<u64>,
    acked: watch::Receiver<u64>,
    /// Set by [`RouterLink::shut_down`]: the watchdog starts no router again and
    /// no table is pushed.
    stopped: AtomicBool,
    /// The berth version the router said it runs (`None`: a router from before
    /// `hello` told it).
    version: Mutex<Option<String>>,
    /// The boot id of the router last seen: another one means it restarted.
    boot: Mutex<Option<u64>>,
    /// Held during [`RouterLink::upgrade`]: one at a time, and the watchdog waits.
    upgrading: tokio::sync::Mutex<()>,
}

/// What a router process says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInfo {
    pub pid: Option<u32>,
    /// The berth version it runs (`None`: a router that does not say).
    pub version: Option<String>,
}

impl std::fmt::Debug for RouterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterLink")
            .field("http", &self.http)
            .field("control", &self.options.control)
            .finish_non_exhaustive()
    }
}

impl RouterLink {
    /// Attaches to the router already running on `options.control` (a server
    /// restart) or spawns one. Returns the link and the access log lines it collects.
    pub async fn start(
        options: LinkOptions,
    ) -> Result<(Arc<RouterLink>, mpsc::Receiver<AccessLine>), ControlError> {
        let hello = ensure_running(&options).await?;
        let http = hello.http.unwrap_or(options.http);
        Ok(Self::link(options, http, hello, true))
    }

    /// Attaches to a router someone else runs (a node's agent, in a container)
    /// answering on `control`, e.g. a local socket that leads to the node.
    /// `http` is the address its clients reach it at, `describe` says where
    /// it runs, for messages. It does not start the router: a router that
    /// stops answering gets the current table again once it is back.
    pub async fn attach(
        control: PathBuf,
        http: SocketAddr,
        describe: &str,
    ) -> Result<(Arc<RouterLink>, mpsc::Receiver<AccessLine>), ControlError> {
        let options = LinkOptions {
            exe: PathBuf::new(),
            http,
            control,
            log: PathBuf::from(describe),
            threads: None,
            limits: Limits::default(),
            https: None,
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let hello = loop {
            if let Ok(hello) = call(&options.control, &Request::Hello).await {
                break hello;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::Io {
                    socket: options.control.display().to_string(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{describe} did not answer within {START_TIMEOUT:?}"),
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        Ok(Self::link(options, http, hello, false))
    }

    fn link(
        options: LinkOptions,
        http: SocketAddr,
        hello: Reply,
        spawns: bool,
    ) -> (Arc<RouterLink>, mpsc::Receiver<AccessLine>) {
        let (generation, generation_rx) = watch::channel(0u64);
        let (acked_tx, acked) = watch::channel(0u64);
        let link = Arc::new(RouterLink {
            options,
            spawns,
            http,
            table: Mutex::new(Arc::new(RouteTable::default())),
            certs: Mutex::new(None),
            challenges: Mutex::new(Arc::new(HashMap::new())),
            generation,
            acked,
            stopped: AtomicBool::new(false),
            version: Mutex::new(hello.version),
            boot: Mutex::new(hello.boot),
            upgrading: tokio::sync::Mutex::new(()),
        });
        let (logs_tx, logs_rx) = mpsc::channel(64);
        let weak = Arc::downgrade(&link);
        tokio::spawn(push_tables(weak.clone(), generation_rx, acked_tx));
        tokio::spawn(collect_logs(weak.clone(), logs_tx));
        tokio::spawn(watchdog(weak));
        (link, logs_rx)
    }

    /// A health check of `addr` made by the router (which reaches the app
    /// networks where the caller may not).
    pub async fn probe(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let request = Request::Probe {
            addr,
            host: host.to_string(),
            path: path.to_string(),
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        };
        match call_within(&self.options.control, &request, timeout + CALL_TIMEOUT).await {
            Ok(reply) => reply
                .probe
                .unwrap_or_else(|| Err("the router does not make health checks; update it".into())),
            Err(e) => Err(format!(
                "cannot ask the router at {} to check {addr}: {e}",
                self.options.log.display()
            )),
        }
    }

    /// Whether the router answers its control socket now.
    /// What the router counted; an error when it does not answer.
    pub async fn metrics(&self) -> io::Result<crate::RouterMetrics> {
        let reply = call(&self.options.control, &Request::Metrics).await?;
        reply.metrics.ok_or_else(|| {
            io::Error::other("the router does not count requests; restart it to update it")
        })
    }

    pub async fn alive(&self) -> bool {
        call(&self.options.control, &Request::Hello).await.is_ok()
    }

    /// The router's HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The berth version the router runs, as it said when this link attached (or
    /// after [`RouterLink::upgrade`]); `None` for a router that does not say.
    pub fn version(&self) -> Option<String> {
        self.version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the running router process with a new one started from
    /// `LinkOptions::exe` (the berth binary, e.g. after an update): the new process
    /// takes over the listening sockets and the state, then the old one stops
    /// accepting, finishes its requests and WebSockets (at most 5 minutes, `berth
    /// router --handover-drain`) and exits. No connection is refused or reset.
    /// Returns once the new process answers on the control socket; the link (table
    /// pushes, logs, metrics, watchdog) goes on with it. On error the running router
    /// keeps serving as before.
    pub async fn upgrade(&self) -> Result<RouterInfo, ControlError> {
        if !self.spawns {
            return Err(ControlError::Takeover {
                socket: self.options.control.display().to_string(),
                reason: format!(
                    "this router is run by {}, not by this server; update it there",
                    self.options.log.display()
                ),
            });
        }
        let _upgrading = self.upgrading.lock().await;
        let hello = spawn(&self.options, true).await?;
        let info = RouterInfo {
            pid: hello.pid,
            version: hello.version.clone(),
        };
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = hello.version;
        *self.boot.lock().unwrap_or_else(|p| p.into_inner()) = hello.boot;
        // The new router started from the old one's state; what was pushed to the
        // old one while the new one got ready goes out again.
        self.generation.send_modify(|g| *g += 1);
        Ok(info)
    }

    /// Replaces the router's table (sent in the background; the newest wins).
    pub fn update(&self, table: RouteTable) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Replaces the router's certificates (sent with the next table push).
    pub fn update_certs(&self, certs: Vec<crate::tls::TlsCert>) {
        *self.certs.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(certs));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Has the router answer `GET /.well-known/acme-challenge/{token}` with
    /// `key_authorization` for any host; returns once the router has it (an error
    /// when it did not take it within `timeout`).
    pub async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        timeout: Duration,
    ) -> io::Result<()> {
        let wanted = self.edit_challenges(|c| {
            c.insert(token.to_owned(), key_authorization.to_owned());
            true
        });
        if self
            .pushed(wanted, tokio::time::Instant::now() + timeout)
            .await
        {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the router did not take the challenge within {timeout:?}; see {}",
                    self.options.log.display()
                ),
            ))
        }
    }

    /// Stops answering the ACME challenge `token` (sent in the background).
    pub fn remove_challenge(&self, token: &str) {
        self.edit_challenges(|c| c.remove(token).is_some());
    }

    /// Applies `edit` to a copy of the challenges; when it says it changed
    /// something, the copy replaces them and goes out with the next push, whose
    /// generation is returned.
    fn edit_challenges(&self, edit: impl FnOnce(&mut HashMap<String, String>) -> bool) -> u64 {
        {
            let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = HashMap::clone(&challenges);
            if !edit(&mut next) {
                return *self.generation.borrow();
            }
            *challenges = Arc::new(next);
        }
        let mut wanted = 0;
        self.generation.send_modify(|g| {
            *g += 1;
            wanted = *g;
        });
        wanted
    }

    /// Waits until the router has taken push `wanted` (or a later one); false
    /// when `deadline` came first.
    async fn pushed(&self, wanted: u64, deadline: tokio::time::Instant) -> bool {
        let mut acked = self.acked.clone();
        matches!(
            tokio::time::timeout_at(deadline, acked.wait_for(|g| *g >= wanted)).await,
            Ok(Ok(_))
        )
    }

    /// Waits until the router runs the latest table given to this link, for at most
    /// `timeout`; false when it did not take it in time.
    pub async fn synced(&self, timeout: Duration) -> bool {
        self.synced_by(tokio::time::Instant::now() + timeout).await
    }

    async fn synced_by(&self, deadline: tokio::time::Instant) -> bool {
        let wanted = *self.generation.borrow();
        self.pushed(wanted, deadline).await
    }

    /// A receiver that sees every change of the table, certificates or challenges
    /// given to this link (e.g. to notice new domains after a deploy).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The table last given to [`RouterLink::update`].
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the router runs the latest table and has nothing in flight to
    /// `process`, for at most `timeout`. Returns the requests still in flight (0 when
    /// drained; the router's count when it could not be asked is unknown, so 0).
    pub async fn drain(&self, process: &str, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.synced_by(deadline).await {
            tracing::warn!(process, "the router did not take the new table in time");
            return 0;
        }
        loop {
            let request = Request::Inflight {
                process: process.to_owned(),
            };
            let n = match call(&self.options.control, &request).await {
                Ok(reply) => reply.inflight.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(
                        process,
                        "cannot ask the router about in-flight requests: {e}"
                    );
                    return 0;
                }
            };
            if n == 0 || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops a router this link started, for good: the watchdog starts none
    /// again. A router it only attached to is left running.
    pub async fn shut_down(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if self.spawns
            && let Err(e) = self.stop_router().await
        {
            tracing::debug!("the router did not take the stop request: {e}");
        }
    }

    /// Asks the router process to finish its requests and exit.
    pub async fn stop_router(&self) -> io::Result<()> {
        call(&self.options.control, &Request::Stop)
            .await
            .map(|_| ())
    }
}

/// Asks the router process whose control socket is `control` to finish its
/// requests and exit (a router left behind by a server that is gone).
pub async fn stop_router_at(control: &Path) -> io::Result<()> {
    call(control, &Request::Stop).await.map(|_| ())
}

/// Whether a router listening on `have` (HTTP, and HTTPS if any) listens where
/// `wanted` says (a wanted port 0 takes any port on that address).
fn listens_as_asked(
    (http, https): (SocketAddr, Option<SocketAddr>),
    wanted: (SocketAddr, Option<SocketAddr>),
) -> bool {
    let same = |have: SocketAddr, want: SocketAddr| {
        have == want || (want.port() == 0 && have.ip() == want.ip())
    };
    let https_same = match (https, wanted.1) {
        (None, None) => true,
        (Some(have), Some(want)) => same(have, want),
        _ => false,
    };
    same(http, wanted.0) && https_same
}

/// Makes sure a router answers on the control socket at the wanted address; returns
/// its `hello` (with its HTTP address).
async fn ensure_running(options: &LinkOptions) -> Result<Reply, ControlError> {
    if let Ok(reply) = call(&options.control, &Request::Hello).await
        && let Some(http) = reply.http
    {
        let wanted = options.http;
        if listens_as_asked((http, reply.https), (options.http, options.https)) {
            tracing::info!(%http, pid = ?reply.pid, "attached to the running router");
            return Ok(reply);
        }
        tracing::info!(%http, %wanted, "the running router listens elsewhere; replacing it");
        let _ = call(&options.control, &Request::Stop).await;
        let gone = tokio::time::Instant::now() + Duration::from_secs(15);
        while call(&options.control, &Request::Hello).await.is_ok()
            && tokio::time::Instant::now() < gone
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    spawn(options, false).await
}

/// `berth router` with the link's flags; `--takeover` when it replaces the running one.
fn router_command(options: &LinkOptions, takeover: bool) -> Result<Command, ControlError> {
    let log_err = |source| ControlError::Io {
        socket: options.log.display().to_string(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&options.log)
        .map_err(log_err)?;
    let log_copy = log.try_clone().map_err(log_err)?;
    let mut command = Command::new(&options.exe);
    command
        .arg("router")
        .arg("--http")
        .arg(options.http.to_string())
        .arg("--control")
        .arg(&options.control)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_copy);
    if takeover {
        command.arg("--takeover");
    }
    if let Some(threads) = options.threads {
        command.arg("--threads").arg(threads.to_string());
    }
    if let Some(max) = options.limits.max_body {
        command.arg("--max-body").arg(max.to_string());
    }
    command
        .arg("--max-header-size")
        .arg(options.limits.max_head.to_string())
        .arg("--body-timeout")
        .arg(options.limits.body_timeout.as_secs().to_string());
    if let Some(https) = options.https {
        command.arg("--https").arg(https.to_string());
    }
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C or a group signal meant for the server
        // must not take the router (and every client connection) down with it.
        command.process_group(0);
    }
    Ok(command)
}

/// Starts a router process and waits until it answers `hello` on the control socket
/// (with `takeover`: until the new process, not the one it replaces, answers there).
async fn spawn(options: &LinkOptions, takeover: bool) -> Result<Reply, ControlError> {
    let mut child = router_command(options, takeover)?
        .spawn()
        .map_err(|source| ControlError::Spawn {
            exe: options.exe.display().to_string(),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        // A new router that took over answers once the old one stopped accepting,
        // so no request after this reaches a router without the latest table.
        if let Ok(reply) = call(&options.control, &Request::Hello).await
            && reply.http.is_some()
            && (!takeover || (reply.pid == Some(child.id()) && !reply.committing))
        {
            // Reaps the router if it exits while this server runs.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            tracing::info!(http = ?reply.http, pid = ?reply.pid, version = ?reply.version, "router started");
            return Ok(reply);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&options.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            if takeover {
                return Err(ControlError::Takeover {
                    socket: options.control.display().to_string(),
                    reason: format!(
                        "the new process exited ({status}); its log {} says:\n{tail}\n",
                        options.log.display()
                    ),
                });
            }
            return Err(ControlError::Exited {
                status: status.to_string(),
                log: options.log.display().to_string(),
                tail,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ControlError::Timeout {
                socket: options.control.display().to_string(),
                log: options.log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push_tables(
    link: std::sync::Weak<RouterLink>,
    mut generation: watch::Receiver<u64>,
    acked: watch::Sender<u64>,
) {
    // Challenges are only sent while there are some (or to clear the last ones), so
    // a router started by an older berth, which does not know them, still gets tables.
    let mut router_has_challenges = false;
    while generation.changed().await.is_ok() {
        loop {
            let Some(link) = link.upgrade() else { return };
            if link.stopped.load(Ordering::SeqCst) {
                return;
            }
            let wanted = *generation.borrow_and_update();
            let routes = to_wire(&link.table());
            let certs = link
                .certs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                .cloned();
            let challenges =
                HashMap::clone(&link.challenges.lock().unwrap_or_else(|p| p.into_inner()));
            let socket = &link.options.control;
            let sent = async {
                if let Some(certs) = certs {
                    call(socket, &Request::Certs { certs }).await?;
                }
                if router_has_challenges || !challenges.is_empty() {
                    let any = !challenges.is_empty();
                    call(socket, &Request::Challenges { challenges }).await?;
                    router_has_challenges = any;
                }
                call(socket, &Request::Table { routes }).await
            }
            .await;
            match sent {
                Ok(_) => {
                    acked.send_replace(wanted);
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot send the route table to the router: {e}; retrying");
                    drop(link);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

async fn collect_logs(link: std::sync::Weak<RouterLink>, out: mpsc::Sender<AccessLine>) {
    loop {
        tokio::time::sleep(LOG_POLL).await;
        let Some(link) = link.upgrade() else { return };
        let Ok(reply) = call(&link.options.control, &Request::Logs).await else {
            continue;
        };
        for line in reply.logs {
            if out.send(line).await.is_err() {
                return;
            }
        }
    }
}

/// Restarts a router that died (killed, crashed) and gives it the current table.
async fn watchdog(link: std::sync::Weak<RouterLink>) {
    let mut lost = false;
    loop {
        tokio::time::sleep(WATCHDOG).await;
        let Some(link) = link.upgrade() else { return };
        if link.stopped.load(Ordering::SeqCst) {
            return;
        }
        // A router being replaced is not dead; the upgrade sets the new boot id.
        let Ok(_upgrading) = link.upgrading.try_lock() else {
            continue;
        };
        if let Ok(reply) = call(&link.options.control, &Request::Hello).await {
            // A router that restarted (its boot id changed) lost its table.
            let restarted = {
                let mut boot = link.boot.lock().unwrap_or_else(|p| p.into_inner());
                let restarted = matches!((*boot, reply.boot), (Some(was), Some(now)) if was != now);
                *boot = reply.boot.or(*boot);
                restarted
            };
            if reply.version.is_some() {
                *link.version.lock().unwrap_or_else(|p| p.into_inner()) = reply.version;
            }
            let was_lost = std::mem::take(&mut lost);
            if restarted {
                tracing::warn!(router = %link.options.log.display(), "the router restarted with an empty table; sending it the table");
                link.generation.send_modify(|g| *g += 1);
            } else if !link.spawns && was_lost {
                tracing::info!(router = %link.options.log.display(), "the router answers again");
                link.generation.send_modify(|g| *g += 1);
            }
            continue;
        }
        if !link.spawns {
            if !lost {
                tracing::warn!(router = %link.options.log.display(), "the router does not answer");
            }
            lost = true;
            continue;
        }
        tracing::warn!("the router does not answer; starting it again");
        match ensure_running(&link.options).await {
            Ok(hello) => {
                *link.boot.lock().unwrap_or_else(|p| p.into_inner()) = hello.boot;
                *link.version.lock().unwrap_or_else(|p| p.into_inner()) = hello.version;
                link.generation.send_modify(|g| *g += 1);
            }
            Err(e) => tracing::warn!("cannot restart the router: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_survive_the_wire() {
        let route = Arc::new(Route {
            app: "a".into(),
            service: "web".into(),
            backends: vec![Backend {
                addr: "10.0.0.2:8080".parse().expect("addr"),
                process: "web-1".into(),
            }],
            timeout: Duration::from_millis(1500),
            tls_redirect: true,
            hsts: Some("max-age=60".into()),
        });
        let mut table = RouteTable::default();
        table.hosts.insert("a.example".into(), route.clone());
        table.hosts.insert("www.a.example".into(), route);
        let json = serde_json::to_string(&Request::Table {
            routes: to_wire(&table),
        })
        .expect("json");
        let Ok(Request::Table { routes }) = serde_json::from_str(&json) else {
            panic!("not a table: {json}");
        };
        let back = from_wire(routes);
        assert_eq!(back.hosts.len(), 2);
        let (a, b) = (&back.hosts["a.example"], &back.hosts["www.a.example"]);
        // Hosts of one route still share it, as the data path expects.
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(**a, *table.hosts["a.example"]);
    }
}
