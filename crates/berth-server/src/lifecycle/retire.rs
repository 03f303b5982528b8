//! The one way a process stops. Rollouts, scale-downs, `ps stop`, `restart`,
//! app deletion, the reconciler and failed starts all go through [`retire`]:
//!
//! 1. the process leaves the router, and berth waits until the router runs a
//!    table without it, so no new request can reach it;
//! 2. requests already in flight to it finish, for at most the service's `drain`;
//! 3. SIGTERM, then SIGKILL after the service's `termination.grace`;
//! 4. then, as the [`Retirement`] says, its container and row go, or the row
//!    stays and the reconciler starts the process again in place.
//!
//! Callers hold the app's lock.

use crate::error::Result;
use crate::progress::{Progress, step};
use crate::rack::Rack;
use berth_core::ProcessState;
use berth_store::ProcessRow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// For good: the container is removed and the row deleted.
    Remove,
    /// Stopped by request (`ps stop`): the row stays, so the reconciler starts
    /// the process again under the same id and counts the restart.
    Restart,
    /// Never served (a rollout's failed start, a deploy cut short by a server
    /// stop): nothing to drain, no grace; container and row go.
    Abandon,
}

/// Retires `rows` together; see the module doc. Each is stopped even when
/// another fails; the first failure is returned, and a row left `stopping`
/// is retired again by the reconciler.
pub async fn retire(
    rack: &Rack,
    rows: &[ProcessRow],
    how: Retirement,
    progress: &Progress,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for row in rows {
        match how {
            Retirement::Restart => rack.set_leaving(&row.app, &row.id, true),
            // Written first: a server stopped half-way leaves `stopping` rows,
            // which the reconciler retires when it starts again.
            Retirement::Remove | Retirement::Abandon => {
                rack.store
                    .set_process_state(&row.app, &row.id, ProcessState::Stopping)?
            }
        }
    }
    // Abandoned processes were never routed, and at start-up the table must not
    // be rebuilt before the first reconcile pass adopted what runs.
    if how != Retirement::Abandon {
        rack.refresh_routes_and_wait().await;
    }
    let stops = rows.iter().map(|row| stop(rack, row, how));
    let results = futures_util::future::join_all(stops).await;
    let mut first_error = None;
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) if how == Retirement::Remove => {
                rack.logs.service_event(
                    &row.app,
                    &row.service,
                    &format!("process {} stopped", row.id),
                );
                step(progress, format!("stopped {}", row.id)).await;
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(process = row.id, error = %e, "stop failed; the reconciler will retry");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Processes stopped by request to be started again, as `app/id`: their exit
/// is no crash, so the reconciler's crash back-off leaves them out.
fn requested_restarts() -> &'static Mutex<HashSet<String>> {
    static REQUESTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    REQUESTED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Whether process `id` of `app` was stopped by request (`ps stop`) since the
/// last call: its exit is no crash.
pub fn take_requested_restart(app: &str, id: &str) -> bool {
    requested_restarts()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&format!("{app}/{id}"))
}

async fn stop(rack: &Rack, row: &ProcessRow, how: Retirement) -> Result<()> {
    let grace = match how {
        Retirement::Abandon => 0,
        Retirement::Remove | Retirement::Restart => {
            drain(rack, row).await;
            rack.grace_of(row)
        }
    };
    let container = rack.container_of(&row.app, &row.id);
    if how == Retirement::Restart {
        requested_restarts()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{}/{}", row.app, row.id));
    }
    let stopped = rack.runtime.stop_container(&container, grace).await;
    if how == Retirement::Restart {
        // Unhealthy before it stops leaving: no table may route to the stopped
        // container before the reconciler has replaced it and checked it.
        rack.set_healthy(&row.app, &row.id, false);
        rack.set_leaving(&row.app, &row.id, false);
        return Ok(stopped?);
    }
    stopped?;
    rack.runtime.remove_container(&container).await?;
    rack.forget(&row.app, &row.id);
    rack.store.delete_process(&row.app, &row.id)?;
    Ok(())
}

/// Waits until the router sends nothing more to `row` and its requests in
/// flight finished, at most its `drain` seconds.
async fn drain(rack: &Rack, row: &ProcessRow) {
    let seconds = rack.drain_of(row);
    let left = rack
        .router
        .drain(&row.id, Duration::from_secs(u64::from(seconds)))
        .await;
    if left > 0 {
        rack.logs.service_event(
            &row.app,
            &row.service,
            &format!(
                "process {} still had {left} request(s) in flight after draining {seconds}s; stopping it anyway",
                row.id
            ),
        );
    }
}
