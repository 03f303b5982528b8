//! `/apps/{app}/resources`: listing, revealing URLs, backup and restore, upgrades.

use super::error::ApiResult;
use super::ndjson::stream_work;
use crate::rack::Rack;
use crate::resource_upgrade;
use crate::resources;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::{ResourceEntry, ResourceUpgrade, ResourceUrl};
use futures_util::StreamExt;
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/apps/{app}/resources",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The resources of the app's promoted release, passwords masked", body = Vec<berth_api::ResourceEntry>),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<ResourceEntry>>> {
    Ok(Json(resources::list(&rack, &app)?))
}

#[utoipa::path(
    get,
    path = "/apps/{app}/resources/{name}",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")),
    responses(
        (status = 200, description = "The resource, its password masked", body = berth_api::ResourceEntry),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<ResourceEntry>> {
    Ok(Json(resources::get(&rack, &app, &name)?.0))
}

/// `GET .../url`: the URL with its password (audited: it needs the deploy role).
#[utoipa::path(
    get,
    path = "/apps/{app}/resources/{name}/url",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")),
    responses(
        (status = 200, description = "The resource's URL with its password", body = berth_api::ResourceUrl),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn url(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<ResourceUrl>> {
    Ok(Json(ResourceUrl {
        url: resources::reveal(&rack, &app, &name)?,
    }))
}

/// `GET .../backup`: a logical dump.
#[utoipa::path(
    get,
    path = "/apps/{app}/resources/{name}/backup",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")),
    responses(
        (status = 200, description = "A logical dump (postgres: `pg_dump --format=custom`)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
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
#[utoipa::path(
    put,
    path = "/apps/{app}/resources/{name}/backup",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A dump made by the backup route"),
    responses(
        (status = 204, description = "Restored into the resource"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
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

/// `POST .../upgrade`: a backup first, then the resource on another image.
#[utoipa::path(
    post,
    path = "/apps/{app}/resources/{name}/upgrade",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")), request_body = berth_api::ResourceUpgrade,
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` (a `ResourceUpgraded`) or `error` (the old image runs again)", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message (the image it runs, an image the engine does not have)", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn upgrade(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
    Json(req): Json<ResourceUpgrade>,
) -> ApiResult<Response> {
    // Before the stream starts, so a refusal is a 4xx status; again under the lock.
    resource_upgrade::check(&rack, &app, &name, &req.image).await?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        resource_upgrade::upgrade(&rack, &app, &name, &req.image, &progress).await
    })
}
