//! The router's table, rebuilt from the store (which processes should serve)
//! and what is observed (which of them can).

use super::Rack;
use berth_core::ProcessState;
use berth_router::{Backend, Route, RouteTable};
use std::sync::Arc;
use std::time::Duration;

/// How long a change waits for the router to take its table.
const ROUTER_SYNC_TIMEOUT: Duration = Duration::from_secs(5);

impl Rack {
    /// Rebuilds the router's table: every active, running, healthy process of a
    /// routed service that is not leaving.
    pub fn refresh_routes(&self) {
        let mut table = RouteTable::default();
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(error = %e, "cannot rebuild routes");
                return;
            }
        };
        let processes = self.store.processes(None).unwrap_or_default();
        for app in apps {
            let Some(release_id) = &app.release else {
                continue;
            };
            let Ok(release) = self.store.release(&app.name, release_id) else {
                continue;
            };
            let Ok(manifest) = self.manifest(&release) else {
                continue;
            };
            for (name, svc) in &manifest.services {
                if svc.port.is_none() {
                    continue;
                }
                let backends = processes
                    .iter()
                    .filter(|p| {
                        p.app == app.name && &p.service == name && p.state == ProcessState::Active
                    })
                    .filter_map(|p| {
                        let o = self.observed(&p.app, &p.id)?;
                        o.routable().then_some(()).and(o.addr).map(|addr| Backend {
                            addr,
                            process: p.id.clone(),
                        })
                    })
                    .collect();
                let route = Arc::new(Route {
                    app: app.name.clone(),
                    service: name.clone(),
                    backends,
                    timeout: Duration::from_secs(u64::from(svc.timeout)),
                    tls_redirect: svc.tls.redirect,
                    hsts: svc.tls.hsts.as_ref().map(|h| h.header_value()),
                });
                table
                    .hosts
                    .insert(self.default_host(&app.name, name), route.clone());
                for domain in &svc.domains {
                    table
                        .hosts
                        .insert(domain.to_ascii_lowercase(), route.clone());
                }
            }
        }
        self.router.update(table);
    }

    /// [`Rack::refresh_routes`], then waits (at most 5 s) until the router runs the
    /// new table: a deploy or scale reports success only once its processes take
    /// requests on their domains, and a process leaves only once no new request
    /// can reach it.
    pub async fn refresh_routes_and_wait(&self) {
        self.refresh_routes();
        if !self.router.synced(ROUTER_SYNC_TIMEOUT).await {
            tracing::warn!(
                "the router did not take the new table within {ROUTER_SYNC_TIMEOUT:?}; \
                 it serves the previous one until it does"
            );
        }
    }
}
