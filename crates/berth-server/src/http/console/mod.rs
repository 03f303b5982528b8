//! The web console: server-rendered pages at `/console/` (and `/`, which
//! leads there), a sign-in with an API token, sessions with a cookie, and live
//! logs and rollout progress. It reads and changes nothing itself: every page
//! and form is a call of the API's own router with the session's token
//! (`api`), through the same guard, role policy and audit as the CLI.
//!
//! `session` (ids, cookies, CSRF), `auth` (sign-in, sign-out, the `Signed`
//! and `Posted` extractors), `read` (pages), `write` (forms), `live` (SSE
//! logs, streamed progress), `pages` (templates), `assets` (CSS, JS).

mod api;
mod assets;
mod auth;
mod live;
mod pages;
mod read;
mod session;
mod write;

use crate::rack::Rack;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use std::sync::Arc;

/// What the console's handlers share.
pub struct Console {
    rack: Arc<Rack>,
    api: api::Api,
    sessions: session::Sessions,
    /// The API is served over TLS: cookies are `Secure`.
    secure: bool,
}

/// The console's routes; `api` is the API router its pages call.
pub fn routes(rack: Arc<Rack>, api: Router) -> Router {
    let console = Arc::new(Console {
        secure: rack.api_url.starts_with("https://"),
        rack,
        api: api::Api(api),
        sessions: session::Sessions::default(),
    });
    let app = "/console/apps/{app}";
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/assets/console.js", get(assets::js))
        .route("/console/signin", get(auth::signin_form).post(auth::signin))
        .route("/console/signout", post(auth::signout))
        .route("/console/", get(read::rack))
        .route(app, get(read::app))
        .route(&format!("{app}/releases"), get(read::releases))
        .route(
            &format!("{app}/releases/{{id}}/{{action}}"),
            get(read::confirm).post(write::release_action),
        )
        .route(&format!("{app}/builds"), get(read::builds))
        .route(&format!("{app}/builds/{{id}}"), get(read::build))
        .route(&format!("{app}/env"), get(read::env).post(write::env))
        .route(&format!("{app}/volumes"), get(read::volumes))
        .route(&format!("{app}/timers"), get(read::timers))
        .route(&format!("{app}/certs"), get(read::certs))
        .route(&format!("{app}/logs"), get(read::logs))
        .route(&format!("{app}/logs/stream"), get(live::log_stream))
        .route(
            &format!("{app}/processes/{{id}}/stop"),
            post(write::stop_process),
        )
        .route(
            "/console/tokens",
            get(read::tokens).post(write::create_token),
        )
        .route("/console/tokens/{id}/revoke", post(write::revoke_token))
        .route("/console/audit", get(read::audit))
        .layer(axum::middleware::map_response(headers))
        .with_state(console)
}

/// Every console answer: never cached (pages show secrets and live state),
/// never framed, no content from elsewhere.
async fn headers(mut response: axum::response::Response) -> impl IntoResponse {
    let h = response.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    response
}
