//! The hyper path's own way to a process for requests without a body (GET and HEAD:
//! most HTTP/2 traffic): the request head is written straight to a pooled connection
//! of `backend`, the response head parsed into hyper's types, and the body read from
//! that connection as the client takes it, all in the task serving the request.
//!
//! Why: through hyper's pooled client each request also crossed to the task of the
//! connection to the process and back, and was serialized and parsed there once more;
//! over HTTP/2 that was about a quarter of the router's user-space CPU per request
//! (BENCHMARKS.md). Requests with a body (streamed, and recoverable for fail-over) and
//! upgrades stay on hyper's client.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use tokio::time::Instant;

use crate::backend::{self, BodyHeaders, BodyReader, Framing, Parsed, RoundtripError, SendError};
use crate::body::ResBody;
use crate::headers;
use crate::outcome::Failure;
use crate::routing::{Attempt, Entry, Inflight};

/// Most headers in a response head read here (hyper's client takes as many).
const MAX_HEADERS: usize = 100;
/// Longest response head read here.
const MAX_HEAD: usize = 64 * 1024;

/// Whether a request goes to its process through this module.
pub(crate) fn takes(method: &Method, has_body: bool, upgrade: bool) -> bool {
    !has_body && !upgrade && (*method == Method::GET || *method == Method::HEAD)
}

/// Sends the request to the route's processes in round-robin order, as hyper's path
/// does: a process that refuses the connection is skipped, and so is one whose
/// connection broke (the request is safe to send again). Returns the response and the
/// index of the process that gave it.
pub(crate) async fn forward(
    entry: &Entry,
    method: &Method,
    path_and_query: &PathAndQuery,
    headers: &HeaderMap,
) -> Result<(Response<ResBody>, usize), Failure> {
    let head = request_head(method, path_and_query, headers);
    let is_head = *method == Method::HEAD;
    let start = Instant::now();
    let deadline = entry.deadline(start);
    let route = &*entry.route;
    let mut failure = Failure::Unreachable;
    for Attempt { target, last } in entry.attempts(true) {
        let backend = &route.backends[target.backend];
        let inflight = Inflight::start(&target.inflight);
        let sent = backend::send(backend.addr, (&head, &[]), true, start, |buf| {
            parse_response(buf, is_head)
        });
        let Some(result) = entry.within(deadline, sent).await else {
            return Err(Failure::Timeout);
        };
        match result {
            Ok((mut conn, response)) => {
                // The header values are slices of the head as received, not copies.
                let head = conn.buf.split_to(response.head_len).freeze();
                let headers = response.headers(&head);
                let mut reader =
                    BodyReader::new(conn, response.framing, backend.addr, response.keep_alive);
                // A small body usually came with the head: the process's connection goes
                // back to the pool now, and the request no longer counts as in flight.
                let body = match reader.take_whole() {
                    Some(whole) => ResBody::Full(Some(whole)),
                    None if reader.is_end() => ResBody::empty(),
                    None => ResBody::Process(reader, inflight),
                };
                let mut resp = Response::new(body);
                *resp.status_mut() = response.status;
                *resp.headers_mut() = headers;
                return Ok((resp, target.backend));
            }
            Err(e @ SendError::Connect(_)) => e.record(entry, target),
            Err(e @ SendError::Broken(_)) => {
                e.record(entry, target);
                failure = Failure::Broken {
                    process: backend.process.clone(),
                };
                if last {
                    break;
                }
            }
        }
    }
    Err(failure)
}

/// The HTTP/1.1 request head for the process: `headers` are already what it is sent
/// (hop-by-hop headers gone, `Host` and the forwarding headers set).
fn request_head(method: &Method, path_and_query: &PathAndQuery, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + headers.len() * 32);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        headers::put_header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A process's response head, read into hyper's types but for the header values:
/// where each lies in the head, taken out of the head's bytes once it is complete.
struct ResponseHead {
    head_len: usize,
    status: StatusCode,
    /// As the process sent them but `Transfer-Encoding` (the body is decoded here),
    /// and `Content-Length` too when the body is chunked; the caller strips the other
    /// hop-by-hop headers. Each value is checked as [`HeaderValue`] requires.
    fields: Vec<(HeaderName, Range<usize>)>,
    framing: Framing,
    keep_alive: bool,
}

