//! The hyper path: every request `relay` does not take, from hyper's HTTP/1.1 server
//! or from `http2`'s streams. Answers ACME challenges,
//! redirects to HTTPS, routes by host, forwards through hyper's pooled client in
//! `routing`'s fail-over order (streaming request bodies, recoverable until sent),
//! answers failures with `outcome`'s answers, and turns upgrades into byte tunnels.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HOST, STRICT_TRANSPORT_SECURITY};
use http::uri::{self, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Body;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{BodyStalled, BodyTooLarge, ClientBody, ReqBody, ResBody, caused_by};
use crate::conn::{ConnCtx, Phase};
use crate::direct;
use crate::headers::{self, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::metrics::{UpstreamError, method_index};
use crate::outcome::{Answer, Failure, access_line_start};
use crate::routing::{
    ACME_CHALLENGE_PATH, Attempt, CONNECT_TIMEOUT, Entry, Inflight, POOL_IDLE_TIMEOUT, is_retryable,
};
use crate::{Router, in_box};

/// A request that reached a process, or failed trying, gets an access line naming
/// the process (`-` when none answered).
#[derive(Clone, Copy)]
enum Logged {
    Process(usize),
    Failed,
}

/// Serves one request the fast path left: every request over HTTP/2 (from `http2`),
/// and on an HTTP/1.1 connection each from the first one `relay` hands over (from
/// hyper's server).
pub(crate) async fn handle(mut req: Request<ClientBody>, conn: &ConnCtx) -> Response<ResBody> {
    let router = &*conn.router;
    // HTTP/2 ends with GOAWAY; an HTTP/1 client learns from the answer to reconnect.
    let http1 = req.version() < Version::HTTP_2;
    let upgrade = headers::upgrade_protocol(req.headers());
    headers::strip_hop_by_hop(req.headers_mut());
    let request_id = headers::ensure_request_id(req.headers_mut());
    let start = Instant::now();
    let method = method_index(req.method().as_str());
    let access = router.log_access.then(|| {
        let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
        access_line_start(req.method().as_str(), host.unwrap_or("-"), req.uri().path())
    });
    let (mut resp, served) = in_box(router.route(req, upgrade, conn)).await;
    let elapsed = start.elapsed();
    if router.counting {
        let stats = served
            .as_ref()
            .map_or(router.unknown_stats(), |(e, _)| &*e.stats);
        stats.record(method, resp.status().as_u16(), elapsed);
    }
    if let (Some(line), Some((entry, Some(logged)))) = (access, &served) {
        let bytes = headers::content_length(resp.headers());
        let status = resp.status().as_u16();
        let route = &entry.route;
        let process = match *logged {
            Logged::Process(backend) => route.backends[backend].process.as_str(),
            Logged::Failed => "-",
        };
        router.push_access_line(route, line, status, bytes, elapsed, process);
    }
    // Never indexed by HTTP/2's header compression: a value used once would only push
    // the values every response repeats (server, content type) out of the table, and
    // finding that it is not there yet walks the other ids kept.
    let mut request_id = request_id;
    request_id.set_sensitive(true);
    resp.headers_mut().insert(X_REQUEST_ID, request_id);
    if http1 && !conn.running() && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

impl Router {
    async fn route(
        &self,
        req: Request<ClientBody>,
        upgrade: Option<HeaderValue>,
        conn: &ConnCtx,
    ) -> (Response<ResBody>, Option<(Arc<Entry>, Option<Logged>)>) {
        if req.method() == Method::CONNECT {
            return (
                text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "berth: CONNECT is not supported\n".into(),
                ),
                None,
            );
        }
        // ACME HTTP-01: answered for any host, before routing and HTTPS redirects
        // (the CA validates over plain HTTP); unknown tokens go to the app as usual.
        if matches!(*req.method(), Method::GET | Method::HEAD)
            && let Some(token) = req.uri().path().strip_prefix(ACME_CHALLENGE_PATH)
            && let Some(key_authorization) = self.challenge(token)
        {
            return (text(StatusCode::OK, key_authorization), None);
        }
        let Some((original_host, absolute_form)) = headers::requested_host(&req) else {
            return (
                text(
                    StatusCode::BAD_REQUEST,
                    "berth: the request has no Host header\n".into(),
                ),
                None,
            );
        };
        let Some(host) = headers::normalize_host(&original_host) else {
            return (
                text(
                    StatusCode::BAD_REQUEST,
                    "berth: the request's Host header is invalid\n".into(),
                ),
                None,
            );
        };
        let Some(entry) = self.entry(&host) else {
            return (
                text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "berth: no app serves host \"{host}\"; check the domain or run 'berth apps'\n"
                    ),
                ),
                None,
            );
        };
        let (resp, logged) = in_box(self.route_to(
            &entry,
            req,
            upgrade,
            conn,
            (host.into_owned(), original_host, absolute_form),
        ))
        .await;
        (resp, Some((entry, logged)))
    }

    /// Serves a request for `entry`'s route: redirect to HTTPS, 503 without healthy
    /// processes, else forwarded. `host` is the normalised and the original host.
    async fn route_to(
        &self,
        entry: &Entry,
        mut req: Request<ClientBody>,
        upgrade: Option<HeaderValue>,
        conn: &ConnCtx,
        (host, original_host, absolute_form): (String, HeaderValue, bool),
    ) -> (Response<ResBody>, Option<Logged>) {
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
            return (resp, None);
        }
        drop(host);
        if entry.targets.is_empty() {
            return (
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "berth: no healthy process for service {} of app {}\n",
                        route.service, route.app
                    ),
                ),
                None,
            );
        }

        if let Some(max) = self.limits.max_body
            && req.body().size_hint().lower() > max
        {
            return (
                Answer::failure(Failure::TooLarge(max), route).into_response(),
                None,
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
        let upgrade_asked = upgrade.is_some();
        if let Some(protocol) = upgrade {
            headers::set_upgrade(&mut headers, protocol);
        }

        let result = if direct::takes(&parts.method, !body.is_end_stream(), upgrade_asked) {
            in_box(direct::forward(
                entry,
                &parts.method,
                &path_and_query,
                &headers,
            ))
            .await
        } else {
            // Boxed: hyper's client future is large, and unboxed it would size (and
            // move) the future of every request, including the direct ones.
            in_box(self.forward(entry, parts.method, path_and_query, headers, body)).await
        };
        let (mut resp, backend) = match result {
            Ok(ok) => ok,
            Err(failure) => {
                return (
                    Answer::failure(failure, route).into_response(),
                    Some(Logged::Failed),
                );
            }
        };
        let logged = Some(Logged::Process(backend));

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_upgrade), Some(protocol)) = (
                client_upgrade,
                resp.headers().get(http::header::UPGRADE).cloned(),
            ) else {
                return (
                    text(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "berth: a process of service {} of app {} switched protocols unasked\n",
                            route.service, route.app
                        ),
                    ),
                    None,
                );
            };
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(
                client_upgrade,
                backend_upgrade,
                conn.phase.clone(),
                conn.alive.clone(),
            ));
            let (mut parts, _) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            headers::set_upgrade(&mut parts.headers, protocol);
            return (Response::from_parts(parts, ResBody::empty()), logged);
        }

        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        if let Some(hsts) = entry.hsts(conn.https)
            && !parts.headers.contains_key(STRICT_TRANSPORT_SECURITY)
        {
            parts
                .headers
                .insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        (Response::from_parts(parts, body), logged)
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
        body: ClientBody,
    ) -> Result<(Response<ResBody>, usize), Failure> {
        let retryable = is_retryable(method.as_str(), !body.is_end_stream());
        let deadline = entry.deadline(Instant::now());
        // `None`: nothing to send (replayable for free).
        let mut body = (!body.is_end_stream()).then_some(body);

        for Attempt { target, last } in entry.attempts(retryable) {
            let (req_body, giveback) = match body.take() {
                None => (ReqBody::empty(), None),
                Some(b) if last => (ReqBody::stream(b, &self.limits), None),
                Some(b) => {
                    let (rb, rx) = ReqBody::recoverable(b, &self.limits);
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
            let Some(result) = entry.within(deadline, sent).await else {
                return Err(Failure::Timeout);
            };
            match result {
                Ok(resp) => {
                    return Ok((
                        resp.map(|body| ResBody::Counted(body, guard)),
                        target.backend,
                    ));
                }
                Err(e) if e.is_connect() => {
                    entry.stats.upstream_error(UpstreamError::Connect);
                    entry.attempt_failed(target, "cannot connect to process", &ErrorChain(&e));
                    if let Some(mut rx) = giveback {
                        match rx.try_recv() {
                            Ok(b) => body = Some(b),
                            // The body was already read: it cannot be sent again.
                            Err(_) => return Err(Failure::Unreachable),
                        }
                    }
                }
                Err(e) if !last && retryable => {
                    entry.stats.upstream_error(UpstreamError::Reset);
                    let what = "process failed to answer; retrying";
                    entry.attempt_failed(target, what, &ErrorChain(&e));
                }
                Err(e) if caused_by::<BodyTooLarge>(&e).is_some() => {
                    return Err(Failure::TooLarge(self.limits.max_body.unwrap_or_default()));
                }
                Err(e) if caused_by::<BodyStalled>(&e).is_some() => {
                    return Err(Failure::BodyStalled(self.limits.body_timeout));
                }
                Err(e) => {
                    entry.stats.upstream_error(UpstreamError::Reset);
                    entry.attempt_failed(target, "process failed to answer", &ErrorChain(&e));
                    return Err(Failure::Backend {
                        process: entry.route.backends[target.backend].process.clone(),
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
/// until either side closes or the server stops; the server's drain waits for it
/// (`_alive`).
async fn tunnel(
    client: OnUpgrade,
    backend: OnUpgrade,
    mut phase: watch::Receiver<Phase>,
    _alive: tokio::sync::mpsc::Sender<std::convert::Infallible>,
) {
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

/// An error with its causes, `a: b: c`; written only if the log line is.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A short plain-text answer of berth's own.
fn text(status: StatusCode, message: String) -> Response<ResBody> {
    Answer::new(status, message).into_response()
}
