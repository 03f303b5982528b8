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

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The tokens (never their secrets)", body = Vec<berth_api::TokenInfo>)
    )
)]
pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(tokens::list(&rack)?))
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = berth_api::CreateToken,
    responses(
        (status = 201, description = "The new token; its secret is shown this once", body = berth_api::CreatedToken),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody)
    )
)]
pub async fn create(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((StatusCode::CREATED, Json(tokens::create(&rack, &req)?)))
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn revoke(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&rack, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "tokens",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest changes first", body = Vec<berth_api::AuditEntry>)
    )
)]
pub async fn audit(
    State(rack): State<Arc<Rack>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(tokens::audit(&rack, q.limit)?))
}
