//! Health: HTTP checks against a process's address, the wait for a new
//! process to pass one, and the monitor that takes failing processes out of
//! the router and puts them back.

use crate::rack::{Observed, Rack};
use berth_core::{Health, ProcessState, Service};
use berth_runtime::ContainerState;
use berth_store::ProcessRow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether a failed check was a refused connection: the process has not
/// bound its port yet, which is normal for the first moments after a start.
pub fn not_listening_yet(error: &str) -> bool {
    error.starts_with("connect ") && error.contains("refused")
}

/// One check: GET `path`; any 2xx or 3xx within `timeout` passes.
pub async fn check(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                format!("connect {addr}: connection refused")
            } else {
                format!("connect {addr}: {e}")
            }
        })?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let read = stream
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if read == 0 {
                break;
            }
            n += read;
        }
        let head = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let status: u16 = head
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
        if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "GET {path} took longer than {}s",
                timeout.as_secs()
            ))
        })
}

/// How often a process is checked while it is new, failing or unhealthy; a
/// healthy one is checked every `health.interval` seconds.
const FAST_INTERVAL: Duration = Duration::from_secs(1);

/// Waits until a freshly started process passes its health check, checking
/// every second whatever its steady `interval`. A process without a port has
/// no check: it passes once it has stayed up for its grace.
pub async fn wait_healthy(rack: &Rack, row: &ProcessRow, svc: &Service) -> Result<(), String> {
    if svc.port.is_none() {
        return stays_up(rack, row, svc.health_grace()).await;
    }
    let health = &svc.health;
    tokio::time::sleep(Duration::from_secs(u64::from(health.grace))).await;
    let interval = FAST_INTERVAL;
    let mut failures = 0;
    let mut last_error;
    loop {
        let observed = rack.observed(&row.app, &row.id).ok_or("process vanished")?;
        match rack.runtime.inspect_container(&observed.container_id).await {
            Ok(Some(info)) => {
                if let ContainerState::Exited { code, oom_killed } = info.state {
                    return Err(exited(row, code, oom_killed, ""));
                }
            }
            Ok(None) => return Err(format!("process {} disappeared from the engine", row.id)),
            Err(e) => return Err(e.to_string()),
        }
        let Some(addr) = observed.addr else {
            return Err(format!(
                "process {} has no address on the app network",
                row.id
            ));
        };
        let host = rack.default_host(&row.app, &row.service);
        match check(
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
                if not_listening_yet(&e) && listening_soon(addr, &host, health, interval).await {
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
async fn listening_soon(addr: SocketAddr, host: &str, health: &Health, interval: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + interval;
    let timeout = Duration::from_secs(u64::from(health.timeout));
    while tokio::time::Instant::now() + FAST_RETRY < deadline {
        tokio::time::sleep(FAST_RETRY).await;
        match check(addr, host, &health.path, timeout).await {
            Ok(_) => return true,
            Err(e) if not_listening_yet(&e) => continue,
            Err(_) => return false,
        }
    }
    false
}

const FAST_RETRY: Duration = Duration::from_millis(50);

/// Checks every active process: one of a routed service by HTTP, every
/// `interval` seconds while it passes and every second while it is failing or
/// out; it is out of the router after `attempts` failures in a row and back in
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
            if svc.port.is_none() {
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
                let passed = check(
                    addr,
                    &host,
                    &health.path,
                    Duration::from_secs(u64::from(health.timeout)),
                )
                .await
                .is_ok();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_not_listening_yet_but_an_error_answer_is_a_failure() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a local port");
        let refused = check(closed, "h", "/", Duration::from_secs(1))
            .await
            .expect_err("nothing listens there");
        assert!(not_listening_yet(&refused), "{refused}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let failed = check(addr, "h", "/health", Duration::from_secs(1))
            .await
            .expect_err("500 fails");
        assert_eq!(failed, "GET /health answered 500");
        assert!(!not_listening_yet(&failed));
    }
}
