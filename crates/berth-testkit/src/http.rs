//! The `serve` program's HTTP server: HTTP/1.1 with keep-alive, as the
//! router's pooled client and health checks expect of a process.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How a `serve` program answers.
pub(crate) struct Answers {
    /// The container's name, in every body and in `X-Served-By`.
    pub name: String,
    /// Paths answered `500`.
    pub fail: Vec<String>,
    pub delay: Duration,
}

/// Serves until dropped. Connections live in a `JoinSet` owned by this future,
/// so dropping it (the process ended) closes the listener and every connection.
pub(crate) async fn serve(listener: TcpListener, answers: Arc<Answers>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let answers = answers.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            answer(request, answers.clone())
                        });
                        // A client that goes away mid-request is its own business.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors and the like: a real server would
                // retry too, after a breath.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    answers: Arc<Answers>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    // Read the body, so the connection can carry the next request.
    let _ = request.into_body().collect().await;
    tokio::time::sleep(answers.delay).await;
    let failing = answers.fail.contains(&path);
    let text = if failing {
        format!("{}: failing {path} on purpose\n", answers.name)
    } else {
        format!("{}\n", answers.name)
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    if failing {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(name) = HeaderValue::from_str(&answers.name) {
        headers.insert("x-served-by", name);
    }
    Ok(response)
}
