//! Requests that proxies disagree about (the stuff of request smuggling) and
//! heads too large to be honest, sent byte for byte to the router over plain
//! HTTP and over HTTPS: each must be refused, or reach the process as exactly one
//! message whose framing nobody can read two ways.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_router::{Backend, Limits, Route, RouteTable, Router};
use common::{Https, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A process that records every byte it receives and answers each
/// connection once (then closes it).
async fn recording_backend() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 65536];
                // Whatever arrives until the sender pauses.
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                record
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&got);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn router_to(backend: SocketAddr) -> [Transport; 2] {
    router_with(backend, Limits::default()).await
}

/// One router serving both plain HTTP and HTTPS.
async fn router_with(backend: SocketAddr, limits: Limits) -> [Transport; 2] {
    let router = Router::with_limits(limits);
    let route = Arc::new(Route {
        app: "shop".into(),
        service: "web".into(),
        backends: vec![Backend {
            addr: backend,
            process: "web-1".into(),
        }],
        timeout: Duration::from_secs(5),
        tls_redirect: false,
        hsts: None,
    });
    let mut table = RouteTable::default();
    table.hosts.insert("shop.localhost".into(), route);
    router.update(table);
    let https = Https::new();
    let tls = https.serve(router.clone()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(router.serve(listener, std::future::pending()));
    [Transport::Plain(addr), Transport::Tls(tls, https)]
}

/// Sends `raw` and reads the answer until the router closes or goes quiet.
async fn send(router: &Transport, raw: &[u8]) -> String {
    let mut s = router.connect().await;
    s.write_all(raw).await.expect("send");
    // Over TLS, what the socket did not take yet waits in the session.
    s.flush().await.expect("send");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of the first answer in `text`.
fn status(text: &str) -> u16 {
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The request heads in what the process received: each must have one
/// framing (not both Content-Length and Transfer-Encoding, no two lengths).
fn heads(received: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(received);
    text.split("\r\n\r\n")
        .filter(|part| {
            part.lines()
                .next()
                .is_some_and(|l| l.ends_with(" HTTP/1.1") && l.contains(" /"))
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn ambiguous_requests_are_refused_or_forwarded_as_one_plain_message() {
    let (backend, seen) = recording_backend().await;
    let routers = router_to(backend).await;
    let host = "Host: shop.localhost\r\n";
    let long = "a".repeat(256 * 1024);
    let cases: Vec<(&str, String, &[u16])> = vec![
        (
            "Content-Length and Transfer-Encoding together",
            format!(
                "POST /te-cl HTTP/1.1\r\n{host}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{host}\r\n"
            ),
            &[400],
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /cl-cl HTTP/1.1\r\n{host}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
            ),
            &[400],
        ),
        (
            "two equal Content-Lengths",
            format!(
                "POST /cl-same HTTP/1.1\r\n{host}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
            ),
            &[200, 400],
        ),
        (
            "a folded header line (obs-fold)",
            format!("GET /fold HTTP/1.1\r\n{host}X-A: one\r\n two\r\n\r\n"),
            &[400],
        ),
        (
            "bare LF line ends",
            format!("GET /lf HTTP/1.1\n{}\n\n", host.trim_end()),
            &[200, 400],
        ),
        (
            "a space before the colon",
            format!("GET /space HTTP/1.1\r\n{host}Content-Length : 0\r\n\r\n"),
            &[400],
        ),
        (
            "an invalid chunk size",
            format!(
                "POST /bad-chunk HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            ),
            &[400, 502],
        ),
        (
            "a chunk extension",
            format!(
                "POST /chunk-ext HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"
            ),
            &[200],
        ),
        (
            "a Transfer-Encoding other than chunked",
            format!("POST /gzip HTTP/1.1\r\n{host}Transfer-Encoding: gzip\r\n\r\nabc"),
            &[400, 501],
        ),
        (
            "HTTP/1.0 asking for keep-alive",
            format!("GET /ten HTTP/1.0\r\n{host}Connection: keep-alive\r\n\r\n"),
            &[200],
        ),
        (
            "a 256 KiB header line",
            format!("GET /long HTTP/1.1\r\n{host}X-Long: {long}\r\n\r\n"),
            &[431],
        ),
    ];
    let mut wrong = Vec::new();
    for ((what, raw, allowed), router) in cases
        .iter()
        .flat_map(|case| routers.iter().map(move |router| (case, router)))
    {
        let what = format!("{what} ({})", router.name());
        seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let answer = send(router, raw.as_bytes()).await;
        let got = status(&answer);
        let received = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let heads = heads(&received);
        if !allowed.contains(&got) {
            wrong.push(format!(
                "{what}: answered {got}, expected one of {allowed:?}: {:.200}",
                answer
            ));
            continue;
        }
        if got >= 400 {
            // Refused: nothing of it reached the process.
            if !received.is_empty() {
                wrong.push(format!(
                    "{what}: refused with {got}, yet the process received {:?}",
                    String::from_utf8_lossy(&received)
                ));
            }
            continue;
        }
        let ambiguous = heads.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            (h.contains("\r\ncontent-length:") && h.contains("\r\ntransfer-encoding:"))
                || h.matches("\r\ncontent-length:").count() > 1
        });
        if heads.len() != 1 || ambiguous || String::from_utf8_lossy(&received).contains("/smuggled")
        {
            wrong.push(format!(
                "{what}: the process received {:?}",
                String::from_utf8_lossy(&received)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A process that reads whatever comes and never answers.
async fn silent_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_head_limit_is_the_one_given_and_a_stalled_body_gets_408() {
    let (backend, _) = recording_backend().await;
    let limits = Limits {
        max_head: 8 * 1024,
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let host = "Host: shop.localhost\r\n";
    let header = |n: usize| format!("X-Pad: {}\r\n", "a".repeat(n));
    for router in &router_with(backend, limits).await {
        let over_what = router.name();
        let fits = format!("GET /fits HTTP/1.1\r\n{host}{}\r\n", header(4 * 1024));
        assert_eq!(
            status(&send(router, fits.as_bytes()).await),
            200,
            "{over_what}"
        );
        // The fast path's limit, then hyper's (a chunked body is handed to it).
        let over = format!("GET /over HTTP/1.1\r\n{host}{}\r\n", header(10 * 1024));
        assert_eq!(
            status(&send(router, over.as_bytes()).await),
            431,
            "{over_what}"
        );
        let over_chunked = format!(
            "POST /over HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n{}\r\n0\r\n\r\n",
            header(10 * 1024)
        );
        assert_eq!(
            status(&send(router, over_chunked.as_bytes()).await),
            431,
            "{over_what}"
        );
    }

    // A body larger than the fast path buffers (hyper streams it) that stops
    // after its first kilobyte.
    for router in &router_with(silent_backend().await, limits).await {
        stalled_body_gets_408(router).await;
    }
}

async fn stalled_body_gets_408(router: &Transport) {
    let host = "Host: shop.localhost\r\n";
    let mut s = router.connect().await;
    let head = format!("POST /upload HTTP/1.1\r\n{host}Content-Length: 200000\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("send head");
    s.write_all(&[b'x'; 1024])
        .await
        .expect("send part of the body");
    s.flush().await.expect("send part of the body");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let over_what = router.name();
    assert!(
        read.is_ok(),
        "no answer to a stalled body within 10 s ({over_what})"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status(&answer), 408, "{over_what}: {answer}");
}
