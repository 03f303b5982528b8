//! End-to-end tests of the router on 127.0.0.1 with tiny hyper backends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_router::{Backend, Route, RouteTable, Router};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(15);

/// Runs a test body with a hard time limit.
async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long");
}

type Body = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

/// A backend that answers with its name and records the requests it saw.
struct TestBackend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl TestBackend {
    async fn start(name: &'static str) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(name, req, &seen).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestBackend { addr, seen }
    }

    fn backend(&self, process: &str) -> Backend {
        Backend {
            addr: self.addr,
            process: process.to_owned(),
        }
    }

    fn last_headers(&self) -> HeaderMap {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend saw no request")
    }
}

async fn answer(
    name: &str,
    req: Request<Incoming>,
    seen: &Mutex<Vec<HeaderMap>>,
) -> Response<Body> {
    seen.lock().unwrap().push(req.headers().clone());
    match req.uri().path() {
        "/sleep" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Response::new(full(name.to_owned()))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Response::new(full(name.to_owned()))
        }
        "/stream" => {
            let chunks = stream::unfold(0u8, |i| async move {
                match i {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"first"))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Some((Ok(Frame::data(Bytes::from_static(b"second"))), 2))
                    }
                    _ => None,
                }
            });
            Response::new(StreamBody::new(chunks).boxed())
        }
        "/hop" => Response::builder()
            .header("connection", "x-private")
            .header("x-private", "1")
            .header("keep-alive", "timeout=5")
            .header("x-public", "1")
            .body(full(name.to_owned()))
            .unwrap(),
        "/echo" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Response::new(full(body))
        }
        _ => Response::new(full(name.to_owned())),
    }
}

/// A port nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn route(backends: Vec<Backend>, timeout: Duration) -> Arc<Route> {
    Arc::new(Route {
        app: "shop".into(),
        service: "web".into(),
        backends,
        timeout,
        tls_redirect: false,
        hsts: None,
    })
}

/// A route to one process at `addr` (a hand-written backend), with a 5 s timeout.
fn route_to(addr: SocketAddr, process: &str) -> Arc<Route> {
    route(
        vec![Backend {
            addr,
            process: process.to_owned(),
        }],
        Duration::from_secs(5),
    )
}

fn table(entries: &[(&str, &Arc<Route>)]) -> RouteTable {
    RouteTable {
        hosts: entries
            .iter()
            .map(|(h, r)| (h.to_string(), Arc::clone(r)))
            .collect(),
    }
}

/// A running router; shut down when dropped.
struct TestRouter {
    router: Arc<Router>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    client: Client<HttpConnector, Body>,
}

impl TestRouter {
    async fn start(table: RouteTable) -> TestRouter {
        let router = Router::new();
        router.update(table);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(router.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        TestRouter {
            router,
            addr,
            stop: Some(stop),
            served,
            client,
        }
    }

    fn request(&self, host: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host)
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = self.client.request(req).await.expect("router answered");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn get(&self, host: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        self.send(self.request(host, path).body(full("")).unwrap())
            .await
    }

    async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.served).await.expect("serve task")
    }
}

#[tokio::test]
async fn routes_by_host_with_and_without_port() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let b = TestBackend::start("b").await;
        let ra = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let rb = route(vec![b.backend("web-b")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("a.localhost", &ra), ("b.localhost", &rb)])).await;

        assert_eq!(r.get("a.localhost", "/").await.2, "a");
        assert_eq!(r.get("b.localhost", "/").await.2, "b");
        assert_eq!(r.get("a.localhost:8080", "/").await.2, "a");
        assert_eq!(r.get("B.LocalHost:80", "/").await.2, "b");
        let (status, _, body) = r.get("b.localhost.", "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "b"));
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn absolute_form_uses_the_uri_authority() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let ra = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("a.localhost", &ra)])).await;

        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(
            b"GET http://A.localhost:81/x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("\r\n\r\na"), "{out}");
        let seen = a.last_headers();
        assert_eq!(seen["host"], "A.localhost:81");
        assert_eq!(seen["x-forwarded-host"], "A.localhost:81");
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn round_robin_across_two_backends() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let b = TestBackend::start("b").await;
        let rt = route(
            vec![a.backend("web-a"), b.backend("web-b")],
            Duration::from_secs(5),
        );
        let r = TestRouter::start(table(&[
            ("shop.localhost", &rt),
            ("www.shop.localhost", &rt),
        ]))
        .await;

        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut previous = String::new();
        for i in 0..10 {
            // Hosts sharing one route share one rotation.
            let host = if i % 3 == 0 {
                "www.shop.localhost"
            } else {
                "shop.localhost"
            };
            let (status, _, body) = r.get(host, "/").await;
            assert_eq!(status, StatusCode::OK);
            assert_ne!(body, previous, "round robin must alternate");
            previous = body.clone();
            *counts.entry(body).or_default() += 1;
        }
        assert_eq!(counts.get("a"), Some(&5));
        assert_eq!(counts.get("b"), Some(&5));
        r.shutdown().await.unwrap();
    })
    .await;
}

