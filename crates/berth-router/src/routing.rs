//! The route table as the data paths use it: hosts compiled to entries, each route's
//! processes ready to connect to, and the in-flight count every request holds on the
//! process it went to (draining waits for it).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use http::uri::Authority;

use crate::headers;
use crate::metrics::{RouteStats, StatsByRoute};
use crate::{Route, RouteTable};

/// Where ACME HTTP-01 challenges are fetched (RFC 8555, section 8.3); the router
/// answers these itself, for any host, before routing.
pub(crate) const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// How long a connection attempt to a process may take before the next one is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an idle pooled connection to a process is kept.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One request in flight to a process; dropping it ends the request.
pub(crate) struct Inflight(Arc<AtomicUsize>);

impl Inflight {
    pub(crate) fn start(counter: &Arc<AtomicUsize>) -> Inflight {
        counter.fetch_add(1, Ordering::Relaxed);
        Inflight(counter.clone())
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The table as given plus what the data path needs precomputed.
pub(crate) struct Compiled {
    pub(crate) table: Arc<RouteTable>,
    /// Normalised host → entry; hosts sharing one `Arc<Route>` share one entry.
    /// foldhash: the host is hashed on every request, and the table's keys come
    /// from the operator, not from clients.
    pub(crate) hosts: HashMap<String, Arc<Entry>, foldhash::fast::RandomState>,
}

/// One route as the data path sees it.
pub(crate) struct Entry {
    pub(crate) route: Arc<Route>,
    /// Round-robin position; starts at a random value so table swaps do not favour the
    /// first backend.
    next: AtomicUsize,
    /// The backends' `ip:port`, ready to put into a URI.
    pub(crate) targets: Box<[Target]>,
    /// The counters of the route's app and service.
    pub(crate) stats: Arc<RouteStats>,
    /// `route.hsts` checked once as a header value (see [`Entry::hsts`]).
    hsts: Option<HeaderValue>,
}

pub(crate) struct Target {
    pub(crate) authority: Authority,
    /// Index into `route.backends`.
    pub(crate) backend: usize,
    pub(crate) inflight: Arc<AtomicUsize>,
}

impl Compiled {
    /// `stats` holds the counters of the routes of the table before; routes of the
    /// same app and service carry on with them, new ones get theirs added.
    pub(crate) fn new(
        table: RouteTable,
        inflight: &mut HashMap<String, Arc<AtomicUsize>>,
        stats: &mut StatsByRoute,
    ) -> Self {
        let mut entries: HashMap<*const Route, Arc<Entry>> = HashMap::new();
        let mut hosts = HashMap::with_capacity_and_hasher(table.hosts.len(), Default::default());
        for (host, route) in &table.hosts {
            let entry = entries
                .entry(Arc::as_ptr(route))
                .or_insert_with(|| {
                    let stats = stats
                        .entry((route.app.clone(), route.service.clone()))
                        .or_insert_with(|| Arc::new(RouteStats::new(&route.app, &route.service)))
                        .clone();
                    Arc::new(Entry::new(route.clone(), inflight, stats))
                })
                .clone();
            hosts.insert(headers::canonical_name(host), entry);
        }
        Compiled {
            table: Arc::new(table),
            hosts,
        }
    }
}

impl Entry {
    fn new(
        route: Arc<Route>,
        inflight: &mut HashMap<String, Arc<AtomicUsize>>,
        stats: Arc<RouteStats>,
    ) -> Self {
        let targets = route
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match Authority::try_from(b.addr.to_string()) {
                Ok(authority) => Some(Target {
                    authority,
                    backend: i,
                    inflight: inflight.entry(b.process.clone()).or_default().clone(),
                }),
                Err(e) => {
                    tracing::warn!(process = %b.process, addr = %b.addr, "unusable backend address: {e}");
                    None
                }
            })
            .collect();
        let hsts = route
            .hsts
            .as_deref()
            .and_then(|value| match HeaderValue::from_str(value) {
                Ok(value) => Some(value),
                Err(e) => {
                    tracing::warn!(app = %route.app, service = %route.service, "unusable Strict-Transport-Security value {value:?}: {e}");
                    None
                }
            });
        Entry {
            route,
            next: AtomicUsize::new(headers::random_u64() as usize),
            targets,
            stats,
            hsts,
        }
    }
}

// The `#[inline]`s below: these run for every request on the fast path, which lives
// in another module and may end up in another codegen unit.

/// Whether a request may be sent again to another process after one failed to answer
/// it: a safe method, so a second copy does no harm, and no body, so there is nothing
/// to keep for it.
#[inline]
pub(crate) fn is_retryable(method: &str, has_body: bool) -> bool {
    !has_body && matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

impl Entry {
    /// The processes to send one request to, in order: round robin across requests,
    /// then on to the next process when one refuses the connection (or, for a
    /// retryable request, fails to answer). A retryable request gets a second attempt
    /// even on a route with one process: a process that is stopping may close a pooled
    /// connection just as the request goes out.
    #[inline]
    pub(crate) fn attempts(&self, retryable: bool) -> Attempts<'_> {
        let n = self.targets.len();
        Attempts {
            targets: &self.targets,
            first: self.next.fetch_add(1, Ordering::Relaxed),
            made: 0,
            count: if retryable && n > 0 { n.max(2) } else { n },
        }
    }

    /// When the response head of a request that arrived at `start` is due (the
    /// route's timeout, across all attempts); `None`: no limit.
    #[inline]
    pub(crate) fn deadline(&self, start: tokio::time::Instant) -> Option<tokio::time::Instant> {
        (!self.route.timeout.is_zero()).then(|| start + self.route.timeout)
    }

    /// Runs `attempt` until `deadline` ([`Entry::deadline`]); `None`: too late, counted
    /// as a timeout of the route.
    pub(crate) async fn within<F: std::future::Future>(
        &self,
        deadline: Option<tokio::time::Instant>,
        attempt: F,
    ) -> Option<F::Output> {
        let Some(deadline) = deadline else {
            return Some(attempt.await);
        };
        let result = tokio::time::timeout_at(deadline, attempt).await.ok();
        if result.is_none() {
            self.stats
                .upstream_error(crate::metrics::UpstreamError::Timeout);
        }
        result
    }

    /// The `Strict-Transport-Security` header a response of this route gets on a
    /// connection (`https`), unless the process sent its own: both data paths ask here.
    #[inline]
    pub(crate) fn hsts(&self, https: bool) -> Option<&HeaderValue> {
        self.hsts.as_ref().filter(|_| https)
    }

    /// Logs why an attempt on `target` got no response; the client only learns the
    /// outcome of the last attempt.
    pub(crate) fn attempt_failed(&self, target: &Target, what: &str, error: &dyn Display) {
        tracing::debug!(
            app = %self.route.app,
            service = %self.route.service,
            process = %self.route.backends[target.backend].process,
            "{what}: {error}"
        );
    }
}

/// See [`Entry::attempts`].
pub(crate) struct Attempts<'a> {
    targets: &'a [Target],
    first: usize,
    made: usize,
    count: usize,
}

pub(crate) struct Attempt<'a> {
    pub(crate) target: &'a Target,
    /// No attempt follows this one.
    pub(crate) last: bool,
}

impl<'a> Iterator for Attempts<'a> {
    type Item = Attempt<'a>;

    #[inline]
    fn next(&mut self) -> Option<Attempt<'a>> {
        if self.made == self.count {
            return None;
        }
        let target = &self.targets[self.first.wrapping_add(self.made) % self.targets.len()];
        self.made += 1;
        Some(Attempt {
            target,
            last: self.made == self.count,
        })
    }
}
