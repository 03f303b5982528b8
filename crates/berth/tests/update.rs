//! `berth rack update` under load: the server moves to a new build of berth and
//! back while clients keep requesting an app through the router (plain HTTP
//! and HTTPS, keep-alive and new connections, one slow request, one upgraded
//! connection). Not one request may fail, the upgraded connection and the slow
//! request go on across both router hand-overs, and no app container restarts.
//! A new build that does not come up is rolled back with the store unchanged.
//!
//! The "new build" is a copy of this build with a tag of its own in its version
//! (`berth_core::version::tag_binary`, what release tooling would stamp): the
//! code is the same, the version the update compares and records differs.

mod common;

use common::load::Load;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A copy of this build's berth at `dir/name`, tagged `tag` when given.
fn berth_copy(dir: &Path, name: &str, tag: Option<&str>) -> PathBuf {
    let bytes = std::fs::read(BERTH).expect("read the berth binary");
    let bytes = match tag {
        Some(tag) => berth_core::version::tag_binary(bytes, tag).expect("tag the copy"),
        None => bytes,
    };
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the copy");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}

fn version_of(binary: &Path) -> String {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .expect("run --version");
    stdout(&out).trim().to_string()
}

/// Each container of `app`: (id, when it started).
fn containers(app: &str) -> Vec<String> {
    let ids = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    let mut out: Vec<String> = ids
        .lines()
        .map(|id| docker(&["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", id.trim()]))
        .map(|s| s.trim().to_string())
        .collect();
    out.sort();
    out
}

/// A connection upgraded through the router to the app's `ws` service, which
/// echoes what it gets once the upgrade is answered.
struct Upgraded {
    reader: BufReader<TcpStream>,
}

impl Upgraded {
    fn open(port: u16, host: &str) -> Upgraded {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the router");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(
                format!(
                    "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("send the upgrade");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("the upgrade's answer");
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header");
            if line.trim().is_empty() {
                break;
            }
        }
        Upgraded { reader }
    }

    /// Sends a line and reads its echo.
    fn echo(&mut self, text: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .expect("send over the upgraded connection");
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read over the upgraded connection");
        line.trim().to_string()
    }

    /// Closes our side and expects the other side to close cleanly (no reset).
    fn close(mut self) {
        let stream = self.reader.get_mut();
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("close our side");
        let mut rest = Vec::new();
        self.reader
            .read_to_end(&mut rest)
            .expect("the upgraded connection ends cleanly");
    }
}

/// HTTPS clients: `curl` runs of 20 requests each on one keep-alive connection,
/// a new connection (a full handshake) per run.
struct HttpsLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    problems: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl HttpsLoad {
    fn start(port: u16, host: &str, clients: usize) -> HttpsLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let problems = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, problems) = (stop.clone(), ok.clone(), problems.clone());
                let host = host.to_string();
                std::thread::spawn(move || {
                    let url = format!("https://{host}:{port}/");
                    while !stop.load(Ordering::Relaxed) {
                        let out = Command::new("curl")
                            .args(["-sS", "-k", "--http1.1"])
                            .args(["-w", "%{http_code}\\n"])
                            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
                            .args((0..20).flat_map(|_| ["-o", "/dev/null", url.as_str()]))
                            .output()
                            .expect("curl is installed");
                        let codes = stdout(&out);
                        let good = codes.lines().filter(|c| *c == "200").count();
                        ok.fetch_add(good as u64, Ordering::Relaxed);
                        if !out.status.success() || good != 20 {
                            problems
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("curl: {codes:?} {}", stderr(&out)));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        HttpsLoad {
            stop,
            ok,
            problems,
            threads,
        }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("an HTTPS client thread");
        }
        let problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        (self.ok.load(Ordering::Relaxed), problems.clone())
    }
}

fn slow_request(port: u16, host: String) -> std::thread::JoinHandle<(u16, String)> {
    std::thread::spawn(move || http_get(port, &host, "/cgi-bin/slow").expect("the slow request"))
}

fn rack_info(server: &Server) -> serde_json::Value {
    server.json(&["rack", "--json"])
}

#[test]
fn an_update_and_its_rollback_lose_no_request_and_restart_no_app() {
    let bins = tempfile::tempdir().expect("a dir for the binaries");
    let installed = berth_copy(bins.path(), "berth", None);
    let original = berth_copy(bins.path(), "berth-original", None);
    let next = berth_copy(bins.path(), "berth-next", Some("next"));
    let base = version_of(&original);
    assert_eq!(version_of(&next), format!("{base}+next"));
    let base = base.trim_start_matches("berth ").to_string();
    let next_version = format!("{base}+next");

    let https = free_port();
    let mut server = Server::start_from(
        installed.clone(),
        &["--https", &format!("127.0.0.1:{https}")],
        &[],
    );
    let app = server.create_app("upd");
    let src = hello_source();
    write(
        src.path(),
        "www/cgi-bin/slow",
        "#!/bin/sh\nsleep 6\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n",
    );
    // The `ws` service answers an upgrade with 101, then echoes (busybox nc
    // runs the script per connection); anything else gets 200.
    write(
        src.path(),
        "www/ws.sh",
        "#!/bin/sh\nread -r line\nup=\nwhile read -r h; do h=$(printf '%s' \"$h\" | tr -d '\\r'); [ -z \"$h\" ] && break; case \"$h\" in [Uu]pgrade:*) up=1;; esac; done\nif [ -n \"$up\" ]; then printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'; exec cat; fi\nprintf 'HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nok\\n'\n",
    );
    for script in ["www/cgi-bin/slow", "www/ws.sh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            src.path().join(script),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    write(
        src.path(),
        "berth.yml",
        "app: hello\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    scale: {count: 2}\n  ws:\n    build: .\n    command: [\"/bin/nc\", \"-ll\", \"-p\", \"8081\", \"-e\", \"/www/ws.sh\"]\n    port: 8081\n    health: /\n",
    );
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    server.ok(&["certs", "generate", &format!("*.{app}.localhost")]);
    let host = format!("web.{app}.localhost");
    // The router takes the certificate a moment after the command returns.
    let served = eventually(Duration::from_secs(10), || {
        Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "--resolve"])
            .arg(format!("{host}:{https}:127.0.0.1"))
            .arg(format!("https://{host}:{https}/"))
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(served, "HTTPS never answered");
    let ws_host = format!("ws.{app}.localhost");
    assert_eq!(server.get(&host, "/").0, 200);
    let before = containers(&app);
    assert_eq!(before.len(), 3, "{before:?}");
    let server_pid = server.pid();

    let keep_alive = Load::start(server.http, &host, 4);
    let fresh = Load::start_with(server.http, &host, 2, true);
    let secure = HttpsLoad::start(https, &host, 2);
    let mut upgraded = Upgraded::open(server.http, &ws_host);
    assert_eq!(upgraded.echo("before"), "before");
    std::thread::sleep(Duration::from_secs(1));

    // To the new build: the server and then the router move to it.
    let router_before = server.router_pid();
    let slow = slow_request(server.http, host.clone());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = server.ok(&["rack", "update", "--binary", &next.to_string_lossy()]);
    eprintln!("update took {:?}: {out}", started.elapsed());
    assert!(
        out.contains(&format!("berth {next_version} is running")),
        "{out}"
    );
    let rack = rack_info(&server);
    assert_eq!(rack["version"], next_version.as_str(), "{rack}");
    assert_eq!(rack["router_version"], next_version.as_str(), "{rack}");
    assert_ne!(
        server.router_pid(),
        router_before,
        "the router was not replaced"
    );
    assert_eq!(server.pid(), server_pid, "the server's process changed");
    assert_eq!(version_of(&installed), format!("berth {next_version}"));
    assert_eq!(upgraded.echo("across the update"), "across the update");
    let (status, body) = slow.join().expect("the slow request's thread");
    assert_eq!((status, body.trim()), (200, "slow done"));

    // A new build that does not come up: rolled back, nothing else changes.
    let broken = bins.path().join("berth-broken");
    std::fs::write(
        &broken,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo 'berth {base}+broken'; exit 0;; esac\nexec {} \"$@\" --no-such-flag\n",
            original.display()
        ),
    )
    .expect("write the broken build");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = server.cli(&["rack", "update", "--binary", &broken.to_string_lossy()]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a broken build was accepted: {err}");
    assert!(
        err.contains("rolled back")
            && err.contains(&format!("berth {next_version} serves as before")),
        "{err}"
    );
    assert_eq!(rack_info(&server)["version"], next_version.as_str());
    assert_eq!(version_of(&installed), format!("berth {next_version}"));
    assert_eq!(server.get(&host, "/").0, 200);

    // And back to the build we started with, the way an operator rolls back.
    let slow = slow_request(server.http, host.clone());
    std::thread::sleep(Duration::from_millis(300));
    let out = server.ok(&["rack", "update", "--binary", &original.to_string_lossy()]);
    assert!(out.contains(&format!("berth {base} is running")), "{out}");
    let rack = rack_info(&server);
    assert_eq!(rack["version"], base.as_str(), "{rack}");
    assert_eq!(rack["router_version"], base.as_str(), "{rack}");
    assert_eq!(upgraded.echo("after the rollback"), "after the rollback");
    let (status, _) = slow.join().expect("the slow request's thread");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_secs(1));

    upgraded.close();
    let plain_problems = keep_alive.finish();
    let plain_counts = (
        fresh.counts.ok.load(Ordering::Relaxed),
        fresh.counts.reconnects.load(Ordering::Relaxed),
    );
    let fresh_problems = fresh.finish();
    let (https_ok, https_problems) = secure.finish();
    eprintln!(
        "requests: new connections {} ok over {} connections, https {https_ok} ok",
        plain_counts.0, plain_counts.1
    );
    assert!(
        plain_problems.is_empty(),
        "keep-alive clients: {plain_problems:?}"
    );
    assert!(
        fresh_problems.is_empty(),
        "new-connection clients: {fresh_problems:?}"
    );
    assert!(
        https_problems.is_empty(),
        "HTTPS clients: {https_problems:?}"
    );
    assert!(https_ok > 0 && plain_counts.0 > 0);
    assert_eq!(containers(&app), before, "an app container restarted");

    let updates = server.json(&["rack", "releases", "--json"]);
    let states: Vec<(&str, &str)> = updates
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| {
            (
                u["to_version"].as_str().unwrap_or(""),
                u["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let broken_version = format!("{base}+broken");
    assert_eq!(
        states,
        vec![
            (base.as_str(), "done"),
            (broken_version.as_str(), "rolled back"),
            (next_version.as_str(), "done"),
        ],
        "{updates}"
    );
    server.stop();
    server.stop_router();
}

/// A server stopped (SIGTERM, as `systemctl stop` does) while a new build is on
/// trial stops for good: the trial goes, the update is rolled back, and the
/// next start is the old version with the store as it was.
#[test]
fn a_server_stopped_during_an_update_rolls_it_back_and_exits() {
    let bins = tempfile::tempdir().expect("a dir for the binaries");
    let installed = berth_copy(bins.path(), "berth", None);
    let base = version_of(&installed);
    let base = base.trim_start_matches("berth ").to_string();
    // A build that never gets ready.
    let hanging = bins.path().join("berth-hanging");
    std::fs::write(
        &hanging,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo 'berth {base}+hanging'; exit 0;; esac\nexec sleep 600\n"
        ),
    )
    .expect("write the hanging build");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut server = Server::start_from(installed.clone(), &[], &[]);
    let app = server.create_app("updstop");
    let mut cli = spawn_cli(
        &server,
        Path::new("."),
        &["rack", "update", "--binary", &hanging.to_string_lossy()],
    );
    let on_trial = eventually(Duration::from_secs(30), || {
        server
            .server_log()
            .contains("the server stops serving and hands over")
    });
    assert!(
        on_trial,
        "the update did not start:\n{}",
        server.server_log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    server.stop();
    eprintln!("stopped in {:?}", started.elapsed());
    let _ = cli.kill();
    let _ = cli.wait();

    server.spawn();
    assert_eq!(rack_info(&server)["version"], base.as_str());
    let updates = server.json(&["rack", "releases", "--json"]);
    assert_eq!(updates[0]["state"], "rolled back", "{updates}");
    assert!(
        updates[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("SIGTERM")),
        "{updates}"
    );
    assert!(
        server.json(&["apps", "--json"]).to_string().contains(&app),
        "the store lost the app"
    );
    server.stop();
    server.stop_router();
}
