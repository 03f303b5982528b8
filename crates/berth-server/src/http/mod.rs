//! The HTTP API (axum): the route list, the middleware in front of it, and
//! handlers that turn requests into calls of the domain modules and their
//! results into answers. Nothing below this module knows axum.
//!
//! The routes, with the least role each needs, are listed in `authz`; the
//! wire types are in `berth-api`.

mod apps;
pub mod authz;
mod builds;
mod certs;
#[cfg(feature = "console")]
mod console;
mod drains;
pub mod error;
mod guard;
mod instances;
mod logs;
pub mod metrics;
mod ndjson;
pub mod openapi;
mod processes;
mod rack;
mod releases;
mod resources;
mod sessions;
mod spool;
pub mod tls;
mod tokens;
mod unread;
mod update;
mod volumes;

use crate::rack::Rack;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use error::ApiError;
use openapi::Contract;
use std::sync::{Arc, OnceLock};
use utoipa::OpenApi;

/// Largest JSON request body.
const MAX_JSON_BODY: usize = 1 << 20;

/// The API, with the web console (`console`) beside it.
#[cfg(feature = "console")]
pub fn app(rack: Arc<Rack>) -> Router {
    let api = api(rack.clone());
    api.clone().merge(console::routes(rack, api))
}

/// The API alone: this build has no web console.
#[cfg(not(feature = "console"))]
pub fn app(rack: Arc<Rack>) -> Router {
    api(rack)
}

fn api(rack: Arc<Rack>) -> Router {
    // Uploads are bounded by `--max-upload` while they are spooled.
    let uploads = Router::new()
        .route("/apps/{app}/builds", post(builds::create).get(builds::list))
        .route("/apps/{app}/deploy", post(builds::deploy))
        .route("/apps/{app}/image", post(builds::deploy_image))
        .route(
            "/apps/{app}/volumes/{name}/archive",
            get(volumes::backup).put(volumes::restore),
        )
        .route(
            "/apps/{app}/resources/{name}/backup",
            get(resources::backup).put(resources::restore),
        )
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/rack", get(rack::info))
        .route("/rack/prune", post(rack::prune))
        .route("/rack/backup", post(rack::backup))
        .route("/rack/update", post(update::start))
        .route("/rack/updates", get(update::list))
        .route("/rack/updates/{id}", get(update::info))
        .route(
            "/rack/settings",
            get(rack::settings).post(rack::change_settings),
        )
        .route("/rack/logs", get(logs::rack_logs))
        .route("/instances", get(instances::list))
        .route("/instances/join", post(instances::join))
        .route("/instances/{id}/drain", post(instances::drain))
        .route("/instances/{id}/activate", post(instances::activate))
        .route("/agent/hello", post(instances::agent_hello))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{app}", get(apps::info).delete(apps::delete))
        .route("/apps/{app}/builds/{id}/logs", get(builds::logs))
        .route("/apps/{app}/image/layers", post(builds::present_layers))
        .route("/apps/{app}/releases", get(releases::list))
        .route("/apps/{app}/releases/{id}/promote", post(releases::promote))
        .route(
            "/apps/{app}/releases/{id}/rollback",
            post(releases::rollback),
        )
        .route("/apps/{app}/releases/{id}/info", get(releases::info))
        .route(
            "/apps/{app}/env",
            get(releases::env).post(releases::change_env),
        )
        .route("/apps/{app}/env/effective", get(releases::effective_env))
        .route("/apps/{app}/env/keys", get(releases::env_keys))
        .route(
            "/apps/{app}/services/{service}/scale",
            post(processes::scale),
        )
        .route("/apps/{app}/processes", get(processes::list))
        .route("/apps/{app}/processes/{id}", delete(processes::stop))
        .route("/apps/{app}/restart", post(processes::restart))
        .route("/apps/{app}/logs", get(logs::logs))
        .route(
            "/apps/{app}/run",
            get(sessions::run).post(processes::run_detached),
        )
        .route("/apps/{app}/processes/{id}/exec", get(sessions::exec))
        .route("/apps/{app}/timers", get(processes::timers))
        .route("/apps/{app}/volumes", get(volumes::list))
        .route(
            "/apps/{app}/drains",
            get(drains::list_app).post(drains::add_app),
        )
        .route("/apps/{app}/drains/{id}", delete(drains::remove_app))
        .route("/drains", get(drains::list).post(drains::add))
        .route("/drains/{id}", delete(drains::remove))
        .route("/apps/{app}/resources", get(resources::list))
        .route("/apps/{app}/resources/{name}", get(resources::info))
        .route("/apps/{app}/resources/{name}/url", get(resources::url))
        .route(
            "/apps/{app}/resources/{name}/upgrade",
            post(resources::upgrade),
        )
        .route(
            "/apps/{app}/resources/{name}/proxy",
            get(sessions::resource_proxy),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/audit", get(tokens::audit))
        .route("/certs", get(certs::list).post(certs::import))
        .route("/certs/generate", post(certs::generate))
        .route("/certs/{id}", delete(certs::delete))
        .route("/certs/{id}/default", post(certs::make_default))
        .merge(uploads)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            rack.clone(),
            guard::guard,
        ))
        .route("/health", get(rack::health))
        .route("/ca.pem", get(rack::ca_pem))
        .route("/openapi.json", get(openapi_json))
        .route_layer(axum::middleware::from_fn_with_state(
            rack.clone(),
            metrics::count,
        ))
        .fallback(
            |State(rack): State<Arc<Rack>>, method: axum::http::Method| async move {
                let status = StatusCode::NOT_FOUND;
                rack.metrics
                    .api_request(metrics::UNMATCHED, method.as_str(), status.as_u16());
                ApiError::new(
                    status,
                    "no such API route; see the route list in the berth-api crate docs",
                )
            },
        )
        // An answer given before the body was read ends the connection.
        .layer(axum::middleware::from_fn(unread::close_unread))
        // Every answer names the API's version, so a client can refuse a
        // server too old for it (see `berth_api::API_VERSION`).
        .layer(axum::middleware::map_response(
            |mut resp: axum::response::Response| async move {
                resp.headers_mut().insert(
                    berth_api::API_VERSION_HEADER,
                    axum::http::HeaderValue::from(berth_api::API_VERSION),
                );
                resp
            },
        ))
        .with_state(rack)
}

