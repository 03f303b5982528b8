//! What each process uses (CPU and memory), sampled in the background, so that
//! `berth ps` reads it without asking the engine. A CPU share needs two
//! samples: it is the growth of the process's CPU time over the time between.

use super::Rack;
use berth_runtime::ProcessStats;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often every running process is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// A process's use as last sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Percent of one core over the last interval; `None` after one sample.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: u64,
    /// The memory limit the engine enforces (the machine's memory when none is set).
    pub memory_limit: Option<u64>,
    /// CPU time the process's container used since it started, seconds.
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    container: usize,
    at: Instant,
    cpu_nanos: u64,
    usage: Usage,
}

impl Sample {
    /// The next sample of one container, against the one before (if it was of
    /// the same container: a replaced process starts again from nothing).
    fn next(before: Option<&Sample>, container: usize, stats: ProcessStats, at: Instant) -> Sample {
        let cpu_percent = before
            .filter(|b| b.container == container && stats.cpu_nanos >= b.cpu_nanos)
            .and_then(|b| {
                let wall = at.duration_since(b.at).as_nanos() as f64;
                (wall > 0.0).then(|| (stats.cpu_nanos - b.cpu_nanos) as f64 / wall * 100.0)
            });
        Sample {
            container,
            at,
            cpu_nanos: stats.cpu_nanos,
            usage: Usage {
                cpu_percent,
                memory_bytes: stats.memory_bytes,
                memory_limit: stats.memory_limit,
                cpu_seconds: stats.cpu_nanos as f64 / 1e9,
            },
        }
    }
}

/// A process's memory limit, bytes: its `scale.memory` (MiB) when set, else the
/// limit the engine last reported (the machine's memory when there is none).
pub fn memory_limit(configured_mib: Option<u64>, usage: Option<&Usage>) -> Option<u64> {
    configured_mib
        .map(|mib| mib.saturating_mul(1024 * 1024))
        .or_else(|| usage.and_then(|u| u.memory_limit))
}

/// A short stable key for a container id (samples are keyed by process).
fn container_key(id: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id) as usize
}

impl Rack {
    /// The last sampled use of a process, if any.
    pub fn usage(&self, app: &str, process: &str) -> Option<Usage> {
        self.usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(app.to_string(), process.to_string()))
            .map(|s| s.usage)
    }

    /// The last sampled use of every process, by (app, process id).
    pub fn usages(&self) -> HashMap<(String, String), Usage> {
        self.usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), s.usage))
            .collect()
    }

    fn record_usage(&self, app: &str, process: &str, container: &str, stats: ProcessStats) {
        let key = (app.to_string(), process.to_string());
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let next = Sample::next(
            usage.get(&key),
            container_key(container),
            stats,
            Instant::now(),
        );
        usage.insert(key, next);
    }

    fn forget_usage_of_gone(&self, alive: &[(String, String)]) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.retain(|k, _| alive.contains(k));
    }
}

/// Samples every running process each [`SAMPLE_EVERY`], until the server stops.
pub async fn sample(rack: Arc<Rack>) {
    loop {
        sample_once(&rack).await;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// One sample of every running process; processes gone since are forgotten.
pub async fn sample_once(rack: &Arc<Rack>) {
    let running = rack.running_processes();
    let reads = running.iter().map(|(app, process, container)| {
        let rack = rack.clone();
        async move {
            if let Ok(stats) = rack.runtime.stats(container).await {
                rack.record_usage(app, process, container, stats);
            }
        }
    });
    futures_util::future::join_all(reads).await;
    let alive: Vec<(String, String)> = running.into_iter().map(|(a, p, _)| (a, p)).collect();
    rack.forget_usage_of_gone(&alive);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cpu_nanos: u64) -> ProcessStats {
        ProcessStats {
            cpu_nanos,
            memory_bytes: 7,
            memory_limit: None,
        }
    }

    #[test]
    fn a_cpu_share_needs_two_samples_of_one_container() {
        let t0 = Instant::now();
        let first = Sample::next(None, 1, stats(1_000_000_000), t0);
        assert_eq!(first.usage.cpu_percent, None);
        assert_eq!(first.usage.memory_bytes, 7);
        // Half a second of CPU over two seconds: a quarter of a core.
        let second = Sample::next(
            Some(&first),
            1,
            stats(1_500_000_000),
            t0 + Duration::from_secs(2),
        );
        let cpu = second.usage.cpu_percent.expect("a share");
        assert!((cpu - 25.0).abs() < 1e-9, "{cpu}");
        // A new container of the process starts over.
        let replaced = Sample::next(Some(&second), 2, stats(10), t0 + Duration::from_secs(4));
        assert_eq!(replaced.usage.cpu_percent, None);
    }
}
