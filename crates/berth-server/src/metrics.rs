//! `/metrics` (`berth server --metrics ADDR`): everything the server and its
//! router count, in the Prometheus text format, encoded by `prometheus_client`.
//!
//! Three sources, read at each scrape: the server's own counters
//! (`rack::metrics`: deploys, builds, reconcile passes, API requests); what is
//! known now of processes (the background sampler's CPU and memory, the store's
//! restart counts, the health monitor's view), the engine and the certificates;
//! and the router's counters, asked of the router process over its control
//! socket. No scrape asks the engine anything.

use crate::rack::Rack;
use berth_core::ProcessState;
use berth_router::metrics::{Describe, encode_series};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric, as the text `/metrics` answers.
pub async fn render(rack: &Rack) -> String {
    let router = rack.router.metrics().await;
    let now = Now::read(rack);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(now));
    if let Some(router) = router {
        registry.register_collector(Box::new(router));
    }
    let mut out = String::new();
    // Writing into a String cannot fail; the collectors' encoders only fail on
    // the writer's errors.
    let encoded = rack
        .metrics
        .encode(&mut out)
        .and_then(|()| prometheus_client::encoding::prometheus_text::encode(&mut out, &registry));
    if let Err(e) = encoded {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    out
}

/// One process's series.
#[derive(Debug)]
struct ProcessNow {
    /// app, service, process, release.
    labels: [(&'static str, String); 4],
    cpu_seconds: Option<f64>,
    memory_bytes: Option<u64>,
    memory_limit: Option<u64>,
    restarts: u32,
    up: bool,
}

/// What is known now of processes, the engine and certificates.
#[derive(Debug)]
struct Now {
    processes: Vec<ProcessNow>,
    engine_up: bool,
    /// Domain → the latest `not_after` of a certificate for it, Unix seconds.
    certs: BTreeMap<String, i64>,
}

impl Now {
    fn read(rack: &Rack) -> Now {
        let usages = rack.usages();
        let rows = rack.store.processes(None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: cannot read the processes");
            Vec::new()
        });
        let processes = rows
            .into_iter()
            .filter(|p| p.state != ProcessState::Stopping)
            .map(|p| {
                let usage = usages.get(&(p.app.clone(), p.id.clone()));
                let up = p.state == ProcessState::Active
                    && rack
                        .observed(&p.app, &p.id)
                        .is_some_and(|o| o.running && o.healthy);
                ProcessNow {
                    cpu_seconds: usage.map(|u| u.cpu_seconds),
                    memory_bytes: usage.map(|u| u.memory_bytes),
                    memory_limit: crate::rack::usage::memory_limit(p.memory, usage),
                    restarts: p.restarts,
                    up,
                    labels: [
                        ("app", p.app),
                        ("service", p.service),
                        ("process", p.id),
                        ("release", p.release),
                    ],
                }
            })
            .collect();
        let mut certs = BTreeMap::new();
        match rack.store.certs() {
            Ok(list) => {
                for (row, _) in list {
                    let Some(not_after) = unix_seconds(&row.not_after) else {
                        continue;
                    };
                    for domain in row.domains {
                        let latest = certs.entry(domain).or_insert(not_after);
                        *latest = (*latest).max(not_after);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the certificates"),
        }
        Now {
            processes,
            engine_up: rack.engine_watch.down().is_none(),
            certs,
        }
    }
}

fn unix_seconds(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The series of one metric of every process.
fn per_process<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    processes: &[ProcessNow],
    metric: &Describe,
    value: impl Fn(&ProcessNow) -> Option<M>,
) -> std::fmt::Result {
    let series = processes
        .iter()
        .filter_map(|p| Some((p.labels.clone(), value(p)?)));
    encode_series(encoder, metric, series)
}

impl Collector for Now {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let processes = &self.processes;
        let describe = |name, help, unit, kind| Describe {
            name,
            help,
            unit,
            kind,
        };
        let cpu = describe(
            "berth_process_cpu",
            "CPU time a process's container used since it started.",
            Some(Unit::Seconds),
            MetricType::Counter,
        );
        per_process(&mut encoder, processes, &cpu, |p| {
            p.cpu_seconds.map(ConstCounter::new)
        })?;
        let memory = describe(
            "berth_process_memory",
            "Memory a process uses (page cache left out).",
            Some(Unit::Bytes),
            MetricType::Gauge,
        );
        per_process(&mut encoder, processes, &memory, |p| {
            p.memory_bytes.map(ConstGauge::new)
        })?;
        let limit = describe(
            "berth_process_memory_limit",
            "A process's memory limit (its scale.memory, else what the engine enforces).",
            Some(Unit::Bytes),
            MetricType::Gauge,
        );
        per_process(&mut encoder, processes, &limit, |p| {
            p.memory_limit.map(ConstGauge::new)
        })?;
        let restarts = describe(
            "berth_process_restarts",
            "Times the reconciler started a process again after it exited.",
            None,
            MetricType::Counter,
        );
        per_process(&mut encoder, processes, &restarts, |p| {
            Some(ConstCounter::new(u64::from(p.restarts)))
        })?;
        let up = describe(
            "berth_process_up",
            "1 when a process runs and passes its health check, else 0.",
            None,
            MetricType::Gauge,
        );
        per_process(&mut encoder, processes, &up, |p| {
            Some(ConstGauge::new(i64::from(p.up)))
        })?;
        let certs = describe(
            "berth_tls_certificate_not_after",
            "When the router's certificate for a domain expires, Unix time.",
            Some(Unit::Seconds),
            MetricType::Gauge,
        );
        let series = self
            .certs
            .iter()
            .map(|(domain, not_after)| ([("domain", domain.clone())], ConstGauge::new(*not_after)));
        encode_series(&mut encoder, &certs, series)?;
        let engine = encoder.encode_descriptor(
            "berth_engine_up",
            "1 when the container engine answers, else 0.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.engine_up)).encode(engine)
    }
}
