//! HTTPS through the router: HTTP/1.1 over TLS on the fast path (keep-alive, the
//! headers it adds, streamed and large responses, upgrades handed to hyper), HTTP/2 on
//! hyper with the same headers, and session resumption.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_router::{Backend, Route, RouteTable, Router};
use bytes::Bytes;
use common::{HOST, Https};
use http::{Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::HandshakeKind;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HSTS: &str = "max-age=60";
/// The body of `/big`: larger than rustls's 64 KiB send buffer and the socket's.
const BIG: usize = 4 * 1024 * 1024;

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took too long");
}

/// Reads up to the end of an HTTP head, byte by byte (test only).
async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> String {
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

/// A process speaking HTTP/1.1 by hand (so the header names it sends keep their
/// case), keeping connections alive and recording each request head.
async fn scripted_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let (addr, seen, _) = counted_scripted_backend().await;
    (addr, seen)
}

/// [`scripted_backend`], also counting the connections it accepted.
async fn counted_scripted_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let record = record.clone();
            tokio::spawn(async move {
                loop {
                    let head = read_head(&mut s).await;
                    let Some(line) = head.lines().next().map(str::to_owned) else {
                        return;
                    };
                    record.lock().unwrap_or_else(|p| p.into_inner()).push(head);
                    let reply: Vec<u8> = match line.split(' ').nth(1) {
                        Some("/own-hsts") => {
                            b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=5\r\nContent-Length: 2\r\n\r\nok".to_vec()
                        }
                        Some("/big") => {
                            let mut reply =
                                format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n")
                                    .into_bytes();
                            reply.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
                            reply
                        }
                        Some("/chunked") => {
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec()
                        }
                        // The body ends with the connection.
                        Some("/close") => {
                            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".to_vec()
                        }
                        _ => b"HTTP/1.1 200 OK\r\nX-Backend-Case: yes\r\nContent-Length: 2\r\n\r\nok"
                            .to_vec(),
                    };
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                    // Closes a connection kept alive, as a process whose idle timeout
                    // is short does: the router must not send the next request on it.
                    if matches!(line.split(' ').nth(1), Some("/close" | "/then-close")) {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen, accepted)
}

/// A router serving HTTPS (and plain HTTP) for [`HOST`], whose route sets HSTS.
async fn router_to(backend: SocketAddr) -> (Arc<Https>, SocketAddr, SocketAddr) {
    let router = Router::new();
    let route = Arc::new(Route {
        app: "shop".into(),
        service: "web".into(),
        backends: vec![Backend {
            addr: backend,
            process: "web-1".into(),
        }],
        timeout: Duration::from_secs(5),
        tls_redirect: false,
        hsts: Some(HSTS.into()),
    });
    let mut table = RouteTable::default();
    table.hosts.insert(HOST.into(), route);
    router.update(table);
    let https = Https::new();
    let tls = https.serve(router.clone()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain = listener.local_addr().expect("addr");
    tokio::spawn(router.serve(listener, std::future::pending()));
    (https, tls, plain)
}

/// An HTTP/2 connection to the router's HTTPS port, offering `alpn` (the router must
/// choose `h2`), driven in a task of its own.
async fn h2_client<B>(
    https: &Https,
    tls: SocketAddr,
    alpn: &[&[u8]],
) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = https.client(alpn);
    let s = https.connect(&client, tls, HOST).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// The `Content-Length` of a head already in lower case (test only).
fn content_length(lower_head: &str) -> Option<usize> {
    lower_head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|n| n.trim().parse().expect("length"))
}

/// Sends a GET and reads its answer, whose body has a `Content-Length` or chunks.
async fn get(s: &mut (impl AsyncRead + AsyncWrite + Unpin), path: &str) -> (String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Client-Case: 1\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("send");
    s.flush().await.expect("send");
    let head = read_head(s).await;
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(length) = content_length(&lower) {
        body.resize(length, 0);
        s.read_exact(&mut body).await.expect("body");
    } else if lower.contains("transfer-encoding: chunked") {
        while !body.ends_with(b"0\r\n\r\n") {
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.expect("chunks");
            body.push(byte[0]);
        }
    }
    (head, body)
}

fn count(head: &str, header: &str) -> usize {
    head.to_ascii_lowercase()
        .matches(&format!("\r\n{header}: "))
        .count()
}

#[tokio::test]
async fn http1_over_tls_is_relayed_keeps_alive_and_says_https() {
    bounded(async {
        let (backend, seen) = scripted_backend().await;
        let (https, tls, plain) = router_to(backend).await;

        // ALPN `http/1.1`, and a client that offers no ALPN at all.
        for alpn in [&[&b"http/1.1"[..]][..], &[]] {
            let client = https.client(alpn);
            let mut s = https.connect(&client, tls, HOST).await;
            let negotiated = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            assert_eq!(negotiated, alpn.first().map(|p| p.to_vec()));
            for _ in 0..3 {
                seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
                let (head, body) = get(&mut s, "/").await;
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                assert_eq!(body, b"ok");
                // The fast path passes header names as written (hyper would
                // lower-case them): the response came that way.
                assert!(head.contains("\r\nX-Backend-Case: yes\r\n"), "{head}");
                assert!(
                    head.to_ascii_lowercase()
                        .contains(&format!("\r\nstrict-transport-security: {HSTS}\r\n")),
                    "{head}"
                );
                assert!(!head.to_ascii_lowercase().contains("connection: close"));
                let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
                assert_eq!(sent.len(), 1, "{sent:?}");
                assert!(sent[0].contains("\r\nX-Client-Case: 1\r\n"), "{sent:?}");
                assert!(
                    sent[0].contains("\r\nx-forwarded-proto: https\r\n"),
                    "{sent:?}"
                );
            }
            // A process's own HSTS is kept, and not doubled.
            let (head, _) = get(&mut s, "/own-hsts").await;
            assert_eq!(count(&head, "strict-transport-security"), 1, "{head}");
            assert!(
                head.contains("Strict-Transport-Security: max-age=5\r\n"),
                "{head}"
            );
        }

        // Plain HTTP on the same route: no HSTS, `http`.
        let mut s = TcpStream::connect(plain).await.expect("connect");
        seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let (head, _) = get(&mut s, "/").await;
        assert_eq!(count(&head, "strict-transport-security"), 0, "{head}");
        let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(
            sent[0].contains("\r\nx-forwarded-proto: http\r\n"),
            "{sent:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn large_and_chunked_responses_over_tls_arrive_whole() {
    bounded(async {
        let (backend, _) = scripted_backend().await;
        let (https, tls, _) = router_to(backend).await;
        let client = https.client(&[b"http/1.1"]);
        let mut s = https.connect(&client, tls, HOST).await;

        // The client reads only after a pause, so the router's writes fill the
        // socket and the session's buffer and must wait.
        let request = format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
        s.write_all(request.as_bytes()).await.expect("send");
        s.flush().await.expect("send");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let mut body = vec![0u8; BIG];
        s.read_exact(&mut body).await.expect("the whole body");
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, b)| *b == b'a' + (i % 26) as u8),
            "the body arrived changed"
        );

        let (head, body) = get(&mut s, "/chunked").await;
        assert!(
            head.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{head}"
        );
        assert_eq!(body, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        // Still the same connection.
        let (head, body) = get(&mut s, "/").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, b"ok");
    })
    .await;
}

#[tokio::test]
async fn http2_is_served_with_the_same_headers() {
    bounded(async {
        let (backend, seen) = scripted_backend().await;
        let (https, tls, _) = router_to(backend).await;
        let mut sender = h2_client(&https, tls, &[b"h2", b"http/1.1"]).await;
        for path in ["/", "/own-hsts"] {
            seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
            let req = Request::get(format!("https://{HOST}{path}"))
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = sender.send_request(req).await.expect("answer");
            assert_eq!(resp.status(), StatusCode::OK);
            let hsts: Vec<_> = resp
                .headers()
                .get_all("strict-transport-security")
                .iter()
                .cloned()
                .collect();
            let expected = if path == "/" { HSTS } else { "max-age=5" };
            assert_eq!(hsts, [expected], "{path}");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
            let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            assert!(
                sent[0]
                    .to_ascii_lowercase()
                    .contains("\r\nx-forwarded-proto: https\r\n"),
                "{sent:?}"
            );
        }
        // Cookies sent as separate fields (as browsers do over HTTP/2) reach the process
        // as one `Cookie` header, and `:authority` as its `Host`.
        seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let req = Request::get(format!("https://{HOST}/cookies"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let head = sent[0].to_ascii_lowercase();
        assert_eq!(count(&head, "cookie"), 1, "{head}");
        assert!(head.contains("\r\ncookie: a=1; b=2\r\n"), "{head}");
        assert_eq!(count(&head, "host"), 1, "{head}");
        assert!(head.contains(&format!("\r\nhost: {HOST}\r\n")), "{head}");
        // A head over the router's limit (64 KiB) is answered 431, as over HTTP/1.1,
        // and the connection goes on.
        seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let req = Request::get(format!("https://{HOST}/big-head"))
            .header("x-pad", "a".repeat(70 * 1024))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
        let req = Request::get(format!("https://{HOST}/after"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
    })
    .await;
}

/// Over HTTP/2 a request without a body goes straight over the router's own pooled
/// connections to the process (`direct`): every framing of a response body arrives
/// decoded and whole, HEAD gets the head only, a connection the process closes is not
/// used again, and the others are.
#[tokio::test]
async fn http2_responses_of_every_framing_arrive_whole() {
    bounded(async {
        let (backend, seen, accepted) = counted_scripted_backend().await;
        let (https, tls, _) = router_to(backend).await;
        let mut sender = h2_client(&https, tls, &[b"h2"]).await;
        let mut fetch = async |method: &str, path: &str| {
            let req = Request::builder()
                .method(method)
                .uri(format!("https://{HOST}{path}"))
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = sender.send_request(req).await.expect("answer");
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, headers, body)
        };

        for _ in 0..3 {
            let (status, _, body) = fetch("GET", "/").await;
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");

        let (_, headers, body) = fetch("GET", "/big").await;
        assert_eq!(body.len(), BIG);
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, b)| *b == b'a' + (i % 26) as u8)
        );
        assert_eq!(headers["content-length"], BIG.to_string().as_str());

        let (_, headers, body) = fetch("GET", "/chunked").await;
        assert_eq!(&body[..], b"hello world");
        assert!(headers.get("transfer-encoding").is_none(), "{headers:?}");

        let (_, _, body) = fetch("GET", "/close").await;
        assert_eq!(&body[..], b"until the end");
        let (_, _, body) = fetch("GET", "/then-close").await;
        assert_eq!(&body[..], b"ok");
        let before = accepted.load(Ordering::SeqCst);
        let (status, _, body) = fetch("GET", "/").await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            before + 1,
            "a new connection after the process closed its own"
        );

        let (status, headers, body) = fetch("HEAD", "/big").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(headers["content-length"], BIG.to_string().as_str());
        let heads = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let head = heads.last().expect("a request");
        assert!(head.starts_with("HEAD /big HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("\r\nhost: {HOST}\r\n")),
            "{head}"
        );
    })
    .await;
}

/// A process that reads each request's body (by its length, or its chunks) and
/// answers with how long it was and the sum of its bytes, `LEN:SUM`.
async fn body_counting_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut s = tokio::io::BufReader::new(s);
                loop {
                    let head = read_head(&mut s).await.to_ascii_lowercase();
                    if head.is_empty() {
                        return;
                    }
                    let mut body = Vec::new();
                    if let Some(length) = content_length(&head) {
                        body.resize(length, 0);
                        s.read_exact(&mut body).await.expect("body");
                    } else if head.contains("transfer-encoding: chunked") {
                        loop {
                            let mut line = String::new();
                            s.read_line(&mut line).await.expect("chunk size");
                            let size = usize::from_str_radix(line.trim(), 16).expect("size");
                            let mut chunk = vec![0; size + 2];
                            s.read_exact(&mut chunk).await.expect("chunk");
                            if size == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..size]);
                        }
                    }
                    let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
                    let answer = format!("{}:{sum}", body.len());
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if s.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Over HTTP/2, request bodies larger than the stream's
/// window reach the process whole, with their length or in chunks; a client that
/// cancels a stream mid-response leaves the connection's other streams served; and
/// berth's own answers carry a `Date`.
#[tokio::test]
async fn http2_request_bodies_arrive_whole_and_a_cancelled_stream_spares_the_rest() {
    bounded(async {
        let (https, tls, _) = router_to(body_counting_backend().await).await;
        let mut sender = h2_client(&https, tls, &[b"h2"]).await;
        let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = format!(
            "{}:{}",
            body.len(),
            body.iter().map(|b| u64::from(*b)).sum::<u64>()
        );
        let post = |body: BoxBody<Bytes, Infallible>| {
            Request::post(format!("https://{HOST}/upload"))
                .body(body)
                .expect("request")
        };
        // With a length, then streamed in parts without one.
        let whole = Full::new(Bytes::from(body.clone())).boxed();
        let parts = body
            .chunks(100_000)
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>();
        let streamed = StreamBody::new(futures_util::stream::iter(parts)).boxed();
        for req_body in [whole, streamed] {
            let resp = sender.send_request(post(req_body)).await.expect("answer");
            assert_eq!(resp.status(), StatusCode::OK);
            let answer = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(String::from_utf8_lossy(&answer), expected);
        }

        // A client that gives up on a stream after its head (RST_STREAM CANCEL).
        let (https_big, tls_big, _) = router_to(scripted_backend().await.0).await;
        let mut sender = h2_client(&https_big, tls_big, &[b"h2"]).await;
        let get = |path: &str, host: &str| {
            Request::get(format!("https://{host}{path}"))
                .body(Empty::<Bytes>::new())
                .expect("request")
        };
        let resp = sender
            .send_request(get("/big", HOST))
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        drop(resp);
        for _ in 0..3 {
            let resp = sender.send_request(get("/", HOST)).await.expect("answer");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        let resp = sender
            .send_request(get("/", "elsewhere.example"))
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let date = resp.headers().get("date").expect("a Date header");
        assert!(date.to_str().expect("text").ends_with(" GMT"), "{date:?}");
    })
    .await;
}

/// A process that accepts any upgrade and then echoes bytes.
async fn upgrade_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut s).await.to_ascii_lowercase();
                let forwarded = head.contains("x-forwarded-proto: https");
                if !(head.contains("upgrade: websocket") && forwarded) {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .await;
                let (mut rd, mut wr) = s.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrades_over_tls_become_tunnels() {
    bounded(async {
        let (https, tls, _) = router_to(upgrade_echo_backend().await).await;
        let client = https.client(&[b"http/1.1"]);
        let mut s = https.connect(&client, tls, HOST).await;
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await.expect("send");
        s.flush().await.expect("send");
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        for msg in [&b"hello"[..], b"world, again"] {
            s.write_all(msg).await.expect("send");
            s.flush().await.expect("send");
            let mut buf = vec![0u8; msg.len()];
            s.read_exact(&mut buf).await.expect("echo");
            assert_eq!(buf, msg);
        }
    })
    .await;
}

#[tokio::test]
async fn a_returning_client_resumes_its_session() {
    bounded(async {
        let (backend, _) = scripted_backend().await;
        let (https, tls, _) = router_to(backend).await;
        let client = https.client(&[b"http/1.1"]);
        let mut first = https.connect(&client, tls, HOST).await;
        assert_eq!(
            first.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        // The session tickets come after the handshake; an answer read brings them.
        get(&mut first, "/").await;
        for _ in 0..2 {
            let mut again = https.connect(&client, tls, HOST).await;
            assert_eq!(
                again.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Resumed)
            );
            let (head, _) = get(&mut again, "/").await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        }
    })
    .await;
}
