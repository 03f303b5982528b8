//! Log drains against real receivers: Debian's rsyslogd (RFC 5424 over TCP,
//! and over TLS with a certificate of a CA made here) and an OTLP/HTTP
//! receiver in the test that decodes the protobuf with `opentelemetry-proto`.
//! The receivers go down and come back, the server restarts: every line
//! arrives exactly once, and the app keeps serving meanwhile. A drain whose
//! buffer is full drops lines, counted in the metrics and said once in the log.

mod common;

use common::rsyslog::Rsyslog;
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One log record as the OTLP receiver got it.
#[derive(Debug, Clone)]
struct OtlpRecord {
    attrs: Vec<(String, String)>,
    body: String,
}

impl OtlpRecord {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP logs receiver on loopback: decodes each POSTed
/// `ExportLogsServiceRequest`, records its log records, answers 200. `down`
/// closes its port and every connection; `up` listens on the same port again.
struct Otlp {
    port: u16,
    records: Arc<Mutex<Vec<OtlpRecord>>>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Otlp {
    fn start() -> Otlp {
        let mut otlp = Otlp {
            port: free_port(),
            records: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        otlp.up();
        otlp
    }

    fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("OTLP port");
        listener.set_nonblocking(true).expect("nonblocking");
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let records = self.records.clone();
        self.thread = Some(std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let running = running.clone();
                        let records = records.clone();
                        std::thread::spawn(move || serve_otlp(stream, &running, &records));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
    }

    fn down(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Connections notice within their read timeout.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn records(&self) -> Vec<OtlpRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn count(&self, text: &str) -> usize {
        self.records()
            .iter()
            .filter(|r| r.body.ends_with(text))
            .count()
    }
}

impl Drop for Otlp {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve_otlp(stream: TcpStream, running: &AtomicBool, records: &Mutex<Vec<OtlpRecord>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    'requests: loop {
        // The request line and headers.
        let mut length = 0usize;
        let mut first = true;
        let mut line = String::new();
        loop {
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                // A read timeout: look at `running` and go on reading the same line.
                Err(_) if running.load(Ordering::SeqCst) => continue,
                Err(_) => return,
            }
            if !running.load(Ordering::SeqCst) {
                return;
            }
            let text = std::mem::take(&mut line);
            if first {
                assert!(text.starts_with("POST "), "OTLP receiver got {text:?}");
                first = false;
                continue;
            }
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        let mut got = 0;
        while got < length {
            match reader.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(_) if running.load(Ordering::SeqCst) => continue,
                Err(_) => return,
            }
        }
        let request = ExportLogsServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        {
            let mut records = records.lock().expect("records");
            for resource in request.resource_logs {
                let attrs: Vec<(String, String)> = resource
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|kv| {
                        let value = match kv.value.and_then(|v| v.value) {
                            Some(any_value::Value::StringValue(s)) => s,
                            other => format!("{other:?}"),
                        };
                        (kv.key, value)
                    })
                    .collect();
                for scope in resource.scope_logs {
                    for record in scope.log_records {
                        let body = match record.body.and_then(|b| b.value) {
                            Some(any_value::Value::StringValue(s)) => s,
                            other => format!("{other:?}"),
                        };
                        records.push(OtlpRecord {
                            attrs: attrs.clone(),
                            body,
                        });
                    }
                }
            }
        }
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            break 'requests;
        }
    }
}

/// A CA and a certificate for `localhost`/127.0.0.1 signed by it, made with openssl.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).expect("certs dir");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=drn test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    write(
        dir,
        "ext.cnf",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// The hello example with a CGI script that writes `drn-said QUERY` to stderr.
fn talking_source() -> tempfile::TempDir {
    let src = hello_source();
    let script = src.path().join("www/cgi-bin/say");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"Content-Type: text/plain\"\necho \"\"\necho \"drn-said $QUERY_STRING\" >&2\necho ok\n",
    )
    .expect("write the CGI script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    src
}

/// Asks the app to log `drn-said WORD` for each word; returns the slowest answer.
fn say(server: &Server, host: &str, words: &[String]) -> Duration {
    let mut slowest = Duration::ZERO;
    for word in words {
        let started = Instant::now();
        let (status, body) = server.get(host, &format!("/cgi-bin/say?{word}"));
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "say {word}: {body}");
    }
    slowest
}

/// Whether every word's line reached all three receivers (waiting up to 30 s).
fn arrived(tcp: &Rsyslog, tls: &Rsyslog, otlp: &Otlp, words: &[String]) -> bool {
    eventually(Duration::from_secs(30), || {
        words.iter().all(|w| {
            tcp.count(&said(w)) >= 1 && tls.count(&said(w)) >= 1 && otlp.count(&said(w)) >= 1
        })
    })
}

