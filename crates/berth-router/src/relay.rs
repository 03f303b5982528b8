//! The HTTP/1.1 fast path, for plain HTTP and for HTTP/1.1 over TLS alike (the client
//! stream is any byte stream; a TLS one is decrypted by rustls in the same task). A
//! request that needs nothing but forwarding is relayed inside its client connection's
//! task: its head is parsed in place, rewritten straight into the bytes sent to the
//! process, and the response streams back over a backend connection that the task takes
//! from a per-thread pool for the exchange.
//!
//! Why: through hyper's pooled client every request crossed from the client
//! connection's task to the backend connection's task and back, and was parsed into and
//! serialized from a `HeaderMap` on each side; at one thread that user-space work kept
//! the router at 0.78x haproxy (BENCHMARKS.md).
//!
//! Anything else is handed back to `server` with the bytes already read
//! ([`Ended::Handoff`]), which moves the connection to the hyper path (`proxy`) for
//! good: upgrades, `Expect`, chunked or large request bodies, HTTP/1.0, answers of
//! berth's own (404, 503, redirects, ACME challenges), and anything malformed, which
//! hyper rejects with the right status. The rules both paths follow (fail-over order,
//! failure answers, access lines) come from `routing` and `outcome`.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::backend::{
    self, BackendConn, BodyHeaders, Framing, Parsed, READ_CHUNK, RoundtripError, SendError,
    parse_length, pool_put,
};
use crate::conn::{ConnCtx, HEADER_READ_TIMEOUT};
use crate::metrics::{UpstreamError, method_index};
use crate::outcome::{Answer, Failure, access_line_start};
use crate::routing::{ACME_CHALLENGE_PATH, Attempt, Entry, Inflight, is_retryable};
use crate::{Router, headers};

/// Most headers in a request or response head on this path (hyper takes more).
const MAX_HEADERS: usize = 64;
/// Request bodies up to this size are read whole before they are forwarded, so that a
/// process that refuses the connection can be skipped; larger ones stream through hyper.
const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// A client connection the fast path serves: a `TcpStream`, or TLS over one.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin {
    /// What is written may wait in a buffer until flushed: rustls keeps records the
    /// socket did not take yet. A constant, so plain HTTP runs no flush at all.
    const BUFFERED: bool;
}

impl ClientStream for TcpStream {
    const BUFFERED: bool = false;
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    const BUFFERED: bool = true;
}

/// How the fast path left a client connection.
pub(crate) enum Ended<S> {
    Closed,
    /// Serve the rest with hyper; `buffered` holds bytes read but not yet answered.
    Handoff(S, BytesMut),
}

/// Serves requests on an HTTP/1.1 client connection (a `TcpStream`, or a TLS stream
/// over one) until it closes or a request needs the hyper path.
pub(crate) async fn serve<S: ClientStream>(ctx: &ConnCtx, mut client: S) -> Ended<S> {
    let router = &*ctx.router;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut head = Vec::with_capacity(1024);
    // One timer and one phase watch for the connection's life, not one per request:
    // moving a timer's deadline later costs no lock.
    let timer = tokio::time::sleep(HEADER_READ_TIMEOUT);
    tokio::pin!(timer);
    let mut watch = ctx.phase.clone();
    let draining = crate::conn::idle_closing(&mut watch, router);
    tokio::pin!(draining);
    loop {
        timer.as_mut().reset(Instant::now() + HEADER_READ_TIMEOUT);
        let mut request = loop {
            match plan(router, ctx, &buf, &mut head) {
                Plan::Forward(request) => break request,
                Plan::Handoff => return Ended::Handoff(client, buf),
                Plan::Refuse(answer) => {
                    let _ = send_to_client(&mut client, answer).await;
                    let _ = client.shutdown().await;
                    return Ended::Closed;
                }
                Plan::Partial => {}
            }
            let idle = buf.is_empty();
            let more = tokio::select! {
                biased;
                more = read_more(&mut client, &mut buf, READ_CHUNK, timer.as_mut()) => more,
                // An idle connection closes as soon as the router drains.
                _ = draining.as_mut(), if idle => false,
            };
            if !more {
                return Ended::Closed;
            }
        };
        let needed = request.head_len + request.body_len;
        while buf.len() < needed {
            let want = needed - buf.len();
            if !read_more(&mut client, &mut buf, want, timer.as_mut()).await {
                return Ended::Closed;
            }
        }
        let body = &buf[request.head_len..needed];
        let keep_open =
            match exchange(ctx, &mut request, &head, body, &mut client, timer.as_mut()).await {
                Ok(keep_open) => keep_open,
                Err(ClientGone) => return Ended::Closed,
            };
        if !keep_open {
            let _ = client.shutdown().await;
            return Ended::Closed;
        }
        buf.advance(needed);
    }
}

