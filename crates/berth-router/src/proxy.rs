//! One request: route by host, forward round robin with fail-over, map failures to
//! short plain-text answers.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, X_CONTENT_TYPE_OPTIONS};
use http::uri::{self, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Router;
use crate::body::{ReqBody, ResBody};
use crate::conn::{ConnCtx, Phase};
use crate::headers::{self, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::routing::{ACME_CHALLENGE_PATH, CONNECT_TIMEOUT, Entry, Inflight, POOL_IDLE_TIMEOUT};

/// Which app and process answered, for the access log (never sent to the client).
#[derive(Clone)]
struct AccessTag {
    app: String,
    process: String,
}

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
}

impl Router {
    /// Serves one request from a client connection.
    pub(crate) async fn handle(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnCtx,
    ) -> Response<ResBody> {
        let upgrade = headers::upgrade_protocol(req.headers());
        headers::strip_hop_by_hop(req.headers_mut());
        let request_id = headers::ensure_request_id(req.headers_mut());
        let access = self.log_access.then(|| {
            let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
            let line =
                access_line_start(req.method().as_str(), host.unwrap_or("-"), req.uri().path());
            (Instant::now(), line)
        });
        let mut resp = self.route(req, upgrade, conn).await;
        if let (Some((start, line)), Some(tag)) =
            (access, resp.extensions_mut().remove::<AccessTag>())
        {
            let bytes = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let line = finish_access_line(
                line,
                resp.status().as_u16(),
                bytes,
                start.elapsed(),
                &tag.process,
            );
            self.access.push(&tag.app, line);
        }
        resp.headers_mut().insert(X_REQUEST_ID, request_id);
        resp
    }

    async fn route(
        &self,
        mut req: Request<Incoming>,
        upgrade: Option<HeaderValue>,
        conn: &ConnCtx,
    ) -> Response<ResBody> {
        if req.method() == Method::CONNECT {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "berth: CONNECT is not supported\n".into(),
            );
        }
        // ACME HTTP-01: answered for any host, before routing and HTTPS redirects
        // (the CA validates over plain HTTP); unknown tokens go to the app as usual.
        if matches!(*req.method(), Method::GET | Method::HEAD)
            && let Some(token) = req.uri().path().strip_prefix(ACME_CHALLENGE_PATH)
            && let Some(key_authorization) = self.challenge(token)
        {
            return text(StatusCode::OK, key_authorization);
        }
        let Some((original_host, absolute_form)) = headers::requested_host(&req) else {
            return text(
                StatusCode::BAD_REQUEST,
                "berth: the request has no Host header\n".into(),
            );
        };
        let Some(host) = headers::normalize_host(&original_host) else {
            return text(
                StatusCode::BAD_REQUEST,
                "berth: the request's Host header is invalid\n".into(),
            );
        };
        let Some(entry) = self.entry(&host) else {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "berth: no app serves host \"{host}\"; check the domain or run 'berth apps'\n"
                ),
            );
        };
        let route = &entry.route;
        if route.tls_redirect
            && !conn.https
            && let Some(port) = self.https_port.get()
        {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = if *port == 443 {
                format!("https://{host}{path}")
            } else {
                format!("https://{host}:{port}{path}")
            };
            let mut resp = text(
                StatusCode::PERMANENT_REDIRECT,
                format!("berth: this service is served over HTTPS: {location}\n"),
            );
            if let Ok(value) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(http::header::LOCATION, value);
            }
            return resp;
        }
        drop(host);
        if entry.targets.is_empty() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "berth: no healthy process for service {} of app {}\n",
                    route.service, route.app
                ),
            );
        }

        if let Some(max) = self.max_body
            && req.body().size_hint().lower() > max
        {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "berth: the request body is larger than the router's limit of {max} bytes\n"
                ),
            );
        }
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let uri::Parts { path_and_query, .. } = parts.uri.into_parts();
        let path_and_query = path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut headers = parts.headers;
        if absolute_form {
            headers.insert(HOST, original_host.clone());
        }
        headers::append_forwarded_for(&mut headers, &conn.client_ip);
        headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if conn.https { "https" } else { "http" }),
        );
        headers.insert(X_FORWARDED_HOST, original_host);
        if let Some(protocol) = upgrade {
            headers::set_upgrade(&mut headers, protocol);
        }

        let result = self
            .forward(&entry, parts.method, path_and_query, headers, body)
            .await;
        let (mut resp, inflight, backend) = match result {
            Ok(ok) => ok,
            Err(failure) => {
                let mut resp = failure_response(failure, &entry);
                resp.extensions_mut().insert(AccessTag {
                    app: route.app.clone(),
                    process: "-".into(),
                });
                return resp;
            }
        };
        if self.log_access {
            resp.extensions_mut().insert(AccessTag {
                app: route.app.clone(),
                process: route.backends[backend].process.clone(),
            });
        }

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_upgrade), Some(protocol)) = (
                client_upgrade,
                resp.headers().get(http::header::UPGRADE).cloned(),
            ) else {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "berth: a process of service {} of app {} switched protocols unasked\n",
                        route.service, route.app
                    ),
                );
            };
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_upgrade, backend_upgrade, conn.phase.clone()));
            let (mut parts, _) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            headers::set_upgrade(&mut parts.headers, protocol);
            return Response::from_parts(parts, ResBody::empty());
        }

        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, ResBody::Counted(body, inflight))
    }

    /// Sends the request to the route's processes in round-robin order. A process that
    /// refuses the connection is skipped (nothing was sent to it); any other failure ends
    /// the request. The timeout covers all attempts.
    async fn forward(
        &self,
        entry: &Entry,
        method: Method,
        path_and_query: PathAndQuery,
        mut headers: HeaderMap,
        body: Incoming,
    ) -> Result<(Response<Incoming>, Inflight, usize), Failure> {
        let n = entry.targets.len();
        // A request without a body whose method is safe is retried once more (on the
        // next process) when a process fails it: a process that is stopping may close a
        // pooled connection just as the request goes out.
        let safe = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let retryable = safe && body.is_end_stream();
        let attempts = if retryable { n.max(2) } else { n };
        let start = entry
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let deadline =
            (!entry.route.timeout.is_zero()).then(|| Instant::now() + entry.route.timeout);
        // `None`: nothing to send (replayable for free).
        let mut body = (!body.is_end_stream()).then_some(body);

        for attempt in 0..attempts {
            let target = &entry.targets[start.wrapping_add(attempt) % n];
            let last = attempt + 1 == attempts;
            let (req_body, giveback) = match body.take() {
                None => (ReqBody::empty(), None),
                Some(b) if last => (ReqBody::stream(b, self.max_body), None),
                Some(b) => {
                    let (rb, rx) = ReqBody::recoverable(b, self.max_body);
                    (rb, Some(rx))
                }
            };

            let mut uri = uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(target.authority.clone());
            uri.path_and_query = Some(path_and_query.clone());
            let uri = Uri::from_parts(uri).map_err(|_| Failure::BadTarget)?;

            let mut req = Request::new(req_body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.version_mut() = Version::HTTP_11;
            // The client consumes the request even when it cannot connect, so keep a copy
            // while another process may still be tried.
            *req.headers_mut() = if last {
                std::mem::take(&mut headers)
            } else {
                headers.clone()
            };

            let guard = Inflight::start(&target.inflight);
            let sent = backend_client().request(req);
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, sent).await {
                    Ok(result) => result,
                    Err(_) => return Err(Failure::Timeout),
                },
                None => sent.await,
            };
            let process = &entry.route.backends[target.backend].process;
            match result {
                Ok(resp) => return Ok((resp, guard, target.backend)),
                Err(e) if e.is_connect() => {
                    tracing::debug!(
                        app = %entry.route.app,
                        service = %entry.route.service,
                        process = %process,
                        "cannot connect to process: {}",
                        error_chain(&e)
                    );
                    if let Some(mut rx) = giveback {
                        match rx.try_recv() {
                            Ok(b) => body = Some(b),
                            // The body was already read: it cannot be sent again.
                            Err(_) => return Err(Failure::Unreachable),
                        }
                    }
                }
                Err(e) if !last && retryable => {
                    tracing::debug!(
                        app = %entry.route.app,
                        service = %entry.route.service,
                        process = %process,
                        "process failed to answer; retrying: {}",
                        error_chain(&e)
                    );
                }
                Err(e) if crate::body::caused_by_too_large(&e) => {
                    return Err(Failure::TooLarge(self.max_body.unwrap_or_default()));
                }
                Err(e) => {
                    tracing::debug!(
                        app = %entry.route.app,
                        service = %entry.route.service,
                        process = %process,
                        "process failed to answer: {}",
                        error_chain(&e)
                    );
                    return Err(Failure::Backend {
                        process: process.clone(),
                        source: e,
                    });
                }
            }
        }
        Err(Failure::Unreachable)
    }
}

