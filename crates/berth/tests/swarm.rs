//! berth on a real 3-node Docker Swarm (`scripts/swarmlab.sh`: node
//! containers with their own dockerd, node1 the manager). The server runs on
//! this machine against node1's engine (`DOCKER_HOST`), listening on the
//! lab's gateway address (10.213.0.1) where the nodes reach it; an agent runs
//! on every node (`berth agent`, the binary mounted into the nodes at
//! /opt/berth by the lab), started with the very command `berth instances
//! join` prints. Requests go to each node's router at the node's address.
//!
//! One swarm rack at a time (the tests share the lab and take turns); each
//! removes what it made, also after a failed assertion.

mod common;

use common::{BERTH, eventually, free_port, hello_source, tail, unique_app, write};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Where the nodes reach this machine.
const GATEWAY: &str = "10.213.0.1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn node_ip(n: usize) -> String {
    format!("10.213.0.{}", 10 + n)
}

fn swarmlab(args: &[&str]) {
    let status = Command::new(repo_root().join("scripts/swarmlab.sh"))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("running scripts/swarmlab.sh");
    assert!(status.success(), "scripts/swarmlab.sh {args:?} failed");
}

/// The lab, up once per test binary; one swarm rack at a time.
fn lab() -> MutexGuard<'static, ()> {
    static UP: OnceLock<()> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    UP.get_or_init(|| swarmlab(&["up"]));
    turn
}

