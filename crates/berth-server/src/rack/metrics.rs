//! The server's own counters (deploys, builds, reconcile passes, API requests),
//! kept in a `prometheus_client` registry that the operations count into.
//! What is read fresh at each scrape (processes, the engine, certificates, the
//! router's counts) is gathered by the `/metrics` renderer above the rack.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

type OutcomeLabel = [(&'static str, &'static str); 1];
/// route, method, code.
type ApiLabels = [(&'static str, String); 3];
type Histograms = Family<OutcomeLabel, Histogram, fn() -> Histogram>;

/// Upper bounds of the deploy and build duration histograms, seconds.
const LONG_BUCKETS: [f64; 10] = [1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

fn long_histogram() -> Histogram {
    Histogram::new(LONG_BUCKETS)
}

/// How a deploy or build ended (`outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    fn label(self) -> OutcomeLabel {
        [(
            "outcome",
            match self {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
            },
        )]
    }

    pub fn of<T, E>(result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        }
    }
}

#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    deploys: Family<OutcomeLabel, Counter>,
    deploy_seconds: Histograms,
    builds: Family<OutcomeLabel, Counter>,
    build_seconds: Histograms,
    reconcile_passes: Counter,
    api_requests: Family<ApiLabels, Counter>,
    drain_dropped: Family<[(&'static str, String); 1], Counter>,
    ocsp_refreshes: Family<OutcomeLabel, Counter>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let deploys = Family::<OutcomeLabel, Counter>::default();
        let builds = Family::<OutcomeLabel, Counter>::default();
        let deploy_seconds: Histograms = Family::new_with_constructor(long_histogram);
        let build_seconds: Histograms = Family::new_with_constructor(long_histogram);
        let reconcile_passes = Counter::default();
        let api_requests = Family::<ApiLabels, Counter>::default();
        let drain_dropped = Family::<[(&'static str, String); 1], Counter>::default();
        let ocsp_refreshes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "berth_deploys",
            "Deploys (rollouts of a release) by outcome",
            deploys.clone(),
        );
        registry.register_with_unit(
            "berth_deploy_duration",
            "How long deploys took, by outcome",
            Unit::Seconds,
            deploy_seconds.clone(),
        );
        registry.register(
            "berth_builds",
            "Builds (from source or an uploaded image) by outcome",
            builds.clone(),
        );
        registry.register_with_unit(
            "berth_build_duration",
            "How long builds took, by outcome",
            Unit::Seconds,
            build_seconds.clone(),
        );
        registry.register(
            "berth_reconcile_passes",
            "Passes of the reconciler over every app",
            reconcile_passes.clone(),
        );
        registry.register(
            "berth_api_requests",
            "API requests by matched route template, method and status code",
            api_requests.clone(),
        );
        registry.register(
            "berth_drain_dropped",
            "Log lines a drain dropped because its buffer was full, by drain id",
            drain_dropped.clone(),
        );
        registry.register(
            "berth_ocsp_refreshes",
            "OCSP responses fetched for stapling, by outcome (failed: unreachable, unusable, or not good)",
            ocsp_refreshes.clone(),
        );
        // Both outcomes show from the start, at 0.
        for outcome in [Outcome::Succeeded, Outcome::Failed] {
            let _ = deploys.get_or_create(&outcome.label());
            let _ = builds.get_or_create(&outcome.label());
            let _ = deploy_seconds.get_or_create(&outcome.label());
            let _ = build_seconds.get_or_create(&outcome.label());
            let _ = ocsp_refreshes.get_or_create(&outcome.label());
        }
        ServerMetrics {
            registry,
            deploys,
            deploy_seconds,
            builds,
            build_seconds,
            reconcile_passes,
            api_requests,
            drain_dropped,
            ocsp_refreshes,
        }
    }
}

impl ServerMetrics {
    pub fn deploy(&self, outcome: Outcome, took: Duration) {
        self.deploys.get_or_create(&outcome.label()).inc();
        self.deploy_seconds
            .get_or_create(&outcome.label())
            .observe(took.as_secs_f64());
    }

    pub fn build(&self, outcome: Outcome, took: Duration) {
        self.builds.get_or_create(&outcome.label()).inc();
        self.build_seconds
            .get_or_create(&outcome.label())
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_pass(&self) {
        self.reconcile_passes.inc();
    }

    /// One API request: `route` is the matched route template (or `unmatched`),
    /// never the raw path; `method` one of the standard methods or `other`.
    pub fn api_request(&self, route: &str, method: &str, status: u16) {
        self.api_requests
            .get_or_create(&[
                ("route", route.to_owned()),
                (
                    "method",
                    berth_router::metrics::method_label(method).to_owned(),
                ),
                ("code", status.to_string()),
            ])
            .inc();
    }

    /// `n` lines dropped by drain `drain` (its buffer was full).
    pub fn drain_dropped(&self, drain: &str, n: u64) {
        self.drain_dropped
            .get_or_create(&[("drain", drain.to_owned())])
            .inc_by(n);
    }

    /// One OCSP response fetched for stapling (`ocsp`).
    pub fn ocsp_refresh(&self, outcome: Outcome) {
        self.ocsp_refreshes.get_or_create(&outcome.label()).inc();
    }

    /// The counters in the Prometheus text format.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &ServerMetrics) -> String {
        let mut out = String::new();
        metrics.encode(&mut out).expect("encodes");
        out
    }

    #[test]
    fn api_requests_are_counted_by_template_with_bounded_methods() {
        let metrics = ServerMetrics::default();
        metrics.api_request("/apps/{app}", "GET", 200);
        metrics.api_request("/apps/{app}", "GET", 200);
        metrics.api_request("/apps/{app}", "BREW", 405);
        let out = text(&metrics);
        assert!(
            out.contains(
                "berth_api_requests_total{route=\"/apps/{app}\",method=\"GET\",code=\"200\"} 2"
            ),
            "{out}"
        );
        assert!(out.contains("method=\"other\",code=\"405\"} 1"), "{out}");
        assert!(!out.contains("BREW"), "{out}");
    }

    #[test]
    fn outcomes_show_from_the_start() {
        let metrics = ServerMetrics::default();
        let out = text(&metrics);
        assert!(
            out.contains("berth_deploys_total{outcome=\"failed\"} 0"),
            "{out}"
        );
        metrics.build(Outcome::Succeeded, Duration::from_secs(3));
        let out = text(&metrics);
        assert!(
            out.contains("berth_builds_total{outcome=\"succeeded\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("berth_build_duration_seconds_bucket{outcome=\"succeeded\",le=\"5\"} 1"),
            "{out}"
        );
    }
}
