//! Automatic certificates over ACME HTTP-01, for real: Debian's `pebble` (Let's
//! Encrypt's test CA) validates the challenge by fetching it through berth's
//! router, berth stores the certificate (source `acme`) and serves it by SNI.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pebble processes; killed when the test ends, however it ends.
struct Pebble {
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    fn log(&self) -> String {
        let mut out = String::new();
        for name in ["challtestsrv.log", "pebble.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            out.push_str(&format!("--- {name}:\n{}\n", tail(&text, 30)));
        }
        out
    }
}

/// The path of a program Debian's `pebble` package ships, or a failure that says
/// how to get it.
fn pebble_program(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    found
        .or_else(|| {
            let usr = Path::new("/usr/bin").join(name);
            usr.is_file().then_some(usr)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed; this test needs Let's Encrypt's test CA: apt-get install pebble"
            )
        })
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A CA and a certificate for localhost signed by it, for pebble's own HTTPS.
/// Returns the CA's PEM path (what berth is told to trust for the directory).
fn pebble_tls(dir: &Path) -> PathBuf {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=berth test ACME directory CA",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "csr.pem",
    ]);
    openssl(dir, &csr);
    write(
        dir,
        "ext.cnf",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "csr.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    dir.join("ca.pem")
}

fn wait_for_port(port: u16, what: &str, pebble: &Pebble) {
    assert!(
        eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "{what} did not listen on 127.0.0.1:{port}:\n{}",
        pebble.log()
    );
}

/// Starts pebble-challtestsrv (DNS: every name is 127.0.0.1) and pebble, which
/// validates HTTP-01 on `http_port` (the berth router's).
fn start_pebble(dir: tempfile::TempDir, ports: &PebblePorts, http_port: u16) -> Pebble {
    let challtestsrv = pebble_program("pebble-challtestsrv");
    let pebble_bin = pebble_program("pebble");
    let mut pebble = Pebble {
        children: vec![],
        dir,
    };
    let path = pebble.dir.path().to_path_buf();
    let log = |name: &str| std::fs::File::create(path.join(name)).expect("pebble log file");
    let cts_log = log("challtestsrv.log");
    pebble.children.push(
        Command::new(challtestsrv)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", ports.dns)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", ports.dns_mgmt)])
            .stdin(Stdio::null())
            .stdout(cts_log.try_clone().expect("log fd"))
            .stderr(cts_log)
            .spawn()
            .expect("start pebble-challtestsrv"),
    );
    wait_for_port(ports.dns_mgmt, "pebble-challtestsrv", &pebble);
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.acme),
            "managementListenAddress": format!("127.0.0.1:{}", ports.acme_mgmt),
            "certificate": path.join("cert.pem"),
            "privateKey": path.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    write(&path, "pebble.json", &config.to_string());
    let pebble_log = log("pebble.log");
    pebble.children.push(
        Command::new(pebble_bin)
            .arg("-config")
            .arg(path.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", ports.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Validation must really fetch the challenge through the router.
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdin(Stdio::null())
            .stdout(pebble_log.try_clone().expect("log fd"))
            .stderr(pebble_log)
            .spawn()
            .expect("start pebble"),
    );
    wait_for_port(ports.acme, "pebble", &pebble);
    wait_for_port(ports.acme_mgmt, "pebble's management interface", &pebble);
    pebble
}

struct PebblePorts {
    dns: u16,
    dns_mgmt: u16,
    acme: u16,
    acme_mgmt: u16,
}

#[test]
fn certificates_come_from_acme_over_http_01() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pebble_tls(dir.path());
    let ports = PebblePorts {
        dns: free_port(),
        dns_mgmt: free_port(),
        acme: free_port(),
        acme_mgmt: free_port(),
    };
    let https = free_port();
    let directory = format!("https://localhost:{}/dir", ports.acme);
    let ca_arg = ca.to_string_lossy().to_string();
    // The directory is not up yet: berth asks it only once a domain needs a
    // certificate (after the deploy below).
    let mut server = Server::start_with(&[
        "--https",
        &format!("127.0.0.1:{https}"),
        "--domain",
        "berth.test",
        "--acme-directory",
        &directory,
        "--acme-email",
        "ops@berth.test",
        "--acme-ca-cert",
        &ca_arg,
    ]);
    let pebble = start_pebble(dir, &ports, server.http);

    let app = server.create_app("acme");
    // A second domain of the app points somewhere the router does not listen
    // (127.0.0.2): its validation fails, which must be reported and change nothing
    // for the first.
    let broken = format!("broken-{app}.berth.test");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-d"])
        .arg(format!(
            r#"{{"host":"{broken}","addresses":["127.0.0.2"]}}"#
        ))
        .arg(format!("http://127.0.0.1:{}/add-a", ports.dns_mgmt))
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "challtestsrv add-a: {}", stderr(&out));
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
        let list = server.json(&["certs", "--json"]);
        list.as_array().is_some_and(|certs| {
            certs.iter().any(|c| {
                c["source"] == "acme"
                    && c["domains"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|d| d == host.as_str()))
            })
        })
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
    let root = pebble.dir.path().join("pebble-root.pem");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &ca_arg, "-o"])
        .arg(&root)
        .arg(format!("https://localhost:{}/roots/0", ports.acme_mgmt))
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "pebble's root: {}", stderr(&out));
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
