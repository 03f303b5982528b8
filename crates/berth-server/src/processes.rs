//! `berth ps`: an app's processes as the engine shows them, and stopping one.

use crate::error::{Error, Result};
use crate::lifecycle::{Retirement, retire};
use crate::progress;
use crate::rack::Rack;
use berth_api::{Process, ProcessKind};
use berth_core::ProcessState;
use std::sync::Arc;

/// The app's processes and one-offs with their observed state: `starting`,
/// `stopping`, `running`, `unhealthy`, `crashed` or `missing`.
pub async fn list(rack: &Rack, app: &str) -> Result<Vec<Process>> {
    crate::apps::get(rack, app)?;
    // What is observed stays as it was last seen; with the engine gone it may be
    // wrong, so say why instead of showing it.
    if let Some((down_for, error)) = rack.engine_watch.down() {
        return Err(Error::Unavailable(format!(
            "the states of app {app}'s processes are unknown while the Docker engine at {} \
             does not answer (for {} s): {error}",
            rack.runtime.endpoint(),
            down_for.as_secs()
        )));
    }
    let rows = rack.store.processes(Some(app))?;
    let oneoffs = crate::oneoff::processes(rack, app).await;
    Ok(rows
        .into_iter()
        .map(|p| {
            let o = rack.observed(app, &p.id);
            let usage = rack.usage(app, &p.id);
            let image_missing = rack.image_missing(app, &p.id).is_some();
            let state = match (p.state, &o) {
                (ProcessState::Active, None) if image_missing => "image missing",
                (ProcessState::Starting, _) => "starting",
                (ProcessState::Stopping, _) => "stopping",
                (ProcessState::Active, None) => "missing",
                (ProcessState::Active, Some(o)) if !o.running => "crashed",
                (ProcessState::Active, Some(o)) if !o.healthy => "unhealthy",
                (ProcessState::Active, Some(_)) => "running",
            };
            Process {
                id: p.id.clone(),
                app: p.app.clone(),
                kind: ProcessKind::Service,
                service: p.service.clone(),
                timer: None,
                release: p.release.clone(),
                state: state.into(),
                started: o.as_ref().and_then(|o| o.started.clone()),
                address: o.as_ref().and_then(|o| o.addr.map(|a| a.to_string())),
                restarts: p.restarts,
                last_exit: p.last_exit,
                node: o.as_ref().and_then(|o| o.node.clone()),
                cpu: usage.and_then(|u| u.cpu_percent),
                memory: usage.map(|u| u.memory_bytes),
                memory_limit: crate::rack::usage::memory_limit(p.memory, usage.as_ref()),
            }
        })
        .chain(oneoffs)
        .collect())
}

/// Stops one process the way every process stops (out of the router, drained,
/// SIGTERM, SIGKILL after its grace); its row stays, so the reconciler starts
/// it again in place. A one-off is stopped for good (see [`crate::oneoff::stop`]).
pub async fn stop(rack: &Arc<Rack>, app: &str, id: &str) -> Result<()> {
    crate::apps::get(rack, app)?;
    let find_row = || -> Result<_> {
        Ok(rack
            .store
            .processes(Some(app))?
            .into_iter()
            .find(|p| p.id == id))
    };
    // Looked for before the app's lock: a one-off need not wait for a deploy.
    if find_row()?.is_none() && crate::oneoff::stop(rack, app, id).await? {
        return Ok(());
    }
    let lock = rack.app_lock(app);
    let _guard = lock.lock().await;
    let row = find_row()?.ok_or_else(|| {
        Error::NotFound(format!(
            "app {app} has no process {id} (nor a one-off of that id); list them with `berth ps -a {app}`"
        ))
    })?;
    retire(
        rack,
        std::slice::from_ref(&row),
        Retirement::Restart,
        &progress::unobserved(),
    )
    .await?;
    rack.logs.service_event(
        app,
        &row.service,
        &format!("process {id} stopped by request; the reconciler replaces it"),
    );
    rack.nudge.notify_one();
    Ok(())
}