fn assert_plain(headers: &HeaderMap) {
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn acme_challenges_are_answered_for_any_host() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let ra = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("a.localhost", &ra)])).await;
        r.router.set_challenges(HashMap::from([(
            "tok-1".to_string(),
            "tok-1.thumb".to_string(),
        )]));
        let path = "/.well-known/acme-challenge/tok-1";
        // Routed or not, the router answers a known token itself.
        for host in ["a.localhost", "nobody.example.com"] {
            let (status, headers, body) = r.get(host, path).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "tok-1.thumb"));
            assert_plain(&headers);
        }
        // Unknown tokens belong to the app (it may run its own ACME client).
        let (status, _, body) = r
            .get("a.localhost", "/.well-known/acme-challenge/other")
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
        let (status, _, _) = r
            .get("nobody.example.com", "/.well-known/acme-challenge/other")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        r.router.set_challenges(HashMap::new());
        let (status, _, _) = r.get("nobody.example.com", path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn unknown_host_is_404() {
    bounded(async {
        let r = TestRouter::start(RouteTable::default()).await;
        let (status, headers, body) = r.get("x.localhost:8080", "/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            "berth: no app serves host \"x.localhost\"; check the domain or run 'berth apps'\n"
        );
        assert_plain(&headers);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn no_backends_is_503() {
    bounded(async {
        let rt = route(vec![], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let (status, headers, body) = r.get("shop.localhost", "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "berth: no healthy process for service web of app shop\n"
        );
        assert_plain(&headers);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn dead_backends_are_502() {
    bounded(async {
        let dead1 = Backend {
            addr: dead_addr().await,
            process: "web-dead1".into(),
        };
        let dead2 = Backend {
            addr: dead_addr().await,
            process: "web-dead2".into(),
        };
        let rt = route(vec![dead1, dead2], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        for _ in 0..2 {
            let (status, headers, body) = r.get("shop.localhost", "/").await;
            assert_eq!(status, StatusCode::BAD_GATEWAY);
            assert_eq!(
                body,
                "berth: no process of service web of app shop accepted the connection\n"
            );
            assert_plain(&headers);
        }
        // Also with a body that cannot be replayed after the last attempt.
        let req = r
            .request("shop.localhost", "/echo")
            .method("POST")
            .body(full("data"))
            .unwrap();
        assert_eq!(r.send(req).await.0, StatusCode::BAD_GATEWAY);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn fails_over_to_a_live_backend() {
    bounded(async {
        let live = TestBackend::start("live").await;
        let dead = Backend {
            addr: dead_addr().await,
            process: "web-dead".into(),
        };
        let rt = route(vec![dead, live.backend("web-live")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        // Consecutive requests start at each backend in turn, so half of them meet the
        // dead one first.
        for _ in 0..4 {
            let (status, _, body) = r.get("shop.localhost", "/").await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "live"));
        }
        for i in 0..4 {
            // A request body survives the failed attempt.
            let payload = format!("payload {i}");
            let req = r
                .request("shop.localhost", "/echo")
                .method("POST")
                .body(full(payload.clone()))
                .unwrap();
            let (status, _, body) = r.send(req).await;
            assert_eq!((status, body), (StatusCode::OK, payload));
        }
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn backend_that_hangs_up_is_502() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = read_head(&mut s).await;
                // Close without answering.
            }
        });
        let rt = route_to(addr, "web-rude");
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let (status, headers, body) = r.get("shop.localhost", "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            body,
            "berth: process web-rude of service web of app shop failed to answer\n"
        );
        assert_plain(&headers);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn slow_backend_is_504() {
    bounded(async {
        let slow = TestBackend::start("slow").await;
        let rt = route(vec![slow.backend("web-slow")], Duration::from_millis(200));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let started = Instant::now();
        let (status, headers, body) = r.get("shop.localhost", "/sleep").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            body,
            "berth: service web of app shop did not answer within 200ms\n"
        );
        assert_plain(&headers);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn forwarded_headers_and_request_id() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        let (status, headers, _) = r.get("shop.localhost:1234", "/path?q=1").await;
        assert_eq!(status, StatusCode::OK);
        let seen = a.last_headers();
        assert_eq!(seen["host"], "shop.localhost:1234");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        assert_eq!(seen["x-forwarded-host"], "shop.localhost:1234");
        let id = &seen["x-request-id"];
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(&headers["x-request-id"], id);

        // A client's request id is kept; an existing X-Forwarded-For is appended to.
        let req = r
            .request("shop.localhost", "/")
            .header("x-request-id", "client-chosen-id")
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .body(full(""))
            .unwrap();
        let (_, headers, _) = r.send(req).await;
        let seen = a.last_headers();
        assert_eq!(seen["x-request-id"], "client-chosen-id");
        assert_eq!(headers["x-request-id"], "client-chosen-id");
        assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        let req = r
            .request("shop.localhost", "/hop")
            .header("connection", "keep-alive, x-client-private")
            .header("x-client-private", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("te", "trailers")
            .header("x-client-public", "1")
            .body(full(""))
            .unwrap();
        let (status, headers, body) = r.send(req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
        let seen = a.last_headers();
        for name in ["x-client-private", "keep-alive", "proxy-connection", "te"] {
            assert!(!seen.contains_key(name), "backend saw {name}: {seen:?}");
        }
        assert!(
            !seen.contains_key("connection"),
            "backend saw connection: {seen:?}"
        );
        assert_eq!(seen["x-client-public"], "1");
        // And from the response.
        for name in ["x-private", "keep-alive"] {
            assert!(
                !headers.contains_key(name),
                "client saw {name}: {headers:?}"
            );
        }
        assert_eq!(headers["x-public"], "1");
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn streamed_responses_are_not_buffered() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        let started = Instant::now();
        let resp = r
            .client
            .request(
                r.request("shop.localhost", "/stream")
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        let first_at = started.elapsed();
        assert!(
            first_at < Duration::from_millis(400),
            "first chunk after {first_at:?}"
        );
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "second");
        assert!(started.elapsed() >= Duration::from_millis(450));
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn request_bodies_stream_through() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        // A large body with a length, and a chunked one.
        let big: Bytes = (0..1_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let req = r
            .request("shop.localhost", "/echo")
            .method("POST")
            .body(full(big.clone()))
            .unwrap();
        let resp = r.client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), big);

        let chunks = stream::iter(
            ["one ", "two ", "three"]
                .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))),
        );
        let req = r
            .request("shop.localhost", "/echo")
            .method("POST")
            .body(StreamBody::new(chunks).boxed())
            .unwrap();
        let (status, _, body) = r.send(req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "one two three"));
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn table_updates_while_requests_run() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let b = TestBackend::start("b").await;
        let ra = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let rb = route(vec![b.backend("web-b")], Duration::from_secs(5));
        let r = Arc::new(TestRouter::start(table(&[("shop.localhost", &ra)])).await);

        // A request in flight keeps the table it started with.
        let slow = {
            let r = r.clone();
            tokio::spawn(async move { r.get("shop.localhost", "/slow").await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        r.router.update(RouteTable::default());
        assert_eq!(r.get("shop.localhost", "/").await.0, StatusCode::NOT_FOUND);
        let (status, _, body) = slow.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));

        // Many concurrent requests while the table flips between a and b.
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let (status, _, body) = r.get("shop.localhost", "/").await;
                        assert_eq!(status, StatusCode::OK);
                        assert!(body == "a" || body == "b", "{body}");
                    }
                })
            })
            .collect();
        r.router.update(table(&[("shop.localhost", &ra)]));
        for i in 0..100 {
            let next = if i % 2 == 0 { &rb } else { &ra };
            r.router.update(table(&[("shop.localhost", next)]));
            tokio::task::yield_now().await;
        }
        for w in workers {
            w.await.unwrap();
        }
        r.router.update(table(&[("shop.localhost", &rb)]));
        assert_eq!(r.get("shop.localhost", "/").await.2, "b");
        assert_eq!(r.router.table().hosts["shop.localhost"], rb);
        assert_eq!(r.router.route_for("SHOP.localhost:99").as_ref(), Some(&rb));
    })
    .await;
}

/// A backend that accepts any upgrade and then echoes bytes.
async fn upgrade_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let lower = head.to_ascii_lowercase();
                if !(lower.contains("connection: upgrade") && lower.contains("upgrade: echo")) {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await;
                let (mut rd, mut wr) = s.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

/// Reads up to the end of an HTTP head, byte by byte (test only).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn upgrades_become_tunnels() {
    bounded(async {
        let addr = upgrade_echo_backend().await;
        let rt = route_to(addr, "web-ws");
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: shop.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.to_ascii_lowercase().contains("upgrade: echo"), "{head}");
        for msg in [&b"hello"[..], b"world, again"] {
            s.write_all(msg).await.unwrap();
            let mut buf = vec![0u8; msg.len()];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, msg);
        }
        drop(s);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_lets_requests_finish_and_stops_accepting() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let addr = r.addr;
        let in_flight = {
            let req = r.request("shop.localhost", "/slow").body(full("")).unwrap();
            let fut = r.client.request(req);
            tokio::spawn(async move {
                let resp = fut.await.unwrap();
                let status = resp.status();
                (status, resp.into_body().collect().await.unwrap().to_bytes())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        r.shutdown().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let (status, body) = in_flight.await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"a"[..]));
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    })
    .await;
}

#[tokio::test]
async fn inflight_requests_are_counted_until_done_even_after_the_table_drops_them() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(10));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        assert_eq!(r.router.inflight("web-a"), 0);
        let slow = {
            let req = r
                .request("shop.localhost", "/sleep")
                .body(full(""))
                .unwrap();
            let client = r.client.clone();
            tokio::spawn(async move {
                let resp = client.request(req).await.expect("router answered");
                let status = resp.status();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, body)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(r.router.inflight("web-a"), 1);
        // The process leaves the table (a rollout retires it): its request still counts.
        r.router.update(RouteTable::default());
        assert_eq!(r.router.inflight("web-a"), 1);
        let (status, body) = slow.await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"a"[..]));
        assert_eq!(r.router.inflight("web-a"), 0);
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_get_cut_by_a_closing_process_is_retried() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut s, _)) = listener.accept().await {
                if std::mem::take(&mut first) {
                    // A stopping process: reads the request, closes without answering.
                    let _ = read_head(&mut s).await;
                    continue;
                }
                tokio::spawn(async move {
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(full("again")))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        let rt = route_to(addr, "web-closing");
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let (status, _, body) = r.get("shop.localhost", "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "again"));
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let router = Router::with_limits(berth_router::Limits {
            max_body: Some(10),
            ..Default::default()
        });
        router.update(table(&[("shop.localhost", &rt)]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(router.serve(listener, std::future::pending()));
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let send = |body: &'static str| {
            let req = Request::post(format!("http://{addr}/echo"))
                .header("host", "shop.localhost")
                .body(full(body))
                .unwrap();
            client.request(req)
        };
        let resp = send("0123456789").await.expect("router answered");
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = send("0123456789abc").await.expect("router answered");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"berth: the request body is larger than the router's limit of 10 bytes\n"
        );

        // Chunked bodies carry no length up front: the limit applies as they stream.
        let chunked = |parts: &'static [&'static str]| {
            let frames = stream::iter(
                parts
                    .iter()
                    .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))),
            );
            Request::post(format!("http://{addr}/echo"))
                .header("host", "shop.localhost")
                .body(StreamBody::new(frames).boxed())
                .unwrap()
        };
        let resp = client
            .request(chunked(&["01234", "56789"]))
            .await
            .expect("router answered");
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = client
            .request(chunked(&["01234", "56789", "abc"]))
            .await
            .expect("router answered");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"berth: the request body is larger than the router's limit of 10 bytes\n"
        );
    })
    .await;
}

