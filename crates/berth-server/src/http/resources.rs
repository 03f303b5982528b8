//! `/apps/{app}/resources`: listing, revealing URLs, backup and restore.

use super::error::ApiResult;
use crate::rack::Rack;
use crate::resources;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::{ResourceEntry, ResourceUrl};
use futures_util::StreamExt;
use std::sync::Arc;

pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<ResourceEntry>>> {
    Ok(Json(resources::list(&rack, &app)?))
}

pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<ResourceEntry>> {
    Ok(Json(resources::get(&rack, &app, &name)?.0))
}

/// `GET .../url`: the URL with its password (audited: it needs the deploy role).
pub async fn url(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<ResourceUrl>> {
    Ok(Json(ResourceUrl {
        url: resources::reveal(&rack, &app, &name)?,
    }))
}

/// `GET .../backup`: a logical dump.
pub async fn backup(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let dump = resources::backup(&rack, &app, &name).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(dump),
    )
        .into_response())
}

/// `PUT .../backup` (body: a dump): restored into the resource.
pub async fn restore(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    let dump = body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other))
        .boxed();
    resources::restore(&rack, &app, &name, dump).await?;
    Ok(StatusCode::NO_CONTENT)
}
