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
#[derive(Deserialize)]
pub struct ForceQuery {
    #[serde(default)]
    force: bool,
}

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

pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<ReleaseInfo>> {
    Ok(Json(releases::info(&rack, &app, &id)?))
}

/// `GET /apps/{app}/env`: the values (a `deploy` role reads them, see `authz`).
pub async fn env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let row = apps::get(&rack, &app)?;
    Ok(Json(rack.store.env(&app, row.env_version)?))
}

/// `GET /apps/{app}/env/effective`: the values with the manifest's defaults
/// and where each comes from (a `deploy` role reads them, see `authz`).
pub async fn effective_env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<EffectiveEnv>> {
    Ok(Json(releases::effective_env(&rack, &app)?))
}

/// `GET /apps/{app}/env/keys`: the keys only, never values (a `read` role lists them).
pub async fn env_keys(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<EnvKeys>> {
    Ok(Json(releases::env_keys(&rack, &app)?))
}

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
