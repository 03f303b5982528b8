//! Router handover: a new `berth router` process takes the listening sockets and the
//! routes over from the running one (`RouterLink::upgrade`, `berth router
//! --takeover`) while clients keep sending, twice in a row. Every request is
//! answered, no connection is refused or reset, a slow request and a WebSocket
//! opened before the handover finish on the old process, which then exits; the link
//! goes on with the newest one. A takeover that cannot happen leaves the running
//! router serving.
//!
//! Real processes: the built `berth` binary as router, a loopback backend and
//! HTTP/1.1 clients (plain and TLS) written here so every failure is counted, and
//! HTTP/2 clients whose connections the old router winds down with GOAWAY.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_router::tls::TlsCert;
use berth_router::{Backend, Limits, LinkOptions, Route, RouteTable, RouterLink};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// Ports of this test (the helper's range 19400-19499).
const HTTP: u16 = 19400;
const HTTPS: u16 = 19401;
const BACKEND: u16 = 19402;
const ELSEWHERE: u16 = 19403;
const HOST: &str = "app.test";
const SLOW: Duration = Duration::from_secs(3);
/// The host of the slow request: the same backend, known to the router as a process
/// of its own (`slow-1`), so that what is in flight to it is the slow request alone.
const SLOW_HOST: &str = "slow.test";

/// The backend: `/` answers at once, `/slow` after [`SLOW`], `/ws` switches to
/// WebSocket and echoes what it gets until the client closes.
async fn backend(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let Some((path, used)) = read_request_head(&mut stream, &mut buf).await else {
                    return;
                };
                buf.drain(..used);
                if path == "/ws" {
                    let switch = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                    if stream.write_all(switch.as_bytes()).await.is_err() {
                        return;
                    }
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                    return;
                }
                let body = if path == "/slow" {
                    tokio::time::sleep(SLOW).await;
                    "slow done"
                } else {
                    "ok"
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Reads one request head; its path and length.
async fn read_request_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(used)) = request.parse(buf) {
            return Some((request.path?.to_owned(), used));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One answer as a client sees it.
struct Answer {
    status: u16,
    body: Vec<u8>,
    /// The router said `Connection: close`.
    close: bool,
}

/// Sends `GET path` on `stream` and reads the answer.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
) -> std::io::Result<Answer> {
    get_from(stream, HOST, path).await
}

async fn get_from<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> std::io::Result<Answer> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes of the answer", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(&buf) else {
            continue;
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("an answer without Content-Length"))?;
        let close = header("connection").is_some_and(|v| v.contains("close"));
        let status = response.code.unwrap_or(0);
        let mut body = buf[head..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed in the body",
                ));
            }
            body.extend_from_slice(&chunk[..n]);
        }
        return Ok(Answer {
            status,
            body,
            close,
        });
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// Connections opened (each one a chance to be refused).
    connects: AtomicU64,
    /// Of those, by the HTTP/2 clients.
    h2_connects: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().expect("tally").push(what);
    }
}

/// How a client reaches the router.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(transport: &Transport) -> std::io::Result<Box<dyn Stream>> {
    match transport {
        Transport::Plain => Ok(Box::new(TcpStream::connect(("127.0.0.1", HTTP)).await?)),
        Transport::Tls(connector) => {
            let tcp = TcpStream::connect(("127.0.0.1", HTTPS)).await?;
            let name =
                rustls::pki_types::ServerName::try_from(HOST).map_err(std::io::Error::other)?;
            Ok(Box::new(connector.connect(name, tcp).await?))
        }
    }
}

