//! The Docker engine restarts under a running berth: stopped cleanly (SIGTERM,
//! its containers stop with it) and killed (SIGKILL, its containers are killed
//! when it comes back). While it is down the API answers, naming the engine;
//! once it is back the reconciler brings every process back, routed, with no
//! duplicate containers, and the server never exits.
//!
//! The shared engine cannot be restarted (other tests use it), so this test runs
//! a private `dockerd` of its own, on its own data root, socket and address pool,
//! and points the server at it with `DOCKER_HOST`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private dockerd, stopped and wiped (mounts included) on drop, whatever happened.
///
/// Two dockerd flags would break the shared engine, and are not used: with
/// `--bridge none` dockerd deletes the host's `docker0` (the shared engine's
/// default bridge) at every start, and with `--default-address-pool` (and no
/// live-restore) at every restart. So the private engine gets a bridge of its
/// own, made by the test, and berth carves app networks itself (`--network-pool`).
struct PrivateEngine {
    dir: PathBuf,
    /// 10.N.0.0/16, unused on this host: N.
    octet: usize,
    /// Its default bridge, made by the test, on 10.N.255.0/24.
    bridge: String,
    child: Option<Child>,
}

impl PrivateEngine {
    fn start() -> PrivateEngine {
        // Unix socket paths are limited to 108 bytes: keep the dir short.
        let dir = tempfile::Builder::new()
            .prefix("bre")
            .tempdir_in("/tmp")
            .expect("temp dir for the private engine")
            .keep();
        // Its own (empty) config: /etc/docker/daemon.json may set data-root too,
        // which dockerd refuses next to the flag.
        std::fs::write(dir.join("daemon.json"), "{}").expect("write daemon.json");
        let octet = free_pool_octet();
        let bridge = format!("brq{:05x}", std::process::id() & 0xf_ffff);
        let made = [
            vec!["link", "add", "name", &bridge, "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("10.{octet}.255.1/24"),
                "dev",
                &bridge,
            ],
            vec!["link", "set", &bridge, "up"],
        ]
        .iter()
        .all(|args| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        });
        let mut engine = PrivateEngine {
            dir,
            octet,
            bridge,
            child: None,
        };
        assert!(
            made,
            "cannot make bridge {} for the private engine",
            engine.bridge
        );
        engine.spawn();
        engine
    }

    /// For `berth server --network-pool`: app networks apart from the bridge.
    fn network_pool(&self) -> String {
        format!("10.{}.0.0/17", self.octet)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("d.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Starts dockerd (again) with the same flags and waits until it answers.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("dockerd log");
        let d = &self.dir;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("x"))
            .args(["-H", &self.host()])
            .arg("--pidfile")
            .arg(d.join("d.pid"))
            .args([
                "--bridge",
                &self.bridge,
                "--iptables=false",
                "--ip6tables=false",
            ])
            // vfs: no overlay mounts to leave behind; the test images are tiny.
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start dockerd (is docker.io installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = None;
        while Instant::now() < deadline {
            if self
                .docker_ok(&["version", "--format", "{{.Server.Version}}"])
                .is_some()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log: String = self
            .log()
            .lines()
            .filter(|l| !l.contains("[core]"))
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "the private dockerd did not answer in 30 s (exited: {exited:?}); its log:\n{}",
            tail(&log, 30)
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Sends `signal` and waits until dockerd has exited.
    fn signal(&mut self, signal: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.wait_containerd_gone();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("dockerd ignored SIG{signal} for 60 s");
    }

    /// The pid of the containerd this dockerd started, while it lives (a zombie
    /// does not count).
    fn containerd_alive(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (state != "Z" && String::from_utf8_lossy(&cmdline).starts_with("containerd")).then_some(pid)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("x/containerd/containerd.pid")
    }

    /// A killed dockerd's containerd dies after it (parent-death signal), but
    /// nobody reaps it here (this sandbox's pid 1 does not), and a new dockerd
    /// that finds its pid "alive" waits for it and gives up. A real init reaps
    /// it; here we wait for it to die and drop its stale pid file.
    fn wait_containerd_gone(&self) {
        if !eventually(Duration::from_secs(10), || {
            self.containerd_alive().is_none()
        }) {
            if let Some(pid) = self.containerd_alive() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            assert!(
                eventually(Duration::from_secs(5), || self.containerd_alive().is_none()),
                "the private engine's containerd does not exit"
            );
        }
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// The docker CLI against this engine; stdout when it succeeded.
    fn docker_ok(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn containers(&self, app: &str, all: bool) -> Vec<String> {
        let filter = format!("label=berth.app={app}");
        let mut args = vec!["ps", "-q", "--filter", &filter];
        if all {
            args.push("-a");
        }
        self.docker_ok(&args)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        // A killed dockerd leaves its containers running under their shims; a
        // started one kills them (no live-restore), so start it to clean up.
        if self.child.is_none() && self.socket().exists() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn()));
        }
        if self.child.is_some() {
            let ids = self.docker_ok(&["ps", "-aq"]).unwrap_or_default();
            for id in ids.split_whitespace() {
                let _ = self.docker_ok(&["rm", "-f", id]);
            }
            let _ = self.docker_ok(&["network", "prune", "-f"]);
            if let Some(mut child) = self.child.take() {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        // Networks outlive their dockerd as host bridges: remove any left on our
        // 10.N.0.0/16 (app networks the engine had no chance to remove).
        let addrs = Command::new("ip")
            .args(["-4", "-o", "addr"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let ours = format!(" 10.{}.", self.octet);
        for line in addrs.lines().filter(|l| l.contains(&ours)) {
            if let Some(name) = line.split_whitespace().nth(1)
                && (name.starts_with("br-") || name == self.bridge)
            {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// The interface's index, `None` when absent.
fn ifindex(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .map(|i| i.trim().to_string())
}

/// Lazily unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// N of an address pool 10.N.0.0/16 no interface on this host uses (the shared
/// engine's networks, another run of this test), so the private engine's
/// networks are routable from the host without overlapping anyone's.
fn free_pool_octet() -> usize {
    let routes = Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let seed = std::process::id() as usize;
    for i in 0..50 {
        let octet = 200 + (seed + i * 7) % 50;
        if !routes.contains(&format!("10.{octet}.")) {
            return octet;
        }
    }
    panic!("no free 10.200-249.0.0/16 pool for the private engine:\n{routes}");
}

#[test]
fn the_docker_engine_restarting_under_berth_is_survived_and_reconciled() {
    // Declared first: dropped last, after the server and its router are gone.
    let mut engine = PrivateEngine::start();
    let host = engine.host();
    let docker0 = ifindex("docker0");
    let pool = engine.network_pool();
    let mut s = Server::start_with_env(&["--network-pool", &pool], &[("DOCKER_HOST", &host)]);
    let app = s.create_app("engine");
    let src = hello_source();
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    write(
        src.path(),
        "berth.yml",
        &manifest
            .replace("    health: /\n", "    health: {path: /, interval: 1}\n")
            .replace(
                "    termination: {grace: 5}\n",
                "    termination: {grace: 2}\n    scale: {count: 2}\n",
            ),
    );
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let web = format!("web.{app}.localhost");
    assert_eq!(s.get(&web, "/").0, 200, "serves before the restart");
    assert_eq!(engine.containers(&app, true).len(), 2, "two containers");

    let mut outages = 0;
    for signal in ["TERM", "KILL"] {
        let stopped = Instant::now();
        engine.signal(signal);
        outages += 1;

        // While the engine is down: `ps` says so quickly, naming the engine and the
        // fix; what the store holds is still served.
        let mut ps_text = String::new();
        let mut ps_took = Duration::ZERO;
        let said = eventually(Duration::from_secs(15), || {
            let t = Instant::now();
            let out = s.cli(&["ps", "-a", &app]);
            ps_took = t.elapsed();
            ps_text = format!("{}{}", stdout(&out), stderr(&out));
            !out.status.success()
        });
        assert!(
            said,
            "SIG{signal}: `berth ps` kept succeeding with the engine down:\n{ps_text}"
        );
        assert!(
            ps_text.contains("Docker engine") && ps_text.contains("dockerd"),
            "SIG{signal}: `berth ps` names the engine and the fix: {ps_text}"
        );
        assert!(
            ps_took < Duration::from_secs(5),
            "SIG{signal}: `berth ps` took {ps_took:?} with the engine down"
        );
        let (status, body) = s.api_get(
            &format!("/apps/{app}/processes"),
            Some(&format!("Bearer {}", s.token)),
        );
        assert_eq!(
            status, 503,
            "SIG{signal}: 503 while the engine is down: {body}"
        );
        assert!(
            s.ok(&["apps"]).contains(&app),
            "SIG{signal}: apps from the store"
        );
        s.ok(&["releases", "-a", &app]);
        s.ok(&["logs", "-a", &app]);
        assert_eq!(
            http_get(s.api, "127.0.0.1", "/health").map(|r| r.0).ok(),
            Some(200),
            "SIG{signal}: the server answers"
        );
        // A change that needs the engine fails with the same clear reason.
        let out = s.cli(&["restart", "-a", &app]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !out.status.success() && text.contains("Docker engine"),
            "SIG{signal}: restart with the engine down: {text}"
        );
        // A stopped engine stopped its containers; a killed one left them running
        // under their shims, so the router still reaches them.
        let during = s.get(&web, "/").0;
        if signal == "KILL" {
            assert_eq!(during, 200, "SIGKILL: containers still run, still routed");
        }
        let down_for = stopped.elapsed();

        let restarted = Instant::now();
        engine.spawn();
        assert_eq!(
            ifindex("docker0"),
            docker0,
            "the private dockerd must leave the shared engine's docker0 alone"
        );
        let back = eventually(Duration::from_secs(60), || {
            s.get(&web, "/").0 == 200
                && engine.containers(&app, false).len() == 2
                && s.json(&["ps", "--json", "-a", &app])
                    .as_array()
                    .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["state"] == "running"))
        });
        assert!(
            back,
            "SIG{signal}: not back in 60 s: ps {:?}, containers {:?}\nserver log:\n{}\ndockerd log:\n{}",
            s.cli(&["ps", "-a", &app]),
            engine.containers(&app, true),
            tail(&s.server_log(), 40),
            tail(&engine.log(), 20)
        );
        let recovered = restarted.elapsed();
        // No duplicates, nothing left over: exactly the two wanted containers,
        // and they stay two (no late second replacement).
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            engine.containers(&app, true).len(),
            2,
            "SIG{signal}: containers after the restart: {:?}",
            engine.docker_ok(&["ps", "-a"])
        );
        assert_eq!(s.get(&web, "/").0, 200);
        println!(
            "reliability: engine SIG{signal}: down {:.1} s (router answered {during} meanwhile), \
             `berth ps` answered in {} ms with: {}; serving 200 with 2/2 containers {:.1} s after \
             dockerd was started again",
            down_for.as_secs_f64(),
            ps_took.as_millis(),
            ps_text.trim(),
            recovered.as_secs_f64()
        );
    }
    // The outage is reported once each time, not on every reconcile pass.
    let log = s.server_log();
    let lost = log.matches("lost the Docker engine").count();
    let regained = log.matches("the Docker engine is back").count();
    assert_eq!(
        (lost, regained),
        (outages, outages),
        "one report per outage:\n{}",
        tail(&log, 60)
    );
    let events = s.ok(&["logs", "-a", &app]);
    assert!(events.contains("the Docker engine is back"), "{events}");
    println!(
        "reliability: engine restarts injected: {outages} (SIGTERM, SIGKILL of dockerd), apps left not serving: 0, duplicate containers: 0"
    );
    s.stop();
}