/// The API's OpenAPI 3.1 document: every route of `api` (a test checks that
/// none is missing, and that `docs/openapi.json` is this document).
#[derive(OpenApi)]
#[openapi(
    paths(
        rack::health,
        rack::ca_pem,
        openapi_json,
        rack::info,
        rack::prune,
        rack::backup,
        update::start,
        update::list,
        update::info,
        rack::settings,
        rack::change_settings,
        logs::rack_logs,
        instances::list,
        instances::join,
        instances::drain,
        instances::activate,
        instances::agent_hello,
        apps::list,
        apps::create,
        apps::info,
        apps::delete,
        builds::create,
        builds::list,
        builds::deploy,
        builds::deploy_image,
        builds::present_layers,
        builds::logs,
        releases::list,
        releases::promote,
        releases::rollback,
        releases::info,
        releases::env,
        releases::change_env,
        releases::effective_env,
        releases::env_keys,
        processes::scale,
        processes::list,
        processes::stop,
        processes::restart,
        processes::run_detached,
        processes::timers,
        logs::logs,
        sessions::run,
        sessions::exec,
        volumes::list,
        volumes::backup,
        volumes::restore,
        drains::list_app,
        drains::add_app,
        drains::remove_app,
        drains::list,
        drains::add,
        drains::remove,
        resources::list,
        resources::info,
        resources::url,
        resources::backup,
        resources::restore,
        resources::upgrade,
        sessions::resource_proxy,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::audit,
        certs::list,
        certs::import,
        certs::generate,
        certs::make_default,
        certs::delete,
    ),
    modifiers(&Contract)
)]
struct ApiDoc;

/// The document as `GET /openapi.json` serves it and `docs/openapi.json` holds it.
pub fn openapi_document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot write the document: {e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json` (no token): this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "rack",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
async fn openapi_json() -> impl axum::response::IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOC.get_or_init(openapi_document).as_str(),
    )
}
