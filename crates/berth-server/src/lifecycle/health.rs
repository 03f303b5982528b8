//! Health: HTTP checks against a process's address, the wait for a new
//! process to pass one, and the monitor that takes failing processes out of
//! the router and puts them back.

use crate::rack::{Observed, Rack};
use berth_core::{Health, ProcessState, Service};
use berth_runtime::ContainerState;
use berth_runtime::probe::not_listening_yet;
use berth_store::ProcessRow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a process is checked while it is new, failing or unhealthy; a
/// healthy one is checked every `health.interval` seconds.
const FAST_INTERVAL: Duration = Duration::from_secs(1);

/// How long a new process's check may wait for berth to see it (its engine
/// answering, its address known) before the wait fails.
const LOOK_PATIENCE: Duration = Duration::from_secs(30);

/// Waits until a freshly started process passes its health check, checking
/// every second whatever its steady `interval`. A process without a port has
/// no check: it passes once it has stayed up for its grace.
pub async fn wait_healthy(rack: &Rack, row: &ProcessRow, svc: &Service) -> Result<(), String> {
    if let Some(res) = &svc.resource {
        return resource_ready(rack, row, res.kind, &svc.health).await;
    }
    if svc.port.is_none() {
        return stays_up(rack, row, svc.health_grace()).await;
    }
    let health = &svc.health;
    tokio::time::sleep(Duration::from_secs(u64::from(health.grace))).await;
    let interval = FAST_INTERVAL;
    let mut failures = 0;
    let mut last_error;
    // Since when berth could not look at the process (see below).
    let mut blind_since: Option<Instant> = None;
    loop {
        let observed = rack.observed(&row.app, &row.id).ok_or("process vanished")?;
        // A failed look (an engine on another node that did not answer just
        // now) or no address yet (a swarm node that has not reported it) is
        // berth not seeing the process, not the process failing: the check
        // is postponed, for at most LOOK_PATIENCE.
        let looked = match rack.runtime.inspect_container(&observed.container_id).await {
            Ok(Some(info)) => {
                if let ContainerState::Exited { code, oom_killed } = info.state {
                    return Err(exited(row, code, oom_killed, ""));
                }
                if observed.addr.is_none() && info.ip.is_some() {
                    rack.observe(&row.app, &row.id, &info, svc.port, false);
                }
                observed
                    .addr
                    .or_else(|| Some(SocketAddr::new(info.ip?, svc.port?)))
                    .ok_or_else(|| format!("process {} has no address on the app network", row.id))
            }
            Ok(None) => return Err(format!("process {} disappeared from the engine", row.id)),
            Err(e) => Err(e.to_string()),
        };
        let addr = match looked {
            Ok(addr) => {
                blind_since = None;
                addr
            }
            Err(e) => {
                if blind_since.get_or_insert_with(Instant::now).elapsed() >= LOOK_PATIENCE {
                    return Err(e);
                }
                tracing::debug!(process = %row.id, "health check postponed: {e}");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        let host = rack.default_host(&row.app, &row.service);
        match rack
            .runtime
            .probe(
                addr,
                &host,
                &health.path,
                Duration::from_secs(u64::from(health.timeout)),
            )
            .await
        {
            Ok(_) => {
                passed(rack, row, health);
                return Ok(());
            }
            Err(e) => {
                if not_listening_yet(&e)
                    && listening_soon(rack, addr, &host, health, interval).await
                {
                    passed(rack, row, health);
                    return Ok(());
                }
                failures += 1;
                last_error = e;
            }
        }
        if failures >= health.attempts {
            return Err(format!(
                "process {} failed its health check {} times: {last_error}",
                row.id, health.attempts
            ));
        }
        tokio::time::sleep(interval).await;
    }
}

/// A new resource process passes once it answers its protocol
/// (`resources::check`) on its address, checked every second for at most
/// `attempts` seconds (a first start initialises the data directory).
async fn resource_ready(
    rack: &Rack,
    row: &ProcessRow,
    kind: berth_core::ResourceKind,
    health: &Health,
) -> Result<(), String> {
    let password = rack
        .store
        .resource_password(&row.app, &row.service)
        .map_err(|e| e.to_string())?;
    let mut last_error = String::from("no address yet");
    for _ in 0..health.attempts.max(1) {
        let observed = rack.observed(&row.app, &row.id).ok_or("process vanished")?;
        match rack.runtime.inspect_container(&observed.container_id).await {
            Ok(Some(info)) => {
                if let ContainerState::Exited { code, oom_killed } = info.state {
                    return Err(exited(row, code, oom_killed, ""));
                }
                if let Some(ip) = info.ip {
                    let addr = SocketAddr::new(ip, kind.port());
                    let timeout = Duration::from_secs(u64::from(health.timeout));
                    match crate::resources::check(kind, addr, &password, timeout).await {
                        Ok(()) => {
                            passed(rack, row, health);
                            return Ok(());
                        }
                        Err(e) => last_error = e,
                    }
                }
            }
            Ok(None) => return Err(format!("process {} disappeared from the engine", row.id)),
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(FAST_INTERVAL).await;
    }
    Err(format!(
        "resource {} ({}) did not answer its {} protocol check within {} s: {last_error}",
        row.service,
        row.id,
        kind.name(),
        health.attempts
    ))
}

/// A new process passed: routable, and counted as just checked, so the
/// monitor's next check comes after the steady interval.
fn passed(rack: &Rack, row: &ProcessRow, health: &Health) {
    rack.set_healthy(&row.app, &row.id, true);
    rack.record_check(&row.app, &row.id, true, health.attempts);
}

/// `process X exited with code N`, with why when memory ran out.
fn exited(row: &ProcessRow, code: Option<i64>, oom_killed: bool, when: &str) -> String {
    let why = if oom_killed {
        " (killed: out of memory; raise it with `berth scale --memory`)"
    } else {
        ""
    };
    format!(
        "process {} exited with code {}{when}{why}",
        row.id,
        code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
    )
}

/// A new process without a port passes once it has stayed up `grace` seconds;
/// one that exits before has failed, like a web process that never answers.
async fn stays_up(rack: &Rack, row: &ProcessRow, grace: u32) -> Result<(), String> {
    let observed = rack.observed(&row.app, &row.id).ok_or("process vanished")?;
    let container = observed.container_id;
    let waited = tokio::time::timeout(
        Duration::from_secs(u64::from(grace)),
        rack.runtime.wait_container(&container),
    )
    .await;
    if let Ok(Err(e)) = waited {
        return Err(e.to_string());
    }
    let when = format!(
        " within {grace} s of starting (a process without a port must stay up `health.grace` seconds to count as started)"
    );
    match rack.runtime.inspect_container(&container).await {
        Ok(Some(info)) => match info.state {
            ContainerState::Running => {
                rack.set_healthy(&row.app, &row.id, true);
                Ok(())
            }
            ContainerState::Exited { code, oom_killed } => {
                Err(exited(row, code, oom_killed, &when))
            }
            other => Err(format!(
                "process {} is {other:?} after {grace} s instead of running",
                row.id
            )),
        },
        Ok(None) => Err(format!("process {} disappeared from the engine", row.id)),
        Err(e) => Err(e.to_string()),
    }
}

/// A process that refuses connections is usually still starting: rather than
/// sleep a whole interval before the next check (most of a fast deploy's
/// time), re-check every 50 ms until the interval is over. Only refusals are
/// retried this fast, so an app that answers with errors is not hammered.
async fn listening_soon(
    rack: &Rack,
    addr: SocketAddr,
    host: &str,
    health: &Health,
    interval: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + interval;
    let timeout = Duration::from_secs(u64::from(health.timeout));
    while tokio::time::Instant::now() + FAST_RETRY < deadline {
        tokio::time::sleep(FAST_RETRY).await;
        match rack.runtime.probe(addr, host, &health.path, timeout).await {
            Ok(_) => return true,
            Err(e) if not_listening_yet(&e) => continue,
            Err(_) => return false,
        }
    }
    false
}

const FAST_RETRY: Duration = Duration::from_millis(50);

/// Checks every active process: one of a routed service by HTTP, a resource
/// by its protocol, every `interval` seconds while it passes and every second
/// while it is failing or out; it is out of the router after `attempts` failures in a row and back in
/// after one pass. A process without a port counts as healthy again once it
/// has stayed up for its grace (after the reconciler replaced it).
pub async fn monitor(rack: Arc<Rack>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(rows) = rack.store.processes(None) else {
            continue;
        };
        let mut checks = Vec::new();
        for row in rows.into_iter().filter(|r| r.state == ProcessState::Active) {
            let Some(o) = rack.observed(&row.app, &row.id) else {
                continue;
            };
            if !o.running {
                continue;
            }
            let Some(svc) = rack.service_of(&row) else {
                continue;
            };
            let resource = svc.resource.as_ref().map(|r| r.kind);
            if svc.port.is_none() && resource.is_none() {
                stayed_up(&rack, &row, &o, svc.health_grace()).await;
                continue;
            }
            let Some(addr) = o.addr else { continue };
            let health = svc.health;
            if o.last_check
                .is_some_and(|t| t.elapsed() < next_check(&o, &health))
            {
                continue;
            }
            let rack = rack.clone();
            checks.push(async move {
                let host = rack.default_host(&row.app, &row.service);
                let timeout = Duration::from_secs(u64::from(health.timeout));
                let passed = match resource {
                    // A resource speaks its protocol, not HTTP.
                    Some(kind) => match rack.store.resource_password(&row.app, &row.service) {
                        Ok(password) => crate::resources::check(kind, addr, &password, timeout)
                            .await
                            .is_ok(),
                        Err(_) => false,
                    },
                    None => rack
                        .runtime
                        .probe(addr, &host, &health.path, timeout)
                        .await
                        .is_ok(),
                };
                let changed = rack
                    .record_check(&row.app, &row.id, passed, health.attempts)
                    .unwrap_or(false);
                if changed {
                    let text = if passed {
                        "passes its health check again"
                    } else {
                        "fails its health check; taken out of the router"
                    };
                    rack.logs.service_event(
                        &row.app,
                        &row.service,
                        &format!("process {} {text}", row.id),
                    );
                }
                changed
            });
        }
        let changed = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .any(|c| c);
        if changed {
            rack.refresh_routes();
        }
    }
}

/// How long after its last check a process is checked again: a healthy one
/// that passed calmly (berth's probes land in the app's log), any other soon.
fn next_check(o: &Observed, health: &Health) -> Duration {
    if o.healthy && o.failures == 0 {
        Duration::from_secs(u64::from(health.interval.max(1)))
    } else {
        FAST_INTERVAL
    }
}

/// A running process without a port that is not healthy yet (a replacement)
/// becomes healthy once it has run for `grace` seconds.
async fn stayed_up(rack: &Rack, row: &ProcessRow, o: &Observed, grace: u32) {
    if o.healthy {
        return;
    }
    // Without a start time (not known for what the engine lists) there is
    // nothing to wait for.
    let up_for = o
        .started
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|started| chrono::Utc::now().signed_duration_since(started));
    if up_for.is_some_and(|d| d < chrono::TimeDelta::seconds(i64::from(grace))) {
        return;
    }
    // What is observed lags behind an exit by up to a reconcile pass: asked.
    let still_running = matches!(
        rack.runtime.inspect_container(&o.container_id).await,
        Ok(Some(info)) if info.state == ContainerState::Running
    );
    if still_running && rack.set_healthy(&row.app, &row.id, true) {
        rack.logs.service_event(
            &row.app,
            &row.service,
            &format!(
                "process {} has stayed up for {grace} s; counted healthy again",
                row.id
            ),
        );
    }
}
