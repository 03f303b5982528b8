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
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Each app as `GET /apps/{app}` answers it (its services), in one call.
    #[serde(default)]
    services: bool,
}

/// `GET /apps`: a token limited to one app sees only that app.
#[utoipa::path(
    get,
    path = "/apps",
    tag = "apps",
    params(ListQuery),
    responses(
        (status = 200, description = "The apps (with `services=true` each as `GET /apps/{app}` answers it, an `AppInfo`)", body = Vec<berth_api::App>)
    )
)]
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

#[utoipa::path(
    post,
    path = "/apps",
    tag = "apps",
    request_body = berth_api::CreateApp,
    responses(
        (status = 201, description = "The new app", body = berth_api::App),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn create(
    State(rack): State<Arc<Rack>>,
    Json(body): Json<CreateApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    Ok((StatusCode::CREATED, Json(apps::create(&rack, &body.name)?)))
}

#[utoipa::path(
    get,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 200, description = "The app and its services", body = berth_api::AppInfo),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn info(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<AppInfo>> {
    Ok(Json(apps::info(&rack, &app)?))
}

/// `DELETE /apps/{app}?volumes=true`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    #[serde(default)]
    volumes: bool,
}

#[utoipa::path(
    delete,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name", example = "old-shop"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn delete(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    apps::delete(&rack, &app, q.volumes).await?;
    Ok(StatusCode::NO_CONTENT)
}
