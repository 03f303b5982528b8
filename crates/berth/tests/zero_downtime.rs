//! Zero downtime under load: clients keep requesting an app through the router
//! while it is deployed, scaled, reconfigured, restarted, rolled back, and while
//! `berth server` itself restarts. Not one request may fail.

mod common;

use common::load::{Counts, Load};
use common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;

fn slow_request(
    port: u16,
    host: String,
) -> std::thread::JoinHandle<std::io::Result<(u16, String)>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = http_get(port, &host, "/cgi-bin/slow");
        eprintln!("slow request took {:?}", started.elapsed());
        result
    })
}

#[test]
fn no_request_fails_during_any_change() {
    let mut server = Server::start();
    let app = server.create_app("zdt");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "app: hello\nenvironment:\n  - GREETING=hello\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    scale: {count: 2}\n    deployment: {minimum: 100, maximum: 150}\n    termination: {grace: 5}\n",
    );
    let slow = src.path().join("www/cgi-bin/slow");
    write(
        src.path(),
        "www/cgi-bin/slow",
        "#!/bin/sh\nsleep 3\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");
    assert_eq!(server.get(&host, "/").0, 200);

    let load = Load::start(server.http, &host, CLIENTS);
    let counts = load.counts.clone();
    std::thread::sleep(Duration::from_millis(500));

    let step = |what: &str, started: Instant, counts: &Counts| {
        eprintln!(
            "{what}: done in {:.1?}; so far {} ok, {} non-2xx, {} errors",
            started.elapsed(),
            counts.ok.load(Ordering::Relaxed),
            counts.non_2xx.load(Ordering::Relaxed),
            counts.errors.load(Ordering::Relaxed)
        );
    };

    // A deploy of a new release, with a slow request held open across it: the old
    // process drains it before it is stopped.
    let t = Instant::now();
    write(src.path(), "www/index.html", "<h1>Hello again</h1>\n");
    let held = slow_request(server.http, host.clone());
    std::thread::sleep(Duration::from_millis(300));
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "deploy failed:\n{shown}");
    // maximum 150% of 2: one new process at a time, each routed before an old one goes.
    assert_eq!(
        shown.matches("web: 1 new process(es) routed").count(),
        2,
        "not a rolling deploy:\n{shown}"
    );
    let (status, body) = held
        .join()
        .expect("slow request thread")
        .expect("slow request answered");
    assert_eq!(
        (status, body.trim()),
        (200, "slow done"),
        "the held request was cut"
    );
    step("deploy", t, &counts);

    let t = Instant::now();
    server.ok(&["scale", "web", "--count", "3", "-a", &app]);
    server.ok(&["scale", "web", "--count", "1", "-a", &app]);
    server.ok(&["scale", "web", "--count", "2", "-a", &app]);
    step("scale up and down", t, &counts);

    let t = Instant::now();
    server.ok(&["env", "set", "GREETING=hi", "-a", &app, "--promote"]);
    step("env set --promote", t, &counts);

    let t = Instant::now();
    server.ok(&["restart", "-a", &app]);
    step("restart", t, &counts);

    let t = Instant::now();
    server.ok(&["releases", "rollback", "R1", "-a", &app]);
    step("releases rollback", t, &counts);

    let t = Instant::now();
    let router = server.router_pid();
    server.stop();
    std::thread::sleep(Duration::from_millis(500));
    server.spawn();
    assert_eq!(
        server.router_pid(),
        router,
        "the router outlives the server"
    );
    std::thread::sleep(Duration::from_secs(3));
    step("server restart", t, &counts);

    let log = load.finish();
    let (ok, bad, errors) = (
        counts.ok.load(Ordering::Relaxed),
        counts.non_2xx.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
    );
    println!(
        "zero downtime: {ok} responses 2xx, {bad} non-2xx, {errors} connection errors, {} connections",
        counts.reconnects.load(Ordering::Relaxed)
    );
    assert!(
        bad == 0 && errors == 0,
        "{bad} non-2xx and {errors} errors; first failures: {:?}\nserver log tail:\n{}",
        &log[..log.len().min(10)],
        tail(&server.server_log(), 30)
    );
    assert!(ok > 500, "too few requests went through: {ok}");

    // The router's access log lines reach the app's log stream.
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.lines().any(|l| l.contains("GET ")
            && l.contains(&host)
            && l.contains(" 200 ")
            && l.contains("web-")),
        "no access log line in:\n{}",
        tail(&logs, 20)
    );
}