thread_local! {
    static BACKEND_CLIENT: Client<HttpConnector, ReqBody> = new_backend_client();
}

/// The pooled client to processes of the calling thread. Each router event loop
/// has its own thread, so its connections to processes, and the tasks driving
/// them, never wake another thread.
fn backend_client() -> Client<HttpConnector, ReqBody> {
    BACKEND_CLIENT.with(Client::clone)
}

fn new_backend_client() -> Client<HttpConnector, ReqBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        // The original Host header is always forwarded as is.
        .set_host(false)
        .build(connector)
}

/// Copies bytes both ways between an upgraded client connection and process connection,
/// until either side closes or the server stops.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade, mut phase: watch::Receiver<Phase>) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(e) = res {
                tracing::debug!("upgraded connection ended: {e}");
            }
        }
        _ = phase.wait_for(|p| *p == Phase::Stopped) => {}
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

pub(crate) fn failure_response(failure: Failure, entry: &Entry) -> Response<ResBody> {
    let route = &entry.route;
    let (status, message) = match failure {
        Failure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "berth: service {} of app {} did not answer within {}\n",
                route.service,
                route.app,
                human(route.timeout)
            ),
        ),
        Failure::Unreachable => (
            StatusCode::BAD_GATEWAY,
            format!(
                "berth: no process of service {} of app {} accepted the connection\n",
                route.service, route.app
            ),
        ),
        Failure::Backend { process, .. } | Failure::Broken { process } => (
            StatusCode::BAD_GATEWAY,
            format!(
                "berth: process {process} of service {} of app {} failed to answer\n",
                route.service, route.app
            ),
        ),
        Failure::BadTarget => (
            StatusCode::BAD_REQUEST,
            "berth: the request target is invalid\n".to_owned(),
        ),
        Failure::TooLarge(max) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("berth: the request body is larger than the router's limit of {max} bytes\n"),
        ),
    };
    text(status, message)
}

/// A short plain-text answer of berth's own.
fn text(status: StatusCode, message: String) -> Response<ResBody> {
    let mut resp = Response::new(ResBody::Full(Some(Bytes::from(message))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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

/// An error with its causes, `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(s, ": {cause}");
        source = cause.source();
    }
    s
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
    fn formats_durations() {
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_millis(200)), "200ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }
}
