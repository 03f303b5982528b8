//! `/tokens` and `/audit` (admin only, see `authz`).

use super::error::ApiResult;
use crate::rack::Rack;
use crate::tokens;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_api::{AuditEntry, CreateToken, CreatedToken, TokenInfo};
use serde::Deserialize;
use std::sync::Arc;

pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(tokens::list(&rack)?))
}

pub async fn create(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((StatusCode::CREATED, Json(tokens::create(&rack, &req)?)))
}

pub async fn revoke(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&rack, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

pub async fn audit(
    State(rack): State<Arc<Rack>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(tokens::audit(&rack, q.limit)?))
}
