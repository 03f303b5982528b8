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

impl Collector for Now {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut cpu = encoder.encode_descriptor(
            "berth_process_cpu",
            "CPU time a process's container used since it started.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for p in &self.processes {
            if let Some(seconds) = p.cpu_seconds {
                ConstCounter::new(seconds).encode(cpu.encode_family(&p.labels)?)?;
            }
        }
        let mut memory = encoder.encode_descriptor(
            "berth_process_memory",
            "Memory a process uses (page cache left out).",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for p in &self.processes {
            if let Some(bytes) = p.memory_bytes {
                ConstGauge::new(bytes).encode(memory.encode_family(&p.labels)?)?;
            }
        }
        let mut limit = encoder.encode_descriptor(
            "berth_process_memory_limit",
            "A process's memory limit (its scale.memory, else what the engine enforces).",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for p in &self.processes {
            if let Some(bytes) = p.memory_limit {
                ConstGauge::new(bytes).encode(limit.encode_family(&p.labels)?)?;
            }
        }
        let mut restarts = encoder.encode_descriptor(
            "berth_process_restarts",
            "Times the reconciler started a process again after it exited.",
            None,
            MetricType::Counter,
        )?;
        for p in &self.processes {
            ConstCounter::new(u64::from(p.restarts)).encode(restarts.encode_family(&p.labels)?)?;
        }
        let mut up = encoder.encode_descriptor(
            "berth_process_up",
            "1 when a process runs and passes its health check, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.processes {
            ConstGauge::new(i64::from(p.up)).encode(up.encode_family(&p.labels)?)?;
        }
        let engine = encoder.encode_descriptor(
            "berth_engine_up",
            "1 when the container engine answers, else 0.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.engine_up)).encode(engine)?;
        let mut certs = encoder.encode_descriptor(
            "berth_tls_certificate_not_after",
            "When the router's certificate for a domain expires, Unix time.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (domain, not_after) in &self.certs {
            let labels = [("domain", domain.as_str())];
            ConstGauge::new(*not_after).encode(certs.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