/// Writes `bytes` to the client and pushes them out (see [`ClientStream::BUFFERED`]).
async fn send_to_client<S: ClientStream>(client: &mut S, bytes: &[u8]) -> io::Result<()> {
    client.write_all(bytes).await?;
    if S::BUFFERED {
        client.flush().await?;
    }
    Ok(())
}

/// Reads more of a request into `buf` (room for `want` more bytes); false when the
/// client closed, failed, or let `timer` run out.
async fn read_more<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    want: usize,
    timer: Pin<&mut Sleep>,
) -> bool {
    buf.reserve(want);
    tokio::select! {
        biased;
        read = client.read_buf(buf) => matches!(read, Ok(n) if n > 0),
        () = timer => false,
    }
}

/// A request ready to forward; its rewritten head is in the caller's buffer.
struct Request {
    entry: Arc<Entry>,
    head_len: usize,
    body_len: usize,
    request_id: RequestId,
    is_head: bool,
    /// Safe and without a body: may be sent again to another process.
    retryable: bool,
    /// The client asked to close the connection after this request.
    close: bool,
    /// The client came over TLS (for `Strict-Transport-Security`).
    https: bool,
    /// The method's index in `metrics::METHODS`.
    method: usize,
    /// The access log line's start (`METHOD HOST PATH`), when access is logged.
    log: Option<String>,
}

/// The request's `X-Request-Id`: the client's, or one made up for it.
enum RequestId {
    Client(Vec<u8>),
    Generated([u8; 32]),
}

impl RequestId {
    fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Client(id) => id,
            RequestId::Generated(id) => id,
        }
    }
}

enum Plan {
    Forward(Request),
    Partial,
    Handoff,
    /// Answered by berth with this whole response, then the connection closes.
    Refuse(&'static [u8]),
}

/// A head with both `Content-Length` and `Transfer-Encoding` can be framed two
/// ways (the shape of request smuggling): refused as nginx refuses it.
const AMBIGUOUS_LENGTH: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 80\r\nConnection: close\r\n\r\nberth: the request has both Content-Length and Transfer-Encoding; send only one\n";

/// A head over the router's `Limits::max_head`.
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 76\r\nConnection: close\r\n\r\nberth: the request's headers are larger than the router's --max-header-size\n";

/// Largest response head read from a process.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What a request header means to the fast path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Connection,
    ContentLength,
    ForwardedFor,
    /// Set by the router (`X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Request-Id`).
    Replaced,
    RequestId,
    /// Describes one connection; never forwarded.
    HopByHop,
    /// In a request, needs the hyper path; in a response, says how the body ends.
    TransferEncoding,
    /// Needs the hyper path (`Upgrade`, `Expect`).
    Unsupported,
    Other,
}

fn kind(name: &str) -> Kind {
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is("te") => Kind::HopByHop,
        4 if is("host") => Kind::Host,
        6 if is("expect") => Kind::Unsupported,
        7 if is("upgrade") => Kind::Unsupported,
        7 if is("trailer") => Kind::HopByHop,
        10 if is("connection") => Kind::Connection,
        10 if is("keep-alive") => Kind::HopByHop,
        12 if is("x-request-id") => Kind::RequestId,
        14 if is("content-length") => Kind::ContentLength,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("proxy-connection") => Kind::HopByHop,
        16 if is("x-forwarded-host") => Kind::Replaced,
        17 if is("transfer-encoding") => Kind::TransferEncoding,
        17 if is("x-forwarded-proto") => Kind::Replaced,
        _ => Kind::Other,
    }
}

/// Headers named in `Connection` (hop-by-hop by declaration); more send the request to
/// the hyper path.
const MAX_NAMED: usize = 8;

/// The headers a head's `Connection` header names, so hop-by-hop. Only headers of no
/// meaning to the router can be named away: framing and routing headers always stay.
struct Named<'a> {
    names: [&'a [u8]; MAX_NAMED],
    len: usize,
}