/// Sends requests until `stop`: on one connection for as long as the router keeps it
/// open (`keep_alive`), or on a new connection each.
async fn client(
    name: String,
    transport: Transport,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut open: Option<Box<dyn Stream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut stream = match open.take() {
            Some(stream) => stream,
            None => {
                tally.connects.fetch_add(1, Ordering::Relaxed);
                match connect(&transport).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tally.fail(format!("{name}: connect: {e} ({:?})", e.kind()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        match get(&mut stream, "/").await {
            Ok(answer) if answer.status == 200 && answer.body == b"ok" => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                if keep_alive && !answer.close {
                    open = Some(stream);
                }
            }
            Ok(answer) => tally.fail(format!(
                "{name}: status {} {:?}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )),
            Err(e) => tally.fail(format!("{name}: request: {e} ({:?})", e.kind())),
        }
    }
}

/// An HTTP/2 client (ALPN `h2`): one request at a time on one connection for as long
/// as the router keeps it. A connection the router winds down (GOAWAY) takes no new
/// stream; a request it did not take is sent on a new connection, as browsers do.
/// A request taken and not answered is a failure.
async fn h2_client(
    name: String,
    connector: tokio_rustls::TlsConnector,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    use http_body_util::{BodyExt, Empty};
    let mut open: Option<hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>> = None;
    let mut request = None;
    while !stop.load(Ordering::Relaxed) {
        let mut sender = match open.take() {
            Some(sender) => sender,
            None => {
                tally.connects.fetch_add(1, Ordering::Relaxed);
                tally.h2_connects.fetch_add(1, Ordering::Relaxed);
                match h2_connect(&connector).await {
                    Ok(sender) => sender,
                    Err(e) => {
                        tally.fail(format!("{name}: connect: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        if sender.ready().await.is_err() {
            continue;
        }
        let req = request.take().unwrap_or_else(|| {
            hyper::Request::get(format!("https://{HOST}/"))
                .body(Empty::new())
                .expect("a request")
        });
        match sender.try_send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await.map(|b| b.to_bytes()) {
                    Ok(body) if status == 200 && body == "ok" => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        open = Some(sender);
                    }
                    Ok(_) => tally.fail(format!("{name}: status {status}")),
                    Err(e) => tally.fail(format!("{name}: body: {e}")),
                }
            }
            Err(mut e) => match e.take_message() {
                // Never sent: the connection was winding down.
                Some(unsent) => request = Some(unsent),
                None => tally.fail(format!("{name}: request: {}", e.error())),
            },
        }
    }
}

async fn h2_connect(
    connector: &tokio_rustls::TlsConnector,
) -> Result<hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>, String> {
    let tcp = TcpStream::connect(("127.0.0.1", HTTPS))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(HOST).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the router did not choose h2".into());
    }
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `connector` offering only `h2` by ALPN.
fn h2_only(connector: &tokio_rustls::TlsConnector) -> tokio_rustls::TlsConnector {
    let mut config = (**connector.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn self_signed() -> (TlsCert, tokio_rustls::TlsConnector) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![HOST.to_owned()]).expect("a certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.der().clone())
        .expect("the certificate as a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = TlsCert {
        domains: vec![HOST.to_owned()],
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
        default: true,
        ocsp: None,
    };
    (tls, tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn table(hosts: &[&str]) -> RouteTable {
    let route = Arc::new(Route {
        app: "shop".into(),
        service: "web".into(),
        backends: vec![Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], BACKEND)),
            process: "web-1".into(),
        }],
        timeout: Duration::from_secs(30),
        tls_redirect: false,
        hsts: None,
    });
    let slow = Arc::new(Route {
        service: "slow".into(),
        backends: vec![Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], BACKEND)),
            process: "slow-1".into(),
        }],
        ..(*route).clone()
    });
    let mut hosts = hosts
        .iter()
        .map(|h| ((*h).to_owned(), route.clone()))
        .collect::<HashMap<_, _>>();
    hosts.insert(SLOW_HOST.to_owned(), slow);
    RouteTable { hosts }
}

/// The requests the router counted for the app, all methods and statuses.
async fn counted(link: &RouterLink) -> u64 {
    let metrics = link.metrics().await.expect("the router's metrics");
    metrics
        .routes
        .iter()
        .filter(|r| r.app == "shop")
        .flat_map(|r| r.requests.iter().map(|(_, _, n)| n))
        .sum()
}

fn router_pid(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("router.pid"))
        .expect("the pid file")
        .trim()
        .parse()
        .expect("a pid")
}

