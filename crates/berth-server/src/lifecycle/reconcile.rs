//! The reconciler makes the engine match the store: every `starting`/`active`
//! process row has a running container, `stopping` rows are stopped, and
//! berth-labelled containers of this rack without a row are removed. It runs
//! on engine events and on a periodic resync; start-up is the same diff from
//! nothing, which adopts running containers without touching them.

use super::health;
use super::retire::{Retirement, retire, take_requested_restart};
use super::rollout::start_process;
use crate::engine::Change;
use crate::error::{Error, Result};
use crate::progress;
use crate::rack::Rack;
use berth_core::ProcessState;
use berth_runtime::{
    ContainerInfo, ContainerState, LABEL_APP, LABEL_PROCESS, LABEL_RACK, RuntimeError,
};
use berth_store::ProcessRow;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RESYNC: Duration = Duration::from_secs(2);

/// Crash back-off of each process that crashed.
type Backoff = HashMap<(String, String), Crashes>;

/// A process's recent crashes.
#[derive(Debug, Clone, Copy)]
pub struct Crashes {
    /// Crashes in a row, each within [`RECOVERED`] of the start before it.
    in_a_row: u32,
    /// When it was last started.
    started: Instant,
    /// Set while it waits out its back-off: when it may start again.
    restart_at: Option<Instant>,
}

/// A process that stays up this long after a start has recovered: its next
/// crash counts as its first.
const RECOVERED: Duration = Duration::from_secs(30);

/// How long a process waits before its restart after its `in_a_row`th crash:
/// the first at once, then 2 s, doubling up to 60 s. The wait starts at the
/// crash, so a process that crashes after a while is spaced out too (a delay
/// counted from the start before it would be used up by its uptime).
fn backoff_delay(in_a_row: u32) -> Duration {
    if in_a_row <= 1 {
        return Duration::ZERO;
    }
    Duration::from_secs((1u64 << (in_a_row - 1).min(6)).min(60))
}

/// Recovers from a server that stopped mid-way: unfinished builds and
/// deployments are marked failed and their half-started processes removed.
pub async fn recover(rack: &Rack) {
    if let Ok(n) = rack
        .store
        .fail_running_builds("the server stopped during the build; run it again")
        && n > 0
    {
        tracing::warn!(builds = n, "marked interrupted builds failed");
    }
    let Ok(deployments) = rack.store.running_deployments() else {
        return;
    };
    for d in deployments {
        let reason = "the server stopped during the deploy; deploy again";
        let started: Vec<ProcessRow> = rack
            .store
            .processes(Some(&d.app))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.state == ProcessState::Starting)
            .collect();
        let _ = retire(rack, &started, Retirement::Abandon, &progress::unobserved()).await;
        let _ = rack.store.finish_deployment(d.id, Some(reason));
        if rack
            .store
            .app(&d.app)
            .ok()
            .and_then(|a| a.release)
            .as_deref()
            != Some(d.release.as_str())
        {
            let _ = rack.store.fail_release(&d.app, &d.release, reason);
        }
        rack.logs.event(
            &d.app,
            &format!("deploy of release {} failed: {reason}", d.release),
        );
    }
}

