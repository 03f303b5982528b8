//! The HTTP/2 data path: a client's HTTP/2 connection (`http2`) served with each
//! stream's request through [`proxy::handle`] and its response back. Every stream of
//! a connection runs inside the connection's own task: a response ready in the
//! process's connection is written in the same poll, and several streams that finish
//! together go out in one write.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::Abortable;
use futures_util::stream::FuturesUnordered;
use http::header::{CONTENT_LENGTH, DATE};
use http::{HeaderMap, HeaderValue, Request};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::{ClientBody, ResBody};
use crate::conn::{ConnCtx, HEADER_READ_TIMEOUT, Phase};
use crate::http2::{Connection, Event, RequestBody, Responder, Settings, SharedRef};
use crate::{in_box, proxy};

/// Serves one HTTP/2 client connection to its end. Once the server drains, the
/// client is sent GOAWAY at once: the streams in flight finish, and the client opens
/// new ones on a new connection (to the router that took over). Once it stops, the
/// connection is dropped.
pub(crate) async fn serve<IO>(io: IO, ctx: ConnCtx, settings: &Settings)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let shared = SharedRef::default();
    let mut conn = Connection::new(io, shared, settings.max_header_list_size);
    let mut phase = ctx.phase.clone();
    match *phase.borrow_and_update() {
        Phase::Running => {}
        Phase::Draining => conn.go_away(),
        Phase::Stopped => return,
    }
    // The client's preface is due like a request head.
    let preface_deadline = tokio::time::sleep(HEADER_READ_TIMEOUT);
    tokio::pin!(preface_deadline);
    let mut streams = FuturesUnordered::new();
    let graceful = loop {
        let idle = streams.is_empty();
        // Streams first: every one that is ready writes its response before the
        // connection's output goes out, in one write.
        tokio::select! {
            biased;
            Some(_) = streams.next(), if !idle => {}
            event = poll_fn(|cx| conn.poll_io(cx, idle)) => match event {
                Event::Request(req, responder, registration) => {
                    let stream = in_box(serve_stream(req, responder, &ctx));
                    streams.push(Abortable::new(stream, registration));
                }
                Event::Closed => break true,
            },
            () = &mut preface_deadline, if !conn.started() => break false,
            changed = phase.changed() => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Stopped,
                };
                match now {
                    Phase::Stopped => break false,
                    Phase::Draining => conn.go_away(),
                    Phase::Running => {}
                }
            }
        }
    };
    // Streams still running end with the connection.
    drop(streams);
    if graceful {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.shut_down()).await;
    }
}

/// One stream: the request through [`proxy::handle`], then the response to the client.
/// The connection cancels it (drops it) when the client resets the stream.
async fn serve_stream(req: Request<RequestBody>, responder: Responder, ctx: &ConnCtx) {
    let resp = proxy::handle(req.map(ClientBody::H2), ctx).await;
    let (mut parts, mut body) = resp.into_parts();
    parts.headers.entry(DATE).or_insert_with(date);
    let end = body.is_end_stream();
    if !end && let Some(n) = body.size_hint().exact() {
        set_length_if_missing(&mut parts.headers, n);
    }
    if !responder.send_head(parts.status, &parts.headers, end) || end {
        return;
    }
    // Whole in memory (berth's answers, small bodies read with the head) and within
    // the windows: sent in the same breath.
    if let ResBody::Full(Some(data)) = &body
        && responder.try_send_whole(data)
    {
        return;
    }
    if send_body(&mut body, &responder).await.is_err() {
        responder.fail();
    }
}

fn set_length_if_missing(headers: &mut HeaderMap, n: u64) {
    headers
        .entry(CONTENT_LENGTH)
        .or_insert_with(|| HeaderValue::from(n));
}

/// Sends a response body on its stream as the client's flow control allows: the next
/// part is read only once the last one could be sent, so a slow client holds back the
/// process, not the router's memory.
async fn send_body(body: &mut ResBody, responder: &Responder) -> Result<(), ()> {
    loop {
        if !responder.ready_to_send().await {
            return Ok(());
        }
        let frame = match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            None => {
                responder.send_data(&mut Bytes::new(), true);
                return Ok(());
            }
            Some(Err(e)) => {
                tracing::debug!("response body: {e}");
                return Err(());
            }
            Some(Ok(frame)) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    responder.send_trailers(&trailers);
                    return Ok(());
                }
                continue;
            }
        };
        let end = body.is_end_stream();
        while !data.is_empty() || end {
            if !responder.send_data(&mut data, end) {
                return Ok(());
            }
            if data.is_empty() {
                if end {
                    return Ok(());
                }
                break;
            }
            if !responder.ready_to_send().await {
                return Ok(());
            }
        }
    }
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
