//! Long work (builds, rollouts) answered as a stream of NDJSON events: steps
//! and build output as they happen, then one `result` or `error`.

use super::error::ApiResult;
use crate::error::Error;
use crate::progress::{Progress, step};
use crate::rack::Rack;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_api::Event;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Runs `work` under the app's lock, streaming its progress and then its result.
pub fn stream_work<T, F, Fut>(rack: Arc<Rack>, app: String, work: F) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce(Arc<Rack>, Progress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        let lock = rack.app_lock(&app);
        let _guard = match lock.try_lock() {
            Ok(g) => g,
            Err(_) => {
                step(
                    &tx,
                    format!("waiting for another change to app {app} to finish"),
                )
                .await;
                lock.lock().await
            }
        };
        let event = match work(rack.clone(), tx.clone()).await {
            Ok(value) => Event::Result {
                value: serde_json::to_value(value).unwrap_or_default(),
            },
            Err(Error::Failed { message, logs }) => Event::Error {
                error: message,
                logs,
            },
            Err(e) => Event::Error {
                error: e.to_string(),
                logs: vec![],
            },
        };
        let _ = tx.send(event).await;
    });
    Ok(lines(rx))
}

/// A response whose body is one JSON line per item received.
pub fn lines<T: Serialize + Send + 'static>(rx: mpsc::Receiver<T>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let mut line = serde_json::to_vec(&item).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
