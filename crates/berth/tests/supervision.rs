//! The reconciler and supervisor: killed processes come back, a restarted
//! server adopts what runs, and secrets stay sealed.

mod common;

use common::*;
use std::time::Duration;

fn containers(app: &str) -> Vec<String> {
    let mut ids: Vec<String> = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=berth.app={app}"),
    ])
    .split_whitespace()
    .map(String::from)
    .collect();
    ids.sort();
    ids
}

#[test]
fn a_killed_process_is_replaced_within_5_seconds() {
    let mut server = Server::start();
    let app = server.create_app("kill");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");
    let before = containers(&app);
    assert_eq!(before.len(), 1);
    docker(&["kill", &before[0]]);
    let replaced = eventually(Duration::from_secs(5), || {
        let now = containers(&app);
        now.len() == 1 && now != before && server.get(&host, "/").0 == 200
    });
    assert!(
        replaced,
        "not replaced in 5 s; server log:\n{}",
        tail(&server.server_log(), 30)
    );
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    assert_eq!(ps[0]["restarts"], 1, "{ps}");
    assert!(
        eventually(Duration::from_secs(5), || {
            let logs = server.ok(&["logs", "-a", &app]);
            logs.contains("exited with code 137") && logs.contains("replaced")
        }),
        "crash not reported in logs"
    );
    server.ok(&["apps", "delete", &app]);
}

#[test]
fn a_restarted_server_restarts_nothing_and_removes_strays() {
    let mut server = Server::start();
    let app = server.create_app("rs");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    server.ok(&["scale", "web", "--count", "2", "-a", &app]);
    let host = format!("web.{app}.localhost");
    let before = containers(&app);
    assert_eq!(before.len(), 2);
    let started = |id: &str| docker(&["inspect", "-f", "{{.State.StartedAt}}", id]);
    let starts: Vec<String> = before.iter().map(|id| started(id)).collect();

    server.stop();
    // Apps keep running while the server is down.
    assert_eq!(containers(&app), before);
    // A berth-labelled stray appears while the server is down, and one process vanishes.
    let image = docker(&["inspect", "-f", "{{.Config.Image}}", &before[0]]);
    let labels = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"berth.rack\"}}",
        &before[0],
    ]);
    let stray = docker(&[
        "run",
        "-d",
        "--label",
        &format!("berth.app={app}"),
        "--label",
        &format!("berth.rack={}", labels.trim()),
        "--label",
        "berth.process=web-stray0",
        image.trim(),
        "/bin/sleep",
        "600",
    ]);
    assert!(
        !stray.trim().is_empty(),
        "could not start a stray container"
    );
    server.spawn();
    assert!(
        eventually(Duration::from_secs(10), || containers(&app) == before),
        "server disturbed running containers or kept the stray: {:?} vs {:?}",
        containers(&app),
        before
    );
    let after: Vec<String> = before.iter().map(|id| started(id)).collect();
    assert_eq!(starts, after, "containers were restarted");
    assert_eq!(server.get(&host, "/").0, 200);

    // A process removed while the server is down is recreated.
    server.stop();
    docker(&["rm", "-f", &before[1]]);
    server.spawn();
    assert!(
        eventually(Duration::from_secs(10), || containers(&app).len() == 2),
        "missing process not recreated"
    );
    assert!(
        containers(&app).contains(&before[0]),
        "the healthy process was restarted"
    );
    server.ok(&["apps", "delete", &app]);
}

#[test]
fn env_values_are_sealed_in_the_store() {
    let mut server = Server::start();
    let app = server.create_app("seal");
    let secret = "s3cr3t-value-that-must-not-leak";
    server.ok(&["env", "set", &format!("TOKEN={secret}"), "-a", &app]);
    assert_eq!(
        server.ok(&["env", "get", "TOKEN", "-a", &app]).trim(),
        secret
    );
    server.stop();
    for entry in std::fs::read_dir(server.data.path().join("rack")).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the plaintext",
                path.display()
            );
        }
    }
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(server.data.path().join("rack").join(name))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(mode("admin.token"), 0o600);
}

#[test]
fn the_api_lets_nobody_in_without_a_token() {
    let server = Server::start();
    assert_eq!(server.api_get("/health", None).0, 200);
    for (token, what) in [
        (None, "missing"),
        (Some("Bearer berth_wrong"), "wrong"),
        (Some("Basic abc"), "malformed"),
    ] {
        for path in ["/apps", "/rack", "/apps/x/env", "/apps/x/logs"] {
            let (status, body) = server.api_get(path, token);
            assert_eq!(status, 401, "{what} token on {path}: {body}");
            assert!(body.contains("token"), "{body}");
        }
    }
    let (status, _) = server.api_get("/apps", Some(&format!("Bearer {}", server.token)));
    assert_eq!(status, 200);
    let out = std::process::Command::new(BERTH)
        .args(["apps"])
        .env("BERTH_HOST", format!("http://127.0.0.1:{}", server.api))
        .env("BERTH_TOKEN", "berth_nope")
        .env("HOME", server.home.path())
        .output()
        .expect("run cli");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token"), "{}", stderr(&out));
}
