//! HTTPS through the router: certificates generated and imported through the CLI,
//! picked by SNI (wildcards included; a default one without SNI), HTTP/2 offered,
//! `X-Forwarded-Proto: https`.

mod common;

use common::*;
use std::process::Command;

/// `curl` over HTTPS to the router with `host` resolved to loopback: (exit ok, stdout, stderr).
fn curl(port: u16, host: &str, path: &str) -> (bool, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-v",
            "--http2",
            "-w",
            "\nHTTP_VERSION=%{http_version}\n",
        ])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl is installed");
    (out.status.success(), stdout(&out), stderr(&out))
}

/// The whole response (headers included) to a plain HTTP GET through the router.
fn raw_get(port: u16, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the router");
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn https_with_generated_and_imported_certificates() {
    let https = free_port();
    // A head limit of 16 KiB (`--max-header-size`) instead of 64, checked below.
    let mut server = Server::start_with(&[
        "--https",
        &format!("127.0.0.1:{https}"),
        "--max-header-size",
        "16",
    ]);
    let app = server.create_app("tls");
    let src = hello_source();
    let proto = src.path().join("www/cgi-bin/proto");
    write(
        src.path(),
        "www/cgi-bin/proto",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nPROTO=%s\\n' \"$HTTP_X_FORWARDED_PROTO\"\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&proto, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    write(
        src.path(),
        "berth.yml",
        "app: hello\nenvironment:\n  - GREETING=hello\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    tls: {redirect: true, hsts: {max_age: 600, include_subdomains: true}}\n",
    );
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.localhost");

    // `tls: {redirect: true}`: plain HTTP is sent to HTTPS, path and query kept.
    let raw = raw_get(server.http, &host, "/a/b?c=1");
    assert!(raw.starts_with("HTTP/1.1 308"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains(&format!("location: https://{host}:{https}/a/b?c=1")),
        "{raw}"
    );

    // No certificate yet: the handshake fails, nothing else breaks.
    let (ok, _, _) = curl(https, &host, "/");
    assert!(!ok, "HTTPS worked without a certificate");

    // A wildcard covers the app's default host.
    let out = server.ok(&["certs", "generate", &format!("*.{app}.localhost")]);
    assert!(out.contains("self-signed"), "{out}");
    let (ok, body, err) = curl(https, &host, "/cgi-bin/proto");
    assert!(ok, "HTTPS failed:\n{err}");
    assert!(body.contains("PROTO=https"), "{body}");
    assert!(body.contains("HTTP_VERSION=2"), "not HTTP/2: {body}");
    assert!(err.contains(&format!("CN=*.{app}.localhost")), "{err}");
    // A request head over the limit (16 KiB here) is refused over HTTPS
    // too: 431 over HTTP/1.1; over h2 the stream is refused (h2's own guard
    // for header blocks over the announced SETTINGS_MAX_HEADER_LIST_SIZE).
    let long = format!("X-Long: {}", "a".repeat(20 * 1024));
    for (version, refused) in [("--http1.1", "431"), ("--http2", "")] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-k",
                version,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["--resolve", &format!("{host}:{https}:127.0.0.1")])
            .args(["-H", &long])
            .arg(format!("https://{host}:{https}/"))
            .output()
            .expect("curl is installed");
        let status = stdout(&out);
        match refused {
            "" => assert!(!status.starts_with('2'), "{version}: {status}"),
            code => assert_eq!(status, code, "{version}: {}", stderr(&out)),
        }
    }
    // HSTS on HTTPS answers only (the redirect over plain HTTP has none).
    assert!(
        err.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=600; includesubdomains"),
        "{err}"
    );
    assert!(
        !raw.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{raw}"
    );

    // An imported certificate for an exact name wins over the wildcard for that name.
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let exact = format!("exact.{app}.localhost");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN={exact}")])
        .args(["-addext", &format!("subjectAltName=DNS:{exact}")])
        .args(["-days", "30", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(made.status.success(), "{}", stderr(&made));
    let cert_s = cert.to_string_lossy().to_string();
    let key_s = key.to_string_lossy().to_string();
    // Swapped files are refused with a clear error and change nothing.
    let bad = server.cli(&["certs", "import", &key_s, &cert_s]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("PEM"), "{}", stderr(&bad));
    let out = server.ok(&["certs", "import", &cert_s, &key_s]);
    assert!(out.contains(&exact), "{out}");
    let (ok, body, err) = curl(https, &exact, "/");
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("CN={exact}")),
        "SNI did not pick the exact certificate:\n{err}"
    );
    // The name is not routed: the router's own 404, over TLS.
    assert!(body.contains("no app serves host"), "{body}");

    let list = server.json(&["certs", "--json"]);
    let list = list.as_array().expect("certs --json is a list");
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|c| c["source"] == "imported" && c["domains"][0] == exact.as_str())
    );
    let table = server.ok(&["certs"]);
    assert!(
        table.contains("EXPIRES") && table.contains(&format!("*.{app}.localhost")),
        "{table}"
    );

    // A client that connects by address sends no SNI: it gets the default
    // certificate (the first imported one) and is routed by its Host header;
    // `certs default` picks another.
    let by_address = |host: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-k", "-v", "-H", &format!("Host: {host}")])
            .arg(format!("https://127.0.0.1:{https}/"))
            .output()
            .expect("curl is installed");
        (out.status.success(), stdout(&out), stderr(&out))
    };
    let (ok, body, err) = by_address(&host);
    assert!(ok, "no certificate for a client without SNI:\n{err}");
    assert!(err.contains(&format!("CN={exact}")), "{err}");
    assert!(body.contains("Hello from berth"), "{body}");
    let wildcard = list
        .iter()
        .find(|c| c["source"] == "self-signed")
        .and_then(|c| c["id"].as_str())
        .expect("the generated certificate")
        .to_string();
    let out = server.ok(&["certs", "default", &wildcard]);
    assert!(out.contains("no server name"), "{out}");
    let (ok, _, err) = by_address(&host);
    assert!(
        ok && err.contains(&format!("CN=*.{app}.localhost")),
        "{err}"
    );
    let listed = server.json(&["certs", "--json"]);
    let defaults: Vec<&serde_json::Value> = listed
        .as_array()
        .map(|l| l.iter().filter(|c| c["default"] == true).collect())
        .unwrap_or_default();
    assert_eq!(defaults.len(), 1, "{listed}");
    assert_eq!(defaults[0]["id"], wildcard.as_str());
    let nope = server.cli(&["certs", "default", "c-000000"]);
    assert!(!nope.status.success() && stderr(&nope).contains("berth certs"));

    // Certificates survive a server restart (keys sealed in the store) and the
    // router keeps serving them throughout.
    server.stop();
    let (ok, _, err) = curl(https, &host, "/");
    assert!(ok, "HTTPS stopped with the server:\n{err}");
    server.spawn();
    let (ok, _, err) = curl(https, &host, "/");
    assert!(ok, "{err}");
    for file in ["berth.db", "berth.db-wal"] {
        let db = std::fs::read(server.data.path().join("rack").join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&db).contains("PRIVATE KEY"),
            "a private key is stored in the clear in {file}"
        );
    }
}