/// The docker CLI against node `n`'s engine (tests inspect and clean up with
/// it; berth itself never uses the CLI).
fn on_node(n: usize, args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .env(
            "DOCKER_HOST",
            format!("unix:///run/swarmlab/node{n}/docker.sock"),
        )
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// A `berth server --swarm` with an agent on each of the lab's 3 nodes.
struct SwarmRack {
    _turn: MutexGuard<'static, ()>,
    data: tempfile::TempDir,
    home: tempfile::TempDir,
    api: u16,
    /// The routers' ports on every node.
    http: u16,
    https: u16,
    token: String,
    rack_id: String,
    server: Option<Child>,
    /// The agent command `berth instances join` printed, without `berth`.
    agent_args: Vec<String>,
    agent_port: u16,
    /// The server log's length when the server was last started.
    log_mark: usize,
}

impl SwarmRack {
    fn start() -> SwarmRack {
        let turn = lab();
        let mut rack = SwarmRack {
            _turn: turn,
            data: tempfile::tempdir().expect("temp data dir"),
            home: tempfile::tempdir().expect("temp home"),
            api: free_port(),
            http: free_port(),
            https: free_port(),
            token: String::new(),
            rack_id: String::new(),
            server: None,
            agent_args: Vec::new(),
            agent_port: free_port(),
            log_mark: 0,
        };
        rack.spawn_server();
        rack.token = std::fs::read_to_string(rack.data.path().join("rack/admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        let log = rack.server_log();
        rack.rack_id = log
            .split("rack=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the server logs its rack id")
            .to_string();
        let join = rack.ok(&["instances", "join"]);
        let words: Vec<String> = join.split_whitespace().map(str::to_string).collect();
        assert_eq!(words.first().map(String::as_str), Some("berth"), "{join}");
        assert_eq!(words.get(1).map(String::as_str), Some("agent"), "{join}");
        rack.agent_args = words[1..].to_vec();
        for n in 1..=3 {
            rack.start_agent(n);
        }
        rack.wait_linked(&[1, 2, 3]);
        rack
    }

    /// The API's URL: the one the join command gives agents, once known (its
    /// scheme says whether the API is served over HTTPS).
    fn api_url(&self) -> String {
        let given = self
            .agent_args
            .iter()
            .skip_while(|a| *a != "--server")
            .nth(1);
        match given {
            Some(url) => url.clone(),
            // Not loopback: the API is served over HTTPS.
            None => format!("https://{GATEWAY}:{}", self.api),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.data.path().join("rack/ca/ca.pem")
    }

    fn spawn_server(&mut self) {
        let starts_before = self.server_log().matches("berth server ready").count();
        self.log_mark = self.server_log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("server log");
        let child = Command::new(BERTH)
            .args(["server", "--swarm", "--data"])
            .arg(self.data.path().join("rack"))
            .args(["--api", &format!("{GATEWAY}:{}", self.api)])
            .args(["--http", &format!("0.0.0.0:{}", self.http)])
            .args(["--https", &format!("0.0.0.0:{}", self.https)])
            .env("DOCKER_HOST", "unix:///run/swarmlab/node1/docker.sock")
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start berth server --swarm");
        self.server = Some(child);
        let ready = eventually(Duration::from_secs(30), || {
            self.server_log().matches("berth server ready").count() > starts_before
        });
        assert!(
            ready,
            "berth server --swarm did not start:\n{}",
            self.server_log()
        );
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let stopped = eventually(Duration::from_secs(20), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    fn start_agent(&self, n: usize) {
        let args = self
            .agent_args
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "echo $$ > /tmp/agent-{id}.pid; RUST_LOG=info exec /opt/berth/berth {args} --listen 0.0.0.0:{port} --data /var/lib/berth-agent-{id} >> /tmp/agent-{id}.log 2>&1",
            id = self.rack_id,
            port = self.agent_port,
        );
        let status = Command::new("docker")
            .args([
                "exec",
                "-d",
                &format!("swarmlab-node{n}"),
                "sh",
                "-c",
                &script,
            ])
            .status()
            .expect("docker exec");
        assert!(status.success());
    }

    fn stop_agent(&self, n: usize) {
        let script = format!(
            "[ -f /tmp/agent-{id}.pid ] && kill $(cat /tmp/agent-{id}.pid); rm -f /tmp/agent-{id}.pid; true",
            id = self.rack_id
        );
        let _ = Command::new("docker")
            .args(["exec", &format!("swarmlab-node{n}"), "sh", "-c", &script])
            .output();
    }

    fn agent_log(&self, n: usize) -> String {
        let out = Command::new("docker")
            .args([
                "exec",
                &format!("swarmlab-node{n}"),
                "cat",
                &format!("/tmp/agent-{}.log", self.rack_id),
            ])
            .output()
            .expect("docker exec");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until the server (since its latest start) linked to the agents of
    /// `nodes` (their engines and routers reachable through their tunnels).
    fn wait_linked(&self, nodes: &[usize]) {
        let linked = eventually(Duration::from_secs(90), || {
            let log = self.server_log();
            let latest = log.get(self.log_mark..).unwrap_or_default();
            nodes.iter().all(|n| {
                latest.contains(&format!("linked to the node's agent node=swarmlab-node{n}"))
            })
        });
        assert!(
            linked,
            "the server did not link to every agent:\n{}\nagent on node 1:\n{}",
            tail(&self.server_log(), 30),
            tail(&self.agent_log(1), 20)
        );
    }

    fn cli_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(BERTH);
        cmd.args(args)
            .current_dir(dir)
            .env("BERTH_HOST", self.api_url())
            .env("BERTH_TOKEN", &self.token)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .stdin(Stdio::null());
        if self.api_url().starts_with("https:") {
            cmd.env("BERTH_CA_CERT", self.ca_file());
        }
        cmd
    }

    fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.cli_command(dir, args).output().expect("run berth")
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

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(Path::new("."), args)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("berth {args:?}: {e}\n{out}"))
    }

    /// A GET through node `n`'s router.
    fn get(&self, n: usize, host: &str, path: &str) -> (u16, String) {
        get(&node_ip(n), self.http, host, path).unwrap_or((0, String::new()))
    }

    /// Deploys the hello example as `app` with `count` web processes.
    fn deploy_hello(&self, app: &str, count: u32) -> (tempfile::TempDir, String) {
        let source = hello_source();
        let manifest = std::fs::read_to_string(source.path().join("berth.yml")).expect("berth.yml");
        let manifest = manifest
            .replace("app: hello", &format!("app: {app}"))
            .replace(
                "    port: 8080\n",
                &format!("    port: 8080\n    scale: {{count: {count}}}\n"),
            );
        write(source.path(), "berth.yml", &manifest);
        self.ok(&["apps", "create", app]);
        let out = self.deploy(source.path(), app);
        (source, out)
    }

    /// `berth deploy` in `dir`: its output (progress included).
    fn deploy(&self, dir: &Path, app: &str) -> String {
        let out = self.cli_in(dir, &["deploy", "-a", app]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "deploy failed:\n{text}\nserver log:\n{}",
            tail(&self.server_log(), 40)
        );
        text
    }

    /// `berth ps -a app --json`.
    fn processes(&self, app: &str) -> Vec<serde_json::Value> {
        self.json(&["ps", "-a", app, "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for SwarmRack {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let label = format!("label=berth.rack={}", self.rack_id);
        for n in 1..=3 {
            self.stop_agent(n);
        }
        for id in on_node(1, &["service", "ls", "-q", "--filter", &label]).split_whitespace() {
            on_node(1, &["service", "rm", id]);
        }
        for n in 1..=3 {
            let containers = on_node(n, &["ps", "-aq", "--filter", &label]);
            for id in containers.split_whitespace() {
                on_node(n, &["rm", "-f", id]);
            }
            let volumes = on_node(n, &["volume", "ls", "-q", "--filter", &label]);
            for name in volumes.split_whitespace() {
                on_node(n, &["volume", "rm", "-f", name]);
            }
            let images = on_node(n, &["images", "-q", "--filter", &label]);
            for id in images.split_whitespace() {
                on_node(n, &["rmi", "-f", id]);
            }
            let _ = Command::new("docker")
                .args([
                    "exec",
                    &format!("swarmlab-node{n}"),
                    "rm",
                    "-rf",
                    &format!("/var/lib/berth-agent-{}", self.rack_id),
                    &format!("/tmp/agent-{}.log", self.rack_id),
                ])
                .output();
        }
        // Networks last: the services' tasks must be gone first.
        let _ = eventually(Duration::from_secs(20), || {
            let networks = on_node(1, &["network", "ls", "-q", "--filter", &label]);
            for id in networks.split_whitespace() {
                on_node(1, &["network", "rm", id]);
            }
            on_node(1, &["network", "ls", "-q", "--filter", &label])
                .trim()
                .is_empty()
        });
    }
}

fn get(ip: &str, port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((ip, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// GETs in a loop through one node's router until stopped: (sent, failed).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ip: String, port: u16, host: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                match get(&ip, port, &host, "/") {
                    Ok((200, _)) => {}
                    Ok((status, body)) => f
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{status}: {}", body.trim())),
                    Err(e) => f
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Load {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops it: (requests sent, failures).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.sent.load(Ordering::Relaxed), failed)
    }
}

fn nodes_of(processes: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    processes
        .iter()
        .filter_map(|p| p["node"].as_str().map(str::to_string))
        .collect()
}

fn running(processes: &[serde_json::Value]) -> usize {
    processes.iter().filter(|p| p["state"] == "running").count()
}

#[test]
fn an_app_on_three_nodes_is_served_by_every_node_without_a_registry() {
    let rack = SwarmRack::start();
    let app = unique_app("sw");
    let (source, first) = rack.deploy_hello(&app, 3);
    // Each node that runs a process got the image through berth, layer by layer.
    assert!(first.contains("layers sent"), "{first}");

    // --- processes spread over the nodes, each node's router answers
    let processes = rack.processes(&app);
    assert_eq!(running(&processes), 3, "{processes:#?}");
    let nodes = nodes_of(&processes);
    assert!(nodes.len() >= 2, "all on {nodes:?}");
    let host = format!("web.{app}.localhost");
    for n in 1..=3 {
        let (status, body) = rack.get(n, &host, "/");
        assert_eq!(status, 200, "node {n}'s router: {body}");
        assert!(body.contains("hello"), "{body}");
    }
    let ps = rack.ok(&["ps", "-a", &app]);
    assert!(ps.contains("NODE") && ps.contains("swarmlab-node"), "{ps}");

    // --- no registry anywhere: not on this machine, not on a node
    for n in 1..=3 {
        let images = on_node(n, &["ps", "-a", "--format", "{{.Image}}"]);
        assert!(!images.contains("registry"), "node {n}: {images}");
    }
    let host_images = common::docker(&["ps", "-a", "--format", "{{.Image}}"]);
    assert!(!host_images.contains("registry"), "{host_images}");

    // --- logs from all three nodes in the one stream
    for n in 1..=3 {
        for _ in 0..5 {
            rack.get(n, &host, "/");
        }
    }
    let all_nodes_logged = eventually(Duration::from_secs(20), || {
        let logs = rack.ok(&["logs", "-a", &app, "--tail", "200"]);
        nodes.iter().all(|node| logs.contains(&format!("@{node}")))
    });
    assert!(
        all_nodes_logged,
        "{}",
        rack.ok(&["logs", "-a", &app, "--tail", "50"])
    );

    // --- exec into and run beside the process on node 3
    let processes = rack.processes(&app);
    let far = processes
        .iter()
        .find(|p| p["node"] == "swarmlab-node3")
        .or_else(|| processes.iter().find(|p| p["node"] != "swarmlab-node1"))
        .expect("a process off the manager");
    let id = far["id"].as_str().expect("id").to_string();
    let hostname = rack.ok(&["exec", &id, "-a", &app, "--", "hostname"]);
    assert_eq!(hostname.trim(), id);
    let ran = rack.ok(&[
        "run",
        "web",
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo ran on $BERTH_APP",
    ]);
    assert_eq!(ran.trim(), format!("ran on {app}"));

    // --- CPU and memory per process, sampled on each node
    let measured = eventually(Duration::from_secs(20), || {
        rack.processes(&app)
            .iter()
            .all(|p| p["memory"].as_u64().is_some_and(|m| m > 0))
    });
    assert!(measured, "{:#?}", rack.processes(&app));

    // --- a changed app moves only the changed layer to each node
    write(
        &source.path().join("www"),
        "index.html",
        "<h1>hello again</h1>\n",
    );
    let second = rack.deploy(source.path(), &app);
    let sent: Vec<&str> = second
        .lines()
        .filter(|l| l.contains("layers sent"))
        .collect();
    assert!(!sent.is_empty(), "{second}");
    for line in &sent {
        assert!(
            line.contains(": 1 of "),
            "more than the changed layer: {line}"
        );
    }
    for n in 1..=3 {
        assert_eq!(rack.get(n, &host, "/").1.trim(), "<h1>hello again</h1>");
    }
}

#[test]
fn the_nodes_keep_serving_while_the_server_is_away_and_it_adopts_them_again() {
    let mut rack = SwarmRack::start();
    let app = unique_app("swaway");
    rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    let before = rack.processes(&app);
    rack.stop_server();
    for n in 1..=3 {
        assert_eq!(
            rack.get(n, &host, "/").0,
            200,
            "node {n} without its server"
        );
    }
    // A process prints while the server is away: its node's engine keeps the
    // line, and the server, back, collects it once.
    let far = before
        .iter()
        .find(|p| p["node"] != "swarmlab-node1")
        .expect("a process off the manager");
    let n: usize = far["node"]
        .as_str()
        .and_then(|node| node.strip_prefix("swarmlab-node"))
        .and_then(|n| n.parse().ok())
        .expect("a lab node");
    let process = far["id"].as_str().expect("id");
    let container = on_node(
        n,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=berth.process={process}"),
        ],
    );
    let marker = format!("printed-while-away-{}", rack.rack_id);
    on_node(
        n,
        &[
            "exec",
            container.trim(),
            "sh",
            "-c",
            &format!("echo {marker} > /proc/1/fd/1"),
        ],
    );
    let load = Load::start(node_ip(2), rack.http, host.clone());
    rack.spawn_server();
    rack.wait_linked(&[1, 2, 3]);
    std::thread::sleep(Duration::from_secs(3));
    let (sent, failed) = load.finish();
    assert!(sent > 10);
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}\nserver log:\n{}",
        failed.len(),
        &failed[..failed.len().min(3)],
        tail(&rack.server_log(), 40)
    );
    let after = rack.processes(&app);
    let ids = |ps: &[serde_json::Value]| {
        let mut ids: Vec<String> = ps.iter().map(|p| p["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&before),
        ids(&after),
        "the restarted server replaced processes"
    );
    assert!(after.iter().all(|p| p["restarts"] == 0), "{after:#?}");
    let count = || {
        rack.ok(&["logs", "-a", &app, "--tail", "1000"])
            .matches(&marker)
            .count()
    };
    assert!(
        eventually(Duration::from_secs(20), || count() >= 1),
        "the line printed while the server was away never arrived; the engine of node {n} has:\n{}\nberth logs:\n{}",
        on_node(n, &["logs", "--tail", "5", container.trim()]),
        rack.ok(&["logs", "-a", &app, "--tail", "20"])
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(), 1, "the line printed while the server was away");

    // A node's router that restarts (empty) gets the table again at once.
    let router = format!("berth-router-{}", rack.rack_id);
    on_node(2, &["restart", "-t", "1", &router]);
    let served_again = eventually(Duration::from_secs(10), || rack.get(2, &host, "/").0 == 200);
    assert!(
        served_again,
        "node 2's restarted router serves the app again"
    );
}

#[test]
fn rollouts_and_stops_under_load_through_one_node_lose_no_request() {
    let rack = SwarmRack::start();
    let app = unique_app("swload");
    let (source, _) = rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    let load = Load::start(node_ip(1), rack.http, host.clone());
    rack.ok(&["scale", "web", "--count", "4", "-a", &app]);
    rack.ok(&["env", "set", "GREETING=hi", "-a", &app, "--promote"]);
    rack.ok(&["restart", "-a", &app]);
    let releases = rack.json(&["releases", "-a", &app, "--json"]);
    let first = releases
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == "R1"))
        .is_some();
    assert!(first, "{releases}");
    rack.ok(&["releases", "rollback", "R1", "-a", &app]);
    let processes = rack.processes(&app);
    let off_node1 = processes
        .iter()
        .find(|p| p["node"] != "swarmlab-node1")
        .and_then(|p| p["id"].as_str())
        .expect("a process on another node")
        .to_string();
    rack.ok(&["ps", "stop", &off_node1, "-a", &app]);
    rack.ok(&["scale", "web", "--count", "3", "-a", &app]);
    // A drained node gives up its processes, which come up elsewhere first.
    rack.ok(&["instances", "drain", "swarmlab-node2"]);
    let instances = rack.json(&["instances", "--json"]);
    let node2 = instances
        .as_array()
        .and_then(|i| i.iter().find(|i| i["hostname"] == "swarmlab-node2"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (node2["availability"].as_str(), node2["processes"].as_u64()),
        (Some("drain"), Some(0)),
        "{instances:#}"
    );
    let three = eventually(Duration::from_secs(30), || {
        running(&rack.processes(&app)) == 3
    });
    assert!(three, "{:#?}", rack.processes(&app));
    rack.ok(&["instances", "activate", "swarmlab-node2"]);
    let (sent, failed) = load.finish();
    assert!(sent > 50, "only {sent} requests");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    let back = eventually(Duration::from_secs(30), || {
        running(&rack.processes(&app)) == 3
    });
    assert!(back, "{:#?}", rack.processes(&app));

    // A release that never gets healthy is not promoted; the old one serves on.
    let active = |rack: &SwarmRack| {
        rack.json(&["apps", "info", &app, "--json"])["release"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let serving = active(&rack);
    let manifest = std::fs::read_to_string(source.path().join("berth.yml")).expect("berth.yml");
    write(
        source.path(),
        "berth.yml",
        &manifest.replace("health: /", "health: /missing"),
    );
    let load = Load::start(node_ip(3), rack.http, host.clone());
    let failed_deploy = rack.cli_in(source.path(), &["deploy", "-a", &app]);
    let (sent, failed) = load.finish();
    assert!(
        !failed_deploy.status.success(),
        "an unhealthy release was promoted"
    );
    assert_eq!(active(&rack), serving);
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    assert_eq!(running(&rack.processes(&app)), 3);
}

/// When `check` first held, polling every 200 ms for at most `limit`.
fn time_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Running tasks of a plain Swarm service on nodes other than `lost`.
fn swarm_tasks_running(service: &str, lost: &str) -> usize {
    on_node(
        1,
        &[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
    )
    .lines()
    .filter(|l| !l.starts_with(lost) && l.contains("Running"))
    .count()
}

#[test]
fn a_lost_node_is_shown_down_and_its_processes_come_back_elsewhere() {
    let rack = SwarmRack::start();
    let app = unique_app("swlost");
    rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    // Swarm's own reschedule of a plain 3-replica service, timed in the same run.
    let baseline = format!("swbase-{}", rack.rack_id);
    on_node(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            &baseline,
            "--label",
            &format!("berth.rack={}", rack.rack_id),
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--endpoint-mode",
            "dnsrr",
            "swarmlab-busybox:latest",
            "sleep",
            "3600",
        ],
    );
    let spread = eventually(Duration::from_secs(30), || {
        swarm_tasks_running(&baseline, "-") == 3
    });
    assert!(spread, "the baseline service did not start");
    // With one per node, the baseline cannot come back to 3 without node 3:
    // allow two per node for the reschedule.
    on_node(
        1,
        &[
            "service",
            "update",
            "--detach",
            "--replicas-max-per-node",
            "2",
            &baseline,
        ],
    );

    let load = Load::start(node_ip(1), rack.http, host.clone());
    std::thread::sleep(Duration::from_secs(1));
    swarmlab(&["kill", "3"]);
    let killed = std::time::Instant::now();
    let restore = scopeguard(|| swarmlab(&["start", "3"]));

    let shown_down = time_until(Duration::from_secs(30), || {
        rack.json(&["instances", "--json"])
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["hostname"] == "swarmlab-node3" && i["status"] == "down")
    });
    // Both watched in one loop, so neither time waits on the other.
    let (mut berth_back, mut swarm_back) = (None, None);
    while killed.elapsed() < Duration::from_secs(90)
        && (berth_back.is_none() || swarm_back.is_none())
    {
        if berth_back.is_none()
            && rack
                .processes(&app)
                .iter()
                .filter(|p| p["state"] == "running" && p["node"] != "swarmlab-node3")
                .count()
                == 3
        {
            berth_back = Some(killed.elapsed());
        }
        if swarm_back.is_none() && swarm_tasks_running(&baseline, "swarmlab-node3") == 3 {
            swarm_back = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (sent, failed) = load.finish();
    drop(restore);
    on_node(1, &["service", "rm", &baseline]);

    println!(
        "bench: node kill: shown down after {shown_down:?}; berth back to 3 after {berth_back:?}; \
         Swarm's own reschedule of a plain service {swarm_back:?}; failed GETs {} of {sent} through node 1",
        failed.len()
    );
    let shown_down = shown_down.expect("node 3 shown down in `berth instances`");
    assert!(shown_down < Duration::from_secs(20), "{shown_down:?}");
    berth_back.expect("berth's processes back to 3 on the surviving nodes");
    assert!(
        failed.is_empty(),
        "{} of {sent} GETs failed across the node kill: {failed:?}",
        failed.len()
    );
    for n in 1..=2 {
        assert_eq!(rack.get(n, &host, "/").0, 200);
    }
}

/// Runs `f` when dropped (also when the test panics).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The sizes in `==> node: N of M layers sent (SIZE)` progress lines.
fn sent_sizes(progress: &str) -> Vec<String> {
    progress
        .lines()
        .filter(|l| l.contains("layers sent"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// `bench/swarm.sh` runs this (ignored in the test suite): deploy to three
/// nodes against one, and the bytes each node is sent, against `docker save`.
#[test]
#[ignore = "a benchmark: bench/swarm.sh"]
fn bench_deploy_three_nodes_against_one() {
    let rack = SwarmRack::start();
    // A first deploy finds no layer of the app on the workers.
    for n in 2..=3 {
        let images = on_node(n, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in images.lines().filter(|i| i.starts_with("berth/")) {
            on_node(n, &["rmi", "-f", image]);
        }
    }
    let spread = unique_app("swbench3");
    let started = std::time::Instant::now();
    let (source, first) = rack.deploy_hello(&spread, 3);
    let three = started.elapsed();

    let pinned = unique_app("swbench1");
    let one_source = hello_source();
    let manifest = std::fs::read_to_string(one_source.path().join("berth.yml")).expect("berth.yml");
    let manifest = manifest.replace("app: hello", &format!("app: {pinned}")).replace(
        "    port: 8080\n",
        "    port: 8080\n    scale: {count: 3}\n    placement: [node.hostname==swarmlab-node1]\n",
    );
    write(one_source.path(), "berth.yml", &manifest);
    rack.ok(&["apps", "create", &pinned]);
    let started = std::time::Instant::now();
    rack.deploy(one_source.path(), &pinned);
    let one = started.elapsed();

    let saved = Command::new("docker")
        .args(["save", &format!("berth/{spread}:B1")])
        .env("DOCKER_HOST", "unix:///run/swarmlab/node1/docker.sock")
        .output()
        .map(|o| o.stdout.len())
        .unwrap_or(0);
    write(
        &source.path().join("www"),
        "index.html",
        "<h1>hello again</h1>\n",
    );
    let second = rack.deploy(source.path(), &spread);
    println!(
        "bench: deploy of the example app, 3 processes on 3 nodes: {three:.1?}; on 1 node: {one:.1?}; ratio {:.2}",
        three.as_secs_f64() / one.as_secs_f64()
    );
    println!("bench: docker save of the image: {saved} bytes");
    println!("bench: first deploy sent {:?}", sent_sizes(&first));
    println!("bench: changed deploy sent {:?}", sent_sizes(&second));
}

#[test]
fn images_volumes_timers_and_certificates_work_on_a_swarm_as_on_one_engine() {
    let rack = SwarmRack::start();
    let app = unique_app("swday");
    // An image built on this machine, deployed with --image: no registry.
    let source = hello_source();
    let image = format!("berth-swtest-{}:dev", rack.rack_id);
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(source.path())
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let _image = scopeguard({
        let image = image.clone();
        move || {
            common::docker(&["rmi", "-f", &image]);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "berth.yml",
        &format!(
            "app: {app}\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    volumes: [data:/data]\n\
             timers:\n  tick:\n    schedule: \"* * * * *\"\n    service: web\n    command: [\"sh\", \"-c\", \"echo tick >> /data/ticks\"]\n"
        ),
    );
    rack.ok(&["apps", "create", &app]);
    let deployed = rack.cli_in(dir.path(), &["deploy", "--image", &image, "-a", &app]);
    assert!(
        deployed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    let host = format!("web.{app}.localhost");
    for n in 1..=3 {
        assert_eq!(rack.get(n, &host, "/").0, 200, "node {n}");
    }

    // A volume stays on its node: a restarted process finds its data.
    let first = rack.processes(&app);
    let process = first[0]["id"].as_str().expect("id").to_string();
    let node = first[0]["node"].clone();
    rack.ok(&[
        "exec",
        &process,
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo kept > /data/note",
    ]);
    rack.ok(&["ps", "stop", &process, "-a", &app]);
    let back = eventually(Duration::from_secs(60), || {
        rack.processes(&app)
            .iter()
            .any(|p| p["id"] == process.as_str() && p["state"] == "running")
    });
    assert!(back, "{:#?}", rack.processes(&app));
    let again = rack.processes(&app);
    assert_eq!(again[0]["node"], node, "the process left its volume's node");
    let note = rack.ok(&["exec", &process, "-a", &app, "--", "cat", "/data/note"]);
    assert_eq!(note.trim(), "kept");

    // HTTPS on every node's router with a certificate made through the CLI.
    rack.ok(&["certs", "generate", &host]);
    let served = eventually(Duration::from_secs(20), || {
        let out = Command::new("curl")
            .args(["-sS", "-k", "--resolve"])
            .arg(format!("{host}:{}:{}", rack.https, node_ip(2)))
            .arg(format!("https://{host}:{}/", rack.https))
            .output()
            .expect("curl is installed");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hello")
    });
    assert!(served, "HTTPS through node 2's router");

    // The timer runs (within a minute) on the volume's node.
    let ticked = eventually(Duration::from_secs(80), || {
        rack.cli_in(
            Path::new("."),
            &["exec", &process, "-a", &app, "--", "cat", "/data/ticks"],
        )
        .stdout
        .starts_with(b"tick")
    });
    assert!(ticked, "{}", rack.ok(&["timers", "-a", &app]));
}

#[test]
fn swarm_mode_needs_a_swarm_manager_and_says_so() {
    // This machine's own engine is in no swarm.
    let data = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let out = Command::new(BERTH)
        .args(["server", "--swarm", "--data"])
        .arg(data.path().join("rack"))
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .env_remove("DOCKER_HOST")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .expect("run berth server --swarm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not a Swarm manager") || stderr.contains("no swarm"),
        "{stderr}"
    );
}