fn alive(pid: u32) -> bool {
    // A reaped process is gone from /proc; a zombie says so in its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The data dir of this test, removed (with the routers in it stopped) at the end.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("router.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: a plain signal to a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_router_takes_over_under_load_and_the_old_one_finishes_its_connections() {
    let dir = DataDir(PathBuf::from(format!(
        "/tmp/berthho-handover-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("data dir");
    let listener = TcpListener::bind(("127.0.0.1", BACKEND))
        .await
        .expect("the backend's port");
    tokio::spawn(backend(listener));

    let options = LinkOptions {
        exe: PathBuf::from(BERTH),
        http: SocketAddr::from(([127, 0, 0, 1], HTTP)),
        control: dir.0.join("router.sock"),
        log: dir.0.join("router.log"),
        threads: Some(2),
        limits: Limits::default(),
        https: Some(SocketAddr::from(([127, 0, 0, 1], HTTPS))),
    };
    let (link, mut access) = RouterLink::start(options.clone()).await.expect("router");
    let slow_lines = Arc::new(Mutex::new(Vec::new()));
    let collected = slow_lines.clone();
    tokio::spawn(async move {
        while let Some(line) = access.recv().await {
            if line.line.contains(" /slow ") {
                collected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line);
            }
        }
    });
    let (cert, tls) = self_signed();
    link.update_certs(vec![cert]);
    link.update(table(&[HOST]));
    assert!(
        link.synced(Duration::from_secs(5)).await,
        "the router took no table"
    );
    assert_eq!(link.version().as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let first = router_pid(&dir.0);

    // Load: keep-alive and a new connection per request, plain and TLS.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for n in 0..3 {
        for (kind, transport, keep_alive) in [
            ("plain-keepalive", Transport::Plain, true),
            ("plain-new", Transport::Plain, false),
            ("tls-keepalive", Transport::Tls(tls.clone()), true),
        ] {
            clients.push(tokio::spawn(client(
                format!("{kind}-{n}"),
                transport,
                keep_alive,
                stop.clone(),
                tally.clone(),
            )));
        }
    }
    clients.push(tokio::spawn(client(
        "tls-new".into(),
        Transport::Tls(tls.clone()),
        false,
        stop.clone(),
        tally.clone(),
    )));
    for n in 0..2 {
        clients.push(tokio::spawn(h2_client(
            format!("h2-{n}"),
            h2_only(&tls),
            stop.clone(),
            tally.clone(),
        )));
    }

    // A slow request and a WebSocket, both on the first router.
    let slow = tokio::spawn(async {
        let mut stream = TcpStream::connect(("127.0.0.1", HTTP)).await?;
        get_from(&mut stream, SLOW_HOST, "/slow").await
    });
    let mut ws = TcpStream::connect(("127.0.0.1", HTTP))
        .await
        .expect("ws connect");
    ws.write_all(
        format!("GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").as_bytes(),
    )
    .await
    .expect("ws upgrade");
    let mut head = [0u8; 512];
    let n = ws.read(&mut head).await.expect("ws answer");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    echo(&mut ws, b"before").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let counted_before = counted(&link).await;
    assert!(counted_before > 0, "the first router counted nothing");
    let started = Instant::now();
    let second = link.upgrade().await.expect("the first handover");
    let first_took = started.elapsed();
    // The slow request, still in flight on the first router, counts as in flight
    // to its process: draining the process waits for it.
    let waiting = link.drain("slow-1", Duration::from_millis(500)).await;
    assert!(
        waiting >= 1,
        "the slow request on the old router was not counted in flight ({waiting})"
    );
    // The new router's counters go on from the old one's, not from zero.
    let counted_after = counted(&link).await;
    assert!(
        counted_after >= counted_before,
        "the counters started again: {counted_before} requests before the handover, {counted_after} after"
    );
    assert_ne!(second.pid, Some(first));
    assert_eq!(
        second.pid,
        Some(router_pid(&dir.0)),
        "the pid file names the new router"
    );
    assert_eq!(second.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let third = link.upgrade().await.expect("the second handover");
    let second_took = started.elapsed();
    let (Some(second), Some(third)) = (second.pid, third.pid) else {
        panic!("the routers did not say their pids");
    };
    assert_eq!(third, router_pid(&dir.0));
    eprintln!("handovers took {first_took:?} and {second_took:?}");

    // The link works with the newest router: a new table reaches it.
    link.update(table(&[HOST, "two.test"]));
    assert!(
        link.synced(Duration::from_secs(5)).await,
        "the new router took no table"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", HTTP))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: two.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The second router had nothing long open: it is gone soon. The first still
    // carries the WebSocket (and maybe the slow request).
    assert!(
        wait_gone(second, Duration::from_secs(10)).await,
        "the second router did not exit"
    );
    assert!(alive(first), "the first router left its WebSocket");
    let slow = slow.await.expect("slow task").expect("the slow request");
    assert_eq!((slow.status, &slow.body[..]), (200, &b"slow done"[..]));
    echo(&mut ws, b"after two handovers").await;
    ws.shutdown().await.expect("ws close");
    let mut rest = Vec::new();
    ws.read_to_end(&mut rest)
        .await
        .expect("the WebSocket closes cleanly");
    assert!(rest.is_empty());
    assert!(
        wait_gone(first, Duration::from_secs(10)).await,
        "the first router did not exit once its WebSocket closed"
    );
    // What the old routers served while draining was added to the counts.
    let counted_at_end = counted(&link).await;
    assert!(
        counted_at_end > counted_after,
        "{counted_after} requests counted after the first handover, {counted_at_end} at the end"
    );
    // The slow request's access line, written by the first router while it drained,
    // went with its other lines to the router answering now, and the server
    // collected it there.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = slow_lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !lines.is_empty() {
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0].app, "shop");
            assert!(lines[0].line.contains(" /slow 200 "), "{lines:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the access line of the slow request served while draining was lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Takeovers that cannot happen leave the router serving.
    let refused = std::process::Command::new(BERTH)
        .args(["router", "--takeover", "--http"])
        .arg(format!("127.0.0.1:{ELSEWHERE}"))
        .arg("--https")
        .arg(format!("127.0.0.1:{HTTPS}"))
        .arg("--control")
        .arg(dir.0.join("router.sock"))
        .output()
        .expect("run berth router");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("keeps serving") && said.contains("same --http"),
        "{said}"
    );
    let bad_flag = std::process::Command::new(BERTH)
        .args(["router", "--takeover", "--no-such-flag", "--http"])
        .arg(format!("127.0.0.1:{HTTP}"))
        .arg("--control")
        .arg(dir.0.join("router.sock"))
        .output()
        .expect("run berth router");
    assert!(!bad_flag.status.success());
    let broken = LinkOptions {
        exe: dir.0.join("no-such-berth"),
        ..options
    };
    let (other, _) = RouterLink::start(broken).await.expect("attach");
    let failed = other.upgrade().await.expect_err("no binary to start");
    assert!(failed.to_string().contains("no-such-berth"), "{failed}");
    drop(other);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        router_pid(&dir.0),
        third,
        "the pid file still names the router"
    );
    assert!(alive(third), "the router survived failed takeovers");

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let failures = tally.failures.lock().expect("tally").clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    let connects = tally.connects.load(Ordering::Relaxed);
    eprintln!(
        "{ok} requests answered over {connects} connections, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed: {failures:#?}");
    // Each handover wound down the HTTP/2 connections of the router it replaced
    // (GOAWAY): both clients connected again after each.
    let h2_connects = tally.h2_connects.load(Ordering::Relaxed);
    eprintln!("HTTP/2 clients connected {h2_connects} times");
    assert!(h2_connects >= 6, "HTTP/2 connections: {h2_connects}");
    assert!(ok > 1000, "too little load to say anything: {ok} requests");
    link.shut_down().await;
    assert!(
        wait_gone(third, Duration::from_secs(15)).await,
        "the router did not stop"
    );
}

/// Sends `message` on the WebSocket and reads it back.
async fn echo(ws: &mut TcpStream, message: &[u8]) {
    ws.write_all(message).await.expect("ws send");
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(5), ws.read_exact(&mut back))
        .await
        .expect("an echo within 5 s")
        .expect("ws echo");
    assert_eq!(back, message);
}

