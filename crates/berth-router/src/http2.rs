//! HTTP/2 from clients (TLS with ALPN `h2`), served with the `h2` crate directly: each
//! stream's request goes to [`proxy::handle`] and its response back, and every stream
//! of a connection runs inside the connection's own task.
//!
//! Why not hyper's HTTP/2 server, which runs on the same crate: it spawns a task per
//! stream, so each response took a hop from the stream's task to the connection's
//! task to be written, and a stream's future was copied into its task on every
//! spawn. Here a response ready in the process's connection is written in the same
//! poll, and several streams that finish together go out in one write
//! (BENCHMARKS.md, "HTTP/2 streams in the connection's task").

use std::future::poll_fn;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::server::{Builder, SendResponse};
use h2::{RecvStream, SendStream};
use http::header::{CONTENT_LENGTH, DATE};
use http::{HeaderMap, HeaderValue, Request, Response};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::{ClientBody, ResBody};
use crate::conn::{ConnCtx, HEADER_READ_TIMEOUT, Phase};
use crate::headers;
use crate::proxy;

/// The HTTP/2 settings of the router's connections, as hyper's server has them.
pub(crate) fn builder(max_header_list_size: u32) -> Builder {
    let mut builder = Builder::new();
    builder
        .initial_window_size(1024 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_concurrent_streams(200)
        .max_send_buffer_size(400 * 1024)
        .max_local_error_reset_streams(Some(1024))
        // A larger request head is answered 431 by h2 itself.
        .max_header_list_size(max_header_list_size);
    builder
}

/// Serves one HTTP/2 client connection to its end. Once the server drains, the
/// client is sent GOAWAY at once: the streams in flight finish, and the client opens
/// new ones on a new connection (to the router that took over). Once it stops, the
/// connection is dropped.
pub(crate) async fn serve<IO>(io: IO, ctx: ConnCtx, builder: &Builder)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = ctx.phase.clone();
    // The client's preface is due like a request head.
    let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, builder.handshake::<_, Bytes>(io));
    let mut conn = tokio::select! {
        handshake = handshake => match handshake {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!("HTTP/2 handshake: {e}");
                return;
            }
            Err(_) => return,
        },
        _ = phase.wait_for(|p| *p == Phase::Stopped) => return,
    };
    let mut streams = FuturesUnordered::new();
    let mut winding_down = false;
    match *phase.borrow_and_update() {
        Phase::Running => {}
        Phase::Draining => {
            winding_down = true;
            conn.graceful_shutdown();
        }
        Phase::Stopped => return,
    }
    loop {
        // Streams first: every one that is ready answers before the connection is
        // polled, and that poll writes their frames together.
        tokio::select! {
            biased;
            Some(()) = streams.next(), if !streams.is_empty() => {}
            accepted = conn.accept() => match accepted {
                Some(Ok((req, respond))) => streams.push(serve_stream(req, respond, &ctx)),
                Some(Err(e)) => {
                    tracing::debug!("client connection: {e}");
                    return;
                }
                // Closed by the client, or after GOAWAY once no stream is left.
                None => return,
            },
            changed = phase.changed() => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Stopped,
                };
                match now {
                    Phase::Stopped => return,
                    Phase::Draining if !winding_down => {
                        winding_down = true;
                        conn.graceful_shutdown();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One stream: the request through [`proxy::handle`], then the response to the client.
/// A client that resets the stream cancels the request.
async fn serve_stream(req: Request<RecvStream>, mut respond: SendResponse<Bytes>, ctx: &ConnCtx) {
    let length = headers::content_length(req.headers());
    let req = req.map(|stream| ClientBody::h2(stream, length));
    let resp = tokio::select! {
        biased;
        // Boxed: the stream's future is moved as it is made and into the set of
        // streams; the request's own future is several KiB.
        resp = Box::pin(proxy::handle(req, ctx)) => resp,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    let (mut parts, body) = resp.into_parts();
    parts.headers.entry(DATE).or_insert_with(date);
    if body.is_end_stream() {
        let _ = respond.send_response(Response::from_parts(parts, ()), true);
        return;
    }
    if let Some(n) = body.size_hint().exact() {
        set_length_if_missing(&mut parts.headers, n);
    }
    let send = match respond.send_response(Response::from_parts(parts, ()), false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!("HTTP/2 response: {e}");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
    };
    send_body(body, send).await;
}

fn set_length_if_missing(headers: &mut HeaderMap, n: u64) {
    headers
        .entry(CONTENT_LENGTH)
        .or_insert_with(|| HeaderValue::from(n));
}

/// Sends a response body on its stream as the client's flow control allows: the next
/// part is read only once the last one could be sent, so a slow client holds back the
/// process, not the router's memory.
async fn send_body(mut body: ResBody, mut send: SendStream<Bytes>) {
    // Already whole in memory (berth's answers, small bodies read with the head).
    if let ResBody::Full(Some(data)) = &mut body {
        let _ = send.send_data(std::mem::take(data), true);
        return;
    }
    loop {
        let frame = tokio::select! {
            biased;
            frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => frame,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(e)) => {
                tracing::debug!("response body: {e}");
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                let end = body.is_end_stream();
                if !data.is_empty() && !wait_for_capacity(&mut send).await {
                    return;
                }
                if send.send_data(data, end).is_err() || end {
                    return;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            send.reserve_capacity(0);
            let _ = send.send_trailers(trailers);
            return;
        }
    }
}

/// Waits until the stream may send at least a byte; false if it was reset or closed.
/// One byte is asked for, not the part's length: h2 asks the client for the rest once
/// the part is queued, and a claim for all of it would hold the connection's window
/// against the other streams while this one waits.
async fn wait_for_capacity(send: &mut SendStream<Bytes>) -> bool {
    send.reserve_capacity(1);
    while send.capacity() == 0 {
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
    }
    true
}

/// The `Date` header's value now, made once a second per thread.
fn date() -> HeaderValue {
    thread_local! {
        static CACHED: std::cell::RefCell<Option<(u64, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHED.with_borrow_mut(|cached| match cached {
        Some((at, value)) if *at == second => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cached = Some((second, value.clone()));
            value
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_http_date_of_now() {
        let value = date();
        let parsed = httpdate::parse_http_date(value.to_str().unwrap()).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age < Duration::from_secs(2), "{value:?}");
    }

    #[test]
    fn a_known_length_is_set_unless_the_process_sent_one() {
        let mut headers = HeaderMap::new();
        set_length_if_missing(&mut headers, 13);
        assert_eq!(headers[CONTENT_LENGTH], "13");
        set_length_if_missing(&mut headers, 7);
        assert_eq!(headers[CONTENT_LENGTH], "13");
    }
}
