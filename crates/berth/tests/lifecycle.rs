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
    // Fixed-width timestamps: every line's text starts in the same column.
    for line in logs.lines() {
        assert!(
            line.len() > 31 && line.as_bytes()[29] == b'Z' && line.as_bytes()[30] == b' ',
            "timestamp not fixed width: {line:?}"
        );
    }
    // Events about a service are in its view; `--tail` picks the last lines.
    let web = server.ok(&["logs", "-a", &app, "--service", "web"]);
    assert!(
        web.contains("berth process web-") && web.contains("started for release R1"),
        "no events about web in its logs:\n{web}"
    );
    let last = server.ok(&["logs", "-a", &app, "--tail", "3"]);
    assert_eq!(last.lines().count(), 3, "{last}");
    let unknown = server.cli(&["logs", "-a", &app, "--service", "nope"]);
    assert!(
        !unknown.status.success(),
        "an unknown service printed nothing and succeeded"
    );
    let said = stderr(&unknown);
    assert!(
        said.contains("has no service nope") && said.contains("web (release R3)"),
        "{said}"
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

    // Rolling back to the failed release is refused, saying why it failed.
    let out = server.cli(&["releases", "rollback", "R2", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("release R2") && err.contains("failed") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        server
            .json(&["releases", "-a", &app, "--json"])
            .as_array()
            .map(Vec::len),
        Some(2),
        "a refused rollback made a release"
    );

    // A worker (no port) that exits within its first 5 s fails the rollout the same way.
    write(
        src.path(),
        "berth.yml",
        "services:\n  web:\n    build: .\n    port: 8080\n  worker:\n    build: .\n    command: [sh, -c, \"echo no queue here; sleep 2; exit 42\"]\n",
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(
        !out.status.success(),
        "a worker that exits must fail the deploy"
    );
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("exited with code 42"), "{err}");
    assert!(err.contains("no queue here"), "its last log lines:\n{err}");
    assert_eq!(
        server.get(&host(&app), "/").0,
        200,
        "old release stopped serving"
    );
    assert_eq!(server.release(&app, "R3")["status"], "failed");
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    assert_eq!(ps.as_array().map(Vec::len), Some(1), "{ps}");
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

    // Found before the upload, in the server's words.
    assert!(err.contains("which are not set"), "{err}");
    assert!(
        !err.contains("uploading"),
        "checked only after uploading: {err}"
    );

    // A missing Dockerfile, too; and a berth.yml naming another app is said.
    std::fs::rename(
        src.path().join("Dockerfile"),
        src.path().join("Dockerfile.off"),
    )
    .expect("move the Dockerfile away");
    write(
        src.path(),
        "berth.yml",
        "app: other\nservices:\n  web:\n    build: .\n    port: 8080\n",
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("./Dockerfile is missing from the upload") && !err.contains("uploading"),
        "{err}"
    );
    assert!(
        err.contains(&format!("berth.yml names app other, but --app says {app}")),
        "{err}"
    );
    std::fs::rename(
        src.path().join("Dockerfile.off"),
        src.path().join("Dockerfile"),
    )
    .expect("put the Dockerfile back");
    write(
        src.path(),
        "berth.yml",
        "environment:\n  - DATABASE_URL\n  - API_KEY\nservices:\n  web:\n    build: .\n    port: 8080\n",
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

#[test]
fn the_environment_shows_defaults_and_changes_that_change_nothing_or_break_are_not_made() {
    let mut server = Server::start();
    let app = server.create_app("envx");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "environment:\n  - GREETING=hello\n  - SECRET_KEY\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    termination: {grace: 5}\n",
    );
    server.ok(&["env", "set", "SECRET_KEY=s3", "-a", &app]);
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let releases = |s: &Server| {
        s.json(&["releases", "-a", &app, "--json"])
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(releases(&server), Some(1));

    // The defaults the processes get, marked as such; --json keeps its shape.
    let env = server.ok(&["env", "-a", &app]);
    assert!(
        env.contains("# set with `berth env set`\nSECRET_KEY=s3\n")
            && env.contains("# defaults in berth.yml (environment:)\nGREETING=hello\n"),
        "{env}"
    );
    assert_eq!(
        server.ok(&["env", "get", "GREETING", "-a", &app]),
        "hello\n"
    );
    let greeting = server.json(&["env", "get", "GREETING", "--json", "-a", &app]);
    assert_eq!(
        greeting,
        serde_json::json!({"key": "GREETING", "value": "hello", "source": "default"})
    );
    assert_eq!(
        server.json(&["env", "--json", "-a", &app]),
        serde_json::json!({"SECRET_KEY": "s3"})
    );

    // A multi-line value prints quoted, and what `env` prints `env set` reads back.
    server.ok(&["env", "set", "NOTE=line one\nline two", "-a", &app]);
    let env = server.ok(&["env", "-a", &app]);
    let line = env
        .lines()
        .find(|l| l.starts_with("NOTE="))
        .unwrap_or_default()
        .to_string();
    assert_eq!(line, r#"NOTE="line one\nline two""#, "{env}");
    assert_eq!(releases(&server), Some(2));

    // Changes that change nothing make no release, and say so.
    for change in [
        vec!["env", "set", line.as_str()],
        vec!["env", "set", "SECRET_KEY=s3", "--promote"],
        vec!["env", "unset", "NOTTHERE"],
    ] {
        let out = server.ok(&[&change[..], &["-a", &app]].concat());
        assert!(out.contains("no change"), "{change:?}: {out}");
    }
    assert_eq!(
        releases(&server),
        Some(2),
        "a change of nothing made a release"
    );

    // Unsetting what berth.yml requires, rolled out, is refused before anything is written.
    let out = server.cli(&["env", "unset", "SECRET_KEY", "--promote", "-a", &app]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("SECRET_KEY") && err.contains("berth.yml requires SECRET_KEY (line 3"),
        "{err}"
    );
    assert_eq!(releases(&server), Some(2));
    assert_eq!(server.ok(&["env", "get", "SECRET_KEY", "-a", &app]), "s3\n");

    // Promoting the active release does nothing; restart at count 0 says so.
    // The same processes (CPU and memory samples may change meanwhile).
    let processes = |server: &Server| {
        server
            .json(&["ps", "-a", &app, "--json"])
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| format!("{} {} {}", p["id"], p["release"], p["started"]))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let before = processes(&server);
    let out = server.ok(&["releases", "promote", "R1", "-a", &app]);
    assert!(out.contains("release R1 is already active"), "{out}");
    assert_eq!(processes(&server), before);
    server.ok(&["scale", "web", "--count", "0", "-a", &app]);
    let out = server.ok(&["restart", "web", "-a", &app]);
    assert!(
        out.contains("web has no processes to restart") && !out.contains("promoted"),
        "{out}"
    );

    // Another app claiming this app's host is refused before it builds.
    let other = server.create_app("claim");
    write(
        src.path(),
        "berth.yml",
        &format!(
            "services:\n  web:\n    build: .\n    port: 8080\n    domain: {}\n",
            host(&app)
        ),
    );
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &other]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("is already served by service web of app {app}")),
        "{err}"
    );
    assert_eq!(
        server
            .json(&["builds", "-a", &other, "--json"])
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn logs_are_searched_by_text_source_process_and_time() {
    let mut server = Server::start();
    let app = server.create_app("logq");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let needle = format!("needle-{app}");
    assert_eq!(server.get(&host(&app), &format!("/{needle}")).0, 404);
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["logs", "-a", &app, "-n", "all", "--json"];
        all.extend_from_slice(args);
        server
            .ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // The router's access line for the request, found by its text.
    let found = eventually(Duration::from_secs(10), || {
        lines(&["--grep", &needle, "--source", "router"]).len() == 1
    });
    assert!(found, "{:#?}", lines(&["--grep", &needle]));
    let hits = lines(&["--grep", &needle]);
    assert!(
        hits.iter()
            .all(|l| l["text"].as_str().is_some_and(|t| t.contains(&needle))),
        "{hits:#?}"
    );
    let builds = lines(&["--source", "build"]);
    assert!(!builds.is_empty());
    assert!(
        builds.iter().all(|l| l["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("build/"))),
        "{builds:#?}"
    );
    let system = lines(&["--source", "system"]);
    assert!(system.iter().all(|l| l["source"] == "berth"), "{system:#?}");
    // One process's output: busybox httpd -v logs each request it serves.
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let process = ps[0]["id"].as_str().expect("a process").to_string();
    let own = lines(&["--process", &process]);
    assert!(
        own.iter()
            .all(|l| l["source"] == format!("web/{process}").as_str()),
        "{own:#?}"
    );
    assert!(lines(&["--process", "web-000000"]).is_empty());
    // Every line is recent: none is older than an hour.
    assert!(lines(&["--until", "1h"]).is_empty());
    assert!(!lines(&["--since", "1h"]).is_empty());
    let bad = server.cli(&["logs", "-a", &app, "--source", "kernel"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("build"), "{}", stderr(&bad));
}
