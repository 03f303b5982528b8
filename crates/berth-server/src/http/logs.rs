//! `GET /apps/{app}/logs`: the app's log stream as NDJSON in time order, then
//! live lines with `follow=true`; `GET /rack/logs`: the server's and the
//! router's own logs, the same way.

use super::error::ApiResult;
use super::ndjson;
use crate::apps;
use crate::error::Error;
use crate::logs::{FOLLOW_WINDOW_NANOS, LogFilter, LogSource, Reorder, entry_nanos, now_nanos};
use crate::rack::Rack;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::LogEntry;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Seconds back from now.
    since: Option<u64>,
    /// Only lines older than this many seconds.
    until: Option<u64>,
    service: Option<String>,
    /// Only output of this process.
    process: Option<String>,
    /// build, process, timer, router or system.
    source: Option<String>,
    /// Only lines whose text holds this.
    grep: Option<String>,
    /// Only the last this many stored lines (live lines all follow).
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

#[utoipa::path(
    get,
    path = "/apps/{app}/logs",
    tag = "logs",
    params(("app" = String, Path, description = "The app's name", example = "shop"), LogQuery),
    responses(
        (status = 200, description = "NDJSON, one `LogEntry` per line in time order (then live lines with `follow=true`)", content_type = "application/x-ndjson", body = berth_api::LogEntry),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn logs(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    if let Some(service) = &q.service {
        check_service(&rack, &app, service)?;
    }
    let source = match q.source.as_deref() {
        Some(name) => Some(LogSource::parse(name).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown log source {name:?}; use {}",
                LogSource::NAMES
            ))
        })?),
        None => None,
    };
    let ago = |secs: Option<u64>| {
        secs.map(|s| now_nanos() - i128::from(s) * 1_000_000_000)
            .unwrap_or(0)
    };
    let filter = LogFilter {
        since_nanos: ago(q.since),
        until_nanos: ago(q.until),
        service: q.service.clone(),
        process: q.process.clone(),
        source,
        grep: q.grep.clone().filter(|g| !g.is_empty()),
        tail: q.tail,
    };
    let live_filter = LogFilter {
        tail: None,
        ..filter.clone()
    };
    // A log file can be large: read it off the async workers.
    let reader = rack.clone();
    let read_app = app.clone();
    let (past, live) = tokio::task::spawn_blocking(move || {
        if q.follow {
            reader
                .logs
                .follow(&read_app, &filter)
                .map(|(past, live)| (past, Some(live)))
        } else {
            reader
                .logs
                .read_filtered(&read_app, &filter)
                .map(|past| (past, None))
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("reading the log of app {app} failed: {e}")))?
    .map_err(Error::from)?;
    let (tx, rx) = mpsc::channel::<LogEntry>(1024);
    tokio::spawn(async move {
        let Some(live) = live else {
            for entry in past {
                if tx.send(entry).await.is_err() {
                    return;
                }
            }
            return;
        };
        follow(past, live, live_filter, tx).await;
    });
    Ok(ndjson::lines(rx))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RackLogQuery {
    /// Only the last this many lines (default 100; live lines all follow).
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// How often a followed rack log is looked at for new lines.
const RACK_LOG_POLL: Duration = Duration::from_millis(250);

#[utoipa::path(
    get,
    path = "/rack/logs",
    tag = "logs",
    params(RackLogQuery),
    responses(
        (status = 200, description = "NDJSON, one `LogEntry` per line: the server's own log and the router's in time order (then live lines with `follow=true`)", content_type = "application/x-ndjson", body = berth_api::LogEntry),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody)
    )
)]
pub async fn rack_logs(
    State(rack): State<Arc<Rack>>,
    Query(q): Query<RackLogQuery>,
) -> ApiResult<Response> {
    let read_error = |e: std::io::Error| {
        Error::Internal(format!(
            "cannot read the rack's logs in {}: {e}",
            rack.data_dir.display()
        ))
    };
    let mut logs = crate::logs::rack::RackLogs::new(&rack.data_dir);
    let (logs, mut past) =
        tokio::task::spawn_blocking(move || logs.poll().map(|past| (logs, past)))
            .await
            .map_err(|e| Error::Internal(format!("reading the rack's logs failed: {e}")))?
            .map_err(read_error)?;
    let tail = q.tail.unwrap_or(100);
    past.drain(..past.len().saturating_sub(tail));
    let (tx, rx) = mpsc::channel::<LogEntry>(1024);
    tokio::spawn(async move {
        for entry in past {
            if tx.send(entry).await.is_err() {
                return;
            }
        }
        if !q.follow {
            return;
        }
        let mut logs = logs;
        loop {
            tokio::select! {
                () = tokio::time::sleep(RACK_LOG_POLL) => {}
                () = tx.closed() => return,
            }
            let polled = tokio::task::spawn_blocking(move || {
                let new = logs.poll();
                (logs, new)
            })
            .await;
            let Ok((back, new)) = polled else { return };
            logs = back;
            // A log that cannot be read now (rotated away meanwhile) is tried again.
            for entry in new.unwrap_or_default() {
                if tx.send(entry).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(ndjson::lines(rx))
}

/// Sends the stored lines, then new lines through a [`Reorder`] window, until
/// the client goes away or the app's log ends.
async fn follow(
    past: Vec<LogEntry>,
    mut live: broadcast::Receiver<LogEntry>,
    filter: LogFilter,
    tx: mpsc::Sender<LogEntry>,
) {
    let mut reorder = Reorder::new(FOLLOW_WINDOW_NANOS);
    // The newest stored lines wait in the window too, so a line of the same
    // moment that arrives just after the read is still sent before them.
    let recent = now_nanos() - FOLLOW_WINDOW_NANOS;
    let arrived = now_nanos();
    for entry in past {
        if entry_nanos(&entry) > recent {
            reorder.push(entry, arrived);
        } else if tx.send(entry).await.is_err() {
            return;
        }
    }
    loop {
        let wait = reorder
            .next_due()
            .map(|due| Duration::from_nanos(u64::try_from(due - now_nanos()).unwrap_or(0)));
        tokio::select! {
            got = live.recv() => match got {
                Ok(entry) => {
                    if filter.admits(&entry, Some(entry_nanos(&entry))) {
                        reorder.push(entry, now_nanos());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    for entry in reorder.take_due(i128::MAX) {
                        if tx.send(entry).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
            },
            () = sleep_for(wait) => {}
            () = tx.closed() => return,
        }
        for entry in reorder.take_due(now_nanos()) {
            if tx.send(entry).await.is_err() {
                return;
            }
        }
    }
}

/// Sleeps for `wait`, or forever when nothing is held.
async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Refuses a service the app neither runs (its promoted release) nor has
/// lines of, naming the ones it has: an empty answer would look like a quiet
/// service.
fn check_service(rack: &Rack, app: &str, service: &str) -> Result<(), Error> {
    berth_core::validate_service_name(service)?;
    let release = rack.store.app(app)?.release;
    let running: Vec<String> = match rack.current_manifest(app)? {
        Some(manifest) => manifest.services.keys().cloned().collect(),
        None => Vec::new(),
    };
    if running.iter().any(|s| s == service) || rack.logs.has_lines_of(app, service)? {
        return Ok(());
    }
    let logged: Vec<String> = rack
        .logs
        .services(app)?
        .into_iter()
        .filter(|s| !running.contains(s))
        .collect();
    let mut known = Vec::new();
    if let Some(release) = &release
        && !running.is_empty()
    {
        known.push(format!("{} (release {release})", running.join(", ")));
    }
    if !logged.is_empty() {
        known.push(format!("{} (in the log only)", logged.join(", ")));
    }
    if known.is_empty() {
        return Err(Error::NotFound(format!(
            "app {app} has no service {service}: it has no release and no service has written to its log yet; \
             leave out --service to see every line"
        )));
    }
    Err(Error::NotFound(format!(
        "app {app} has no service {service}; its services are: {}; pick one with --service, \
         or leave it out to see every line",
        known.join("; ")
    )))
}
