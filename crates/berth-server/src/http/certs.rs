//! `/certs`: the router's TLS certificates.

use super::error::ApiResult;
use crate::certs;
use crate::rack::Rack;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_api::{CertInfo, GenerateCert, ImportCert};
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/certs",
    tag = "certs",
    responses(
        (status = 200, description = "The certificates the router serves", body = Vec<berth_api::CertInfo>)
    )
)]
pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<CertInfo>>> {
    Ok(Json(certs::list(&rack)?))
}

#[utoipa::path(
    post,
    path = "/certs",
    tag = "certs",
    request_body = berth_api::ImportCert,
    responses(
        (status = 200, description = "The imported certificate", body = berth_api::CertInfo),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody)
    )
)]
pub async fn import(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<ImportCert>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::import(&rack, req)?))
}

#[utoipa::path(
    post,
    path = "/certs/generate",
    tag = "certs",
    request_body = berth_api::GenerateCert,
    responses(
        (status = 200, description = "The new self-signed certificate", body = berth_api::CertInfo),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody)
    )
)]
pub async fn generate(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<GenerateCert>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::generate(&rack, req)?))
}

#[utoipa::path(
    post,
    path = "/certs/{id}/default",
    tag = "certs",
    params(("id" = String, Path, description = "The certificate's id")),
    responses(
        (status = 200, description = "The certificate, now the default", body = berth_api::CertInfo),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn make_default(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::make_default(&rack, &id)?))
}

#[utoipa::path(
    delete,
    path = "/certs/{id}",
    tag = "certs",
    params(("id" = String, Path, description = "The certificate's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn delete(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    certs::delete(&rack, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
