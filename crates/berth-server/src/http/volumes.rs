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

pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<VolumeEntry>>> {
    apps::get(&rack, &app)?;
    Ok(Json(volumes::list(&rack, &app).await?))
}

/// `GET .../archive`: a tar of the volume's content.
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