/// A router taking over that took the control socket's name and died before its
/// commit (here: a stand-in that asks for the sockets, renames a socket of its own
/// over the name and goes away) leaves the running router serving, and the running
/// router answers on the control socket again.
#[test]
fn a_takeover_dying_after_taking_the_name_leaves_the_old_router_in_charge() {
    use std::io::{BufRead, Read, Write};
    const PORT: u16 = 19404;
    let dir = DataDir(PathBuf::from(format!(
        "/tmp/berthho-reclaim-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("data dir");
    let socket = dir.0.join("router.sock");
    let mut router = std::process::Command::new(BERTH)
        .args(["router", "--threads", "1", "--http"])
        .arg(format!("127.0.0.1:{PORT}"))
        .arg("--control")
        .arg(&socket)
        .stderr(std::fs::File::create(dir.0.join("router.log")).expect("log"))
        .spawn()
        .expect("start berth router");
    let hello = || -> Option<serde_json::Value> {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"{\"op\":\"hello\"}\n").ok()?;
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while hello().is_none() {
        assert!(Instant::now() < deadline, "the router did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut taker = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    taker.write_all(b"{\"op\":\"handover\"}\n").expect("ask");
    let mut state = String::new();
    // A plain read takes the state; the kernel closes the passed sockets unread.
    std::io::BufReader::new(taker.try_clone().expect("clone"))
        .read_line(&mut state)
        .expect("the state");
    assert!(state.contains("\"ok\":true"), "{state}");
    let own = dir.0.join("taker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&own).expect("bind");
    std::fs::rename(&own, &socket).expect("take the name");
    drop(listener);
    assert!(hello().is_none(), "the name leads to a closed socket now");
    drop(taker);

    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(answer) = hello() {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the router did not take its control socket back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(answer["pid"], router.id(), "{answer}");
    assert_eq!(router_pid(&dir.0), router.id());
    let mut client = std::net::TcpStream::connect(("127.0.0.1", PORT)).expect("connect");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let _ = router.kill();
    let _ = router.wait();
}
