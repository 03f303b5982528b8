//! The router's counters, per app and service, and their exposition.
//!
//! The data paths count into plain atomics that each route's compiled entry holds
//! (resolved once per table, never looked up by name per request): one counter per
//! (method, status), the duration histogram's buckets and sum, and upstream errors by
//! kind. Labels stay bounded whatever clients send: methods outside the standard ones
//! count as `other`, status codes are three digits, and requests for hosts no route
//! serves count under app `_unknown`.
//!
//! The router is a process of its own: the server asks it for a [`RouterMetrics`]
//! snapshot over the control socket on each scrape, and encodes it with the rest of
//! its metrics through [`RouterMetrics`]'s `prometheus_client` collector.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use serde::{Deserialize, Serialize};

/// The `app` (and `service`) label of requests for hosts no route serves.
pub const UNKNOWN: &str = "_unknown";

/// The `method` label values: the standard methods (RFC 9110, and PATCH), then
/// `other` for anything else a client sends.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];
const OTHER_METHOD: usize = METHODS.len() - 1;

/// Status codes are three digits (0–999); anything else is counted as 999.
const CODES: usize = 1000;

/// Upper bounds of the duration histogram, seconds (Prometheus's defaults).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKET_NANOS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Why a request got no response from a process (`kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No process accepted the connection.
    Connect = 0,
    /// The route's timeout (or the connection's) ran out.
    Timeout = 1,
    /// The process closed or broke the connection before answering.
    Reset = 2,
}
const ERROR_KINDS: [&str; 3] = ["connect", "timeout", "reset"];

/// The index of a method in [`METHODS`]; unknown methods are `other`.
#[inline]
pub(crate) fn method_index(method: &str) -> usize {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "CONNECT" => 5,
        "OPTIONS" => 6,
        "TRACE" => 7,
        "PATCH" => 8,
        _ => OTHER_METHOD,
    }
}

/// The `method` label of `method`: itself if standard, else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS[method_index(method)]
}

/// The counters of one app's service, kept across table swaps while the service is
/// routed.
pub(crate) struct RouteStats {
    pub(crate) app: String,
    pub(crate) service: String,
    /// Per method, a counter per status code, made on the method's first request.
    requests: [OnceLock<Box<[AtomicU64; CODES]>>; METHODS.len()],
    /// Non-cumulative: `durations[i]` counts requests in `(BUCKETS[i-1], BUCKETS[i]]`;
    /// the last slot is above every bound.
    durations: [AtomicU64; BUCKETS.len() + 1],
    duration_nanos: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
}

impl RouteStats {
    pub(crate) fn new(app: &str, service: &str) -> RouteStats {
        RouteStats {
            app: app.to_owned(),
            service: service.to_owned(),
            requests: Default::default(),
            durations: Default::default(),
            duration_nanos: AtomicU64::new(0),
            errors: Default::default(),
        }
    }

    /// Counts one answered request: a few relaxed atomic additions.
    #[inline]
    pub(crate) fn record(&self, method: usize, status: u16, elapsed: Duration) {
        let codes = self.requests[method.min(OTHER_METHOD)]
            .get_or_init(|| Box::new([const { AtomicU64::new(0) }; CODES]));
        codes[usize::from(status).min(CODES - 1)].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.partition_point(|bound| *bound < nanos);
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn upstream_error(&self, kind: UpstreamError) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, in_flight: u64) -> RouteSnapshot {
        let mut requests = Vec::new();
        for (method, codes) in self.requests.iter().enumerate() {
            let Some(codes) = codes.get() else { continue };
            for (code, count) in codes.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    requests.push((METHODS[method].to_owned(), code as u16, count));
                }
            }
        }
        RouteSnapshot {
            app: self.app.clone(),
            service: self.service.clone(),
            requests,
            duration_buckets: self
                .durations
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            duration_seconds: self.duration_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            in_flight,
            upstream_errors: self
                .errors
                .iter()
                .map(|e| e.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// One app's service as counted by the router.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSnapshot {
    pub app: String,
    pub service: String,
    /// (method, status code, requests); only counts above zero.
    pub requests: Vec<(String, u16, u64)>,
    /// Non-cumulative counts per bucket of [`BUCKETS`], then the one above them all.
    pub duration_buckets: Vec<u64>,
    pub duration_seconds: f64,
    /// Requests in flight to the service's routed processes now.
    pub in_flight: u64,
    /// By kind: connect, timeout, reset.
    pub upstream_errors: Vec<u64>,
}

/// What a router counted, as sent over the control socket; encodes itself as
/// Prometheus metrics (it is a `prometheus_client` collector).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterMetrics {
    pub routes: Vec<RouteSnapshot>,
    pub open_connections: u64,
}

