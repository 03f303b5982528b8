//! `berth server --metrics`: a real Prometheus (Debian's `prometheus`) scrapes
//! berth every second, and its query API must see exactly the requests made
//! through the router, the processes and the engine. Also `berth top`.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server on loopback with its own config and data dir, killed when
/// dropped (panics included).
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus temp dir");
        let port = free_port();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['{target}']\n"
        );
        write(dir.path(), "prometheus.yml", &config);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect(
                "start prometheus (apt-get install prometheus; scripts/setup-test-host.sh does)",
            );
        let prometheus = Prometheus { child, port, dir };
        let ready = eventually(Duration::from_secs(30), || {
            matches!(http_get(port, "127.0.0.1", "/-/ready"), Ok((200, _)))
        });
        assert!(ready, "prometheus not ready in 30 s:\n{}", prometheus.log());
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query that returns one series; `None` when it
    /// returns none.
    fn value(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let (status, body) = http_get(self.port, "127.0.0.1", &path).ok()?;
        assert_eq!(status, 200, "query {query}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        let result = json["data"]["result"].as_array()?;
        assert!(
            result.len() <= 1,
            "query {query} returned many series: {body}"
        );
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits (at most 20 s: scrapes are 1 s apart) until `query` is `want`.
    fn wait_for(&self, query: &str, want: f64) {
        let mut last = None;
        let ok = eventually(Duration::from_secs(20), || {
            last = self.value(query);
            last == Some(want)
        });
        assert!(
            ok,
            "Prometheus: {query} is {last:?}, want {want}; its log:\n{}",
            tail(&self.log(), 20)
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query for a URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn metrics_text(port: u16) -> String {
    let (status, body) = http_get(port, "127.0.0.1", "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn prometheus_sees_router_process_and_server_metrics() {
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut server = Server::start_with(&["--metrics", &metrics_addr]);
    let prometheus = Prometheus::start(&metrics_addr);
    let app = server.create_app("metrics");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");

    // A known number of requests through the router, and a few for a host no
    // app serves.
    const N: usize = 25;
    for _ in 0..N {
        let (status, body) = server.get(&host, "/");
        assert_eq!(status, 200, "{body}");
    }
    for i in 0..3 {
        let (status, _) = server.get(&format!("scanner-{i}.example.com"), "/");
        assert_eq!(status, 404);
    }

    let query = format!("sum(berth_router_requests_total{{app=\"{app}\",code=\"200\"}})");
    prometheus.wait_for(&query, N as f64);
    prometheus.wait_for(
        "sum(berth_router_requests_total{app=\"_unknown\",code=\"404\"})",
        3.0,
    );
    // Each scanner host did not make a series of its own.
    prometheus.wait_for("count(berth_router_requests_total{app=\"_unknown\"})", 1.0);
    prometheus.wait_for(
        &format!("sum(berth_router_request_duration_seconds_count{{app=\"{app}\"}})"),
        N as f64,
    );
    prometheus.wait_for("berth_engine_up", 1.0);
    prometheus.wait_for(
        &format!("sum(berth_process_up{{app=\"{app}\",service=\"web\",release=\"R1\"}})"),
        1.0,
    );
    // Memory comes from the background sampler (every 5 s).
    let memory = format!("sum(berth_process_memory_bytes{{app=\"{app}\"}}) > bool 0");
    prometheus.wait_for(&memory, 1.0);
    prometheus.wait_for(
        &format!("count(berth_process_cpu_seconds_total{{app=\"{app}\"}})"),
        1.0,
    );
    prometheus.wait_for("sum(berth_deploys_total{outcome=\"succeeded\"})", 1.0);
    prometheus.wait_for("sum(berth_builds_total{outcome=\"succeeded\"})", 1.0);

    // API requests are counted by route template, never by raw path.
    let text = metrics_text(metrics_port);
    assert!(
        text.contains("route=\"/apps/{app}/deploy\""),
        "no deploy route in /metrics:\n{text}"
    );
    assert!(
        !text.contains(&format!("route=\"/apps/{app}")),
        "a raw path as a route label:\n{text}"
    );
    assert!(text.contains("berth_reconcile_passes_total"), "{text}");

    // `berth top --json`: every process of the rack, with CPU and memory.
    let top = server.json(&["top", "--json"]);
    let rows = top.as_array().expect("top --json is a list");
    assert!(
        rows.iter()
            .any(|p| p["app"] == app.as_str() && p["memory"].as_u64().is_some_and(|m| m > 0)),
        "{top}"
    );
    // Not a terminal: printed once, as a table.
    let table = server.ok(&["top"]);
    assert!(table.contains("CPU") && table.contains(&app), "{table}");
    let info = server.ok(&["apps", "info", &app]);
    assert!(info.contains("CPU") && info.contains("Memory"), "{info}");

    drop(prometheus);
    server.stop();
}

#[test]
fn a_metrics_address_in_use_is_named_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let data = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let started = Instant::now();
    let out = Command::new(BERTH)
        .args(["server", "--data"])
        .arg(data.path().join("rack"))
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics", &addr])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .stdin(Stdio::null())
        .output()
        .expect("run berth server");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&addr) && err.contains("--metrics"),
        "error does not name the address and the flag:\n{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // The router it may have started is stopped with its data dir.
    stop_router_of(&data.path().join("rack"));
}

fn stop_router_of(data: &Path) {
    if let Ok(pid) = std::fs::read_to_string(data.join("router.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}
