//! What the server knows about each process's container right now. Never
//! persisted: it is re-read from the engine after a restart.

use super::Rack;
use berth_runtime::{ContainerInfo, ContainerState};
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Observed {
    pub container_id: String,
    /// The process's address as the runtime reports it, with the service's port.
    pub addr: Option<SocketAddr>,
    pub started: Option<String>,
    pub running: bool,
    pub healthy: bool,
    /// Being retired: kept out of the router whatever its health checks say.
    pub leaving: bool,
    pub failures: u32,
    pub last_check: Option<Instant>,
    /// The node it runs on (on a swarm).
    pub node: Option<String>,
}

impl Observed {
    /// Whether the router should send it requests.
    pub fn routable(&self) -> bool {
        self.running && self.healthy && !self.leaving
    }
}

impl Rack {
    /// Records what the engine shows for a process. `healthy` is kept when the
    /// same container is seen again, so a resync doesn't undo health checks.
    pub fn observe(
        &self,
        app: &str,
        process: &str,
        info: &ContainerInfo,
        port: Option<u16>,
        assume_healthy: bool,
    ) {
        let running = info.state == ContainerState::Running;
        let addr = match (info.ip, port) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        let key = (app.to_string(), process.to_string());
        match observed.get_mut(&key) {
            Some(o) if o.container_id == info.id => {
                o.running = running;
                o.healthy &= running;
                if addr.is_some() {
                    o.addr = addr;
                }
                if info.node.is_some() {
                    o.node = info.node.clone();
                }
            }
            _ => {
                observed.insert(
                    key,
                    Observed {
                        container_id: info.id.clone(),
                        addr,
                        started: info.started_at.clone(),
                        running,
                        healthy: running && assume_healthy,
                        leaving: false,
                        failures: 0,
                        last_check: None,
                        node: info.node.clone(),
                    },
                );
            }
        }
    }

    pub fn observed(&self, app: &str, process: &str) -> Option<Observed> {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(app.to_string(), process.to_string()))
            .cloned()
    }

    /// Returns whether the health changed.
    pub fn set_healthy(&self, app: &str, process: &str, healthy: bool) -> bool {
        self.edit_observed(app, process, |o| {
            let changed = o.healthy != healthy;
            o.healthy = healthy;
            changed
        })
        .unwrap_or(false)
    }

    /// Marks a process as leaving the router (or back, when its retirement ended
    /// with the container gone and the row kept for a replacement).
    pub fn set_leaving(&self, app: &str, process: &str, leaving: bool) {
        self.edit_observed(app, process, |o| o.leaving = leaving);
    }

    /// Records one health check's outcome; `attempts` failures in a row make the
    /// process unhealthy, one pass makes it healthy again. Returns whether its
    /// health changed, `None` when the process is no longer observed.
    pub fn record_check(
        &self,
        app: &str,
        process: &str,
        passed: bool,
        attempts: u32,
    ) -> Option<bool> {
        self.edit_observed(app, process, |o| {
            o.last_check = Some(Instant::now());
            let was = o.healthy;
            if passed {
                o.failures = 0;
                o.healthy = o.running;
            } else {
                o.failures += 1;
                if o.failures >= attempts {
                    o.healthy = false;
                }
            }
            was != o.healthy
        })
    }

    fn edit_observed<T>(
        &self,
        app: &str,
        process: &str,
        edit: impl FnOnce(&mut Observed) -> T,
    ) -> Option<T> {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        observed
            .get_mut(&(app.to_string(), process.to_string()))
            .map(edit)
    }

    /// (app, process id, container id) of every process whose container runs.
    pub fn running_processes(&self) -> Vec<(String, String, String)> {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, o)| o.running)
            .map(|((app, id), o)| (app.clone(), id.clone(), o.container_id.clone()))
            .collect()
    }

    pub fn forget(&self, app: &str, process: &str) {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(app.to_string(), process.to_string()));
        self.set_image_missing(app, process, None);
    }
}
