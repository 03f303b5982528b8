//! The middleware in front of every authenticated route: the token
//! (authentication), the role policy (`authz`), the audit trail, and JSON
//! error bodies for the framework's own rejections.

use super::authz;
use super::error::ApiError;
use crate::rack::Rack;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;
use berth_store::access::Identity;
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

/// The middleware of every authenticated route. Handlers that answer differently
/// per token (`GET /apps` for a token limited to one app) find its `Identity` among
/// the request's extensions.
pub async fn guard(State(rack): State<Arc<Rack>>, mut request: Request, next: Next) -> Response {
    if rack.starting.load(std::sync::atomic::Ordering::SeqCst)
        && request.uri().path() != "/agent/hello"
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is starting: it waits for the nodes' agents to adopt what runs; try again in a few seconds",
        )
        .into_response();
    }
    let secret = bearer(request.headers()).to_string();
    let who = match authenticate(&rack, secret).await {
        Ok(Some(who)) => who,
        Ok(None) => return unauthorized(),
        Err(e) => return e.into_response(),
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    // Changes, and reads of secrets or that run commands (run/exec upgrades).
    // Agents' heartbeats are not changes anyone audits (one every 3 s per node).
    let audited = ((method != Method::GET && method != Method::HEAD)
        || authz::need(&method, &route) > authz::Need::Read)
        && route != "/agent/hello";
    let response = match authz::authorize(&who, &method, &route, &path) {
        Ok(()) => {
            request.extensions_mut().insert(who.clone());
            next.run(request).await
        }
        Err(why) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
    };
    let response = rewrap_error(response).await;
    if audited {
        audit(&rack, &who, &method, &path, response.status());
    }
    response
}

/// The identity whose secret this is, checked the one way every token is (the
/// API's bearer tokens and the console's sign-in alike), its last use recorded.
pub async fn authenticate(rack: &Arc<Rack>, secret: String) -> Result<Option<Identity>, ApiError> {
    let store = rack.clone();
    let who = match tokio::task::spawn_blocking(move || store.store.authenticate(&secret)).await {
        Ok(Ok(who)) => who,
        Ok(Err(e)) => return Err(ApiError::from(e)),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("auth failed: {e}"),
            ));
        }
    };
    if let Some(who) = &who {
        touch(rack, &who.id);
    }
    Ok(who)
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
            "this route does not take that method; see the route list in the berth-api crate docs"
                .to_string()
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
