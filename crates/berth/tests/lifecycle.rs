//! The whole user story of a berth app, through the CLI, against the real engine.

mod common;

use common::*;
use std::time::Duration;

fn host(app: &str) -> String {
    format!("web.{app}.localhost")
}

#[test]
fn app_lifecycle_from_deploy_to_delete() {
    let mut server = Server::start();
    let app = server.create_app("life");
    let src = hello_source();

    // Deploy: build, release, roll out, print the URL.
    let out = server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(
        out.contains(&format!("web.{app}.localhost")),
        "deploy printed no URL:\n{out}"
    );
    let (status, body) = server.get(&host(&app), "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from berth"), "{body}");
    let (_, env) = server.get(&host(&app), "/cgi-bin/env");
    assert!(
        env.contains("GREETING=hello"),
        "manifest default not applied: {env}"
    );

    // Env change with promote: a new release, served.
    server.ok(&["env", "set", "GREETING=hi", "-a", &app, "--promote"]);
    let (_, env) = server.get(&host(&app), "/cgi-bin/env");
    assert!(env.contains("GREETING=hi"), "{env}");
    assert!(env.contains("RELEASE=R2"), "{env}");
    assert_eq!(
        server.ok(&["env", "get", "GREETING", "-a", &app]).trim(),
        "hi"
    );

    // Scale to 3: three processes, and the router spreads requests over them.
    server.ok(&["scale", "web", "--count", "3", "-a", &app]);
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let procs = ps.as_array().expect("ps --json is a list");
    assert_eq!(procs.len(), 3, "{ps}");
    assert!(
        procs
            .iter()
            .all(|p| p["state"] == "running" && p["release"] == "R2"),
        "{ps}"
    );
    let table = server.ok(&["ps", "-a", &app]);
    assert!(table.contains("ID") && table.contains("web-"), "{table}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (_, env) = server.get(&host(&app), "/cgi-bin/env");
        if let Some(line) = env.lines().find(|l| l.starts_with("PROCESS=")) {
            seen.insert(line.to_string());
        }
    }
    assert_eq!(seen.len(), 3, "round robin reached {seen:?}");

    // Releases and rollback: R3 copies R1 (GREETING=hello) forward.
    let releases = server.json(&["releases", "-a", &app, "--json"]);
    assert_eq!(releases.as_array().map(Vec::len), Some(2), "{releases}");
    server.ok(&["releases", "rollback", "R1", "-a", &app]);
    let (_, env) = server.get(&host(&app), "/cgi-bin/env");
    assert!(
        env.contains("GREETING=hello") && env.contains("RELEASE=R3"),
        "{env}"
    );
    let current = server.ok(&["env", "-a", &app]);
    assert!(
        !current.contains("GREETING=hi"),
        "the app's env follows the rollback: {current}"
    );
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    assert_eq!(
        ps.as_array().map(Vec::len),
        Some(3),
        "scale survives a rollback: {ps}"
    );

    // Logs: build output, process output and system events in one stream.
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.contains("build/B1"),
        "no build output in logs:\n{logs}"
    );
    assert!(
        logs.contains("berth") && logs.contains("deploy of release R1"),
        "no system events:\n{logs}"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            server
                .ok(&["logs", "-a", &app, "--service", "web"])
                .contains("web/web-")
        }),
        "no process output in logs:\n{}",
        server.ok(&["logs", "-a", &app])
    );

    // Info and rack.
    let info = server.json(&["apps", "info", &app, "--json"]);
    assert_eq!(info["release"], "R3", "{info}");
    let rack = server.json(&["rack", "--json"]);
    assert!(
        rack["engine"].as_str().unwrap_or("").contains("docker"),
        "{rack}"
    );

    // On a terminal, delete asks for the app's name and keeps the app on a wrong
    // answer; an unknown app is named with the command that lists the real ones.
    let refused = std::process::Command::new("script")
        .args(["-qec", &format!("{BERTH} apps delete {app}"), "/dev/null"])
        .env("BERTH_HOST", format!("http://127.0.0.1:{}", server.api))
        .env("BERTH_TOKEN", &server.token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"not-the-name\n")?;
            }
            child.wait_with_output()
        })
        .expect("run berth apps delete on a terminal (script, from util-linux)");
    let said = stdout(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("Type the app's name") && said.contains("was not deleted"),
        "{said}"
    );
    assert_eq!(
        server.json(&["apps", "info", &app, "--json"])["name"],
        app.as_str()
    );
    let out = server.cli(&["apps", "delete", "nosuch-app"]);
    assert!(
        stderr(&out).contains("list the apps with `berth apps`")
            && !stderr(&out).contains("apps create"),
        "{}",
        stderr(&out)
    );

    // Delete (no terminal: no question, as scripts expect): containers, network,
    // images and data go.
    server.ok(&["apps", "delete", &app]);
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("label=berth.app={app}")]).trim(),
        ""
    );
    assert_eq!(
        docker(&[
            "images",
            "-q",
            "--filter",
            &format!("label=berth.app={app}")
        ])
        .trim(),
        ""
    );
    assert_eq!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=berth.app={app}")
        ])
        .trim(),
        ""
    );
    let (status, _) = server.get(&host(&app), "/");
    assert_eq!(status, 404);
    let out = server.cli(&["ps", "-a", &app]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn failed_health_check_keeps_the_old_release_serving() {
    let mut server = Server::start();
    let app = server.create_app("hc");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);

    // A release whose health check can never pass.
    write(
        src.path(),
        "berth.yml",
        "services:\n  web:\n    build: .\n    port: 8080\n    health: {path: /missing, attempts: 2}\n",
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(
        !out.status.success(),
        "a deploy that fails its health check must exit non-zero"
    );
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("health check"), "{err}");
    assert!(
        err.contains("/missing"),
        "the failing process's last log lines are shown:\n{err}"
    );

    let (status, body) = server.get(&host(&app), "/");
    assert_eq!(status, 200, "old release stopped serving: {body}");
    assert_eq!(server.release(&app, "R2")["status"], "failed");
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let procs = ps.as_array().expect("list");
    assert_eq!(procs.len(), 1, "{ps}");
    assert_eq!(procs[0]["release"], "R1");
    server.ok(&["apps", "delete", &app]);
}

#[test]
fn missing_required_env_fails_before_anything_starts() {
    let mut server = Server::start();
    let app = server.create_app("env");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "environment:\n  - DATABASE_URL\n  - API_KEY\nservices:\n  web:\n    build: .\n    port: 8080\n",
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("DATABASE_URL") && err.contains("API_KEY"),
        "{err}"
    );
    assert_eq!(
        server
            .json(&["builds", "-a", &app, "--json"])
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("label=berth.app={app}")]).trim(),
        ""
    );

    // Set them, and the same source deploys.
    server.ok(&[
        "env",
        "set",
        "DATABASE_URL=postgres://db/x",
        "API_KEY=k",
        "-a",
        &app,
    ]);
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    assert_eq!(server.get(&host(&app), "/").0, 200);
    server.ok(&["apps", "delete", &app]);
}

#[test]
fn manifest_errors_name_file_line_and_column() {
    let mut server = Server::start();
    let app = server.create_app("mf");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "services:\n  web:\n    build: .\n    prot: 8080\n",
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("berth.yml:4:5"), "{err}");
    assert!(err.contains("port"), "did-you-mean missing: {err}");
}