/// Runs the reconciler until the process ends.
pub async fn run(rack: Arc<Rack>) {
    tokio::spawn(watch_events(rack.clone()));
    tokio::spawn(health::monitor(rack.clone()));
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        let pass = converge(&rack, &mut backoff, first).await;
        rack.metrics.reconcile_pass();
        match pass {
            Ok(()) => {
                first = false;
                if let Some(Change::Back(after)) = rack.engine_watch.answered() {
                    engine_back(&rack, after);
                    // This pass already put back what the restart removed; the next
                    // one (soon, not in a full resync) sees the replacements run.
                    rack.nudge.notify_one();
                }
            }
            Err(Error::Runtime(e)) if crate::engine::is_unreachable(&e) => {
                if rack.engine_watch.failed(&e) == Some(Change::Lost) {
                    engine_lost(&rack, &e);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconcile failed; retrying"),
        }
        tokio::select! {
            _ = rack.nudge.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// Said once per outage, in the server's log and every app's log.
fn engine_lost(rack: &Rack, error: &berth_runtime::RuntimeError) {
    tracing::error!(
        "lost the Docker engine at {}: {error}. Processes are not supervised until it answers \
         again; berth keeps trying every {} s and puts back whatever its restart removed",
        rack.runtime.endpoint(),
        RESYNC.as_secs()
    );
    tell_every_app(
        rack,
        &format!("lost the Docker engine ({error}); processes are not supervised until it is back"),
    );
}

fn engine_back(rack: &Rack, after: Duration) {
    let text = format!(
        "the Docker engine is back after {:.0} s; processes it stopped are being replaced",
        after.as_secs_f64()
    );
    tracing::warn!("{text}");
    tell_every_app(rack, &text);
}

fn tell_every_app(rack: &Rack, text: &str) {
    for app in rack.store.apps().unwrap_or_default() {
        rack.logs.append(&app.name, "berth", text);
    }
}

async fn watch_events(rack: Arc<Rack>) {
    loop {
        let mut events = rack.runtime.events(LABEL_RACK, &rack.rack_id);
        while let Some(event) = events.next().await {
            if let Ok(e) = &event {
                rack.forget_oneoffs(e.labels.get(LABEL_APP).map(String::as_str));
            }
            match event {
                Ok(e) if matches!(e.action.as_str(), "die" | "destroy" | "oom" | "start") => {
                    if e.action == "die"
                        && let (Some(app), Some(process)) =
                            (e.labels.get(LABEL_APP), e.labels.get(LABEL_PROCESS))
                    {
                        let code = e
                            .exit_code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "?".into());
                        if let Some(row) = rack
                            .store
                            .processes(Some(app))
                            .unwrap_or_default()
                            .iter()
                            .find(|p| &p.id == process && p.state != ProcessState::Stopping)
                        {
                            rack.logs.service_event(
                                app,
                                &row.service,
                                &format!("process {process} exited with code {code}"),
                            );
                        }
                        rack.set_healthy(app, process, false);
                        rack.refresh_routes();
                    }
                    rack.nudge.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    // While the engine is down this fails every second; the
                    // outage itself is reported once by the reconciler.
                    if rack.engine_watch.down().is_none() {
                        tracing::warn!(error = %e, "engine event stream failed; reconnecting");
                    } else {
                        tracing::debug!(error = %e, "engine event stream failed; reconnecting");
                    }
                    break;
                }
            }
        }
        rack.forget_oneoffs(None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Whatever happened while disconnected is picked up by a full resync.
        rack.nudge.notify_one();
    }
}

/// One pass over every app: rows get running containers (`adopt`: running
/// ones found at start-up count as healthy until checked), strays go, then
/// the table is rebuilt and `stopping` rows are retired.
pub async fn converge(rack: &Arc<Rack>, backoff: &mut Backoff, adopt: bool) -> Result<()> {
    let containers = rack
        .runtime
        .list_containers(LABEL_RACK, &rack.rack_id)
        .await?;
    let mut by_process: HashMap<(String, String), ContainerInfo> = HashMap::new();
    let mut oneoffs = Vec::new();
    for c in containers {
        // One-off processes have no row; `oneoff::converge` looks after them.
        if c.labels.contains_key(berth_runtime::LABEL_ONEOFF) {
            oneoffs.push(c);
            continue;
        }
        // Only process containers: containers inherit their image's labels, so
        // the intermediate containers of a build `FROM` one of this rack's images
        // carry `berth.rack` too. Removing them as strays killed such builds (exit
        // 137) mid-step; they are the engine's to clean up.
        if let (Some(app), Some(process)) = (c.labels.get(LABEL_APP), c.labels.get(LABEL_PROCESS)) {
            by_process.insert((app.clone(), process.clone()), c);
        }
    }
    let rows = rack.store.processes(None)?;
    rack.keep_images_missing(|app, id| rows.iter().any(|r| r.app == app && r.id == id));
    let mut changed = false;
    let mut leaving: BTreeMap<String, Vec<ProcessRow>> = BTreeMap::new();
    let apps: std::collections::BTreeSet<String> =
        rack.store.apps()?.into_iter().map(|a| a.name).collect();
    for app in &apps {
        let lock = rack.app_lock(app);
        // A deploy or scale in progress owns its app; it is looked at next pass.
        let Ok(_guard) = lock.try_lock() else {
            // Output is still collected from the start: collected only once
            // the deploy ends, it reached `logs --follow` seconds late.
            for row in rows.iter().filter(|r| &r.app == app) {
                if let Some(c) = by_process.get(&(row.app.clone(), row.id.clone()))
                    && c.state == ContainerState::Running
                {
                    ensure_collector(rack, row, &c.id);
                }
            }
            by_process.retain(|(a, _), _| a != app);
            continue;
        };
        for row in rows.iter().filter(|r| &r.app == app) {
            let key = (row.app.clone(), row.id.clone());
            let container = by_process.remove(&key);
            if row.state == ProcessState::Stopping {
                leaving.entry(app.clone()).or_default().push(row.clone());
                continue;
            }
            changed |= converge_process(rack, row, container, backoff, adopt).await;
        }
    }
    // Containers of this rack that no row wants: removed (never anything without our labels).
    for ((app, process), c) in by_process {
        if !apps.contains(&app) || !rows.iter().any(|r| r.app == app && r.id == process) {
            tracing::info!(container = c.name, "removing stray container");
            let _ = rack.runtime.remove_container(&c.id).await;
            if apps.contains(&app) {
                rack.logs.event(
                    &app,
                    &format!(
                        "removed stray container {} (process {process} is not wanted)",
                        c.name
                    ),
                );
            }
        }
    }
    crate::oneoff::converge(rack, &apps, oneoffs).await;
    if changed || adopt {
        rack.refresh_routes();
    }
    // Retired after the table is rebuilt: retiring waits for the router to take
    // a table, which must hold every process this pass adopted.
    for (app, rows) in leaving {
        let lock = rack.app_lock(&app);
        let Ok(_guard) = lock.try_lock() else {
            continue;
        };
        let _ = retire(rack, &rows, Retirement::Remove, &progress::unobserved()).await;
    }
    Ok(())
}

/// Returns whether routing may have changed.
async fn converge_process(
    rack: &Arc<Rack>,
    row: &ProcessRow,
    container: Option<ContainerInfo>,
    backoff: &mut Backoff,
    adopt: bool,
) -> bool {
    let port = rack.service_of(row).and_then(|s| s.listen_port());
    match container {
        Some(c) if c.state == ContainerState::Running => {
            let known = rack
                .observed(&row.app, &row.id)
                .is_some_and(|o| o.container_id == c.id);
            // Adopted after a server restart: it served before, so it keeps serving
            // while the health monitor re-checks it.
            rack.observe(&row.app, &row.id, &c, port, adopt);
            // A process that stays up a while has recovered: its crash back-off is forgotten.
            let key = (row.app.clone(), row.id.clone());
            if backoff
                .get(&key)
                .is_some_and(|c| c.restart_at.is_none() && c.started.elapsed() > RECOVERED)
            {
                backoff.remove(&key);
            }
            ensure_collector(rack, row, &c.id);
            !known
        }
        other => replace(rack, row, other, port, backoff).await,
    }
}

/// A process whose container is not running: the crash is counted and logged
/// once, then it is started again, at once or after its back-off.
async fn replace(
    rack: &Arc<Rack>,
    row: &ProcessRow,
    container: Option<ContainerInfo>,
    port: Option<u16>,
    backoff: &mut Backoff,
) -> bool {
    if container.is_none() && rack.image_missing(&row.app, &row.id).is_some() {
        return retry_missing_image(rack, row).await;
    }
    let key = (row.app.clone(), row.id.clone());
    let now = Instant::now();
    let before = backoff.get(&key).copied();
    let (what, in_a_row) = match (before, before.and_then(|c| c.restart_at)) {
        (_, Some(at)) if now < at => return false,
        (Some(c), Some(_)) => ("restarted after its crash back-off".to_string(), c.in_a_row),
        _ => {
            let (exit, oom) = match container.as_ref().map(|c| &c.state) {
                Some(ContainerState::Exited { code, oom_killed }) => (*code, *oom_killed),
                _ => (None, false),
            };
            let what = match (&container, oom) {
                (None, _) => "is missing".to_string(),
                (Some(_), true) => "was killed for running out of memory".to_string(),
                (Some(_), false) => format!(
                    "exited with code {}",
                    exit.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                ),
            };
            let _ = rack.store.record_restart(&row.app, &row.id, exit);
            // Seen as it is (`ps`: crashed, or missing) while it waits to start again.
            match &container {
                Some(c) => rack.observe(&row.app, &row.id, c, port, false),
                None => rack.forget(&row.app, &row.id),
            }
            rack.set_healthy(&row.app, &row.id, false);
            // Stopped by request (`ps stop`): no crash, nothing to back off from.
            let requested = take_requested_restart(&row.app, &row.id);
            let in_a_row = match before {
                _ if requested => before.map_or(0, |c| c.in_a_row),
                Some(c) if c.started.elapsed() < RECOVERED => c.in_a_row + 1,
                _ => 1,
            };
            let delay = backoff_delay(in_a_row);
            if !delay.is_zero() {
                backoff.insert(
                    key,
                    Crashes {
                        in_a_row,
                        started: before.map_or(now, |c| c.started),
                        restart_at: Some(now + delay),
                    },
                );
                rack.logs.service_event(
                    &row.app,
                    &row.service,
                    &format!(
                        "process {} {what}: {in_a_row} crashes in a row, each within {} s of starting; restarting it in {} s",
                        row.id,
                        RECOVERED.as_secs(),
                        delay.as_secs()
                    ),
                );
                return true;
            }
            (format!("{what}; replaced"), in_a_row)
        }
    };
    backoff.insert(
        key,
        Crashes {
            in_a_row,
            started: now,
            restart_at: None,
        },
    );
    match start_process(rack, row).await {
        Ok(info) => {
            rack.logs.service_event(
                &row.app,
                &row.service,
                &format!("process {} {what}", row.id),
            );
            ensure_collector(rack, row, &info.id);
        }
        Err(Error::Runtime(RuntimeError::ImageMissing(image))) => {
            image_missing(rack, row, &image);
        }
        Err(e) => rack.logs.service_event(
            &row.app,
            &row.service,
            &format!("process {} {what}; cannot replace it: {e}", row.id),
        ),
    }
    true
}

/// A process whose image the engine lacks (a rack restored onto an engine
/// that lost it, or an image removed by hand) is no crash: it is reported once
/// in the app's and the server's log and shown as `image missing` by `ps` and
/// `apps`, and tried again on every pass (the image may be loaded meanwhile).
fn image_missing(rack: &Rack, row: &ProcessRow, image: &str) {
    if rack.set_image_missing(&row.app, &row.id, Some(image)) {
        let text = format!(
            "process {} of release {} cannot start: its image {image} is not on the Docker engine at {} \
             (the engine lost it, or this rack was restored onto another engine); deploy the app again \
             (`berth deploy -a {}`, or `berth deploy --image` for an uploaded image) or roll back to a \
             release whose image is there",
            row.id,
            row.release,
            rack.runtime.endpoint(),
            row.app
        );
        tracing::warn!(app = %row.app, "{text}");
        rack.logs.service_event(&row.app, &row.service, &text);
    }
}

async fn retry_missing_image(rack: &Arc<Rack>, row: &ProcessRow) -> bool {
    match start_process(rack, row).await {
        Ok(info) => {
            rack.set_image_missing(&row.app, &row.id, None);
            rack.logs.service_event(
                &row.app,
                &row.service,
                &format!("process {} started: its image is on the engine now", row.id),
            );
            ensure_collector(rack, row, &info.id);
            true
        }
        Err(Error::Runtime(RuntimeError::ImageMissing(image))) => {
            image_missing(rack, row, &image);
            false
        }
        Err(e) => {
            rack.set_image_missing(&row.app, &row.id, None);
            rack.logs.service_event(
                &row.app,
                &row.service,
                &format!("process {} cannot start: {e}", row.id),
            );
            false
        }
    }
}

/// A process's name in the log stream: `web/web-3f9a2c`, with `@node` on a swarm.
fn log_source(service: &str, process: &str, node: Option<&str>) -> String {
    match node {
        Some(node) => format!("{service}/{process}@{node}"),
        None => format!("{service}/{process}"),
    }
}

/// Follows a container's output into the app's log stream, from where the
/// last collector of this process stopped.
fn ensure_collector(rack: &Arc<Rack>, row: &ProcessRow, container_id: &str) {
    let mut collectors = rack.collectors.lock().unwrap_or_else(|p| p.into_inner());
    collectors.retain(|_, h| !h.is_finished());
    if collectors.contains_key(container_id) {
        return;
    }
    let rack2 = rack.clone();
    let (app, process, service) = (row.app.clone(), row.id.clone(), row.service.clone());
    let id = container_id.to_string();
    let cursor = rack
        .store
        .processes(Some(&row.app))
        .ok()
        .and_then(|ps| ps.into_iter().find(|p| p.id == row.id))
        .map(|p| p.log_cursor)
        .unwrap_or(0);
    // On a swarm the node is named with the process, so one stream tells where
    // each line came from (looked up again until known: a process may be
    // observed before its node is).
    let node = rack.observed(&row.app, &row.id).and_then(|o| o.node);
    let mut source = log_source(&service, &process, node.as_deref());
    let mut node_known = !rack.swarm || source.contains('@');
    let handle = tokio::spawn(async move {
        let mut last = cursor as i128;
        let mut saved = Instant::now();
        let mut saved_at = last;
        let mut lines = rack2.runtime.logs(&id, cursor / 1_000_000_000);
        loop {
            // A quiet spell saves the cursor, so a server restart does not
            // collect (and forward to log drains) the last lines again.
            let line = match tokio::time::timeout(Duration::from_millis(500), lines.next()).await {
                Err(_) => {
                    if last != saved_at {
                        let _ = rack2.store.set_log_cursor(&app, &process, last as i64);
                        saved_at = last;
                        saved = Instant::now();
                    }
                    continue;
                }
                Ok(Some(Ok(line))) => line,
                Ok(_) => break,
            };
            if line.ts_nanos <= last {
                continue;
            }
            last = line.ts_nanos;
            if !node_known && let Some(node) = rack2.observed(&app, &process).and_then(|o| o.node) {
                source = log_source(&service, &process, Some(&node));
                node_known = true;
            }
            rack2
                .logs
                .append_at(&app, line.ts_nanos, &source, &line.text);
            if saved.elapsed() > Duration::from_millis(500) {
                let _ = rack2.store.set_log_cursor(&app, &process, last as i64);
                saved_at = last;
                saved = Instant::now();
            }
        }
        let _ = rack2.store.set_log_cursor(&app, &process, last as i64);
    });
    collectors.insert(container_id.to_string(), handle);
}