impl<'a> Named<'a> {
    fn new() -> Self {
        Named {
            names: [&[]; MAX_NAMED],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == MAX_NAMED
    }

    /// Adds `name` unless [`Named::is_full`].
    fn add(&mut self, name: &'a [u8]) {
        if let Some(slot) = self.names.get_mut(self.len) {
            *slot = name;
            self.len += 1;
        }
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Parses the request at the start of `buf` and, when the fast path can forward it,
/// writes the head to send to the process into `out`.
fn plan(router: &Router, ctx: &ConnCtx, buf: &[u8], out: &mut Vec<u8>) -> Plan {
    if buf.is_empty() {
        return Plan::Partial;
    }
    // Left uninitialised: zeroing 64 slots cost more than parsing a short head.
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) if n <= router.limits.max_head => n,
        Ok(httparse::Status::Partial) if buf.len() < router.limits.max_head => {
            return Plan::Partial;
        }
        Ok(_) => return Plan::Refuse(HEAD_TOO_LARGE),
        Err(_) => return Plan::Handoff,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Plan::Handoff;
    };
    if !path.starts_with('/') || path.starts_with(ACME_CHALLENGE_PATH) {
        return Plan::Handoff;
    }

    let mut host = None;
    let mut content_length: Option<u64> = None;
    let mut chunked_or_other = false;
    let mut close = false;
    let mut request_id: Option<&[u8]> = None;
    let mut named = Named::new();
    let mut kinds = [Kind::Other; MAX_HEADERS];
    for (h, slot) in req.headers.iter().zip(kinds.iter_mut()) {
        *slot = kind(h.name);
        match *slot {
            Kind::Host if host.is_none() => host = Some(h.value),
            Kind::Host | Kind::Unsupported => return Plan::Handoff,
            Kind::TransferEncoding => chunked_or_other = true,
            Kind::ContentLength => {
                let Some(n) = parse_length(h.value) else {
                    return Plan::Handoff;
                };
                if content_length.is_some_and(|m| m != n) {
                    return Plan::Handoff;
                }
                content_length = Some(n);
            }
            Kind::Connection => {
                for token in headers::tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"keep-alive") {
                    } else if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") || named.is_full() {
                        return Plan::Handoff;
                    } else if !token.eq_ignore_ascii_case(b"host") {
                        named.add(token);
                    }
                }
            }
            Kind::RequestId if !h.value.is_empty() => request_id = Some(h.value),
            _ => {}
        }
    }
    if chunked_or_other {
        return match content_length {
            Some(_) => Plan::Refuse(AMBIGUOUS_LENGTH),
            None => Plan::Handoff,
        };
    }
    let Some(host_value) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Plan::Handoff;
    };
    let Some(normalized) = headers::normalize_host_str(host_value) else {
        return Plan::Handoff;
    };
    let Some(entry) = router.entry(&normalized) else {
        return Plan::Handoff;
    };
    let body_len = content_length.unwrap_or(0);
    if entry.targets.is_empty()
        || (entry.route.tls_redirect && !ctx.https && router.https_port.get().is_some())
        || body_len > MAX_BUFFERED_BODY
        || router.limits.max_body.is_some_and(|max| body_len > max)
    {
        return Plan::Handoff;
    }

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    let mut length_written = false;
    for (h, kind) in req.headers.iter().zip(kinds) {
        match kind {
            // Equal repeated lengths go out once.
            Kind::ContentLength if length_written => {}
            Kind::Host | Kind::ContentLength | Kind::Other => {
                let name = h.name.as_bytes();
                if kind == Kind::Other && named.contains(name) {
                    continue;
                }
                length_written |= kind == Kind::ContentLength;
                headers::put_header(out, name, h.value);
            }
            Kind::ForwardedFor => forwarded_for.push(h.value),
            _ => {}
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for value in forwarded_for {
        out.extend_from_slice(value);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ctx.client_ip.as_bytes());
    out.extend_from_slice(if ctx.https {
        b"\r\nx-forwarded-proto: https\r\nx-forwarded-host: "
    } else {
        b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: "
    });
    out.extend_from_slice(host_value.as_bytes());
    let request_id = match request_id {
        Some(id) => RequestId::Client(id.to_vec()),
        None => RequestId::Generated(headers::new_request_id_bytes()),
    };
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(request_id.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");

    let log = router.log_access.then(|| {
        let path = path.split('?').next().unwrap_or(path);
        access_line_start(method, host_value, path)
    });
    Plan::Forward(Request {
        entry,
        head_len,
        body_len: body_len as usize,
        request_id,
        is_head: method == "HEAD",
        retryable: is_retryable(method, body_len > 0),
        close,
        https: ctx.https,
        method: method_index(method),
        log,
    })
}

/// The client connection failed or went away mid-exchange.
struct ClientGone;

/// Forwards one request (round robin with fail-over, as on the hyper path) and relays
/// the response. Ok(false): the client connection must close.
async fn exchange<S: ClientStream>(
    ctx: &ConnCtx,
    request: &mut Request,
    head: &[u8],
    body: &[u8],
    client: &mut S,
    mut timer: Pin<&mut Sleep>,
) -> Result<bool, ClientGone> {
    let start_time = Instant::now();
    let entry = &*request.entry;
    let route = &*entry.route;
    let deadline = entry.deadline(start_time);

    let mut failure = Failure::Unreachable;
    for Attempt { target, last } in entry.attempts(request.retryable) {
        let backend = &route.backends[target.backend];
        let inflight = Inflight::start(&target.inflight);
        let sent = backend::send(
            backend.addr,
            (head, body),
            request.retryable,
            start_time,
            |buf| parse_response(buf, request),
        );
        let result = match deadline {
            Some(deadline) => {
                timer.as_mut().reset(deadline);
                tokio::select! {
                    biased;
                    result = sent => result,
                    () = timer.as_mut() => {
                        entry.stats.upstream_error(UpstreamError::Timeout);
                        failure = Failure::Timeout;
                        break;
                    }
                }
            }
            None => sent.await,
        };
        match result {
            Ok((conn, response)) => {
                let closing = request.close || !ctx.running();
                let relayed = relay_response(conn, response, request, client, closing).await;
                drop(inflight);
                let relayed = relayed?;
                let done = Instant::now();
                if ctx.router.counting {
                    entry
                        .stats
                        .record(request.method, relayed.status, done - start_time);
                }
                if let Some(line) = request.log.take() {
                    ctx.router.push_access_line(
                        &entry.route,
                        line,
                        relayed.status,
                        relayed.length,
                        done - start_time,
                        &backend.process,
                    );
                }
                if relayed.reusable {
                    pool_put(backend.addr, relayed.conn, done);
                }
                return Ok(!closing && !relayed.close_delimited);
            }
            Err(e @ SendError::Connect(_)) => e.record(entry, target),
            Err(e @ SendError::Broken(_)) => {
                e.record(entry, target);
                failure = Failure::Broken {
                    process: backend.process.clone(),
                };
                if last || !request.retryable {
                    break;
                }
            }
        }
    }

    let closing = request.close || !ctx.running();
    let answer = Answer::failure(failure, route);
    let bytes = answer.to_http1(request.request_id.as_bytes(), closing);
    let status = answer.status.as_u16();
    send_to_client(client, &bytes)
        .await
        .map_err(|_| ClientGone)?;
    let elapsed = start_time.elapsed();
    if ctx.router.counting {
        entry.stats.record(request.method, status, elapsed);
    }
    if let Some(line) = request.log.take() {
        ctx.router
            .push_access_line(&entry.route, line, status, None, elapsed, "-");
    }
    Ok(!closing)
}

/// A process's response head, rewritten for the client.
struct ResponseHead {
    head_len: usize,
    status: u16,
    /// Status line and headers for the client, without the final empty line (the
    /// router's own headers go after them).
    client_head: Vec<u8>,
    framing: Framing,
    /// `Content-Length`, for the access log.
    length: Option<u64>,
    /// The process keeps the connection open after this response.
    keep_alive: bool,
}

fn parse_response(buf: &[u8], request: &Request) -> Result<Parsed<ResponseHead>, RoundtripError> {
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => {
            return Ok(Parsed::Partial);
        }
        Ok(httparse::Status::Partial) => return Err(RoundtripError::Invalid("head too large")),
        Err(_) => return Err(RoundtripError::Invalid("malformed head")),
    };
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return Err(RoundtripError::Invalid("malformed status line"));
    };
    if status == 101 {
        return Err(RoundtripError::Invalid("switched protocols unasked"));
    }
    if (100..200).contains(&status) {
        return Ok(Parsed::Interim(head_len));
    }

    let mut keep_alive = version == 1;
    // Added at the end unless the process sent its own.
    let mut hsts = request.entry.hsts(request.https);
    let mut body = BodyHeaders::default();
    let mut named = Named::new();
    let mut kinds = [Kind::Other; MAX_HEADERS];
    for (h, slot) in resp.headers.iter().zip(kinds.iter_mut()) {
        *slot = kind(h.name);
        match *slot {
            Kind::Connection => {
                for token in headers::tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                        named.add(token);
                    }
                }
            }
            Kind::TransferEncoding => body.transfer_encoding(h.value),
            Kind::ContentLength => body.content_length(h.value)?,
            Kind::Other
                if hsts.is_some() && h.name.eq_ignore_ascii_case("strict-transport-security") =>
            {
                hsts = None;
            }
            _ => {}
        }
    }
    let framing = body.framing(request.is_head || status == 204 || status == 304);
    if matches!(framing, Framing::Close) {
        keep_alive = false;
    }

    let mut out = Vec::with_capacity(head_len + 128);
    let reason = match resp.reason {
        Some(r) if !r.is_empty() => r,
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(""),
    };
    headers::put_status_line(&mut out, status, reason);
    for (h, kind) in resp.headers.iter().zip(kinds) {
        let keep = match kind {
            Kind::Other | Kind::ContentLength | Kind::ForwardedFor | Kind::Host => true,
            // Relayed as sent, chunk for chunk.
            Kind::TransferEncoding => matches!(framing, Framing::Chunked(_)),
            Kind::Replaced => true,
            _ => false,
        };
        let name = h.name.as_bytes();
        if !keep || (kind == Kind::Other && named.contains(name)) {
            continue;
        }
        headers::put_header(&mut out, name, h.value);
    }
    if let Some(hsts) = hsts {
        headers::put_header(&mut out, b"strict-transport-security", hsts.as_bytes());
    }
    Ok(Parsed::Final(ResponseHead {
        head_len,
        status,
        client_head: out,
        framing,
        length: body.length(),
        keep_alive,
    }))
}

