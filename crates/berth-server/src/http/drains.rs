//! `/drains` (rack-wide log drains, admin) and `/apps/{app}/drains` (an app's,
//! its deployers).

use super::error::ApiResult;
use crate::drains;
use crate::rack::Rack;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_api::{AddDrain, DrainInfo};
use std::sync::Arc;

pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<DrainInfo>>> {
    Ok(Json(drains::list(&rack, None)?))
}

pub async fn add(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<AddDrain>,
) -> ApiResult<(StatusCode, Json<DrainInfo>)> {
    Ok((StatusCode::CREATED, Json(drains::add(&rack, None, &req)?)))
}

pub async fn remove(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    drains::remove(&rack, None, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_app(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<DrainInfo>>> {
    Ok(Json(drains::list(&rack, Some(&app))?))
}

pub async fn add_app(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<AddDrain>,
) -> ApiResult<(StatusCode, Json<DrainInfo>)> {
    Ok((
        StatusCode::CREATED,
        Json(drains::add(&rack, Some(&app), &req)?),
    ))
}

pub async fn remove_app(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    drains::remove(&rack, Some(&app), &id)?;
    Ok(StatusCode::NO_CONTENT)
}
