//! `/certs`: the router's TLS certificates.

use super::error::ApiResult;
use crate::certs;
use crate::rack::Rack;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_api::{CertInfo, GenerateCert, ImportCert};
use std::sync::Arc;

pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<CertInfo>>> {
    Ok(Json(certs::list(&rack)?))
}

pub async fn import(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<ImportCert>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::import(&rack, req)?))
}

pub async fn generate(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<GenerateCert>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::generate(&rack, req)?))
}

pub async fn make_default(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CertInfo>> {
    Ok(Json(certs::make_default(&rack, &id)?))
}

pub async fn delete(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    certs::delete(&rack, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