impl RouterMetrics {
    pub(crate) fn collect<'a>(
        stats: impl Iterator<Item = (&'a RouteStats, u64)>,
        open_connections: u64,
    ) -> RouterMetrics {
        RouterMetrics {
            routes: stats
                .map(|(stats, in_flight)| stats.snapshot(in_flight))
                .collect(),
            open_connections,
        }
    }

    /// Adds another router's counts (the routers of a swarm's nodes, or those a
    /// router took over from), route by route.
    pub fn merge(&mut self, other: RouterMetrics) {
        self.open_connections += other.open_connections;
        for route in other.routes {
            match self
                .routes
                .iter_mut()
                .find(|r| r.app == route.app && r.service == route.service)
            {
                None => self.routes.push(route),
                Some(mine) => {
                    for (method, code, n) in route.requests {
                        match mine
                            .requests
                            .iter_mut()
                            .find(|(m, c, _)| *m == method && *c == code)
                        {
                            Some(have) => have.2 += n,
                            None => mine.requests.push((method, code, n)),
                        }
                    }
                    add_all(&mut mine.duration_buckets, &route.duration_buckets);
                    add_all(&mut mine.upstream_errors, &route.upstream_errors);
                    mine.duration_seconds += route.duration_seconds;
                    mine.in_flight += route.in_flight;
                }
            }
        }
    }

    /// The counts added since `earlier` (this router's counts at an earlier time):
    /// counters only; the gauges (in flight, open connections) are zero.
    pub(crate) fn since(&self, earlier: &RouterMetrics) -> RouterMetrics {
        let mut routes = Vec::new();
        for route in &self.routes {
            let before = earlier
                .routes
                .iter()
                .find(|r| r.app == route.app && r.service == route.service);
            let mut delta = RouteSnapshot {
                app: route.app.clone(),
                service: route.service.clone(),
                ..RouteSnapshot::default()
            };
            for (method, code, n) in &route.requests {
                let was = before
                    .and_then(|b| b.requests.iter().find(|(m, c, _)| m == method && c == code))
                    .map_or(0, |(_, _, n)| *n);
                if *n > was {
                    delta.requests.push((method.clone(), *code, n - was));
                }
            }
            delta.duration_buckets = minus(
                &route.duration_buckets,
                before.map_or(&[][..], |b| &b.duration_buckets),
            );
            delta.upstream_errors = minus(
                &route.upstream_errors,
                before.map_or(&[][..], |b| &b.upstream_errors),
            );
            delta.duration_seconds =
                (route.duration_seconds - before.map_or(0.0, |b| b.duration_seconds)).max(0.0);
            routes.push(delta);
        }
        RouterMetrics {
            routes,
            open_connections: 0,
        }
    }

    /// The same counts with the gauges (in flight, open connections) at zero: what a
    /// router that took over carries from the one before it.
    pub(crate) fn counters_only(mut self) -> RouterMetrics {
        self.open_connections = 0;
        for route in &mut self.routes {
            route.in_flight = 0;
        }
        self
    }
}

fn minus(now: &[u64], before: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect()
}

fn add_all(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// One metric as exposed: its name (without the unit and `_total`, which the
/// encoder adds), help, unit and type.
pub struct Describe<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub unit: Option<Unit>,
    pub kind: MetricType,
}