/// A process speaking HTTP/1.1 by hand, so that each way a response can end is sent
/// byte for byte: by length, by chunks, by closing, with none for HEAD, after a 1xx.
async fn scripted_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let head = read_head(&mut s).await;
                    let Some(line) = head.lines().next() else {
                        return;
                    };
                    let reply: &[u8] = match line {
                        l if l.starts_with("GET /chunked ") => {
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"
                        }
                        l if l.starts_with("HEAD /head ") => {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                        }
                        l if l.starts_with("GET /early ") => {
                            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                        }
                        l if l.starts_with("GET /close ") => {
                            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
                            return;
                        }
                        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                    };
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Everything a client sends until the router closes the connection.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    s.read_to_end(&mut all).await.unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn every_response_framing_is_relayed_exactly() {
    bounded(async {
        let addr = scripted_backend().await;
        let rt = route_to(addr, "web-raw");
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;

        // Four pipelined requests on one connection.
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        let mut requests = String::new();
        for (method, path) in [
            ("GET", "/chunked"),
            ("HEAD", "/head"),
            ("GET", "/early"),
            ("GET", "/close"),
        ] {
            requests.push_str(&format!(
                "{method} {path} HTTP/1.1\r\nHost: shop.localhost\r\n\r\n"
            ));
        }
        s.write_all(requests.as_bytes()).await.unwrap();
        let all = read_to_close(&mut s).await;
        let responses: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(responses.len(), 4, "{all}");

        let chunked = responses[0].to_ascii_lowercase();
        assert!(chunked.starts_with("200 ok\r\n"), "{all}");
        assert!(chunked.contains("transfer-encoding: chunked\r\n"), "{all}");
        assert!(chunked.contains("x-request-id: "), "{all}");
        assert!(
            chunked.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n"),
            "{all}"
        );

        let head = responses[1].to_ascii_lowercase();
        assert!(head.contains("content-length: 100\r\n"), "{all}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "a HEAD answer has no body: {all}"
        );

        assert!(
            !all.contains("HTTP/1.1 103") && !all.contains("Link: </a.css>"),
            "interim answers are not forwarded: {all}"
        );
        assert!(responses[2].ends_with("\r\n\r\nok"), "{all}");

        let close = responses[3].to_ascii_lowercase();
        assert!(close.contains("connection: close\r\n"), "{all}");
        assert!(close.ends_with("\r\n\r\nuntil the end"), "{all}");
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_client_asking_to_close_is_answered_then_closed() {
    bounded(async {
        let a = TestBackend::start("a").await;
        let rt = route(vec![a.backend("web-a")], Duration::from_secs(5));
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let all = read_to_close(&mut s).await;
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(
            all.to_ascii_lowercase().contains("connection: close\r\n"),
            "{all}"
        );
        assert!(all.ends_with("\r\n\r\na"), "{all}");
        r.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_pooled_connection_the_process_closed_is_not_used() {
    bounded(async {
        // Each connection answers one request, keeps quiet about closing, then closes
        // 50 ms later, as a process with a short keep-alive timeout does.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = read_head(&mut s).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        let rt = route_to(addr, "web-brief");
        let r = TestRouter::start(table(&[("shop.localhost", &rt)])).await;
        for _ in 0..3 {
            // A POST is never sent twice, so only a pool that notices the close
            // gets it through.
            let req = r
                .request("shop.localhost", "/")
                .method("POST")
                .body(full("x"))
                .unwrap();
            let (status, _, body) = r.send(req).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "once"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        r.shutdown().await.unwrap();
    })
    .await;
}
