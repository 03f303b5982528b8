//! The server's link to its router process: start or attach, push tables,
//! collect logs, restart a router that died, hand over to a new one.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::wire::{Reply, Request, call, call_within, to_wire};
use super::{CALL_TIMEOUT, ControlError, START_TIMEOUT, listens_as_asked};
use crate::access_log::AccessLine;
use crate::{Limits, RouteTable};

/// How often the server collects access log lines.
const LOG_POLL: Duration = Duration::from_millis(500);
/// How often the server checks that its router is alive.
const WATCHDOG: Duration = Duration::from_secs(2);

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