/// A rolling deploy whose second batch fails its health check: the batch that
/// was already routed is retired, the old processes it replaced come back, the
/// release is marked failed, and clients see no error at any point.
#[test]
fn a_rollout_failing_midway_restores_the_old_release_under_load() {
    let mut server = Server::start();
    let app = server.create_app("mid");
    let src = hello_source();
    // minimum 66% of 3: one old process stopped, one new started, per batch.
    let manifest = |command: &str| {
        format!(
            "app: hello\nservices:\n  web:\n    build: .\n    port: 8080\n    health: {{path: /, attempts: 2}}\n    scale: {{count: 3}}\n    deployment: {{minimum: 66, maximum: 100}}\n    termination: {{grace: 5}}\n    volumes: [claims:/claims]\n{command}"
        )
    };
    write(src.path(), "berth.yml", &manifest(""));
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");
    assert_eq!(server.get(&host, "/").0, 200);

    // The first new process claims the shared volume and serves; every later one
    // finds the claim taken and exits, so the second batch fails.
    write(
        src.path(),
        "berth.yml",
        &manifest(
            "    command: [\"/bin/sh\", \"-c\", \"mkdir /claims/first && exec /bin/httpd -f -p 8080 -h /www; echo claim taken; exit 3\"]\n",
        ),
    );
    let load = Load::start(server.http, &host, 4);
    std::thread::sleep(Duration::from_millis(300));
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    std::thread::sleep(Duration::from_millis(500));
    let counts = load.counts.clone();
    let problems = load.finish();
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "the deploy must fail:\n{shown}");
    assert_eq!(
        shown.matches("web: 1 new process(es) routed").count(),
        1,
        "the first batch was routed before the second failed:\n{shown}"
    );
    assert!(shown.contains("rolling back"), "{shown}");
    assert!(
        shown.contains("exited with code 3") && shown.contains("claim taken"),
        "the failing process's reason and last log lines are shown:\n{shown}"
    );

    let (ok, bad, errors) = (
        counts.ok.load(Ordering::Relaxed),
        counts.non_2xx.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
    );
    eprintln!("rollout failing midway: {ok} ok, {bad} non-2xx, {errors} connection errors");
    assert!(ok > 0, "no request got through");
    assert_eq!((bad, errors), (0, 0), "requests failed: {problems:?}");

    assert_eq!(server.release(&app, "R2")["status"], "failed");
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let procs = ps.as_array().expect("a list of processes");
    assert_eq!(procs.len(), 3, "three processes again: {ps}");
    assert!(
        procs
            .iter()
            .all(|p| p["release"] == "R1" && p["state"] == "running"),
        "all of them R1 and running: {ps}"
    );
    assert_eq!(
        docker(&["ps", "-q", "--filter", &format!("label=berth.app={app}")])
            .lines()
            .count(),
        3,
        "no leftover containers of the failed release"
    );
    server.ok(&["apps", "delete", &app, "--volumes"]);
}

/// `ps stop` and `apps delete` are the same retirement as a rollout's: the
/// process leaves the router, the requests it already has finish (within the
/// service's `drain`), and only then is it sent SIGTERM. Slow requests held
/// across either lose nothing; for `ps stop` the other process takes the load.
/// The held requests are POSTs, which the router never retries elsewhere, so a
/// request cut short would show.
#[test]
fn ps_stop_and_apps_delete_finish_the_requests_already_in_flight() {
    let mut server = Server::start();
    let app = server.create_app("retire");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "services:\n  web:\n    build: .\n    port: 8080\n    health: /\n    scale: {count: 2}\n    drain: 10\n    termination: {grace: 5}\n",
    );
    let slow = src.path().join("www/cgi-bin/slow");
    write(
        src.path(),
        "www/cgi-bin/slow",
        "#!/bin/sh\nsleep 2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done by %s\\n' \"$BERTH_PROCESS\"\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");
    let ps = server.json(&["ps", "--json", "-a", &app]);
    let id = ps[0]["id"].as_str().expect("a process id").to_string();

    let load = Load::start(server.http, &host, 4);
    let counts = load.counts.clone();
    // Round robin sends about half of these to the process about to stop.
    let held: Vec<_> = (0..8)
        .map(|_| held_post(server.http, host.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    server.ok(&["ps", "stop", &id, "-a", &app]);
    let mut by_stopped = 0;
    for h in held {
        let (status, body) = h.join().expect("slow request thread").expect("an answer");
        assert_eq!(status, 200, "ps stop cut a request: {body}");
        assert!(body.starts_with("slow done by web-"), "{body}");
        by_stopped += usize::from(body.trim().ends_with(&id));
    }
    assert!(
        by_stopped > 0,
        "no held request reached the stopped process; the test proved nothing"
    );
    let log = load.finish();
    let (ok, bad, errors) = (
        counts.ok.load(Ordering::Relaxed),
        counts.non_2xx.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
    );
    assert!(
        bad == 0 && errors == 0 && ok > 0,
        "ps stop under load: {ok} ok, {bad} non-2xx, {errors} errors: {:?}",
        &log[..log.len().min(10)]
    );
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.contains(&format!("process {id} stopped by request")),
        "{}",
        tail(&logs, 20)
    );

    let held: Vec<_> = (0..4)
        .map(|_| held_post(server.http, host.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    server.ok(&["apps", "delete", &app]);
    for h in held {
        let (status, body) = h.join().expect("slow request thread").expect("an answer");
        assert_eq!(status, 200, "apps delete cut a request: {body}");
        assert!(body.starts_with("slow done by web-"), "{body}");
    }
    assert_eq!(
        server.get(&host, "/").0,
        404,
        "the app still answers after its deletion"
    );
    println!(
        "retire: ps stop under load: {ok} requests ok, {by_stopped} held ones on the stopped process finished; apps delete: 4 held requests finished"
    );
}

/// A slow POST through the router, answered by the process it reached.
fn held_post(port: u16, host: String) -> std::thread::JoinHandle<std::io::Result<(u16, String)>> {
    std::thread::spawn(move || request(port, &host, "POST", "/cgi-bin/slow", None, Some("{}")))
}
