//! berth's HTTP router: host → healthy processes, round robin with fail-over.
//! The route table is swapped atomically; requests never wait on the server.
//!
//! Data path: [`Router::serve`] accepts HTTP/1.1 connections (one task each), finds the
//! route by the request's host with one lock-free table load, and forwards the request
//! to the route's processes in round-robin order over pooled keep-alive connections.
//! Plain forwarding over HTTP/1.1, with or without TLS, is relayed by the connection's
//! own task (`relay`); the rest (upgrades, which become byte tunnels, streamed request
//! bodies, berth's own answers, HTTP/2) runs on hyper (`proxy`). Bodies stream through
//! in both directions.
//!
//! Modules, in layers; each imports only from layers below it:
//!
//! - `control`: the router as its own process (`control/process`), and the server's
//!   link to it (`control/link`), both speaking `control/wire`; a new router process
//!   takes over from a running one through it (`handover` passes the listening
//!   sockets).
//! - `server`: accept loops, one task per connection, draining on shutdown. An
//!   HTTP/1.1 connection (plain or TLS) starts on `relay`; when relay hands it back,
//!   server moves it, with the bytes already read, to `proxy`.
//! - `relay` (the fast path) and `proxy` (hyper): forwarding a request. Neither
//!   imports the other, nor `server`. `proxy` sends requests without a body through
//!   `direct`, the rest through hyper's client.
//! - `direct`: a GET or HEAD from the hyper path written straight to a process, its
//!   response read into hyper's types.
//! - `outcome`: failures, berth's own answers and access log lines, the same on both
//!   paths.
//! - `conn` (what a handler knows about its connection, the server's phase) and `body`
//!   (the hyper path's bodies).
//! - `backend`: connections to processes (a per-thread pool), sending a request and
//!   reading the response head, and where a response body ends; for `relay` and
//!   `direct`, and `body` (a response body read from such a connection).
//! - `routing` (the compiled table, the order a route's processes are tried in,
//!   in-flight counts) and `tls` (certificates, rustls).
//! - `headers`: header rules and the writing of heads; knows no router type.
//! - `metrics`: the per-route counters the data paths add to, and the snapshot the
//!   server reads over the control socket; knows no router type.
//!
//! This file holds the public types and the [`Router`]'s state, which every layer
//! reads. The access log buffer in that state is `control`'s (the control socket
//! drains it); the data paths reach it only through `Router::push_access_line`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

mod access_log;
mod backend;
mod body;
mod conn;
pub mod control;
mod direct;
mod handle;
mod handover;
mod headers;
mod http2;
pub mod metrics;
mod multiplex;
mod outcome;
mod proxy;
mod relay;
mod routing;
mod server;
pub mod tls;

pub use control::{
    AccessLine, ControlError, LinkOptions, RouterInfo, RouterLink, RouterOptions,
    run_router_process,
};
pub use handle::RouterHandle;
pub use metrics::RouterMetrics;

use metrics::{RouteStats, StatsByRoute};
use routing::{Compiled, Entry};

/// One process a route can send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    /// The process id (`web-3f9a2c`), for logs and errors.
    pub process: String,
}

/// Where requests for one or more hosts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub app: String,
    pub service: String,
    /// Healthy processes; empty means 503.
    pub backends: Vec<Backend>,
    /// Per-request timeout (until the response headers arrive, across fail-over
    /// attempts); answered with 504. `Duration::ZERO` means no limit.
    pub timeout: Duration,
    /// Plain HTTP requests get a 308 to the same URL over HTTPS (when the router
    /// serves HTTPS).
    pub tls_redirect: bool,
    /// `Strict-Transport-Security` value added to HTTPS responses that have none.
    pub hsts: Option<String>,
}

/// What the router accepts from clients; anything over a limit is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body; larger ones get 413. `None`: no limit.
    pub max_body: Option<u64>,
    /// Largest request head (request line and headers) on every path; a larger
    /// one gets 431 and the connection closes (over h2 the stream is refused).
    pub max_head: usize,
    /// Longest pause of a streamed request body between two reads; a body that
    /// stalls longer gets 408 (nginx's `client_body_timeout`).
    pub body_timeout: Duration,
}

