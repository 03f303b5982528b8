//! `POST /rack/update`, `GET /rack/updates`, `GET /rack/updates/{id}`.

use super::error::ApiResult;
use crate::error::Error;
use crate::rack::Rack;
use crate::update::NewBinary;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_api::RackUpdate;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// With `sha256`, the body is the new binary; without, the new binary is
/// already at the running one's path.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// The SHA-256 (hex) of the uploaded binary.
    sha256: Option<String>,
    /// Seconds the new server may take to get ready before the update is
    /// rolled back (5 to 600; default 60).
    timeout: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/rack/update",
    tag = "rack",
    params(UpdateQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The new berth binary (with `sha256`), or nothing"),
    responses(
        (status = 202, description = "The update started: the server hands over; follow it with `GET /rack/updates/{id}`", body = berth_api::RackUpdate),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 409, description = "An update is already under way", body = berth_api::ErrorBody),
        (status = 413, description = "The binary is over --max-upload", body = berth_api::ErrorBody)
    )
)]
pub async fn start(
    State(rack): State<Arc<Rack>>,
    Query(q): Query<UpdateQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<RackUpdate>)> {
    let timeout = q.timeout.unwrap_or(60);
    if !(5..=600).contains(&timeout) {
        return Err(Error::Invalid(format!(
            "timeout {timeout} is out of range; give 5 to 600 seconds"
        ))
        .into());
    }
    let binary = match q.sha256 {
        Some(sha256) => NewBinary::Uploaded {
            path: super::spool::spool(&rack, body).await?,
            sha256,
        },
        None => NewBinary::InPlace,
    };
    let row = crate::update::start(&rack, binary, Duration::from_secs(timeout)).await?;
    Ok((StatusCode::ACCEPTED, Json(crate::views::rack_update(row))))
}

#[utoipa::path(
    get,
    path = "/rack/updates",
    tag = "rack",
    responses(
        (status = 200, description = "Every update of the rack, newest first", body = Vec<berth_api::RackUpdate>)
    )
)]
pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<RackUpdate>>> {
    let rows = rack.store.updates()?;
    Ok(Json(
        rows.into_iter().map(crate::views::rack_update).collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/rack/updates/{id}",
    tag = "rack",
    params(("id" = String, Path, description = "The update's id", example = "u-3f9a2c01")),
    responses(
        (status = 200, description = "The update", body = berth_api::RackUpdate),
        (status = 404, description = "No such update", body = berth_api::ErrorBody)
    )
)]
pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<Json<RackUpdate>> {
    match rack.store.update(&id)? {
        Some(row) => Ok(Json(crate::views::rack_update(row))),
        None => {
            Err(Error::NotFound(format!("no update {id}; `berth rack releases` lists them")).into())
        }
    }
}
