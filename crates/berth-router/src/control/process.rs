//! `berth router`: the router process, its listeners and its control socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, watch};

use super::wire::{Reply, Request, Snapshot, call, from_wire, to_wire};
use super::{CALL_TIMEOUT, ControlError, START_TIMEOUT, listens_as_asked};
use crate::handover;
use crate::{Drain, Limits, Router};

/// How long a router that handed over keeps an idle keep-alive connection open, so
/// that a client sending its next request gets it answered (with `Connection:
/// close`) rather than racing the close.
const HANDOVER_IDLE_GRACE: Duration = Duration::from_secs(2);
/// How long a router waits for the one it took over from to say what it has in
/// flight; one that does not answer in time is taken as gone.
const PREDECESSOR_TIMEOUT: Duration = Duration::from_secs(1);

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
/// or going; this one serves either way. Returns the connection to an old router
/// that confirmed: it answers there while it drains (see [`Control::predecessor`]).
async fn commit(old: OldRouter, drain: Duration) -> Option<UnixStream> {
    let OldRouter {
        stream: mut old,
        pid: old_pid,
    } = old;
    let request = Request::Commit {
        drain_ms: u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
    };
    match tokio::time::timeout(CALL_TIMEOUT, exchange(&mut old, &request)).await {
        Ok(Ok(_)) => {
            tracing::info!(old = ?old_pid, "took over from the old router; it finishes its connections and exits");
            Some(old)
        }
        Ok(Err(e)) => {
            tracing::warn!(old = ?old_pid, "the old router did not confirm the takeover: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(old = ?old_pid, "the old router did not confirm the takeover in time");
            None
        }
    }
}

/// One request and its reply over an open control connection.
async fn exchange(stream: &mut UnixStream, request: &Request) -> io::Result<Reply> {
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    // The other side writes one line per request and nothing else: this reader
    // cannot take bytes of a later reply.
    let mut answer = String::new();
    if BufReader::new(&mut *stream).read_line(&mut answer).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let reply: Reply = serde_json::from_str(&answer).map_err(io::Error::other)?;
    match reply.error {
        Some(e) => Err(io::Error::other(e)),
        None => Ok(reply),
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
        if let Some(counts) = snapshot.metrics {
            router.carry_metrics(counts);
        }
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
        counted_at_handover: Mutex::new(None),
        predecessor: tokio::sync::Mutex::new(None),
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
        let predecessor = commit(old, options.handover_drain).await;
        *control.predecessor.lock().await = predecessor;
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
    // After a handover the socket and the pid file are the new router's, and so
    // are the access lines the server has not collected from this one.
    if control.handed_over.load(Ordering::SeqCst) {
        carry_to_successor(&control, &options.control).await;
    } else {
        let _ = std::fs::remove_file(&options.control);
        let _ = std::fs::remove_file(&pid_path);
    }
    tracing::info!("berth router stopped");
    served.map_err(io_err)
}

/// Gives the router answering on `socket` (the one that took over, or a later one) the
/// access lines this one still holds and what it counted since it handed over, for
/// the server to collect there.
async fn carry_to_successor(control: &Control, socket: &Path) {
    let logs = control.router.access.take();
    let since = control
        .counted_at_handover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let metrics = since.map(|at_handover| control.router.metrics().since(&at_handover));
    let count = logs.len();
    match call(socket, &Request::Carry { logs, metrics }).await {
        Ok(_) => tracing::info!(
            "gave {count} access lines and the counts since the handover to the router that took over"
        ),
        Err(e) => tracing::warn!(
            "{count} access lines and the counts since the handover are lost: the router that took over did not take them: {e}"
        ),
    }
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
    /// What this router had counted when it last handed its state over: the new
    /// router goes on from there, and is sent what came after at this one's exit.
    counted_at_handover: Mutex<Option<crate::RouterMetrics>>,
    /// The connection to the router this one took over from, while that one drains:
    /// requests it still has in flight to a process count as this router's, so the
    /// server does not stop a process the old router still waits on.
    predecessor: tokio::sync::Mutex<Option<UnixStream>>,
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
            Request::Inflight { process } => {
                let own = self.router.inflight(&process) as u64;
                let draining = self.predecessor_inflight(&process).await;
                Reply {
                    ok: true,
                    inflight: Some(own + draining),
                    ..Reply::default()
                }
            }
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
                // Gauges and all: the new router keeps only the counters
                // (`carry_metrics`), and `since` only looks at those.
                let counted = self.router.metrics();
                *self
                    .counted_at_handover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(counted.clone());
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
                        metrics: Some(counted),
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
            Request::Carry { logs, metrics } => {
                self.router.access.carry(logs);
                if let Some(counts) = metrics {
                    self.router.carry_metrics(counts);
                }
                Self::ok()
            }
        }
    }

    /// Requests the router this one took over from still has in flight to `process`
    /// (and so on back: it asks its own predecessor); 0 once it is gone.
    async fn predecessor_inflight(&self, process: &str) -> u64 {
        let mut predecessor = self.predecessor.lock().await;
        let Some(stream) = predecessor.as_mut() else {
            return 0;
        };
        let request = Request::Inflight {
            process: process.to_owned(),
        };
        match tokio::time::timeout(PREDECESSOR_TIMEOUT, exchange(stream, &request)).await {
            Ok(Ok(reply)) => reply.inflight.unwrap_or(0),
            // It exited (its drain is over) or hangs: nothing of it to wait for.
            _ => {
                *predecessor = None;
                0
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
