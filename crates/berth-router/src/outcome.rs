//! How a request ends when no process answered it, and how every request is logged, the
//! same on both data paths: the failures, berth's own plain-text answers (built once,
//! then sent by hyper or written as bytes by the fast path) and the access log line.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::ResBody;
use crate::{Route, headers};

/// Why no response came from a process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no response before the timeout")]
    Timeout,
    #[error("no process accepted the connection")]
    Unreachable,
    #[error("process {process} failed to answer: {source}")]
    Backend {
        process: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// On the fast path (`relay`), whose errors are logged where they happen.
    #[error("process {process} failed to answer")]
    Broken { process: String },
    #[error("invalid request target")]
    BadTarget,
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the client sent nothing of the request body for {0:?}")]
    BodyStalled(Duration),
}

/// The headers of every answer of berth's own: plain text that browsers must neither
/// sniff nor cache.
const ANSWER_HEADERS: [(HeaderName, &str); 3] = [
    (CONTENT_TYPE, "text/plain; charset=utf-8"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (CACHE_CONTROL, "no-store"),
];

/// A short plain-text answer of berth's own.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Answer {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            message: message.into(),
        }
    }

    /// What the client is told when `route` gave no response.
    pub(crate) fn failure(failure: Failure, route: &Route) -> Answer {
        match failure {
            Failure::Timeout => Answer::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "berth: service {} of app {} did not answer within {}\n",
                    route.service,
                    route.app,
                    human(route.timeout)
                ),
            ),
            Failure::Unreachable => Answer::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "berth: no process of service {} of app {} accepted the connection\n",
                    route.service, route.app
                ),
            ),
            Failure::Backend { process, .. } | Failure::Broken { process } => Answer::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "berth: process {process} of service {} of app {} failed to answer\n",
                    route.service, route.app
                ),
            ),
            Failure::BadTarget => Answer::new(
                StatusCode::BAD_REQUEST,
                "berth: the request target is invalid\n",
            ),
            Failure::TooLarge(max) => Answer::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "berth: the request body is larger than the router's limit of {max} bytes\n"
                ),
            ),
            Failure::BodyStalled(pause) => Answer::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "berth: the request body stopped arriving for {} (the router's --body-timeout)\n",
                    human(pause)
                ),
            ),
        }
    }

    /// The answer for hyper to send.
    pub(crate) fn into_response(self) -> Response<ResBody> {
        let mut resp = Response::new(ResBody::Full(Some(Bytes::from(self.message))));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        for (name, value) in ANSWER_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        resp
    }

    /// The answer as an HTTP/1.1 response, for the fast path, which writes to the
    /// client itself.
    pub(crate) fn to_http1(&self, request_id: &[u8], close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.message.len());
        let reason = self.status.canonical_reason().unwrap_or_default();
        headers::put_status_line(&mut out, self.status.as_u16(), reason);
        for (name, value) in &ANSWER_HEADERS {
            headers::put_header(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        let mut digits = itoa::Buffer::new();
        let length = digits.format(self.message.len());
        headers::put_header(&mut out, b"content-length", length.as_bytes());
        headers::end_response_head(&mut out, request_id, close);
        out.extend_from_slice(self.message.as_bytes());
        out
    }
}

/// The start of an access log line, `METHOD HOST PATH`; [`finish_access_line`] adds
/// the rest once the response is known:
/// `GET shop.example.com /cart 200 512 3ms web-3f9a2c`.
pub(crate) fn access_line_start(method: &str, host: &str, path: &str) -> String {
    let mut line = String::with_capacity(method.len() + host.len() + path.len() + 48);
    line.push_str(method);
    line.push(' ');
    line.push_str(host);
    line.push(' ');
    line.push_str(path);
    line
}

/// Completes an access log line begun with `METHOD HOST PATH`.
pub(crate) fn finish_access_line(
    mut line: String,
    status: u16,
    bytes: Option<u64>,
    elapsed: Duration,
    process: &str,
) -> String {
    let mut digits = itoa::Buffer::new();
    line.push(' ');
    line.push_str(digits.format(status));
    line.push(' ');
    match bytes {
        Some(bytes) => line.push_str(digits.format(bytes)),
        None => line.push('-'),
    }
    line.push(' ');
    line.push_str(digits.format(elapsed.as_millis()));
    line.push_str("ms ");
    line.push_str(process);
    line
}

/// `30s`, `1.5s`, `200ms`.
fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_read_the_same_from_both_paths() {
        let elapsed = Duration::from_millis(3);
        assert_eq!(
            finish_access_line(
                access_line_start("GET", "shop.localhost", "/cart"),
                200,
                Some(13),
                elapsed,
                "web-1"
            ),
            "GET shop.localhost /cart 200 13 3ms web-1"
        );
        assert_eq!(
            finish_access_line("GET shop.localhost /cart".into(), 502, None, elapsed, "-"),
            "GET shop.localhost /cart 502 - 3ms -"
        );
    }

    #[test]
    fn answers_read_the_same_from_both_paths() {
        let route = Route {
            app: "shop".into(),
            service: "web".into(),
            backends: vec![],
            timeout: Duration::from_secs(30),
            tls_redirect: false,
            hsts: None,
        };
        let answer = || Answer::failure(Failure::Timeout, &route);
        let bytes = answer().to_http1(b"id-1", true);
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut slots);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&bytes) else {
            panic!("not a response: {}", String::from_utf8_lossy(&bytes));
        };
        let resp = answer().into_response();
        assert_eq!(parsed.code, Some(resp.status().as_u16()));
        for (name, value) in resp.headers() {
            assert!(
                parsed
                    .headers
                    .iter()
                    .any(|h| h.name == name.as_str() && h.value == value.as_bytes()),
                "{name} missing"
            );
        }
        let ResBody::Full(Some(body)) = resp.into_body() else {
            panic!("no body");
        };
        assert_eq!(&bytes[head_len..], &body[..]);
    }

    #[test]
    fn formats_durations() {
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_millis(200)), "200ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }
}
