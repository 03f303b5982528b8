//! `/apps/{app}/volumes`: listing, backup and restore of volume content.

use super::error::ApiResult;
use crate::rack::Rack;
use crate::{apps, volumes};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::VolumeEntry;
use futures_util::StreamExt;
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/apps/{app}/volumes",
    tag = "volumes",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app's volumes", body = Vec<berth_api::VolumeEntry>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<VolumeEntry>>> {
    apps::get(&rack, &app)?;
    Ok(Json(volumes::list(&rack, &app).await?))
}

/// `GET .../archive`: a tar of the volume's content.
#[utoipa::path(
    get,
    path = "/apps/{app}/volumes/{name}/archive",
    tag = "volumes",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The volume's name")),
    responses(
        (status = 200, description = "A tar of the volume's content", content_type = "application/x-tar", body = super::openapi::Tar),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn backup(
    State(rack): State<Arc<Rack>>,
    Path((app, volume)): Path<(String, String)>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    let tar = volumes::backup(&rack, &app, &volume).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(tar),
    )
        .into_response())
}

/// `PUT .../archive` (body: tar): extracted into the volume.
#[utoipa::path(
    put,
    path = "/apps/{app}/volumes/{name}/archive",
    tag = "volumes",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The volume's name")), request_body(content = super::openapi::Tar, content_type = "application/x-tar", description = "A tar archive"),
    responses(
        (status = 204, description = "Extracted into the volume"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 413, description = "The upload is larger than --max-upload", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody),
        (status = 507, description = "The disk is full", body = berth_api::ErrorBody)
    )
)]
pub async fn restore(
    State(rack): State<Arc<Rack>>,
    Path((app, volume)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    apps::get(&rack, &app)?;
    let tar = body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other))
        .boxed();
    volumes::restore(&rack, &app, &volume, tar).await?;
    Ok(StatusCode::NO_CONTENT)
}