/// Encodes one metric with a series per `(labels, value)` of `series`.
pub fn encode_series<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    metric: &Describe,
    series: impl IntoIterator<Item = (L, M)>,
) -> std::fmt::Result {
    let mut family =
        encoder.encode_descriptor(metric.name, metric.help, metric.unit.as_ref(), metric.kind)?;
    for (labels, value) in series {
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram whose counts were made elsewhere (non-cumulative, per bucket of
/// [`BUCKETS`], then the one above them all).
struct CountedHistogram<'a> {
    buckets: &'a [u64],
    sum: f64,
}

impl EncodeMetric for CountedHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.buckets.iter().copied().chain(std::iter::repeat(0)))
            .collect();
        let count = self.buckets.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn gauge(n: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for RouterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let route = |r: &'_ RouteSnapshot| [("app", r.app.clone()), ("service", r.service.clone())];
        let requests = self.routes.iter().flat_map(|r| {
            r.requests.iter().map(move |(method, code, n)| {
                let [app, service] = route(r);
                let labels = [
                    app,
                    service,
                    ("method", method.clone()),
                    ("code", code.to_string()),
                ];
                (labels, ConstCounter::new(*n))
            })
        });
        let describe = Describe {
            name: "berth_router_requests",
            help: "Requests answered by the router, by app, service, method and status code.",
            unit: None,
            kind: MetricType::Counter,
        };
        encode_series(&mut encoder, &describe, requests)?;

        let durations = self.routes.iter().map(|r| {
            let histogram = CountedHistogram {
                buckets: &r.duration_buckets,
                sum: r.duration_seconds,
            };
            (route(r), histogram)
        });
        let describe = Describe {
            name: "berth_router_request_duration",
            help: "Time from a request's arrival until its response was passed on.",
            unit: Some(Unit::Seconds),
            kind: MetricType::Histogram,
        };
        encode_series(&mut encoder, &describe, durations)?;

        let in_flight = self.routes.iter().map(|r| (route(r), gauge(r.in_flight)));
        let describe = Describe {
            name: "berth_router_in_flight_requests",
            help: "Requests sent to a service's processes and not finished yet.",
            unit: None,
            kind: MetricType::Gauge,
        };
        encode_series(&mut encoder, &describe, in_flight)?;

        let errors = self.routes.iter().flat_map(|r| {
            ERROR_KINDS
                .iter()
                .zip(&r.upstream_errors)
                .map(move |(kind, n)| {
                    let [app, service] = route(r);
                    (
                        [app, service, ("kind", (*kind).to_owned())],
                        ConstCounter::new(*n),
                    )
                })
        });
        let describe = Describe {
            name: "berth_router_upstream_errors",
            help: "Requests a service's processes did not answer, by kind (connect, timeout, reset).",
            unit: None,
            kind: MetricType::Counter,
        };
        encode_series(&mut encoder, &describe, errors)?;

        let open = encoder.encode_descriptor(
            "berth_router_open_connections",
            "Client connections the router holds open.",
            None,
            MetricType::Gauge,
        )?;
        gauge(self.open_connections).encode(open)
    }
}