impl Limits {
    /// Smallest `max_head` accepted: hyper's smallest read buffer.
    pub const MIN_HEAD: usize = 8 * 1024;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: None,
            max_head: 64 * 1024,
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Host (lower-case, without port) → route.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub hosts: HashMap<String, Arc<Route>>,
}

/// The HTTP reverse proxy. Cheap to share: every request loads the current table
/// without locking.
pub struct Router {
    state: ArcSwap<Compiled>,
    /// Process id → requests in flight to it (until the response body is done). Kept
    /// across table swaps so a process that left the table can be drained.
    inflight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    limits: Limits,
    /// Access log lines for the server, when this router runs as its own process.
    access: access_log::AccessLog,
    log_access: bool,
    /// The HTTPS port, once the router serves HTTPS (for redirects).
    https_port: std::sync::OnceLock<u16>,
    /// ACME HTTP-01 challenges the server is answering: token → key authorization.
    challenges: ArcSwap<HashMap<String, String>>,
    /// (app, service) → its counters, kept across table swaps while it is routed.
    stats: Mutex<StatsByRoute>,
    /// Requests for hosts no route serves.
    unknown: Arc<RouteStats>,
    /// Client connections open now.
    pub(crate) open_connections: AtomicU64,
    /// Whether requests are counted (`berth router --no-metrics` turns it off, for
    /// benchmarks).
    pub(crate) counting: bool,
    /// How the next shutdown drains (a handover drains longer than a stop).
    drain: Mutex<Drain>,
    /// The counts of the routers this one took over from (at their handover, plus
    /// what they served while draining): added to this router's own, so counters
    /// go on across a handover instead of starting again from zero.
    carried: Mutex<RouterMetrics>,
}

/// How a router that stops accepting lets its connections end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// The longest in-flight requests and upgraded connections (WebSocket) may run on;
    /// then they are closed.
    pub timeout: Duration,
    /// How long an idle keep-alive connection stays open once draining began, so a
    /// client that sends its next request in that time gets an answer (with
    /// `Connection: close`) instead of racing the close.
    pub idle_grace: Duration,
}

impl Drain {
    /// A stop (SIGTERM, `stop`): idle connections close at once, 10 s for the rest.
    pub const STOP: Drain = Drain {
        timeout: Duration::from_secs(10),
        idle_grace: Duration::ZERO,
    };
}

impl Router {
    /// A router with an empty table (every host answers 404).
    pub fn new() -> Arc<Router> {
        Router::build(Limits::default(), false, true)
    }

    /// A router with an empty table that refuses what goes over `limits`.
    pub fn with_limits(limits: Limits) -> Arc<Router> {
        Router::build(limits, false, true)
    }

    fn build(limits: Limits, log_access: bool, counting: bool) -> Arc<Router> {
        Arc::new(Router {
            state: ArcSwap::from_pointee(Compiled::new(
                RouteTable::default(),
                &mut HashMap::new(),
                &mut HashMap::new(),
            )),
            inflight: Mutex::new(HashMap::new()),
            limits,
            access: access_log::AccessLog::default(),
            log_access,
            https_port: std::sync::OnceLock::new(),
            challenges: ArcSwap::from_pointee(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            unknown: Arc::new(RouteStats::new(metrics::UNKNOWN, metrics::UNKNOWN)),
            open_connections: AtomicU64::new(0),
            counting,
            drain: Mutex::new(Drain::STOP),
            carried: Mutex::new(RouterMetrics::default()),
        })
    }

    /// Atomically replaces the table; requests in flight keep the old one.
    pub fn update(&self, table: RouteTable) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = HashMap::new();
        let compiled = Compiled::new(table, &mut inflight, &mut stats);
        // Counters of services no longer routed go; the others carry on.
        for entry in compiled.hosts.values() {
            let key = (entry.route.app.clone(), entry.route.service.clone());
            kept.insert(key, entry.stats.clone());
        }
        *stats = kept;
        // Forget processes that left and have nothing in flight.
        let routed: std::collections::HashSet<&str> = compiled
            .table
            .hosts
            .values()
            .flat_map(|r| r.backends.iter().map(|b| b.process.as_str()))
            .collect();
        inflight.retain(|p, n| routed.contains(p.as_str()) || n.load(Ordering::Relaxed) > 0);
        self.state.store(Arc::new(compiled));
    }

