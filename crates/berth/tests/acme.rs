//! Automatic certificates over ACME HTTP-01, for real: Debian's `pebble` (Let's
//! Encrypt's test CA) validates the challenge by fetching it through berth's
//! router, berth stores the certificate (source `acme`) and serves it by SNI.

mod common;

use common::pebble::{Pebble, has_acme_certificate};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn certificates_come_from_acme_over_http_01() {
    let started = Instant::now();
    let mut pebble = Pebble::prepare();
    let https = free_port();
    // The directory is not up yet: berth asks it only once a domain needs a
    // certificate (after the deploy below).
    let mut args = vec![
        "--https".to_string(),
        format!("127.0.0.1:{https}"),
        "--domain".into(),
        "berth.test".into(),
    ];
    args.extend(pebble.server_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start_with(&args);
    pebble.start("127.0.0.1", server.http);

    let app = server.create_app("acme");
    // A second domain of the app points somewhere the router does not listen
    // (127.0.0.2): its validation fails, which must be reported and change nothing
    // for the first.
    let broken = format!("broken-{app}.berth.test");
    pebble.resolve(&broken, "127.0.0.2");
    let src = hello_source();
    // Plain HTTP is redirected to HTTPS: challenges must be answered before that.
    write(
        src.path(),
        "berth.yml",
        &format!(
            "app: hello\nenvironment:\n  - GREETING=hello\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    tls: {{redirect: true}}\n    domain: {broken}\n"
        ),
    );
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let host = format!("web.{app}.berth.test");

    let issued = eventually(Duration::from_secs(120), || {
        has_acme_certificate(&server, &host)
    });
    assert!(
        issued,
        "no ACME certificate for {host}; server log:\n{}\n{}",
        tail(&server.server_log(), 40),
        pebble.log()
    );
    let issued_after = started.elapsed();
    // Pebble fetched the challenge through the router's HTTP port.
    let log = pebble.log();
    assert!(
        log.contains(&format!(
            "Attempting to validate w/ HTTP: http://{host}:{}/.well-known/acme-challenge/",
            server.http
        )) && log.contains("set VALID by completed challenge"),
        "{log}"
    );
    let table = server.ok(&["certs"]);
    assert!(
        table.contains("acme") && table.contains(&host) && table.contains("EXPIRES"),
        "{table}"
    );

    // The issuing root from pebble's management interface (made fresh at each
    // pebble start), then HTTPS through the router, verified against it.
    let root = pebble.root();
    let out = Command::new("curl")
        .args(["-sS", "-w", "\nSTATUS=%{http_code}\n", "--cacert"])
        .arg(&root)
        .args(["--resolve", &format!("{host}:{https}:127.0.0.1")])
        .arg(format!("https://{host}:{https}/"))
        .output()
        .expect("curl is installed");
    let body = stdout(&out);
    assert!(
        out.status.success() && body.contains("STATUS=200"),
        "HTTPS with the ACME certificate failed:\n{}\n{body}",
        stderr(&out)
    );
    assert!(body.contains("Hello from berth"), "{body}");

    // The app's event log says where its certificate came from, and why the other
    // domain has none (retried later, with back-off).
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.contains(&format!("certificate for {host} issued over ACME")),
        "{logs}"
    );
    let failure = logs
        .lines()
        .find(|l| l.contains(&format!("certificate for {broken}: ACME failed")))
        .unwrap_or_else(|| panic!("no failure reported for {broken}:\n{logs}"));
    assert!(
        failure.contains("could not validate") && failure.contains("next try in 1m"),
        "{failure}"
    );
    let list = server.json(&["certs", "--json"]);
    assert!(
        !list.to_string().contains(&broken),
        "a certificate for {broken}: {list}"
    );
    // The key is sealed like every other certificate's.
    for file in ["berth.db", "berth.db-wal"] {
        let db = std::fs::read(server.data.path().join("rack").join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&db).contains("PRIVATE KEY"),
            "a private key is stored in the clear in {file}"
        );
    }
    eprintln!(
        "ACME certificate issued {:.1}s after the test started; test took {:.1}s",
        issued_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(pebble);
}