/// The counters of the routes in the table, by (app, service).
pub(crate) type StatsByRoute = HashMap<(String, String), std::sync::Arc<RouteStats>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_an_earlier_snapshot_leave_out_the_gauges() {
        let route =
            |requests: Vec<(String, u16, u64)>, buckets: Vec<u64>, in_flight| RouteSnapshot {
                app: "shop".into(),
                service: "web".into(),
                requests,
                duration_buckets: buckets,
                duration_seconds: 2.0,
                in_flight,
                upstream_errors: vec![1, 0, 0],
            };
        let earlier = RouterMetrics {
            routes: vec![route(vec![("GET".into(), 200, 5)], vec![5, 0], 3)],
            open_connections: 7,
        };
        let mut now = earlier.clone();
        now.routes[0].requests = vec![("GET".into(), 200, 8), ("POST".into(), 201, 2)];
        now.routes[0].duration_buckets = vec![9, 1];
        now.routes[0].duration_seconds = 3.5;
        let delta = now.since(&earlier);
        assert_eq!(delta.open_connections, 0);
        let d = &delta.routes[0];
        assert_eq!(
            d.requests,
            [("GET".to_string(), 200, 3), ("POST".to_string(), 201, 2)]
        );
        assert_eq!(d.duration_buckets, [4, 1]);
        assert_eq!(d.upstream_errors, [0, 0, 0]);
        assert_eq!(d.in_flight, 0);
        assert!((d.duration_seconds - 1.5).abs() < 1e-9);
        // Carried on top of the earlier counts, they make the later ones.
        let mut carried = earlier.clone().counters_only();
        carried.merge(delta);
        assert_eq!(
            carried.routes[0].requests.iter().map(|r| r.2).sum::<u64>(),
            10
        );
        assert_eq!(carried.routes[0].in_flight, 0);
    }

    #[test]
    fn methods_are_bounded() {
        for (i, m) in METHODS.iter().enumerate().take(OTHER_METHOD) {
            assert_eq!(method_index(m), i);
        }
        for odd in ["get", "PROPFIND", "", "G\u{e9}T", &"X".repeat(1000)] {
            assert_eq!(METHODS[method_index(odd)], "other", "{odd}");
        }
    }

    #[test]
    fn codes_and_durations_are_bounded() {
        let stats = RouteStats::new("shop", "web");
        stats.record(0, 200, Duration::from_millis(3));
        stats.record(0, 200, Duration::from_millis(7));
        stats.record(OTHER_METHOD + 5, u16::MAX, Duration::from_secs(60));
        stats.record(2, 502, Duration::ZERO);
        stats.upstream_error(UpstreamError::Reset);
        let snap = stats.snapshot(4);
        assert_eq!(
            snap.requests,
            vec![
                ("GET".to_owned(), 200, 2),
                ("POST".to_owned(), 502, 1),
                ("other".to_owned(), 999, 1)
            ]
        );
        // 0 and 3 ms in the first bucket, 7 ms in the second, 60 s above all.
        assert_eq!(snap.duration_buckets[0], 2);
        assert_eq!(snap.duration_buckets[1], 1);
        assert_eq!(snap.duration_buckets[BUCKETS.len()], 1);
        assert_eq!(snap.duration_buckets.iter().sum::<u64>(), 4);
        assert!((snap.duration_seconds - 60.01).abs() < 1e-9);
        assert_eq!(snap.upstream_errors, vec![0, 0, 1]);
        assert_eq!(snap.in_flight, 4);
    }

    #[test]
    fn encodes_as_prometheus_text() {
        let stats = RouteStats::new("shop", "web");
        stats.record(0, 200, Duration::from_millis(3));
        let metrics = RouterMetrics::collect([(&stats, 0)].into_iter(), 2);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "berth_router_requests_total{app=\"shop\",service=\"web\",method=\"GET\",code=\"200\"} 1",
            "berth_router_request_duration_seconds_bucket{app=\"shop\",service=\"web\",le=\"0.005\"} 1",
            "berth_router_request_duration_seconds_count{app=\"shop\",service=\"web\"} 1",
            "berth_router_upstream_errors_total{app=\"shop\",service=\"web\",kind=\"connect\"} 0",
            "berth_router_open_connections 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn merges_routers() {
        let a = RouteStats::new("shop", "web");
        a.record(0, 200, Duration::from_millis(1));
        let mut one = RouterMetrics::collect([(&a, 1)].into_iter(), 1);
        let two = RouterMetrics::collect([(&a, 2)].into_iter(), 3);
        one.merge(two);
        assert_eq!(one.routes.len(), 1);
        assert_eq!(one.routes[0].requests, vec![("GET".to_owned(), 200, 2)]);
        assert_eq!(one.routes[0].in_flight, 3);
        assert_eq!(one.open_connections, 4);
    }
}
