//! Hostile input against a real server with a deployed app: bad uploads, bad
//! names, bad JSON, bad routes. Each must be a clear 4xx naming the problem,
//! write nothing outside the server's temp dir, and leave the app serving.

mod common;

use common::*;
use std::io::Write;

/// One raw tar entry: name, type flag, link target, data. Built by hand because
/// the `tar` crate (rightly) refuses to write most of these.
fn entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    let size = format!("{:011o}", data.len());
    h[124..135].copy_from_slice(size.as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

const MANIFEST: &[u8] = b"services:\n  web:\n    image: scratch\n";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("writer").expect("write to gzip");
    out.stdout
}

/// One request with the admin token and a binary body; early answers (413) are heard.
fn send(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if !content_type.is_empty() {
        headers.push(("Content-Type", content_type));
    }
    request_bytes(port, "x", method, path, &headers, Some(body)).unwrap_or((0, String::new()))
}

fn post_tar(port: u16, token: &str, path: &str, body: &[u8]) -> (u16, String) {
    send(port, "POST", path, token, "application/x-tar", body)
}

fn call(s: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let ct = if body.is_some() {
        "application/json"
    } else {
        ""
    };
    send(
        s.api,
        method,
        path,
        &s.token,
        ct,
        body.unwrap_or("").as_bytes(),
    )
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(files_under(&e.path()));
            }
        }
    }
    out
}