fn words(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn said(word: &str) -> String {
    format!("drn-said {word}")
}

fn drains(server: &Server, app: Option<&str>) -> serde_json::Value {
    match app {
        Some(app) => server.json(&["drains", "-a", app, "--json"]),
        None => server.json(&["drains", "--json"]),
    }
}

fn drain<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|l| l.iter().find(|d| d["id"] == id))
        .unwrap_or(&serde_json::Value::Null)
}

fn added_id(out: &str) -> String {
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_string()
}

#[test]
fn drains_forward_every_line_once_through_outages_and_restarts() {
    let scratch = tempfile::tempdir().expect("temp dir");
    make_certs(&scratch.path().join("certs"));
    let mut tcp = Rsyslog::start(&scratch.path().join("tcp"), None);
    let tls = Rsyslog::start(
        &scratch.path().join("tls"),
        Some(&scratch.path().join("certs")),
    );
    let mut otlp = Otlp::start();
    let metrics_port = free_port();
    let mut server = Server::start_with(&["--metrics", &format!("127.0.0.1:{metrics_port}")]);
    let app = server.create_app("drn");

    // Bad URLs are refused, naming the URL and the forms accepted.
    let out = server.cli(&["drains", "add", "syslog+udp://127.0.0.1:514", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("syslog+udp://127.0.0.1:514") && err.contains("otlp+http://HOST:PORT"),
        "{err}"
    );

    // One app drain over TCP, one rack-wide over TLS (trusting the test CA),
    // one OTLP; added before the deploy, so build output and events go out too.
    let tcp_id = added_id(&server.ok(&[
        "drains",
        "add",
        &format!("syslog+tcp://127.0.0.1:{}", tcp.port),
        "-a",
        &app,
    ]));
    let ca = scratch.path().join("certs/ca.pem");
    let tls_out = server.ok(&[
        "drains",
        "add",
        &format!("syslog+tls://localhost:{}", tls.port),
        "--ca",
        ca.to_str().unwrap_or_default(),
    ]);
    assert!(tls_out.contains("every app"), "{tls_out}");
    let otlp_id = added_id(&server.ok(&[
        "drains",
        "add",
        &format!("otlp+http://user:secret@127.0.0.1:{}", otlp.port),
        "-a",
        &app,
    ]));
    let listed = server.ok(&["drains"]);
    assert!(
        listed.contains("(rack)")
            && listed.contains("otlp+http://***@127.0.0.1")
            && !listed.contains("secret"),
        "{listed}"
    );

    let src = talking_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let process = ps[0]["id"].as_str().unwrap_or_default().to_string();
    let release = ps[0]["release"].as_str().unwrap_or_default().to_string();
    assert!(process.starts_with("web-") && release == "R1", "{ps}");

    let first = words("a", 10);
    let normal = say(&server, &host, &first);
    assert!(
        arrived(&tcp, &tls, &otlp, &first),
        "lines missing; tcp:\n{}\ntls:\n{}\notlp: {:?}\nserver:\n{}",
        tcp.lines().join("\n"),
        tls.lines().join("\n"),
        otlp.records(),
        tail(&server.server_log(), 30)
    );
    // The fields: APP-NAME, PROCID, MSGID and structured data; OTLP's resource.
    let line = tcp
        .lines()
        .into_iter()
        .find(|l| l.ends_with(&said("a0")))
        .unwrap_or_default();
    let want = format!(
        "{app} {process} process [berth@32473 service=\"web\" release=\"{release}\" source=\"web/{process}\"]"
    );
    assert!(line.starts_with(&want), "{line}\nwant {want}");
    let record = otlp
        .records()
        .into_iter()
        .find(|r| r.body.ends_with(&said("a0")))
        .expect("the OTLP record");
    for (key, value) in [
        ("service.name", app.as_str()),
        ("berth.app", &app),
        ("berth.service", "web"),
        ("berth.release", &release),
        ("berth.process", &process),
    ] {
        assert_eq!(record.attr(key), Some(value), "{record:?}");
    }
    // Build output and berth's own events went out too (the rack-wide drain).
    let tls_lines = tls.lines();
    assert!(
        tls_lines
            .iter()
            .any(|l| l.starts_with(&format!("{app} ")) && l.contains(" build [")),
        "no build output over TLS:\n{}",
        tls_lines.join("\n")
    );
    assert!(
        tls_lines
            .iter()
            .any(|l| l.starts_with(&format!("{app} - system ["))),
        "no system events over TLS:\n{}",
        tls_lines.join("\n")
    );

    // Receivers down: the app keeps answering as fast (within a generous bound).
    tcp.kill();
    otlp.down();
    let during = words("b", 20);
    let slowest = say(&server, &host, &during);
    assert!(
        slowest < normal * 10 + Duration::from_secs(1),
        "requests slowed from {normal:?} to {slowest:?} while the receivers were down"
    );
    std::thread::sleep(Duration::from_secs(1));
    let status = drains(&server, Some(&app));
    assert!(
        drain(&status, &tcp_id)["last_error"].is_string()
            && drain(&status, &tcp_id)["buffered"].as_u64() > Some(0),
        "{status}"
    );
    // Back up: what was written meanwhile arrives, each line once.
    tcp.spawn();
    otlp.up();
    assert!(
        arrived(&tcp, &tls, &otlp, &during),
        "lines written during the outage missing; tcp:\n{}\notlp: {}\nserver:\n{}",
        tcp.lines().join("\n"),
        otlp.records().len(),
        tail(&server.server_log(), 30)
    );

    // A server restart sends nothing twice.
    let idle = eventually(Duration::from_secs(30), || {
        drains(&server, None)
            .as_array()
            .is_some_and(|l| l.iter().all(|d| d["buffered"] == 0))
    });
    assert!(idle, "drains did not catch up: {}", drains(&server, None));
    // The log collectors keep their place half a second after the last line.
    std::thread::sleep(Duration::from_secs(1));
    server.stop();
    server.spawn();
    let after = words("c", 5);
    say(&server, &host, &after);
    assert!(
        arrived(&tcp, &tls, &otlp, &after),
        "lines after the restart missing"
    );
    std::thread::sleep(Duration::from_secs(2));
    for word in first.iter().chain(&during).chain(&after) {
        let line = said(word);
        assert_eq!(
            (tcp.count(&line), tls.count(&line), otlp.count(&line)),
            (1, 1, 1),
            "{line} (tcp, tls, otlp)"
        );
    }

    // Removed: nothing more is sent to it.
    server.ok(&["drains", "remove", &tcp_id, "-a", &app]);
    let removed = words("d", 5);
    say(&server, &host, &removed);
    assert!(eventually(Duration::from_secs(30), || {
        removed
            .iter()
            .all(|w| tls.count(&said(w)) == 1 && otlp.count(&said(w)) == 1)
    }));
    assert!(removed.iter().all(|w| tcp.count(&said(w)) == 0));
    let left = drains(&server, Some(&app));
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    assert_eq!(drain(&left, &otlp_id)["id"], otlp_id.as_str());

    // A TLS receiver whose certificate no trusted CA signed is refused.
    let untrusted = added_id(&server.ok(&[
        "drains",
        "add",
        &format!("syslog+tls://localhost:{}", tls.port),
        "-a",
        &app,
    ]));
    let refused = eventually(Duration::from_secs(20), || {
        drain(&drains(&server, Some(&app)), &untrusted)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate"))
    });
    assert!(refused, "{}", drains(&server, Some(&app)));
    server.ok(&["drains", "remove", &untrusted]);

    // Env values never go out: changes are told by key only.
    server.ok(&[
        "env",
        "set",
        "DRN_SECRET=s3cr3t-drn-value",
        "--promote",
        "-a",
        &app,
    ]);
    say(&server, &host, &words("g", 2));
    assert!(arrived(&tls, &tls, &otlp, &words("g", 2)));
    assert!(
        tls.lines().iter().any(|l| l.contains("DRN_SECRET")),
        "the env change is not in the log:\n{}",
        tls.lines().join("\n")
    );
    assert!(
        !tls.lines().iter().any(|l| l.contains("s3cr3t-drn-value"))
            && !otlp
                .records()
                .iter()
                .any(|r| r.body.contains("s3cr3t-drn-value")),
        "an env value went out"
    );

    // A full buffer: lines dropped, counted, and said once in the app's log.
    let dead = free_port();
    let full_id = added_id(&server.ok(&[
        "drains",
        "add",
        &format!("syslog+tcp://127.0.0.1:{dead}"),
        "-a",
        &app,
        "--max-buffer",
        "4096",
    ]));
    say(&server, &host, &words("e", 30));
    let dropped = drain(&drains(&server, Some(&app)), &full_id)["dropped"]
        .as_u64()
        .unwrap_or(0);
    assert!(dropped > 0, "{}", drains(&server, Some(&app)));
    let (status, metrics) = http_get(metrics_port, "127.0.0.1", "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let series = format!("berth_drain_dropped_total{{drain=\"{full_id}\"}} ");
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        counted >= dropped,
        "{series} is {counted}, want {dropped}+:\n{metrics}"
    );
    say(&server, &host, &words("f", 10));
    let notices = server.ok(&[
        "logs",
        "-a",
        &app,
        "--source",
        "system",
        "--grep",
        &format!("log drain {full_id}"),
    ]);
    assert_eq!(
        notices.lines().filter(|l| l.contains("is full")).count(),
        1,
        "{notices}"
    );
    assert!(
        server
            .server_log()
            .contains(&format!("log drain {full_id}"))
    );
}