    /// Replaces the ACME HTTP-01 challenges answered at
    /// `/.well-known/acme-challenge/TOKEN` for any host (token → key authorization).
    pub fn set_challenges(&self, challenges: HashMap<String, String>) {
        self.challenges.store(Arc::new(challenges));
    }

    /// The key authorization for an ACME HTTP-01 `token`, if the server set one.
    pub fn challenge(&self, token: &str) -> Option<String> {
        self.challenges.load().get(token).cloned()
    }

    /// Requests in flight to `process` (0 when unknown).
    pub fn inflight(&self, process: &str) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(process)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// What the router counted: every routed service's requests and upstream errors
    /// since it was first routed, those of unknown hosts, what is in flight now.
    pub fn metrics(&self) -> RouterMetrics {
        let compiled = self.state.load();
        let mut in_flight: HashMap<*const RouteStats, u64> = HashMap::new();
        for entry in compiled.hosts.values() {
            // Hosts sharing a route share its entry: count each entry once.
            in_flight
                .entry(Arc::as_ptr(&entry.stats))
                .or_insert_with(|| {
                    entry
                        .targets
                        .iter()
                        .map(|t| t.inflight.load(Ordering::Relaxed) as u64)
                        .sum()
                });
        }
        let stats: Vec<Arc<RouteStats>> = self
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut metrics = RouterMetrics::collect(
            stats
                .iter()
                .chain([&self.unknown])
                .map(|s| (&**s, in_flight.get(&Arc::as_ptr(s)).copied().unwrap_or(0))),
            self.open_connections.load(Ordering::Relaxed),
        );
        metrics.merge(
            self.carried
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
        metrics
    }

    /// Adds counts a router that handed over brought (its counters at the handover,
    /// then what it served while draining).
    pub(crate) fn carry_metrics(&self, counts: RouterMetrics) {
        self.carried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(counts.counters_only());
    }

    /// The counters of requests for hosts no route serves.
    pub(crate) fn unknown_stats(&self) -> &RouteStats {
        &self.unknown
    }

    /// The ACME HTTP-01 challenges answered now (token → key authorization).
    pub fn challenges(&self) -> HashMap<String, String> {
        HashMap::clone(&self.challenges.load())
    }

    /// Sets how the next shutdown drains; set before it begins.
    pub fn set_drain(&self, drain: Drain) {
        *self.drain.lock().unwrap_or_else(|p| p.into_inner()) = drain;
    }

    /// How a shutdown drains.
    pub(crate) fn drain(&self) -> Drain {
        *self.drain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current table.
    pub fn table(&self) -> Arc<RouteTable> {
        self.state.load().table.clone()
    }

    /// The route that serves `host` (any case, with or without port), if any.
    pub fn route_for(&self, host: &str) -> Option<Arc<Route>> {
        let value = http::HeaderValue::from_str(host).ok()?;
        let host = headers::normalize_host(&value)?;
        self.entry(&host).map(|e| e.route.clone())
    }

    fn entry(&self, host: &str) -> Option<Arc<Entry>> {
        self.state.load().hosts.get(host).cloned()
    }

    /// Completes an access line begun with [`outcome::access_line_start`] and queues it
    /// for the server. Both data paths log through here, not into the buffer
    /// (`control`'s, which the control socket drains) themselves.
    #[inline] // A thin wrapper, called per request on the fast path.
    pub(crate) fn push_access_line(
        &self,
        route: &Arc<Route>,
        line: String,
        status: u16,
        bytes: Option<u64>,
        elapsed: Duration,
        process: &str,
    ) {
        let line = outcome::finish_access_line(line, status, bytes, elapsed, process);
        self.access.push(route, line);
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("hosts", &self.state.load().hosts.len())
            .finish_non_exhaustive()
    }
}

/// A future on the heap, made in the box's memory rather than moved there: a new
/// future holds only its arguments, but a move copies all of its size, and an await
/// moves the future it waits on into its own. The data path's futures nest several
/// KiB deep (BENCHMARKS.md, "HTTP/2 on berth's own frames").
pub(crate) fn in_box<F: std::future::Future>(future: F) -> std::pin::Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), future))
}