#[test]
fn hostile_uploads_names_and_requests_are_refused_and_the_app_keeps_serving() {
    // A small upload limit so that "too large" is cheap to send.
    let mut s = Server::start_with(&["--max-upload", "4"]);
    let app = s.create_app("hostile");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let host = format!("web.{app}.localhost");
    assert_eq!(s.get(&host, "/").0, 200, "deployed app serves");
    let releases_before = s.ok(&["releases", "--json", "-a", &app]);
    let ps_before = s.json(&["ps", "--json", "-a", &app]);

    // Where an escaping entry would land: next to the data dir, and in /tmp.
    let tag = unique_app("esc");
    let outside = [
        s.data.path().join(format!("{tag}-dotdot")),
        std::path::PathBuf::from(format!("/tmp/{tag}-abs")),
    ];
    let deep = "../".repeat(12);
    let m = entry("berth.yml", b'0', "", MANIFEST);
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let big = vec![0u8; 5 << 20];
    let mut truncated = tar(&[m.clone(), entry("big.bin", b'0', "", &[7u8; 4096])]);
    truncated.truncate(512 + 512 + 1000);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "dotdot",
            tar(&[
                m.clone(),
                entry(&format!("../../{tag}-dotdot"), b'0', "", b"x"),
            ]),
            400,
            "climbs out of the source",
        ),
        (
            "absolute",
            tar(&[m.clone(), entry(&format!("/tmp/{tag}-abs"), b'0', "", b"x")]),
            400,
            "absolute path",
        ),
        (
            "symlink out",
            tar(&[m.clone(), entry("link", b'2', &format!("{deep}tmp"), b"")]),
            400,
            "points outside the source",
        ),
        (
            "absolute symlink",
            tar(&[m.clone(), entry("link", b'2', "/etc", b"")]),
            400,
            "points outside the source",
        ),
        (
            "hard link out",
            tar(&[m.clone(), entry("hard", b'1', "/etc/passwd", b"")]),
            400,
            "points outside the source",
        ),
        (
            "char device",
            tar(&[m.clone(), entry("null", b'3', "", b"")]),
            400,
            "only files, directories and links",
        ),
        (
            "fifo",
            tar(&[m.clone(), entry("pipe", b'6', "", b"")]),
            400,
            "only files, directories and links",
        ),
        ("gzip bomb", bomb, 400, "gzip-compressed"),
        ("over the limit", big, 413, "over 4 MiB"),
        ("truncated", truncated, 400, "the upload is truncated"),
        (
            "not a tar",
            b"hello, this is not a tar archive".to_vec(),
            400,
            "not a tar",
        ),
        ("empty", vec![], 400, "empty"),
        (
            "no manifest",
            tar(&[entry("README", b'0', "", b"hi")]),
            400,
            "cannot read berth.yml",
        ),
        (
            "bad manifest",
            tar(&[entry("berth.yml", b'0', "", b"services: [1, 2\n")]),
            400,
            "berth.yml",
        ),
    ];
    let mut tried = 0;
    for (what, body, status, needle) in &cases {
        for route in ["deploy", "builds"] {
            let (got, text) = post_tar(s.api, &s.token, &format!("/apps/{app}/{route}"), body);
            tried += 1;
            assert_eq!(got, *status, "{what} via {route}: {text}");
            assert!(
                text.contains(needle) && text.contains("\"error\""),
                "{what} via {route}: {text:?} lacks {needle:?}"
            );
        }
    }
    for path in &outside {
        assert!(!path.exists(), "{} was written", path.display());
    }
    // Nothing left behind in the server's temp dir either.
    let leftovers = files_under(&s.data.path().join("rack/tmp"));
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // Names: app, service, release and process names that are not names.
    let long = "a".repeat(64);
    let bad_names = [
        "",
        &long,
        "UPPER",
        "h\u{e9}llo",
        "a/b",
        "..",
        "a b",
        "a;rm -rf /",
        "$(id)",
        "`id`",
        "a|b",
        "-lead",
        "a\"b",
    ];
    for name in bad_names {
        let body = serde_json::json!({ "name": name }).to_string();
        let got = call(&s, "POST", "/apps", Some(&body));
        tried += 1;
        assert_eq!(got.0, 400, "app name {name:?}: {}", got.1);
        assert!(got.1.contains("\"error\""), "{}", got.1);
    }
    let scale = r#"{"count":1}"#;
    for (method, path, body) in [
        ("GET", "/apps/UPPER".to_string(), None),
        ("GET", "/apps/a%2Fb".to_string(), None),
        ("GET", "/apps/..%2F..%2Fetc".to_string(), None),
        ("GET", "/apps/%24%28id%29/releases".to_string(), None),
        (
            "POST",
            format!("/apps/{app}/services/BAD%20NAME/scale"),
            Some(scale),
        ),
        (
            "POST",
            format!("/apps/{app}/services/..%2Fx/scale"),
            Some(scale),
        ),
        (
            "POST",
            format!("/apps/{app}/services/{long}/scale"),
            Some(scale),
        ),
        (
            "POST",
            format!("/apps/{app}/releases/..%2F..%2FR1/promote"),
            None,
        ),
        (
            "POST",
            format!("/apps/{app}/releases/R1%3Brm/rollback"),
            None,
        ),
        (
            "DELETE",
            format!("/apps/{app}/processes/web-%3B%20rm"),
            None,
        ),
        ("GET", format!("/apps/{app}/builds/..%2F..%2Fx/logs"), None),
    ] {
        let got = call(&s, method, &path, body);
        tried += 1;
        assert!(
            (400..500).contains(&got.0),
            "{method} {path}: {} {}",
            got.0,
            got.1
        );
        assert!(got.1.contains("\"error\""), "{method} {path}: {}", got.1);
    }

    // Malformed JSON, wrong content, oversized bodies, unknown routes and methods.
    let huge = format!(r#"{{"name":"{}"}}"#, "a".repeat(2 << 20));
    for (method, path, body, status, needle) in [
        ("POST", "/apps", Some("{\"name\":"), 400, "JSON"),
        ("POST", "/apps", Some("[1,2,3]"), 422, "error"),
        ("POST", "/apps", Some(huge.as_str()), 413, "too large"),
        (
            "POST",
            &format!("/apps/{app}/env") as &str,
            Some("{\"set\":{\"A\":1}}"),
            422,
            "error",
        ),
        (
            "POST",
            &format!("/apps/{app}/services/web/scale"),
            Some("{\"count\":-1}"),
            422,
            "error",
        ),
        ("GET", "/no/such/route", None, 404, "no such API route"),
        ("PUT", "/apps", Some("{}"), 405, "does not take that method"),
        (
            "PATCH",
            &format!("/apps/{app}"),
            Some("{}"),
            405,
            "does not take that method",
        ),
    ] {
        let got = call(&s, method, path, body);
        tried += 1;
        assert_eq!(got.0, status, "{method} {path}: {}", got.1);
        assert!(
            got.1.contains(needle),
            "{method} {path}: {:?} lacks {needle:?}",
            got.1
        );
    }

    // The server still serves, and nothing deployed moved.
    assert_eq!(http_get(s.api, "x", "/health").expect("health").0, 200);
    assert_eq!(s.get(&host, "/").0, 200, "app still serves");
    assert_eq!(s.ok(&["releases", "--json", "-a", &app]), releases_before);
    let ps_after = s.json(&["ps", "--json", "-a", &app]);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|p| p["id"].to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids(&ps_before), ids(&ps_after), "processes untouched");
    let builds = s.json(&["builds", "--json", "-a", &app]);
    assert_eq!(
        builds.as_array().map(Vec::len),
        Some(1),
        "no build was started: {builds:#}"
    );
    println!(
        "reliability: hostile inputs tried: {tried}, refused with 4xx: {tried}, app requests lost: 0"
    );
}
