//! `GET /rack`, `POST /rack/prune`, `POST /rack/backup`, `GET|POST /rack/settings`, `GET /ca.pem`.

use super::error::ApiResult;
use crate::rack::Rack;
use axum::Json;
use axum::extract::State;
use berth_api::{PruneReport, RackInfo, RackSettings, RackSettingsChange};
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/rack",
    tag = "rack",
    responses(
        (status = 200, description = "The rack", body = berth_api::RackInfo)
    )
)]
pub async fn info(State(rack): State<Arc<Rack>>) -> ApiResult<Json<RackInfo>> {
    let (apps, processes, builds, releases) = rack.store.counts()?;
    Ok(Json(RackInfo {
        version: berth_core::version::version().into(),
        api_version: berth_api::API_VERSION,
        uptime_secs: rack.started.elapsed().as_secs(),
        engine: rack.engine.clone(),
        domain: rack.domain.clone(),
        router: rack.router_url.clone(),
        apps,
        processes,
        builds,
        releases,
        router_version: rack.router.version().await,
    }))
}

/// `GET /health` (no token).
#[utoipa::path(
    get,
    path = "/health",
    tag = "rack",
    responses(
        (status = 200, description = "The server answers", content_type = "text/plain", body = String)
    )
)]
pub async fn health() -> &'static str {
    "ok"
}

/// `POST /rack/backup`: the archive (see `crate::backup`), as bytes.
#[utoipa::path(
    post,
    path = "/rack/backup",
    tag = "rack",
    request_body = berth_api::BackupRequest,
    responses(
        (status = 200, description = "The archive: a tar, or with `with_key` sealed with the passphrase", content_type = "application/x-tar", body = super::openapi::Tar),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 507, description = "The disk is full", body = berth_api::ErrorBody)
    )
)]
pub async fn backup(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<berth_api::BackupRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let archive = crate::backup::create(&rack, req.with_key, req.passphrase).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            if req.with_key {
                "application/octet-stream"
            } else {
                "application/x-tar"
            },
        )],
        archive,
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/rack/prune",
    tag = "rack",
    responses(
        (status = 200, description = "What was removed", body = berth_api::PruneReport),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn prune(State(rack): State<Arc<Rack>>) -> ApiResult<Json<PruneReport>> {
    Ok(Json(crate::prune::prune(&rack).await?))
}

#[utoipa::path(
    get,
    path = "/rack/settings",
    tag = "rack",
    responses(
        (status = 200, description = "The settings that can change while the rack runs", body = berth_api::RackSettings)
    )
)]
pub async fn settings(State(rack): State<Arc<Rack>>) -> Json<RackSettings> {
    Json(crate::settings::get(&rack))
}

#[utoipa::path(
    post,
    path = "/rack/settings",
    tag = "rack",
    request_body = berth_api::RackSettingsChange,
    responses(
        (status = 200, description = "The settings after the change", body = berth_api::RackSettings),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody)
    )
)]
pub async fn change_settings(
    State(rack): State<Arc<Rack>>,
    Json(change): Json<RackSettingsChange>,
) -> ApiResult<Json<RackSettings>> {
    // A smaller bound or a shorter retention applies at once.
    let settings = tokio::task::spawn_blocking(move || {
        let settings = crate::settings::change(&rack, &change)?;
        rack.logs.sweep();
        Ok::<_, crate::Error>(settings)
    })
    .await
    .map_err(|e| crate::Error::Internal(format!("changing the settings failed: {e}")))??;
    Ok(Json(settings))
}

/// `GET /ca.pem` (no token): the cluster CA's certificate, which clients check
/// against the fingerprint they were given before trusting it.
#[utoipa::path(
    get,
    path = "/ca.pem",
    tag = "rack",
    responses(
        (status = 200, description = "The cluster CA's certificate", content_type = "application/x-pem-file", body = String)
    )
)]
pub async fn ca_pem(State(rack): State<Arc<Rack>>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        rack.ca.ca_pem().to_string(),
    )
}
