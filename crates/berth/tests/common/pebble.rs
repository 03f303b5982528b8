//! Let's Encrypt's test CA for the ACME tests: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS (every name resolves to one address the
//! test chooses), HTTPS with a CA of the test's own, and HTTP-01 validated
//! for real (never "always valid").

use super::{eventually, free_port, tail, write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Pebble's ports on 127.0.0.1.
pub struct PebblePorts {
    pub dns: u16,
    pub dns_mgmt: u16,
    pub acme: u16,
    pub acme_mgmt: u16,
}

/// The pebble processes (killed when the test ends, however it ends) and
/// their files.
pub struct Pebble {
    children: Vec<Child>,
    pub dir: tempfile::TempDir,
    pub ports: PebblePorts,
    /// The CA of pebble's own HTTPS (what berth is told to trust for the
    /// directory).
    pub ca: PathBuf,
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
    /// Picks the ports and makes pebble's TLS files; nothing runs yet (berth
    /// asks the directory only once a domain needs a certificate).
    pub fn prepare() -> Pebble {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = pebble_tls(dir.path());
        Pebble {
            children: vec![],
            dir,
            ports: PebblePorts {
                dns: free_port(),
                dns_mgmt: free_port(),
                acme: free_port(),
                acme_mgmt: free_port(),
            },
            ca,
        }
    }

    /// The `berth server` flags that make it ask this CA.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--acme-directory".into(),
            format!("https://localhost:{}/dir", self.ports.acme),
            "--acme-email".into(),
            "ops@berth.test".into(),
            "--acme-ca-cert".into(),
            self.ca.to_string_lossy().to_string(),
        ]
    }

    /// Starts the DNS (every name is `address`) and pebble, which validates
    /// HTTP-01 on `http_port` (the berth routers').
    pub fn start(&mut self, address: &str, http_port: u16) {
        let challtestsrv = pebble_program("pebble-challtestsrv");
        let pebble_bin = pebble_program("pebble");
        let path = self.dir.path().to_path_buf();
        let log = |name: &str| std::fs::File::create(path.join(name)).expect("pebble log file");
        let cts_log = log("challtestsrv.log");
        self.children.push(
            Command::new(challtestsrv)
                .args(["-defaultIPv4", address, "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{}", self.ports.dns)])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{}", self.ports.dns_mgmt)])
                .stdin(Stdio::null())
                .stdout(cts_log.try_clone().expect("log fd"))
                .stderr(cts_log)
                .spawn()
                .expect("start pebble-challtestsrv"),
        );
        self.wait_for_port(self.ports.dns_mgmt, "pebble-challtestsrv");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", self.ports.acme),
                "managementListenAddress": format!("127.0.0.1:{}", self.ports.acme_mgmt),
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
        self.children.push(
            Command::new(pebble_bin)
                .arg("-config")
                .arg(path.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{}", self.ports.dns)])
                .env("PEBBLE_VA_NOSLEEP", "1")
                // Validation must really fetch the challenge through the router.
                .env_remove("PEBBLE_VA_ALWAYS_VALID")
                .stdin(Stdio::null())
                .stdout(pebble_log.try_clone().expect("log fd"))
                .stderr(pebble_log)
                .spawn()
                .expect("start pebble"),
        );
        self.wait_for_port(self.ports.acme, "pebble");
        self.wait_for_port(self.ports.acme_mgmt, "pebble's management interface");
    }

    /// Makes `host` resolve to `address` instead of the default.
    pub fn resolve(&self, host: &str, address: &str) {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "-d"])
            .arg(format!(r#"{{"host":"{host}","addresses":["{address}"]}}"#))
            .arg(format!("http://127.0.0.1:{}/add-a", self.ports.dns_mgmt))
            .output()
            .expect("curl is installed");
        assert!(
            out.status.success(),
            "challtestsrv add-a: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The root that issues pebble's certificates (made fresh at each start),
    /// fetched from its management interface into a file.
    pub fn root(&self) -> PathBuf {
        let root = self.dir.path().join("pebble-root.pem");
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.ca)
            .arg("-o")
            .arg(&root)
            .arg(format!(
                "https://localhost:{}/roots/0",
                self.ports.acme_mgmt
            ))
            .output()
            .expect("curl is installed");
        assert!(
            out.status.success(),
            "pebble's root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        root
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        for name in ["challtestsrv.log", "pebble.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            out.push_str(&format!("--- {name}:\n{}\n", tail(&text, 30)));
        }
        out
    }

    fn wait_for_port(&self, port: u16, what: &str) {
        assert!(
            eventually(Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "{what} did not listen on 127.0.0.1:{port}:\n{}",
            self.log()
        );
    }
}

/// Whether the server `cli` talks to holds an ACME certificate for `host`.
pub fn has_acme_certificate(cli: &impl super::BerthCli, host: &str) -> bool {
    cli.json(&["certs", "--json"])
        .as_array()
        .is_some_and(|certs| {
            certs.iter().any(|c| {
                c["source"] == "acme"
                    && c["domains"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|d| d == host))
            })
        })
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
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
