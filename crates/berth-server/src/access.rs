//! Authentication, authorisation (see [`crate::authz`]) and the audit trail for
//! every API request, plus the token and audit routes.

use crate::api::ApiError;
use crate::rack::{Rack, RackError};
use axum::Json;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::{AuditEntry, CreateToken, CreatedToken, ErrorBody, TokenInfo};
use berth_store::StoreError;
use berth_store::access::{Identity, ROLES, TokenRow};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `last_used` is written at most this often per token, so reads stay reads.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

/// Error bodies larger than this from the framework (e.g. JSON rejections) are cut.
const MAX_REWRAP: usize = 16 * 1024;

fn unauthorized() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or invalid token; send `Authorization: Bearer <token>` (run `berth login URL --token T` or set BERTH_TOKEN)",
    )
    .into_response()
}

/// The secret of the `Authorization` header; anything malformed becomes a string
/// that matches no token, so malformed and wrong tokens take the same path.
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("")
}

/// The middleware of every authenticated route.
pub async fn guard(rack: Arc<Rack>, request: Request, next: Next) -> Response {
    let secret = bearer(request.headers()).to_string();
    let store = rack.clone();
    let who = match tokio::task::spawn_blocking(move || store.store.authenticate(&secret)).await {
        Ok(Ok(Some(who))) => who,
        Ok(Ok(None)) => return unauthorized(),
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("auth failed: {e}"),
            )
            .into_response();
        }
    };
    touch(&rack, &who.id);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    // Changes, and reads of secrets or that run commands (run/exec upgrades).
    let audited = (method != Method::GET && method != Method::HEAD)
        || crate::authz::need(&method, &route) > crate::authz::Need::Read;
    let response = match crate::authz::authorize(&who, &method, &route, &path) {
        Ok(()) => next.run(request).await,
        Err(why) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
    };
    let response = rewrap_error(response).await;
    if audited {
        audit(&rack, &who, &method, &path, response.status());
    }
    response
}

fn touch(rack: &Rack, id: &str) {
    static SEEN: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    let due = {
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        let seen = seen.get_or_insert_with(HashMap::new);
        let now = Instant::now();
        match seen.get(id) {
            Some(last) if now.duration_since(*last) < TOUCH_EVERY => false,
            _ => {
                seen.insert(id.to_string(), now);
                true
            }
        }
    };
    if due && let Err(e) = rack.store.touch_token(id) {
        tracing::warn!(token = id, "cannot record the token's last use: {e}");
    }
}

fn audit(rack: &Rack, who: &Identity, method: &Method, path: &str, status: StatusCode) {
    // Only the path: queries and bodies may carry secrets (env values).
    if let Err(e) =
        rack.store
            .record_audit(&who.id, &who.role, method.as_str(), path, status.as_u16())
    {
        tracing::error!(token = who.id, %method, path, "cannot write the audit record: {e}");
    }
}

/// Framework rejections (malformed JSON, body too large, wrong content type,
/// method not allowed) come as plain text or nothing; answer them as the usual
/// JSON error body, saying what to send instead.
async fn rewrap_error(response: Response) -> Response {
    let status = response.status();
    if !status.is_client_error() {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REWRAP)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let hint = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is too large (the limit for JSON bodies is 1 MiB)".to_string()
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            "this route does not take that method; see the route list in the README".to_string()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            format!("{text}; send `Content-Type: application/json` with a JSON body")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_string(),
        _ => format!("{text}; see the request types in berth-api"),
    };
    let mut out = (status, Json(ErrorBody { error: hint })).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

fn token_info(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        role: t.role.clone(),
        app: t.app.clone(),
        created: t.created.clone(),
        last_used: t.last_used.clone(),
    }
}

pub async fn list_tokens(State(rack): State<Arc<Rack>>) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(rack.store.tokens()?.iter().map(token_info).collect()))
}

pub async fn create_token(
    State(rack): State<Arc<Rack>>,
    Json(req): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if !ROLES.contains(&req.role.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown role {:?}; use admin, deploy or read",
                req.role.chars().take(64).collect::<String>()
            ),
        ));
    }
    if let Some(app) = &req.app {
        berth_core::validate_app_name(app).map_err(RackError::from)?;
        if req.role == "admin" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "an admin token covers every app; drop --app or use --role deploy",
            ));
        }
    }
    let (id, secret) = rack.store.create_token(&req.role, req.app.as_deref())?;
    let token = rack
        .store
        .tokens()?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| token_info(&t))
        .ok_or_else(|| ApiError::from(StoreError::NoToken(id.clone())))?;
    tracing::info!(token = id, role = req.role, app = ?req.app, "token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

pub async fn revoke_token(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match rack.store.revoke_token(&id) {
        Ok(()) => {
            tracing::info!(token = id, "token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e @ StoreError::NoToken(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ StoreError::LastAdmin(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

pub async fn list_audit(
    State(rack): State<Arc<Rack>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(
        rack.store
            .audit(limit)?
            .into_iter()
            .map(|a| AuditEntry {
                time: a.time,
                token: a.token,
                role: a.role,
                method: a.method,
                path: a.path,
                status: a.status,
            })
            .collect(),
    ))
}