impl ResponseHead {
    /// The headers, their values slices of `head` (the first `head_len` bytes of
    /// what the process sent).
    fn headers(&self, head: &Bytes) -> HeaderMap {
        // Room for what the router adds (the request id, `Date`, HSTS) without growing.
        let mut headers = HeaderMap::with_capacity(self.fields.len() + 4);
        for (name, range) in &self.fields {
            // Checked while parsing (`is_valid_value`): this does not fail.
            if let Ok(value) = HeaderValue::from_maybe_shared(head.slice(range.clone())) {
                headers.append(name.clone(), value);
            }
        }
        headers
    }
}

/// What [`HeaderValue`] accepts: visible ASCII, spaces, tabs and obs-text.
fn is_valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

fn parse_response(buf: &[u8], is_head: bool) -> Result<Parsed<ResponseHead>, RoundtripError> {
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parsed::Partial),
        Ok(httparse::Status::Partial) => return Err(RoundtripError::Invalid("head too large")),
        Err(_) => return Err(RoundtripError::Invalid("malformed head")),
    };
    let (Some(code), Some(version)) = (resp.code, resp.version) else {
        return Err(RoundtripError::Invalid("malformed status line"));
    };
    if code == 101 {
        return Err(RoundtripError::Invalid("switched protocols unasked"));
    }
    if (100..200).contains(&code) {
        return Ok(Parsed::Interim(head_len));
    }
    let status =
        StatusCode::from_u16(code).map_err(|_| RoundtripError::Invalid("invalid status"))?;

    let mut keep_alive = version == 1;
    let mut body = BodyHeaders::default();
    let mut fields = Vec::with_capacity(resp.headers.len());
    let start = buf.as_ptr() as usize;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| RoundtripError::Invalid("invalid header name"))?;
        if name == TRANSFER_ENCODING {
            body.transfer_encoding(h.value);
            continue;
        }
        if name == CONTENT_LENGTH {
            let repeated = body.length().is_some();
            body.content_length(h.value)?;
            if repeated {
                continue;
            }
        }
        if name == http::header::CONNECTION {
            for token in headers::tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                }
            }
        }
        if !is_valid_value(h.value) {
            return Err(RoundtripError::Invalid("invalid header value"));
        }
        // httparse's values are slices of `buf`.
        let at = h.value.as_ptr() as usize - start;
        fields.push((name, at..at + h.value.len()));
    }
    let framing = body
        .framing(is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED);
    if body.encoded() {
        // The body is decoded; a length the process also sent does not hold for it.
        fields.retain(|(name, _)| *name != CONTENT_LENGTH);
    }
    Ok(Parsed::Final(ResponseHead {
        head_len,
        status,
        fields,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head parsed, and its headers.
    fn parsed(raw: &[u8], is_head: bool) -> (ResponseHead, HeaderMap) {
        match parse_response(raw, is_head) {
            Ok(Parsed::Final(head)) => {
                let headers = head.headers(&Bytes::copy_from_slice(&raw[..head.head_len]));
                (head, headers)
            }
            Ok(_) => panic!("not a final response"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn writes_the_request_head() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("a.example"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let head = request_head(&Method::GET, &PathAndQuery::from_static("/p?q=1"), &headers);
        assert_eq!(
            head,
            b"GET /p?q=1 HTTP/1.1\r\nhost: a.example\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
    }

    #[test]
    fn reads_the_framing_of_responses() {
        let (h, headers) = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert!(matches!(h.framing, Framing::Length(5)) && h.keep_alive);
        assert_eq!(headers["content-length"], "5");
        let (_, headers) = parsed(
            b"HTTP/1.1 200 OK\r\nServer: t\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
            false,
        );
        assert_eq!(headers["server"], "t");
        let values: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        let (h, _) = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert!(matches!(h.framing, Framing::Empty));
        let (h, headers) = parsed(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert!(matches!(h.framing, Framing::Chunked(_)));
        assert!(headers.get("transfer-encoding").is_none());
        assert!(headers.get("content-length").is_none());
        let (h, _) = parsed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false);
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);
        let (h, _) = parsed(b"HTTP/1.0 204 No Content\r\n\r\n", false);
        assert!(matches!(h.framing, Framing::Empty) && !h.keep_alive);
    }

    #[test]
    fn refuses_ambiguous_responses() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert!(
                parse_response(raw, false).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", false),
            Ok(Parsed::Interim(25))
        ));
    }
}
