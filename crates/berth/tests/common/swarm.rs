//! The swarm tests' rack: a `berth server --swarm` on this machine against
//! the 3-node lab (`scripts/swarmlab.sh`: node containers with their own
//! dockerd, node1 the manager), listening on the lab's gateway address where
//! the nodes reach it, with an agent on every node started with the very
//! command `berth instances join` prints (the binary mounted into the nodes at
//! /opt/berth by the lab). One swarm rack at a time: the tests share the lab
//! and take turns; each removes what it made, also after a failed assertion.

use super::{BERTH, BerthCli, cli_for, eventually, free_port, hello_source, tail, write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Where the nodes reach this machine.
pub const GATEWAY: &str = "10.213.0.1";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn node_ip(n: usize) -> String {
    format!("10.213.0.{}", 10 + n)
}

pub fn swarmlab(args: &[&str]) {
    let status = Command::new(repo_root().join("scripts/swarmlab.sh"))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("running scripts/swarmlab.sh");
    assert!(status.success(), "scripts/swarmlab.sh {args:?} failed");
}

/// The lab, up once per test binary; one swarm rack at a time.
pub fn lab() -> MutexGuard<'static, ()> {
    static UP: OnceLock<()> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    UP.get_or_init(|| swarmlab(&["up"]));
    turn
}

/// The docker CLI against node `n`'s engine (tests inspect and clean up with
/// it; berth itself never uses the CLI).
pub fn on_node(n: usize, args: &[&str]) -> String {
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
pub struct SwarmRack {
    _turn: MutexGuard<'static, ()>,
    pub data: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub api: u16,
    /// The routers' ports on every node.
    pub http: u16,
    pub https: u16,
    pub token: String,
    pub rack_id: String,
    server: Option<Child>,
    /// The agent command `berth instances join` printed, without `berth`.
    pub agent_args: Vec<String>,
    pub agent_port: u16,
    /// The server log's length when the server was last started.
    pub log_mark: usize,
    /// More `berth server` flags, kept for restarts.
    pub extra_args: Vec<String>,
}

impl SwarmRack {
    pub fn start() -> SwarmRack {
        SwarmRack::start_with(Vec::new())
    }

    /// A rack whose server has more flags.
    pub fn start_with(extra_args: Vec<String>) -> SwarmRack {
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
            extra_args,
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
    pub fn api_url(&self) -> String {
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

    pub fn ca_file(&self) -> PathBuf {
        self.data.path().join("rack/ca/ca.pem")
    }

    pub fn spawn_server(&mut self) {
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
            .args(&self.extra_args)
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

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    pub fn stop_server(&mut self) {
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

    pub fn start_agent(&self, n: usize) {
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

    pub fn stop_agent(&self, n: usize) {
        let script = format!(
            "[ -f /tmp/agent-{id}.pid ] && kill $(cat /tmp/agent-{id}.pid); rm -f /tmp/agent-{id}.pid; true",
            id = self.rack_id
        );
        let _ = Command::new("docker")
            .args(["exec", &format!("swarmlab-node{n}"), "sh", "-c", &script])
            .output();
    }

    pub fn agent_log(&self, n: usize) -> String {
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
    pub fn wait_linked(&self, nodes: &[usize]) {
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

    /// What to look at when requests failed: the server's log and, for each
    /// node, its router container's start time and last lines and its agent's.
    pub fn diagnostics(&self) -> String {
        let mut out = format!("server log:\n{}\n", tail(&self.server_log(), 60));
        let router = format!("berth-router-{}", self.rack_id);
        for n in 1..=3 {
            let state = on_node(
                n,
                &[
                    "inspect",
                    "-f",
                    "{{.State.StartedAt}} {{.State.Status}} {{.RestartCount}}",
                    &router,
                ],
            );
            let logs = Command::new("docker")
                .args(["logs", "--tail", "15", &router])
                .env(
                    "DOCKER_HOST",
                    format!("unix:///run/swarmlab/node{n}/docker.sock"),
                )
                .output()
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "node {n} router: {}\n{}\nagent:\n{}\n",
                state.trim(),
                tail(&logs, 15),
                tail(&self.agent_log(n), 15)
            ));
        }
        out
    }

    /// A GET through node `n`'s router.
    pub fn get(&self, n: usize, host: &str, path: &str) -> (u16, String) {
        get(&node_ip(n), self.http, host, path).unwrap_or((0, String::new()))
    }

    /// Deploys the hello example as `app` with `count` web processes.
    pub fn deploy_hello(&self, app: &str, count: u32) -> (tempfile::TempDir, String) {
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
    pub fn deploy(&self, dir: &Path, app: &str) -> String {
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
    pub fn processes(&self, app: &str) -> Vec<serde_json::Value> {
        self.json(&["ps", "-a", app, "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl BerthCli for SwarmRack {
    fn cli_command(&self, dir: &Path, args: &[&str]) -> Command {
        let url = self.api_url();
        let ca = self.ca_file();
        let ca = url.starts_with("https:").then_some(ca.as_path());
        cli_for(&url, &self.token, self.home.path(), ca, dir, args)
    }

    fn server_log(&self) -> String {
        SwarmRack::server_log(self)
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

pub fn get(ip: &str, port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    super::request_full_at(ip, port, host, "GET", path, &[], None)
        .map(|(status, _, body)| (status, body))
}

/// GETs in a loop through one node's router until stopped: (sent, failed).
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(ip: String, port: u16, host: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                let failure = match get(&ip, port, &host, "/") {
                    Ok((200, _)) => None,
                    Ok((status, body)) => Some(format!("{status}: {}", body.trim())),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(failure) = failure {
                    f.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{} {failure}", utc_now()));
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
    pub fn finish(mut self) -> (u64, Vec<String>) {
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

/// The time of day (UTC) as the server's log writes it, to place a failure
/// among its lines.
fn utc_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

pub fn nodes_of(processes: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    processes
        .iter()
        .filter_map(|p| p["node"].as_str().map(str::to_string))
        .collect()
}

pub fn running(processes: &[serde_json::Value]) -> usize {
    processes.iter().filter(|p| p["state"] == "running").count()
}

/// The hello example built as `image` on this machine's engine (as a user
/// builds on a laptop); removed from it and from every node when dropped.
pub fn local_hello_image(image: &str) -> impl Drop {
    let source = hello_source();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(source.path())
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let image = image.to_string();
    scopeguard(move || {
        super::docker(&["rmi", "-f", &image]);
        for n in 1..=3 {
            on_node(n, &["rmi", "-f", &image]);
        }
    })
}

/// Runs `f` when dropped (also when the test panics).
pub fn scopeguard(f: impl FnOnce()) -> impl Drop {
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
