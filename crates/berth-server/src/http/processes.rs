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

#[utoipa::path(
    get,
    path = "/apps/{app}/processes",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app's processes and one-offs", body = Vec<berth_api::Process>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Process>>> {
    Ok(Json(processes::list(&rack, &app).await?))
}

#[utoipa::path(
    delete,
    path = "/apps/{app}/processes/{id}",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The process's id")),
    responses(
        (status = 204, description = "Stopped (the reconciler starts it again)"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn stop(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    processes::stop(&rack, &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/apps/{app}/services/{service}/scale",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("service" = String, Path, description = "The service's name")), request_body = berth_api::ScaleRequest,
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
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

#[utoipa::path(
    post,
    path = "/apps/{app}/restart",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop")), request_body = berth_api::RestartRequest,
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
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
#[utoipa::path(
    post,
    path = "/apps/{app}/run",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop")), request_body = berth_api::RunRequest,
    responses(
        (status = 201, description = "The one-off started", body = berth_api::RunStarted),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn run_detached(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<RunRequest>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let started = oneoff::run_detached(&rack, &app, req).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

#[utoipa::path(
    get,
    path = "/apps/{app}/timers",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The promoted release's timers", body = Vec<berth_api::TimerInfo>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn timers(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<TimerInfo>>> {
    Ok(Json(timers::list(&rack, &app)?))
}
