//! Processes: `ps`, stopping one, scale, restart, detached runs and timers.

use super::error::ApiResult;
use super::ndjson::stream_work;
use crate::error::Error;
use crate::rack::Rack;
use crate::{apps, lifecycle, oneoff, processes, timers};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::{Process, RestartRequest, RunRequest, RunStarted, ScaleRequest, TimerInfo};
use std::collections::BTreeSet;
use std::sync::Arc;

pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Process>>> {
    Ok(Json(processes::list(&rack, &app).await?))
}

pub async fn stop(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    processes::stop(&rack, &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn scale(
    State(rack): State<Arc<Rack>>,
    Path((app, service)): Path<(String, String)>,
    Json(req): Json<ScaleRequest>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    // Checked before the stream starts, so an unknown service is a 404 status.
    apps::check_service(&rack, &app, &service)?;
    if req.count.is_none() && req.memory.is_none() && req.cpu.is_none() {
        return Err(
            Error::Invalid("nothing to scale; give --count, --memory or --cpu".into()).into(),
        );
    }
    stream_work(rack, app.clone(), move |rack, progress| async move {
        lifecycle::scale(&rack, &app, &service, &req, &progress).await
    })
}

pub async fn restart(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<RestartRequest>,
) -> ApiResult<Response> {
    let row = apps::get(&rack, &app)?;
    let Some(current) = row.release else {
        return Err(
            Error::Conflict(format!("app {app} has no release yet; deploy it first")).into(),
        );
    };
    if let Some(service) = &req.service {
        apps::check_service(&rack, &app, service)?;
    }
    stream_work(rack, app.clone(), move |rack, progress| async move {
        let release = rack.store.release(&app, &current)?;
        let only = req.service.map(|s| BTreeSet::from([s]));
        lifecycle::rollout(&rack, &release, only.as_ref(), &progress).await
    })
}

/// `POST /apps/{app}/run`: a detached one-off.
pub async fn run_detached(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<RunRequest>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let started = oneoff::run_detached(&rack, &app, req).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

pub async fn timers(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<TimerInfo>>> {
    Ok(Json(timers::list(&rack, &app)?))
}
