//! Test harness: a real `berth server` on a temp data dir and free ports,
//! driven through the real CLI binary, against the real Docker engine.
#![allow(dead_code)]

pub mod load;
pub mod pebble;
pub mod rsyslog;
pub mod swarm;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A unique app name per test run, so parallel tests never share images or tags.
pub fn unique_app(prefix: &str) -> String {
    let n: u32 = std::process::id() ^ (Instant::now().elapsed().subsec_nanos()) ^ rand_u32();
    format!("{prefix}-{:06x}", n & 0xff_ffff)
}

fn rand_u32() -> u32 {
    let mut buf = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    u32::from_le_bytes(buf)
}

pub struct Server {
    pub data: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub api: u16,
    pub http: u16,
    pub token: String,
    child: Option<Child>,
    /// Apps to clean off the engine when the test ends, whatever happened.
    pub apps: Vec<String>,
    /// More `berth server` flags, kept for restarts.
    pub extra_args: Vec<String>,
    /// More environment for the server process (e.g. `DOCKER_HOST`), kept for restarts.
    pub env: Vec<(String, String)>,
    /// The berth binary the server runs (the build's, unless a test runs a copy).
    pub binary: PathBuf,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with more `berth server` flags.
    pub fn start_with(extra_args: &[&str]) -> Server {
        Server::start_with_env(extra_args, &[])
    }

    /// Starts a server with more flags and more environment variables.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_from(BERTH.into(), extra_args, env)
    }

    /// Starts a server running `binary` (a copy of the build, for `berth rack update`).
    pub fn start_from(binary: PathBuf, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("temp data dir");
        let home = tempfile::tempdir().expect("temp home");
        let mut server = Server {
            data,
            home,
            api: free_port(),
            http: free_port(),
            token: String::new(),
            child: None,
            apps: vec![],
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            binary,
        };
        server.spawn();
        server.token = std::fs::read_to_string(server.data.path().join("rack/admin.token"))
            .expect("admin.token written at first start")
            .trim()
            .to_string();
        server
    }

    /// Starts a server on a data dir made beforehand (`DATA/rack`, e.g. by
    /// `berth rack restore`), whose admin `token` the caller knows.
    pub fn start_on(data: tempfile::TempDir, token: &str) -> Server {
        let mut server = Server {
            data,
            home: tempfile::tempdir().expect("temp home"),
            api: free_port(),
            http: free_port(),
            token: token.to_string(),
            child: None,
            apps: vec![],
            extra_args: vec![],
            env: vec![],
            binary: BERTH.into(),
        };
        server.spawn();
        server
    }

    /// Whether the API is served over HTTPS (`--tls`); the CLI then trusts the
    /// cluster CA through BERTH_CA_CERT.
    pub fn https(&self) -> bool {
        self.extra_args.iter().any(|a| a == "--tls")
    }

    /// The API's URL.
    pub fn api_url(&self) -> String {
        let scheme = if self.https() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api)
    }

    /// The cluster CA's certificate file in the data dir.
    pub fn ca_file(&self) -> PathBuf {
        self.data.path().join("rack/ca/ca.pem")
    }

    /// Starts (or restarts) the server process with the same flags.
    pub fn spawn(&mut self) {
        let ready_before = self.server_log().matches("berth server ready").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("server log");
        let child = Command::new(&self.binary)
            .args(["server", "--data"])
            .arg(self.data.path().join("rack"))
            .args(["--api", &format!("127.0.0.1:{}", self.api)])
            .args(["--http", &format!("127.0.0.1:{}", self.http)])
            .args(&self.extra_args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start berth server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = if self.https() {
                self.server_log().matches("berth server ready").count() > ready_before
            } else {
                matches!(http_get(self.api, "127.0.0.1", "/health"), Ok((200, _)))
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "berth server did not answer in 30 s; its log:\n{}",
            self.server_log()
        );
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(
                        status.success(),
                        "server exited with {status} on SIGTERM:\n{}",
                        self.server_log()
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            panic!("server ignored SIGTERM for 20 s");
        }
    }

    /// The CLI in `dir`, set up for this server (address, token, a home of its own),
    /// with stdin from /dev/null.
    pub fn cli_command(&self, dir: &Path, args: &[&str]) -> Command {
        cli_for(
            &self.api_url(),
            &self.token,
            self.home.path(),
            self.https().then(|| self.ca_file()).as_deref(),
            dir,
            args,
        )
    }

    /// GET through the router with a Host header.
    pub fn get(&self, host: &str, path: &str) -> (u16, String) {
        http_get(self.http, host, path).unwrap_or((0, String::new()))
    }

    pub fn api_get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        request(self.api, "127.0.0.1", "GET", path, token, None).unwrap_or((0, String::new()))
    }

    /// One release of `app` as `berth releases --json` shows it; `Null` if absent.
    pub fn release(&self, app: &str, id: &str) -> serde_json::Value {
        let releases = self.json(&["releases", "-a", app, "--json"]);
        releases
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_default()
    }

    pub fn create_app(&mut self, prefix: &str) -> String {
        let app = unique_app(prefix);
        self.ok(&["apps", "create", &app]);
        self.apps.push(app.clone());
        app
    }
}

