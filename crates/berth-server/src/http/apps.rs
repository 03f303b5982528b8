//! `/apps` and `/apps/{app}`.

use super::error::ApiResult;
use crate::apps;
use crate::rack::Rack;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::{App, AppInfo, CreateApp};
use berth_store::access::Identity;
use serde::Deserialize;
use std::sync::Arc;

/// `GET /apps[?services=true]`
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Each app as `GET /apps/{app}` answers it (its services), in one call.
    #[serde(default)]
    services: bool,
}

/// `GET /apps`: a token limited to one app sees only that app.
pub async fn list(
    State(rack): State<Arc<Rack>>,
    Extension(who): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    if !q.services {
        return Ok(Json(apps::list(&rack, who.app.as_deref())?).into_response());
    }
    let infos = apps::infos(&rack, who.app.as_deref())?;
    Ok(Json(infos).into_response())
}

pub async fn create(
    State(rack): State<Arc<Rack>>,
    Json(body): Json<CreateApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    Ok((StatusCode::CREATED, Json(apps::create(&rack, &body.name)?)))
}

pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<AppInfo>> {
    Ok(Json(apps::info(&rack, &app)?))
}

/// `DELETE /apps/{app}?volumes=true`
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    volumes: bool,
}

pub async fn delete(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    apps::delete(&rack, &app, q.volumes).await?;
    Ok(StatusCode::NO_CONTENT)
}
