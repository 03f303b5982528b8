//! `--json`: every read command prints JSON that parses, of its shape (an array for
//! a list, an object for one thing, one object a line for logs), and `tokens create
//! --json` gives scripts the secret. One deploy of the hello example, with a volume
//! and a timer so that those lists are not empty.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn array(s: &Server, args: &[&str]) -> Vec<Value> {
    match s.json(args) {
        Value::Array(items) => items,
        other => panic!("berth {args:?}: want a JSON array, got {other:#}"),
    }
}

fn object(s: &Server, args: &[&str]) -> Value {
    let value = s.json(args);
    assert!(
        value.is_object(),
        "berth {args:?}: want a JSON object, got {value:#}"
    );
    value
}

#[test]
fn read_commands_print_json_of_their_shape() {
    let mut s = Server::start();
    let app = s.create_app("json");
    let src = hello_source();
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    write(
        src.path(),
        "berth.yml",
        &format!(
            "{}timers:\n  yearly: {{schedule: \"0 0 1 1 *\", service: web, command: \"true\"}}\n",
            manifest.replace(
                "    port: 8080\n",
                "    port: 8080\n    volumes: [data:/data]\n"
            )
        ),
    );
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let a = app.as_str();

    let apps = array(&s, &["apps", "--json"]);
    assert!(apps.iter().any(|x| x["name"] == a), "{apps:?}");
    for args in [
        &["apps", "info", a, "--json"][..],
        &["apps", "--json", "info", a][..],
    ] {
        let info = object(&s, args);
        assert_eq!(info["name"], a, "{info:?}");
        assert!(info["services"].is_array(), "{info:?}");
    }

    let builds = array(&s, &["builds", "-a", a, "--json"]);
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0]["status"], "succeeded", "{builds:?}");
    let build = builds[0]["id"].as_str().expect("build id");
    let lines = array(&s, &["builds", "logs", build, "-a", a, "--json"]);
    assert!(
        lines.iter().all(Value::is_string)
            && lines
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.starts_with("Step"))),
        "{lines:?}"
    );

    let releases = array(&s, &["releases", "-a", a, "--json"]);
    assert_eq!(releases.len(), 1, "{releases:?}");
    let release = releases[0]["id"].as_str().expect("release id");
    let info = object(&s, &["releases", "info", release, "-a", a, "--json"]);
    assert_eq!(info["release"]["id"], release, "{info:?}");
    assert!(info["env_added"].is_array(), "{info:?}");

    // Manifest defaults (GREETING=hello) are not the stored environment.
    assert_eq!(
        object(&s, &["env", "-a", a, "--json"]),
        serde_json::json!({})
    );
    s.ok(&["env", "set", "COLOR=blue", "-a", a]);
    let env = object(&s, &["env", "-a", a, "--json"]);
    assert_eq!(env, serde_json::json!({"COLOR": "blue"}));

    let ps = array(&s, &["ps", "-a", a, "--json"]);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0]["service"], "web", "{ps:?}");

    let services = array(&s, &["services", "-a", a, "--json"]);
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["name"], "web", "{services:?}");
    assert!(services[0]["urls"].is_array(), "{services:?}");

    let volumes = array(&s, &["volumes", "-a", a, "--json"]);
    assert!(volumes.iter().any(|v| v["name"] == "data"), "{volumes:?}");

    let timers = array(&s, &["timers", "-a", a, "--json"]);
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0]["name"], "yearly", "{timers:?}");

    let rack = object(&s, &["rack", "--json"]);
    assert!(rack["version"].is_string(), "{rack:?}");
    assert!(rack["apps"].as_u64().is_some_and(|n| n >= 1), "{rack:?}");
    let pruned = object(&s, &["rack", "prune", "--json"]);
    assert!(pruned["containers"].is_u64(), "{pruned:?}");
    let instances = array(&s, &["instances", "--json"]);
    assert_eq!(
        instances.len(),
        1,
        "one engine is one instance: {instances:?}"
    );
    assert!(
        instances[0]["processes"].as_u64().is_some_and(|n| n >= 1),
        "{instances:?}"
    );

    // Logs are a stream: one JSON object a line. A request gives httpd -v a line.
    let host = format!("web.{a}.localhost");
    assert_eq!(s.get(&host, "/").0, 200, "the app serves");
    let mut lines = Vec::new();
    let logged = eventually(Duration::from_secs(20), || {
        lines = s
            .ok(&["logs", "-a", a, "--json"])
            .lines()
            .map(str::to_string)
            .collect();
        !lines.is_empty()
    });
    assert!(logged, "no log lines");
    for line in &lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            entry.is_object() && entry["text"].is_string() && entry["source"].is_string(),
            "{line}"
        );
    }

    // Tokens: the secret of a new one, parseable wherever --json stands.
    for args in [
        &["tokens", "create", "--role", "read", "--json"][..],
        &["tokens", "--json", "create", "--role", "deploy", "--app", a][..],
    ] {
        let created = object(&s, args);
        let secret = created["secret"].as_str().expect("secret");
        assert!(secret.starts_with("berth_"), "{created:?}");
        let id = created["token"]["id"].as_str().expect("token id");
        assert!(created["token"]["role"].is_string(), "{created:?}");
        let (status, body) = s.api_get("/rack", Some(&format!("Bearer {secret}")));
        assert_eq!(status, 200, "the new token works: {body}");
        let tokens = array(&s, &["tokens", "--json"]);
        assert!(tokens.iter().any(|t| t["id"] == id), "{tokens:?}");
        assert!(
            !serde_json::to_string(&tokens)
                .expect("tokens")
                .contains(secret),
            "a secret is listed"
        );
    }

    let audit = array(&s, &["audit", "--json"]);
    assert!(
        audit.iter().any(|e| e["path"] == "/tokens"),
        "token creation audited: {audit:?}"
    );

    s.ok(&["certs", "generate", &host]);
    let certs = array(&s, &["certs", "--json"]);
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["domains"], serde_json::json!([host]), "{certs:?}");
}
