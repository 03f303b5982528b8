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

#[utoipa::path(
    get,
    path = "/drains",
    tag = "drains",
    responses(
        (status = 200, description = "Every drain", body = Vec<berth_api::DrainInfo>)
    )
)]
pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<DrainInfo>>> {
    Ok(Json(drains::list(&rack, None)?))
}

#[utoipa::path(
    post,
    path = "/drains",
    tag = "drains",
    request_body = berth_api::AddDrain,
    responses(
        (status = 201, description = "The new rack-wide drain", body = berth_api::DrainInfo),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody)
    )
)]
pub async fn add(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<AddDrain>,
) -> ApiResult<(StatusCode, Json<DrainInfo>)> {
    Ok((StatusCode::CREATED, Json(drains::add(&rack, None, &req)?)))
}

#[utoipa::path(
    delete,
    path = "/drains/{id}",
    tag = "drains",
    params(("id" = String, Path, description = "The drain's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn remove(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    drains::remove(&rack, None, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/apps/{app}/drains",
    tag = "drains",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app's drains", body = Vec<berth_api::DrainInfo>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn list_app(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<DrainInfo>>> {
    Ok(Json(drains::list(&rack, Some(&app))?))
}

#[utoipa::path(
    post,
    path = "/apps/{app}/drains",
    tag = "drains",
    params(("app" = String, Path, description = "The app's name", example = "shop")), request_body = berth_api::AddDrain,
    responses(
        (status = 201, description = "The new drain", body = berth_api::DrainInfo),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
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

#[utoipa::path(
    delete,
    path = "/apps/{app}/drains/{id}",
    tag = "drains",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The drain's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn remove_app(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    drains::remove(&rack, Some(&app), &id)?;
    Ok(StatusCode::NO_CONTENT)
}
