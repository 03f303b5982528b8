//! Answers given before the request's body was read (a wrong token, an unknown
//! app, a bad query, a 404 or 405) end the connection, and say so.
//!
//! hyper closes a connection whose request body was left unread, but without a
//! `Connection: close` the client takes it for a keep-alive connection and its
//! next request on it fails ("connection closed without response"), as
//! schemathesis found with `requests`. Saying `Connection: close` makes the
//! client open a new one; reading the body instead could mean taking in a
//! whole upload (up to `--max-upload`) only to refuse it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

pub async fn close_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // HTTP/2 ends a stream, not the connection (and has no `Connection` header).
    if parts.version >= Version::HTTP_2 || axum::body::HttpBody::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let stream = body
        .into_data_stream()
        .chain(futures_util::stream::poll_fn(move |_| {
            flag.store(true, Ordering::SeqCst);
            Poll::Ready(None)
        }));
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(stream)))
        .await;
    if !read.load(Ordering::SeqCst) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
