//! OCSP stapling against a real responder: a throwaway CA (scripts/ocsp-pki.sh,
//! openssl) issues certificates naming `openssl ocsp` on a loopback port as
//! their responder; they are imported into a real `berth server`, and
//! `openssl s_client -status` looks at what the router staples.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `openssl ocsp` answering for the test CA on `port`, stopped on drop.
struct Responder(Child);

impl Responder {
    fn start(pki: &Path, port: u16) -> Responder {
        let log_path = pki.join("responder.log");
        let log = std::fs::File::create(&log_path).expect("responder log");
        let child = Command::new("openssl")
            .current_dir(pki)
            .args(["ocsp", "-index", "index.txt", "-port", &port.to_string()])
            .args(["-CA", "ca.pem", "-rsigner", "responder.pem"])
            .args(["-rkey", "responder.key", "-ndays", "1"])
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("openssl is installed");
        // Its log, not a probe connection: OpenSSL 3.0's responder spins on a
        // connection closed before a request and answers nothing more.
        let up = eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log_path)
                .is_ok_and(|l| l.contains("waiting for OCSP client connections"))
        });
        assert!(up, "openssl ocsp did not listen on port {port}");
        Responder(child)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `openssl s_client -status` says of a handshake with `name`: (it
/// completed with a chain the test CA vouches for, its output).
fn handshake(pki: &Path, port: u16, name: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-status"])
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name])
        .arg("-CAfile")
        .arg(pki.join("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (text.contains("Verify return code: 0 (ok)"), text)
}

fn stapled_good(text: &str) -> bool {
    text.contains("OCSP Response Status: successful") && text.contains("Cert Status: good")
}

fn nothing_stapled(text: &str) -> bool {
    text.contains("OCSP response: no response sent")
}

fn metric(port: u16, series: &str) -> f64 {
    let (_, body) = http_get(port, "127.0.0.1", "/metrics").unwrap_or_default();
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn ocsp_responses_are_stapled_refreshed_kept_and_refused_when_revoked() {
    let pki = tempfile::tempdir().expect("temp dir");
    let responder_port = free_port();
    let made = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ocsp-pki.sh"))
        .arg(pki.path())
        .arg(responder_port.to_string())
        .output()
        .expect("bash runs");
    assert!(made.status.success(), "{}", stderr(&made));
    let file = |name: &str| pki.path().join(name).to_string_lossy().to_string();

    let https = free_port();
    let metrics = free_port();
    let mut server = Server::start_with(&[
        "--https",
        &format!("127.0.0.1:{https}"),
        "--metrics",
        &format!("127.0.0.1:{metrics}"),
    ]);

    // The responder is down: the certificate is served at once, without a
    // staple, and the failed fetch is logged and counted.
    server.ok(&["certs", "import", &file("good.pem"), &file("good.key")]);
    let mut last = String::new();
    let served = eventually(Duration::from_secs(10), || {
        let (ok, text) = handshake(pki.path(), https, "good.ocsp.localhost");
        last = text;
        ok
    });
    assert!(served, "no handshake while the responder is down:\n{last}");
    assert!(nothing_stapled(&last), "{last}");
    assert!(
        eventually(Duration::from_secs(10), || server
            .server_log()
            .contains("OCSP refresh failed")),
        "{}",
        server.server_log()
    );
    let failed = "berth_ocsp_refreshes_total{outcome=\"failed\"}";
    assert!(metric(metrics, failed) >= 1.0, "{failed} not counted");

    // The responder comes up: the next try (after a 10 s back-off) staples
    // its answer.
    let responder = Responder::start(pki.path(), responder_port);
    let stapled = eventually(Duration::from_secs(40), || {
        let (ok, text) = handshake(pki.path(), https, "good.ocsp.localhost");
        last = text;
        ok && stapled_good(&last)
    });
    assert!(
        stapled,
        "no good OCSP response stapled:\n{last}\nserver log:\n{}",
        tail(&server.server_log(), 20)
    );
    assert!(metric(metrics, "berth_ocsp_refreshes_total{outcome=\"succeeded\"}") >= 1.0);

    // A revoked certificate is served, and what the responder says of it is
    // not stapled.
    server.ok(&[
        "certs",
        "import",
        &file("revoked.pem"),
        &file("revoked.key"),
    ]);
    assert!(
        eventually(Duration::from_secs(15), || server
            .server_log()
            .contains("REVOKED")),
        "{}",
        server.server_log()
    );
    let (ok, text) = handshake(pki.path(), https, "revoked.ocsp.localhost");
    assert!(ok && nothing_stapled(&text), "{text}");
    // `berth certs` says which is stapled, and until when.
    let certs = server.json(&["certs", "--json"]);
    let until = |domain: &str| {
        certs
            .as_array()
            .and_then(|all| all.iter().find(|c| c["domains"][0] == domain))
            .map(|c| c["ocsp_good_until"].clone())
            .unwrap_or_default()
    };
    assert!(until("good.ocsp.localhost").is_string(), "{certs}");
    assert!(until("revoked.ocsp.localhost").is_null(), "{certs}");
    let table = server.ok(&["certs"]);
    assert!(table.contains("OCSP STAPLED UNTIL"), "{table}");

    // A router that restarts gets the staple again with the certificates.
    let router_before = server.router_pid();
    server.stop_router();
    let restapled = eventually(Duration::from_secs(30), || {
        let (ok, text) = handshake(pki.path(), https, "good.ocsp.localhost");
        last = text;
        ok && stapled_good(&last) && server.router_pid() != router_before
    });
    assert!(restapled, "the restarted router staples nothing:\n{last}");

    // The stored staple outlives the server and its router: with the
    // responder gone, both start again and the staple is served at once.
    drop(responder);
    server.stop();
    server.stop_router();
    server.spawn();
    let kept = eventually(Duration::from_secs(15), || {
        let (ok, text) = handshake(pki.path(), https, "good.ocsp.localhost");
        last = text;
        ok && stapled_good(&last)
    });
    assert!(
        kept,
        "the stored staple was not served after a restart:\n{last}"
    );
}
