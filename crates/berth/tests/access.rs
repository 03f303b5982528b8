//! Access: roles, app-limited tokens, 401s, revocation, the audit trail, and env
//! values kept out of logs, errors and listings. A real server, the real CLI.

mod common;

use common::*;

fn api(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let header = token.map(|t| format!("Bearer {t}"));
    request(s.api, "127.0.0.1", method, path, header.as_deref(), body).unwrap_or((0, String::new()))
}

/// Creates a token through the CLI and returns (id, secret).
fn token(s: &Server, args: &[&str]) -> (String, String) {
    let mut all = vec!["tokens", "create"];
    all.extend_from_slice(args);
    let out = s.cli(&all);
    assert!(out.status.success(), "tokens create: {}", stderr(&out));
    let secret = stdout(&out).trim().to_string();
    assert!(
        secret.starts_with("berth_"),
        "secret printed alone: {secret}"
    );
    let message = stderr(&out);
    let id = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.len() == 9 && w.starts_with('t') && w[1..].chars().all(|c| c.is_ascii_hexdigit())
        })
        .expect("token id in the message")
        .to_string();
    (id, secret)
}

fn expect(got: (u16, String), status: u16, needle: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert!(
        got.1.contains(needle),
        "{what}: body {:?} lacks {needle:?}",
        got.1
    );
}

