//! Uploads that build and deploy (`/builds`, `/deploy`, `/image`), and the
//! build listings.

use super::error::ApiResult;
use super::ndjson::stream_work;
use super::spool::spool;
use crate::builds::{self, ImageUpload};
use crate::error::Error;
use crate::rack::Rack;
use crate::{apps, lifecycle, releases, views};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::{Build, BuildResult};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    manifest: Option<String>,
}

/// Spools and checks a source upload before the stream starts, so a bad
/// upload is a 4xx status.
async fn open_upload(
    rack: &Rack,
    app: &str,
    q: UploadQuery,
    body: Body,
) -> ApiResult<builds::Source> {
    apps::get(rack, app)?;
    let tar = spool(rack, body).await?;
    let manifest = q.manifest.unwrap_or_else(|| "berth.yml".into());
    Ok(builds::open_checked(rack, tar, manifest).await?)
}

/// `POST /apps/{app}/builds`: build into a new release, not promoted.
#[utoipa::path(
    post,
    path = "/apps/{app}/builds",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop"), UploadQuery), request_body(content = super::openapi::Tar, content_type = "application/x-tar", description = "A tar archive"),
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 413, description = "The upload is larger than --max-upload", body = berth_api::ErrorBody),
        (status = 507, description = "The disk is full", body = berth_api::ErrorBody)
    )
)]
pub async fn create(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    let source = open_upload(&rack, &app, q, body).await?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        let (build, release) = builds::build_upload(&rack, &app, &source, &progress).await?;
        Ok(BuildResult {
            build: views::build(&build),
            release: views::release(&release),
        })
    })
}

/// `POST /apps/{app}/deploy`: build, then roll the release out.
#[utoipa::path(
    post,
    path = "/apps/{app}/deploy",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop"), UploadQuery), request_body(content = super::openapi::Tar, content_type = "application/x-tar", description = "A tar archive"),
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 413, description = "The upload is larger than --max-upload", body = berth_api::ErrorBody),
        (status = 507, description = "The disk is full", body = berth_api::ErrorBody)
    )
)]
pub async fn deploy(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    let source = open_upload(&rack, &app, q, body).await?;
    // A host another app serves is refused before the build; the rollout checks
    // again, under the lock that makes its claim.
    lifecycle::domains::check(&rack, &app, &source.manifest)?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        let (_, release) = builds::build_upload(&rack, &app, &source, &progress).await?;
        releases::promote(&rack, &app, &release.id, &progress).await
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    image: String,
    manifest_text: Option<String>,
}

/// `POST /apps/{app}/image`: body is a `docker save` tar, released and rolled out.
#[utoipa::path(
    post,
    path = "/apps/{app}/image",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ImageQuery), request_body(content = super::openapi::Tar, content_type = "application/x-tar", description = "A `docker save` tar"),
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 413, description = "The upload is larger than --max-upload", body = berth_api::ErrorBody),
        (status = 507, description = "The disk is full", body = berth_api::ErrorBody)
    )
)]
pub async fn deploy_image(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<ImageQuery>,
    body: Body,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    let upload = ImageUpload {
        image: q.image,
        manifest_text: q.manifest_text,
    };
    // Bad input, and hosts another app serves, are refused before anything is loaded.
    upload.check()?;
    if let Some(text) = &upload.manifest_text {
        let manifest = berth_core::parse_manifest("berth.yml", text).map_err(Error::from)?;
        lifecycle::domains::check(&rack, &app, &manifest)?;
    }
    let tar = spool(&rack, body).await?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        let release = builds::release_image(&rack, &app, &upload, tar, &progress).await?;
        releases::promote(&rack, &app, &release.id, &progress).await
    })
}

/// `POST /apps/{app}/image/layers` (body: chain ids): those the engine has.
#[utoipa::path(
    post,
    path = "/apps/{app}/image/layers",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop")), request_body(content = Vec<String>, description = "Layer chain ids"),
    responses(
        (status = 200, description = "The chain ids the engine has", body = Vec<String>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn present_layers(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(chains): Json<Vec<String>>,
) -> ApiResult<Json<Vec<String>>> {
    apps::get(&rack, &app)?;
    Ok(Json(builds::present_layers(&rack, chains).await?))
}

#[utoipa::path(
    get,
    path = "/apps/{app}/builds",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app's builds", body = Vec<berth_api::Build>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Build>>> {
    apps::get(&rack, &app)?;
    Ok(Json(
        rack.store.builds(&app)?.iter().map(views::build).collect(),
    ))
}

/// `GET /apps/{app}/builds/{id}/logs`: one build's output, as text.
#[utoipa::path(
    get,
    path = "/apps/{app}/builds/{id}/logs",
    tag = "builds",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build's output", content_type = "text/plain", body = String),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn logs(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<String> {
    apps::get(&rack, &app)?;
    rack.store.build(&app, &id)?;
    let source = format!("build/{id}");
    let lines = rack
        .logs
        .read(&app, 0, None)
        .map_err(crate::error::Error::from)?;
    Ok(lines
        .into_iter()
        .filter(|e| e.source == source)
        .map(|e| e.text + "\n")
        .collect())
}
