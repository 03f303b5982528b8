//! `--metrics ADDR`: `GET /metrics` in the Prometheus text format, on a listener
//! of its own and without a token (bind it to a private address); and the
//! counting of API requests by matched route template.

use crate::rack::Rack;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `/metrics` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, rack: Arc<Rack>, mut stop: watch::Receiver<bool>) {
    let addr = listener.local_addr().ok();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(rack);
    tracing::info!(addr = ?addr, "metrics served at /metrics");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::warn!(addr = ?addr, "the metrics listener stopped: {e}");
    }
}

async fn metrics(State(rack): State<Arc<Rack>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&rack).await,
    )
}

/// The route template of requests no route matched.
pub(super) const UNMATCHED: &str = "unmatched";

/// Counts each API request by its matched route template (never the raw path),
/// method and status.
pub(super) async fn count(State(rack): State<Arc<Rack>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    rack.metrics
        .api_request(&route, method.as_str(), response.status().as_u16());
    response
}