#[test]
fn roles_are_refused_outside_their_reach_and_changes_are_audited() {
    let mut s = Server::start();
    let a = s.create_app("acc-a");
    let b = s.create_app("acc-b");
    let (read_id, read) = token(&s, &["--role", "read"]);
    let (dep_id, dep_a) = token(&s, &["--role", "deploy", "--app", &a]);
    let (_, dep_all) = token(&s, &["--role", "deploy"]);

    // Listing shows every token, never a secret.
    let list = s.ok(&["tokens"]);
    assert!(list.starts_with("ID"), "{list}");
    for id in [&read_id, &dep_id] {
        assert!(list.contains(id.as_str()), "{list}");
    }
    assert!(
        !list.contains(&read) && !list.contains(&dep_a),
        "secrets listed:\n{list}"
    );
    let env = r#"{"set":{"SECRET_KEY":"hunter2-value"},"unset":[],"promote":false}"#;

    // read: read-only GETs, no env values, no changes, no tokens.
    expect(
        api(&s, "GET", "/apps", Some(&read), None),
        200,
        &a,
        "read lists apps",
    );
    expect(
        api(&s, "GET", &format!("/apps/{a}/releases"), Some(&read), None),
        200,
        "[",
        "read releases",
    );
    expect(
        api(&s, "GET", &format!("/apps/{a}/env"), Some(&read), None),
        403,
        "needs role deploy",
        "read env",
    );
    expect(
        api(
            &s,
            "POST",
            &format!("/apps/{a}/env"),
            Some(&read),
            Some(env),
        ),
        403,
        "has role read",
        "read env set",
    );
    expect(
        api(
            &s,
            "POST",
            "/apps",
            Some(&read),
            Some(r#"{"name":"x-read"}"#),
        ),
        403,
        "needs role admin",
        "read create app",
    );
    expect(
        api(&s, "GET", "/tokens", Some(&read), None),
        403,
        "needs role admin",
        "read tokens",
    );
    expect(
        api(&s, "GET", "/audit", Some(&read), None),
        403,
        "needs role admin",
        "read audit",
    );

    // deploy limited to app a: changes a, nothing else.
    expect(
        api(
            &s,
            "POST",
            &format!("/apps/{a}/env"),
            Some(&dep_a),
            Some(env),
        ),
        200,
        "saved",
        "deploy@a env set",
    );
    expect(
        api(&s, "GET", &format!("/apps/{a}/env"), Some(&dep_a), None),
        200,
        "SECRET_KEY",
        "deploy@a env get",
    );
    expect(
        api(
            &s,
            "POST",
            &format!("/apps/{b}/env"),
            Some(&dep_a),
            Some(env),
        ),
        403,
        &format!("limited to app {a}"),
        "deploy@a on b",
    );
    expect(
        api(
            &s,
            "GET",
            &format!("/apps/{b}/releases"),
            Some(&dep_a),
            None,
        ),
        403,
        "limited to app",
        "deploy@a reads b",
    );
    // Listing apps shows a token limited to one app just that app, in the CLI too.
    let listed = api(&s, "GET", "/apps", Some(&dep_a), None);
    expect(listed.clone(), 200, &a, "deploy@a lists apps");
    assert!(!listed.1.contains(&b), "deploy@a sees app b: {}", listed.1);
    let out = s
        .cli_command(std::path::Path::new("."), &["apps"])
        .env("BERTH_TOKEN", &dep_a)
        .output()
        .expect("run berth");
    assert!(out.status.success(), "berth apps: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&a) && !stdout(&out).contains(&b),
        "{}",
        stdout(&out)
    );
    // A token cannot be limited to an app that does not exist.
    let out = s.cli(&["tokens", "create", "--role", "deploy", "--app", "nosuchapp"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("app nosuchapp does not exist")
            && stderr(&out).contains("berth apps"),
        "{}",
        stderr(&out)
    );
    expect(
        api(&s, "GET", "/rack", Some(&dep_a), None),
        200,
        "version",
        "deploy@a rack (login)",
    );
    expect(
        api(&s, "DELETE", &format!("/apps/{a}"), Some(&dep_a), None),
        403,
        "needs role admin",
        "deploy@a delete app",
    );
    expect(
        api(
            &s,
            "POST",
            "/tokens",
            Some(&dep_a),
            Some(r#"{"role":"admin"}"#),
        ),
        403,
        "needs role admin",
        "deploy@a mints admin",
    );

    // deploy for every app: any app's changes, but not apps or tokens.
    expect(
        api(
            &s,
            "POST",
            &format!("/apps/{b}/env"),
            Some(&dep_all),
            Some(env),
        ),
        200,
        "saved",
        "deploy env on b",
    );
    expect(
        api(
            &s,
            "POST",
            "/apps",
            Some(&dep_all),
            Some(r#"{"name":"x-dep"}"#),
        ),
        403,
        "needs role admin",
        "deploy create app",
    );
    expect(
        api(&s, "GET", "/tokens", Some(&dep_all), None),
        403,
        "needs role admin",
        "deploy tokens",
    );

    // The CLI says why, too.
    s.token = read.clone();
    let out = s.cli(&["env", "set", "X=1", "-a", &a]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs role deploy"),
        "{}",
        stderr(&out)
    );
    s.token = std::fs::read_to_string(s.data.path().join("rack/admin.token"))
        .expect("admin token")
        .trim()
        .to_string();

    // 401 for missing, wrong, malformed and revoked tokens, with one message.
    let wrong = format!("berth_{}", "0".repeat(64));
    for header in [
        None,
        Some(format!("Bearer {wrong}")),
        Some("Bearer".to_string()),
        Some("Basic dXNlcjpwYXNz".to_string()),
        Some(format!("Token {read}")),
        Some("Bearer berth_\u{e9}".to_string()),
    ] {
        let got = request(s.api, "127.0.0.1", "GET", "/apps", header.as_deref(), None)
            .unwrap_or((0, String::new()));
        expect(got, 401, "missing or invalid token", &format!("{header:?}"));
    }
    s.ok(&["tokens", "revoke", &read_id]);
    expect(
        api(&s, "GET", "/apps", Some(&read), None),
        401,
        "missing or invalid token",
        "revoked",
    );
    let out = s.cli(&["tokens", "revoke", &read_id]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = s.cli(&["tokens", "create", "--role", "admin", "--app", &a]);
    assert!(
        stderr(&out).contains("covers every app"),
        "{}",
        stderr(&out)
    );

    // Every change is in the audit trail with who made it; refusals too; no env values.
    let audit = s.json(&["audit", "--json"]);
    let rows = audit.as_array().expect("audit list");
    let has = |token: &str, method: &str, path: &str, status: u64| {
        rows.iter().any(|r| {
            r["token"] == token
                && r["method"] == method
                && r["path"] == path
                && r["status"] == status
        })
    };
    assert!(
        has(&dep_id, "POST", &format!("/apps/{a}/env"), 200),
        "{audit:#}"
    );
    assert!(
        has(&dep_id, "POST", &format!("/apps/{b}/env"), 403),
        "{audit:#}"
    );
    assert!(has(&read_id, "POST", "/apps", 403), "{audit:#}");
    assert!(
        rows.iter()
            .any(|r| r["method"] == "DELETE" && r["path"] == format!("/tokens/{read_id}"))
    );
    assert!(
        has(&dep_id, "GET", &format!("/apps/{a}/env"), 200),
        "reads of secrets are audited: {audit:#}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r["method"] == "GET" && r["path"] == "/apps"),
        "plain reads are not audited"
    );
    let text = s.ok(&["audit"]);
    assert!(text.starts_with("TIME"), "{text}");
    assert!(!text.contains("hunter2") && !audit.to_string().contains("hunter2"));
    let tokens = s.json(&["tokens", "--json"]);
    let used = tokens
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == dep_id.as_str()))
        .expect("deploy token listed");
    assert!(used["last_used"].is_string(), "{tokens:#}");
}

#[test]
fn env_values_stay_out_of_logs_errors_and_listings() {
    let mut s = Server::start();
    let app = s.create_app("acc-env");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let secret = format!("s3cr3t-{}", unique_app("v"));
    s.ok(&[
        "env",
        "set",
        &format!("DB_PASSWORD={secret}"),
        "--promote",
        "-a",
        &app,
    ]);
    // An invalid key next to a secret value: the error names the key, not the value.
    let out = s.cli(&["env", "set", &format!("9BAD={secret}"), "-a", &app]);
    assert!(!out.status.success());
    let mut seen = vec![stderr(&out), stdout(&out)];
    let bad = format!(r#"{{"set":{{"bad key":"{secret}"}},"unset":[]}}"#);
    let got = api(
        &s,
        "POST",
        &format!("/apps/{app}/env"),
        Some(&s.token),
        Some(&bad),
    );
    assert_eq!(got.0, 400, "{}", got.1);
    seen.push(got.1);
    for args in [
        vec!["releases", "-a", &app],
        vec!["releases", "--json", "-a", &app],
        vec!["apps", "info", &app],
        vec!["apps", "info", "--json", &app],
        vec!["apps"],
        vec!["logs", "-a", &app],
        vec!["audit", "--json"],
    ] {
        seen.push(s.ok(&args));
    }
    assert!(
        s.ok(&["env", "-a", &app]).contains(&secret),
        "env itself shows it"
    );
    seen.push(s.server_log());
    for text in seen {
        assert!(!text.contains(&secret), "env value leaked:\n{text}");
    }
}

/// An HTTP server that is not berth: every request gets an HTML page.
fn html_server() -> u16 {
    fixed_server(
        "text/html",
        "<html><head><title>Some other site</title></head><body><p>a page</p></body></html>",
    )
}

/// An HTTP server answering every request 200 with `body` as `content_type`,
/// and no API version header (a berth server from before versioning, when JSON).
fn fixed_server(content_type: &'static str, body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Every answer of the API names its version; the CLI refuses a server whose
/// API is older than it needs, naming both versions.
#[test]
fn a_server_too_old_for_the_cli_is_refused_naming_both_versions() {
    let s = Server::start();
    let (status, _) = s.api_get("/health", None);
    assert_eq!(status, 200);
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", s.api)).expect("connect");
    use std::io::{Read, Write};
    write!(
        raw,
        "GET /nothing-here HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    raw.read_to_string(&mut answer).expect("read");
    assert!(
        answer.to_ascii_lowercase().contains("berth-api-version: 1"),
        "{answer}"
    );
    let info = s.json(&["rack", "--json"]);
    assert_eq!(info["api_version"], 1, "{info}");

    let old = fixed_server(
        "application/json",
        r#"{"version":"0.0.9","uptime_secs":1,"engine":"e","domain":"d","router":"r","apps":0,"processes":0,"builds":0,"releases":0}"#,
    );
    let out = std::process::Command::new(BERTH)
        .args(["rack"])
        .env("BERTH_HOST", format!("http://127.0.0.1:{old}"))
        .env("BERTH_TOKEN", "t")
        .env("HOME", s.home.path())
        .env("XDG_CONFIG_HOME", s.home.path().join("config"))
        .output()
        .expect("run berth");
    let said = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        said.contains("speaks API version 0") && said.contains("older than version 1"),
        "{said}"
    );
}

/// The CLI config keeps every server: a new `berth server` adds itself next to the
/// one saved by an older `berth login` (one-server form) instead of replacing it;
/// `berth switch` lists and picks; `berth login` names berth's router and other
/// servers as not the API, and so does any command sent to them.
#[test]
fn saved_servers_survive_a_new_server_and_login_says_what_it_reached() {
    let config_home = tempfile::tempdir().expect("a config home");
    let xdg = config_home
        .path()
        .to_str()
        .expect("a UTF-8 path")
        .to_string();
    let config = config_home.path().join("berth/config.json");
    std::fs::create_dir_all(config_home.path().join("berth")).expect("mkdir");
    std::fs::write(
        &config,
        r#"{"host":"http://prod.example:7070","token":"prod-token"}"#,
    )
    .expect("an old config");
    let s = Server::start_with_env(&[], &[("XDG_CONFIG_HOME", &xdg)]);
    let saved = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&config).expect("the config"))
            .expect("the config is JSON")
    };
    let after_start = saved();
    assert_eq!(after_start["current"], "prod.example", "{after_start:#}");
    assert_eq!(
        after_start["servers"]["prod.example"]["token"], "prod-token",
        "{after_start:#}"
    );
    assert_eq!(
        after_start["servers"]["local"]["token"],
        s.token.as_str(),
        "{after_start:#}"
    );
    assert!(
        s.server_log()
            .contains("the current server is still prod.example"),
        "{}",
        s.server_log()
    );

    // The CLI as a user runs it: no BERTH_HOST, the config decides.
    let cli = |args: &[&str]| {
        std::process::Command::new(BERTH)
            .args(args)
            .env_remove("BERTH_HOST")
            .env_remove("BERTH_TOKEN")
            .env("HOME", s.home.path())
            .env("XDG_CONFIG_HOME", &xdg)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    };
    let list = stdout(&cli(&["switch"]));
    assert!(
        list.contains("*  prod.example  http://prod.example:7070") && list.contains("local"),
        "{list}"
    );
    assert!(cli(&["switch", "local"]).status.success());
    let apps = cli(&["apps"]);
    assert!(apps.status.success(), "{}", stderr(&apps));

    let router = format!("http://127.0.0.1:{}", s.http);
    let out = cli(&["login", &router, "--token", &s.token]);
    let said = stderr(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("is berth's router") && said.contains("--api"),
        "{said}"
    );
    let other = format!("http://127.0.0.1:{}", html_server());
    let out = cli(&["login", &other, "--token", &s.token]);
    let said = stderr(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("is not a berth API") && said.contains("text/html"),
        "{said}"
    );
    let mut apps = std::process::Command::new(BERTH);
    apps.args(["apps"])
        .env("BERTH_HOST", &other)
        .env("BERTH_TOKEN", "t")
        .env("HOME", s.home.path());
    let out = apps.output().expect("run berth");
    let said = stderr(&out);
    assert!(
        said.contains("is not a berth API") && said.contains("Some other site"),
        "{said}"
    );
    assert!(
        !said.contains("<html") && !said.contains("a page"),
        "{said}"
    );
    assert_eq!(saved()["current"], "local", "failed logins change nothing");

    let api = format!("http://127.0.0.1:{}", s.api);
    let out = cli(&["login", &api, "--token", &s.token, "--name", "mine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("as server mine"), "{}", stdout(&out));
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&["switch", "--json"]))).expect("JSON");
    let current: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["current"] == true)
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(current, ["mine"], "{list:#}");
    assert!(
        !list.to_string().contains(&s.token),
        "tokens are not listed"
    );
}
