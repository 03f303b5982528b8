//! The API over HTTPS with the cluster's own CA: `--tls` on loopback, HTTPS by
//! itself on a wildcard address, the CLI's trust (BERTH_CA_CERT, `berth login
//! --ca-sha256`), `GET /ca.pem`, and a `berth run` WebSocket session over TLS.
//! (HTTPS of the router is in `tls.rs`.)

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The CLI with a home of its own (no saved servers) and only `env`.
fn bare_cli(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_HOST")
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_CA_CERT")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run berth CLI")
}

/// The cluster CA's fingerprint as the server logs it.
fn logged_fingerprint(server: &Server) -> String {
    let log = server.server_log();
    let fp: String = log
        .split("fingerprint=")
        .nth(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
        .unwrap_or_default();
    assert_eq!(
        fp,
        berth_server::cluster_ca::ClusterCa::load_or_create(&server.data.path().join("rack"))
            .map(|ca| ca.fingerprint())
            .unwrap_or_default(),
        "{log}"
    );
    assert_eq!(fp.len(), 64, "{log}");
    fp
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn the_cli_trusts_the_cluster_ca_it_was_given_and_nothing_else() {
    let mut server = Server::start_with(&["--tls"]);
    let url = server.api_url();
    assert!(url.starts_with("https://"), "{url}");
    let fp = logged_fingerprint(&server);
    let token = server.token.clone();
    let ca_file = server.ca_file();
    let ca_file = ca_file.to_str().expect("a UTF-8 path");

    // The entry the server saved for its own CLI carries the CA: no flags needed.
    let out = Command::new(BERTH)
        .args(["apps"])
        .env_remove("BERTH_HOST")
        .env_remove("BERTH_TOKEN")
        .env("HOME", server.home.path())
        .env("XDG_CONFIG_HOME", server.home.path().join("config"))
        .output()
        .expect("run berth CLI");
    assert!(out.status.success(), "{}", stderr(&out));

    // BERTH_CA_CERT alone does it.
    let home = tempfile::tempdir().expect("a CLI home");
    let env = [
        ("BERTH_HOST", url.as_str()),
        ("BERTH_TOKEN", token.as_str()),
        ("BERTH_CA_CERT", ca_file),
    ];
    let out = bare_cli(home.path(), &["apps"], &env);
    assert!(out.status.success(), "{}", stderr(&out));

    // Without the CA the system's roots do not know the server: the error says what to do.
    let out = bare_cli(home.path(), &["apps"], &env[..2]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("--ca-sha256") && err.contains("BERTH_CA_CERT"),
        "{err}"
    );

    // A wrong fingerprint is refused, naming both.
    let wrong = format!(
        "{}{}",
        &fp[1..],
        if fp.starts_with('0') { "1" } else { "0" }
    );
    let out = bare_cli(
        home.path(),
        &["login", &url, "--token", &token, "--ca-sha256", &wrong],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&fp) && err.contains(&wrong), "{err}");

    // The right one is saved with the entry; later commands need nothing more.
    let hostport = url.trim_start_matches("https://");
    let out = bare_cli(
        home.path(),
        &["login", hostport, "--token", &token, "--ca-sha256", &fp],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bare_cli(home.path(), &["apps"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let rt = runtime();
    // GET /ca.pem answers DATA/ca/ca.pem (fetched and checked as `login` does).
    let pem = rt
        .block_on(berth_client::fetch_pinned_ca(&url, &fp))
        .expect("the pinned CA");
    assert_eq!(
        pem,
        std::fs::read_to_string(server.ca_file()).expect("ca.pem")
    );
    // Plain HTTP to the HTTPS port gets no HTTP answer at all (the TLS handshake fails).
    let started = Instant::now();
    match http_get(server.api, "127.0.0.1", "/health") {
        Ok((status, body)) => assert_eq!(status, 0, "plain HTTP got an answer: {body}"),
        Err(e) => assert!(started.elapsed() < Duration::from_secs(5), "{e}"),
    }

    // A WebSocket session (`berth run`, attached) over TLS.
    let app = server.create_app("tlsrun");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let out = server.cli(&[
        "run",
        "web",
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo over-tls; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stdout(&out).contains("over-tls"), "{}", stdout(&out));
}

#[test]
fn a_wildcard_api_address_is_served_over_https_by_itself() {
    let data = tempfile::tempdir().expect("a data dir");
    let home = tempfile::tempdir().expect("a home");
    let (api, http) = (free_port(), free_port());
    let rack = data.path().join("rack");
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("the server log");
    let mut child = Command::new(BERTH)
        .args(["server", "--data"])
        .arg(&rack)
        .args(["--api", &format!("0.0.0.0:{api}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--api-name", "berth.test.example"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("start berth server");
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        if let Ok(pid) = std::fs::read_to_string(rack.join("router.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let server_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    while !server_log().contains("berth server ready") {
        if Instant::now() > deadline {
            stop(&mut child);
            panic!("the server did not start:\n{}", server_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let outcome = (|| -> Result<(), String> {
        let log = server_log();
        if !log.contains(&format!("api=https://0.0.0.0:{api}")) {
            return Err(format!("not HTTPS:\n{log}"));
        }
        if !log.contains("berth.test.example") {
            return Err(format!("--api-name not in the certificate's names:\n{log}"));
        }
        let ca = std::fs::read_to_string(rack.join("ca/ca.pem")).map_err(|e| e.to_string())?;
        let token = std::fs::read_to_string(rack.join("admin.token")).map_err(|e| e.to_string())?;
        let rt = runtime();
        // Reached over loopback, trusting only the cluster CA.
        let client = berth_client::Client::with_ca(
            &format!("https://127.0.0.1:{api}"),
            token.trim(),
            Some(&ca),
        )
        .map_err(|e| e.to_string())?;
        let health = rt.block_on(client.health()).map_err(|e| e.to_string())?;
        if health != "ok" {
            return Err(format!("health: {health}"));
        }
        rt.block_on(client.apps()).map_err(|e| e.to_string())?;
        // The server's order of suites decides (AES-128-GCM first), not the client's.
        let handshake = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{api}")])
            .args([
                "-ciphersuites",
                "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("openssl s_client: {e}"))?;
        let said = String::from_utf8_lossy(&handshake.stdout);
        if !said.contains("Cipher is TLS_AES_128_GCM_SHA256") {
            return Err(format!("the client's order of suites won:\n{said}"));
        }
        // The saved CLI entry is the HTTPS one, with its CA.
        let config = std::fs::read_to_string(home.path().join("config/berth/config.json"))
            .map_err(|e| e.to_string())?;
        if !config.contains(&format!("https://127.0.0.1:{api}")) || !config.contains("ca_pem") {
            return Err(format!("CLI config: {config}"));
        }
        Ok(())
    })();
    stop(&mut child);
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn given_certificates_are_served_instead_and_bad_ones_are_named() {
    // A CA of a data dir of its own stands for the operator's CA.
    let own = tempfile::tempdir().expect("a CA dir");
    let ca = berth_server::cluster_ca::ClusterCa::load_or_create(own.path()).expect("a CA");
    let issued = ca
        .issue("berth API", &["127.0.0.1".to_string()])
        .expect("a certificate");
    let cert = own.path().join("api.pem");
    let key = own.path().join("api.key");
    std::fs::write(&cert, &issued.cert_pem).expect("write the certificate");
    std::fs::write(&key, &issued.key_pem).expect("write the key");
    let (cert_arg, key_arg) = (
        cert.to_str().expect("UTF-8").to_string(),
        key.to_str().expect("UTF-8").to_string(),
    );

    // A key that is not one: the start fails naming the file and the flags.
    let data = tempfile::tempdir().expect("a data dir");
    let out = Command::new(BERTH)
        .args(["server", "--data"])
        .arg(data.path().join("rack"))
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--tls-cert", &cert_arg, "--tls-key", &cert_arg])
        .env("HOME", data.path())
        .env("XDG_CONFIG_HOME", data.path().join("config"))
        .output()
        .expect("run berth server");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&cert_arg) && err.contains("--tls-key"),
        "{err}"
    );
    if let Ok(pid) = std::fs::read_to_string(data.path().join("rack/router.pid")) {
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    }

    let server = Server::start_with(&["--tls", "--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    let rt = runtime();
    let url = server.api_url();
    // The given certificate is served: its CA is trusted, the cluster's is not.
    let health = rt
        .block_on(
            berth_client::Client::with_ca(&url, &server.token, Some(ca.ca_pem()))
                .expect("a client")
                .health(),
        )
        .expect("health over the given certificate");
    assert_eq!(health, "ok");
    let cluster_ca = std::fs::read_to_string(server.ca_file()).expect("the cluster CA");
    let err = rt
        .block_on(
            berth_client::Client::with_ca(&url, &server.token, Some(&cluster_ca))
                .expect("a client")
                .health(),
        )
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("not trusted"), "{err}");
}