/// The CLI against a running berth server: what both a one-engine `Server`
/// and the swarm tests' rack give their tests.
pub trait BerthCli {
    /// The CLI in `dir`, set up for this server, with stdin from /dev/null.
    fn cli_command(&self, dir: &Path, args: &[&str]) -> Command;

    /// The server's log (shown when a command fails).
    fn server_log(&self) -> String;

    /// Runs the CLI with this server's address and token.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_in(Path::new("."), args)
    }

    fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.cli_command(dir, args).output().expect("run berth CLI")
    }

    /// Runs the CLI and insists it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(Path::new("."), args)
    }

    fn ok_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.cli_in(dir, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nserver log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.server_log(), 40)
        );
        stdout
    }

    /// `ok` for a command printing JSON, parsed.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("berth {args:?} printed no JSON ({e}):\n{out}"))
    }
}

impl BerthCli for Server {
    fn cli_command(&self, dir: &Path, args: &[&str]) -> Command {
        Server::cli_command(self, dir, args)
    }

    fn server_log(&self) -> String {
        Server::server_log(self)
    }
}

/// The CLI for the server at `api_url` with `token`, a `home` of its own, and
/// (for an API over HTTPS) the CA to trust.
pub fn cli_for(
    api_url: &str,
    token: &str,
    home: &Path,
    ca_file: Option<&Path>,
    dir: &Path,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(BERTH);
    cmd.args(args)
        .current_dir(dir)
        .env("BERTH_HOST", api_url)
        .env("BERTH_TOKEN", token)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null());
    if let Some(ca) = ca_file {
        cmd.env("BERTH_CA_CERT", ca);
    }
    cmd
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The router is a process of its own that outlives the server: stop it too.
        self.stop_router();
        for app in &self.apps {
            cleanup_engine(app);
        }
    }
}

impl Server {
    /// The router process's pid (from `DATA/router.pid`), while it runs.
    pub fn router_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.path().join("rack/router.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills the router process (SIGKILL: nothing is left to drain in a test's end).
    pub fn stop_router(&self) {
        if let Some(pid) = self.router_pid() {
            unsafe_kill(pid, "KILL");
        }
    }
}

/// Runs the CLI in the background, its stdout and stderr piped (read them with
/// `wait_with_output`, which also keeps a chatty CLI from filling the pipe).
pub fn spawn_cli(s: &Server, dir: &Path, args: &[&str]) -> Child {
    s.cli_command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth CLI")
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Removes whatever the engine still holds for `app` (tests use the docker CLI
/// for cleanup and inspection only; the product never does).
pub fn cleanup_engine(app: &str) {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label=berth.app={app}")]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    let nets = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    for id in nets.split_whitespace() {
        docker(&["network", "rm", id]);
    }
    let images = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    for id in images.split_whitespace() {
        docker(&["rmi", "-f", id]);
    }
    let volumes = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    for name in volumes.split_whitespace() {
        docker(&["volume", "rm", "-f", name]);
    }
}

pub fn docker(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

pub fn http_get(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(port, host, "GET", path, None, None)
}

/// A minimal HTTP/1.1 client over a fresh connection (Connection: close).
/// `token` is the whole Authorization value; a body is sent as JSON.
pub fn request(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request_bytes(port, host, method, path, &headers, body.map(str::as_bytes))
}

/// [`request`] with any headers and a body of bytes (given a Content-Length). The
/// body goes out from a thread of its own while the answer is read, so that an
/// answer the server sends early (413) before closing is still heard.
pub fn request_bytes(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    request_full(port, host, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// [`request_bytes`], answering the response's head (status line and headers) too.
pub fn request_full(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String, String)> {
    request_full_at("127.0.0.1", port, host, method, path, headers, body)
}

/// [`request_full`] to another address than 127.0.0.1 (e.g. a swarm lab node).
pub fn request_full_at(
    ip: &str,
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect((ip, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut data = head.into_bytes();
    data.extend_from_slice(body.unwrap_or_default());
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || {
        for chunk in data.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                return;
            }
        }
    });
    // A server that answers early may reset the connection: keep what came before.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    if raw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without an answer",
        ));
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, head, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A copy of examples/hello with Debian's static busybox in it.
pub fn hello_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp source dir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    copy_dir(&example, dir.path());
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: apt-get install busybox-static"
    );
    std::fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example dir") {
        let entry = entry.expect("dir entry");
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "busybox" {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write file");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}
