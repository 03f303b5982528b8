//! `GET /apps/{app}/logs`: the app's log stream as NDJSON in time order, then
//! live lines with `follow=true`.

use super::error::ApiResult;
use super::ndjson;
use crate::apps;
use crate::error::Error;
use crate::logs::LogFilter;
use crate::rack::Rack;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::LogEntry;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Deserialize)]
pub struct LogQuery {
    /// Seconds back from now.
    since: Option<u64>,
    service: Option<String>,
    /// Only the last this many stored lines (live lines all follow).
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

pub async fn logs(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    if let Some(service) = &q.service {
        check_service(&rack, &app, service)?;
    }
    let filter = LogFilter {
        since_nanos: q
            .since
            .map(|s| crate::logs::now_nanos() - i128::from(s) * 1_000_000_000)
            .unwrap_or(0),
        service: q.service.clone(),
        tail: q.tail,
    };
    let live = if q.follow {
        Some(rack.logs.subscribe(&app).map_err(Error::from)?)
    } else {
        None
    };
    // A log file can be large: read it off the async workers.
    let reader = rack.clone();
    let read_app = app.clone();
    let past = tokio::task::spawn_blocking(move || reader.logs.read_filtered(&read_app, &filter))
        .await
        .map_err(|e| Error::Internal(format!("reading the log of app {app} failed: {e}")))?
        .map_err(Error::from)?;
    let (tx, rx) = mpsc::channel::<LogEntry>(1024);
    tokio::spawn(async move {
        let last = past.last().map(|e| e.ts.clone()).unwrap_or_default();
        for entry in past {
            if tx.send(entry).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        loop {
            match live.recv().await {
                Ok(entry) => {
                    if entry.ts <= last && !last.is_empty() {
                        continue;
                    }
                    if crate::logs::matches(&entry, 0, q.service.as_deref())
                        && tx.send(entry).await.is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Ok(ndjson::lines(rx))
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
