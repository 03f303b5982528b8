//! Releases and the environment: listing, promote, rollback, info, env changes.

use super::error::ApiResult;
use super::ndjson::stream_work;
use crate::rack::Rack;
use crate::{apps, lifecycle, releases, views};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::{EffectiveEnv, EnvChange, EnvKeys, Release, ReleaseInfo};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `?force=true` of promote and rollback.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    get,
    path = "/apps/{app}/releases",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app's releases", body = Vec<berth_api::Release>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Release>>> {
    apps::get(&rack, &app)?;
    Ok(Json(
        rack.store
            .releases(&app)?
            .iter()
            .map(views::release)
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/apps/{app}/releases/{id}/promote",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The release's id"), ForceQuery),
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn promote(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    let release = rack.store.release(&app, &id)?;
    // Before the stream starts, so a refusal is a 409 status.
    lifecycle::domains::check_release(&rack, &release, &*rack.manifest(&release)?)?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        releases::promote_asked(&rack, &app, &id, q.force, &progress).await
    })
}

#[utoipa::path(
    post,
    path = "/apps/{app}/releases/{id}/rollback",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The release's id"), ForceQuery),
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn rollback(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    // Before the stream starts, so a refusal is a 409 status.
    releases::check_rollback(&rack, &app, &id, q.force)?;
    let old = rack.store.release(&app, &id)?;
    lifecycle::domains::check(&rack, &app, &*rack.manifest(&old)?)?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        releases::rollback(&rack, &app, &id, q.force, &progress).await
    })
}

#[utoipa::path(
    get,
    path = "/apps/{app}/releases/{id}/info",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The release's id")),
    responses(
        (status = 200, description = "The release and what changed since the one before", body = berth_api::ReleaseInfo),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<ReleaseInfo>> {
    Ok(Json(releases::info(&rack, &app, &id)?))
}

/// `GET /apps/{app}/env`: the values (a `deploy` role reads them, see `authz`).
#[utoipa::path(
    get,
    path = "/apps/{app}/env",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The values set with `env set`", body = std::collections::BTreeMap<String, String>),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let row = apps::get(&rack, &app)?;
    Ok(Json(rack.store.env(&app, row.env_version)?))
}

/// `GET /apps/{app}/env/effective`: the values with the manifest's defaults
/// and where each comes from (a `deploy` role reads them, see `authz`).
#[utoipa::path(
    get,
    path = "/apps/{app}/env/effective",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "Every value and where it comes from", body = berth_api::EffectiveEnv),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn effective_env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<EffectiveEnv>> {
    Ok(Json(releases::effective_env(&rack, &app)?))
}

/// `GET /apps/{app}/env/keys`: the keys only, never values (a `read` role lists them).
#[utoipa::path(
    get,
    path = "/apps/{app}/env/keys",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The keys, never values", body = berth_api::EnvKeys),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn env_keys(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<EnvKeys>> {
    Ok(Json(releases::env_keys(&rack, &app)?))
}

#[utoipa::path(
    post,
    path = "/apps/{app}/env",
    tag = "releases",
    params(("app" = String, Path, description = "The app's name", example = "shop")), request_body = berth_api::EnvChange,
    responses(
        (status = 200, description = "NDJSON, one `Event` per line; the last is `result` or `error`", content_type = "application/x-ndjson", body = berth_api::Event),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn change_env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(change): Json<EnvChange>,
) -> ApiResult<Response> {
    apps::get(&rack, &app)?;
    releases::check_env_change(&change)?;
    // Checked again under the app's lock; here so that a refusal is a 409 status.
    releases::check_env_unset(&rack, &app, &change)?;
    stream_work(rack, app.clone(), move |rack, progress| async move {
        releases::change_env(&rack, &app, &change, &progress).await
    })
}
