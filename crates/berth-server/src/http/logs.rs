//! `GET /apps/{app}/logs`: the app's log stream as NDJSON, then live lines
//! with `follow=true`.

use super::error::ApiResult;
use super::ndjson;
use crate::apps;
use crate::error::Error;
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
    #[serde(default)]
    follow: bool,
}

pub async fn logs(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    let since = q
        .since
        .map(|s| crate::logs::now_nanos() - i128::from(s) * 1_000_000_000)
        .unwrap_or(0);
    let live = if q.follow {
        Some(rack.logs.subscribe(&app).map_err(Error::from)?)
    } else {
        None
    };
    let past = rack
        .logs
        .read(&app, since, q.service.as_deref())
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