/// What the relay of one response left behind.
struct Relayed {
    conn: BackendConn,
    status: u16,
    length: Option<u64>,
    /// The connection to the process can serve another request.
    reusable: bool,
    /// The body ended with the process's connection; so must the client's.
    close_delimited: bool,
}

/// Writes the response head and streams the body to the client as it arrives.
async fn relay_response<S: ClientStream>(
    mut conn: BackendConn,
    mut response: ResponseHead,
    request: &Request,
    client: &mut S,
    closing: bool,
) -> Result<Relayed, ClientGone> {
    let close_delimited = matches!(response.framing, Framing::Close);
    let mut out = std::mem::take(&mut response.client_head);
    headers::end_response_head(
        &mut out,
        request.request_id.as_bytes(),
        closing || close_delimited,
    );

    conn.buf.advance(response.head_len);
    let (take, mut done) = response.framing.feed(&conn.buf).map_err(|_| ClientGone)?;
    out.extend_from_slice(&conn.buf[..take]);
    let mut clean = take == conn.buf.len();
    // Head and the body's first bytes in one write: over TLS, one record for a
    // small response.
    send_to_client(client, &out).await.map_err(|_| ClientGone)?;

    while !done {
        conn.buf.clear();
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if close_delimited => break,
            // Cut short: the client cannot be told but by closing its connection too.
            Ok(0) | Err(_) => return Err(ClientGone),
            Ok(_) => {}
        }
        let (take, end) = response.framing.feed(&conn.buf).map_err(|_| ClientGone)?;
        done = end;
        clean &= take == conn.buf.len();
        send_to_client(client, &conn.buf[..take])
            .await
            .map_err(|_| ClientGone)?;
    }
    conn.buf.clear();
    Ok(Relayed {
        conn,
        status: response.status,
        length: response.length,
        reusable: response.keep_alive && clean,
        close_delimited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berths_refusals_have_their_lengths_right() {
        for answer in [AMBIGUOUS_LENGTH, HEAD_TOO_LARGE] {
            let text = std::str::from_utf8(answer).expect("text");
            let (head, body) = text.split_once("\r\n\r\n").expect("a head");
            assert!(
                head.contains(&format!("Content-Length: {}\r\n", body.len())),
                "{text}"
            );
        }
    }

    #[test]
    fn classifies_headers() {
        assert!(kind("Host") == Kind::Host);
        assert!(kind("TRANSFER-ENCODING") == Kind::TransferEncoding);
        assert!(kind("x-forwarded-for") == Kind::ForwardedFor);
        assert!(kind("X-Request-Id") == Kind::RequestId);
        assert!(kind("x-custom") == Kind::Other);
    }
}
