//! Requests that proxies disagree about (the stuff of request smuggling) and
//! heads too large to be honest, sent byte for byte to the router over plain
//! HTTP: each must be refused, or reach the process as exactly one message
//! whose framing nobody can read two ways.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_router::{Backend, Route, RouteTable, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

async fn router_to(backend: SocketAddr) -> SocketAddr {
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
        hsts: None,
    });
    let mut table = RouteTable::default();
    table.hosts.insert("shop.localhost".into(), route);
    router.update(table);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(router.serve(listener, std::future::pending()));
    addr
}

/// Sends `raw` and reads the answer until the router closes or goes quiet.
async fn send(router: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(router).await.expect("connect");
    s.write_all(raw).await.expect("send");
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
    let router = router_to(backend).await;
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
    for (what, raw, allowed) in &cases {
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
