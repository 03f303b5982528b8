//! Faults: `kill -9` of the server in the middle of a build, a deploy and an env
//! change. After a restart the store must be consistent (no build or release left
//! half-done), the engine must hold no orphan or duplicate containers, and the app
//! must still serve.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn kill9(s: &Server) {
    let pid = s.pid().expect("server running");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn containers(app: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", &format!("label=berth.app={app}")])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn running(app: &str) -> Vec<String> {
    docker(&["ps", "-q", "--filter", &format!("label=berth.app={app}")])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// After a restart: builds and releases are in final states, the engine holds
/// exactly the store's processes (one web), all running, and the app serves.
fn check_consistent(s: &Server, app: &str, what: &str) {
    let host = format!("web.{app}.localhost");
    assert!(
        eventually(Duration::from_secs(60), || s.get(&host, "/").0 == 200),
        "{what}: app does not serve after restart\n{}",
        tail(&s.server_log(), 40)
    );
    let builds = s.json(&["builds", "--json", "-a", app]);
    for b in builds.as_array().expect("builds") {
        let status = b["status"].as_str().unwrap_or("");
        assert!(
            ["succeeded", "failed"].contains(&status),
            "{what}: build left {status}: {builds:#}"
        );
        if status == "failed" {
            assert!(b["error"].is_string(), "{what}: failed build has a reason");
        }
    }
    let releases = s.json(&["releases", "--json", "-a", app]);
    let list = releases.as_array().expect("releases");
    let active = list.iter().filter(|r| r["status"] == "active").count();
    assert_eq!(active, 1, "{what}: one active release: {releases:#}");
    for r in list {
        let status = r["status"].as_str().unwrap_or("");
        assert!(
            ["active", "superseded", "failed", "created"].contains(&status),
            "{what}: release left {status}: {releases:#}"
        );
    }
    // The reconciler may still be replacing a process: wait for one web, no orphans.
    let settled = eventually(Duration::from_secs(60), || {
        let ps = s.json(&["ps", "--json", "-a", app]);
        let procs = ps.as_array().cloned().unwrap_or_default();
        procs.len() == 1
            && procs.iter().all(|p| p["state"] == "running")
            && containers(app).len() == 1
            && running(app).len() == 1
    });
    assert!(
        settled,
        "{what}: want 1 process and 1 container, got ps {} and containers {:?}\n{}",
        s.ok(&["ps", "-a", app]),
        containers(app),
        tail(&s.server_log(), 40)
    );
}

/// Waits until the engine holds more containers for `app` than `before`.
fn wait_new_container(app: &str, before: usize) -> bool {
    eventually(Duration::from_secs(60), || containers(app).len() > before)
}

#[test]
fn kill_9_mid_build_mid_deploy_and_mid_env_change_leaves_a_consistent_rack() {
    let mut s = Server::start();
    let app = s.create_app("faults");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let mut faults = 0;

    // 1. Mid-build: a build step that takes a while.
    let slow = hello_source();
    let dockerfile = std::fs::read_to_string(slow.path().join("Dockerfile")).expect("Dockerfile");
    write(
        slow.path(),
        "Dockerfile",
        &dockerfile.replace(
            "COPY www /www",
            "RUN [\"/bin/busybox\", \"sleep\", \"6\"]\nCOPY www /www",
        ),
    );
    let cli = spawn_cli(&s, slow.path(), &["deploy", "-a", &app]);
    let log_has = |s: &Server, text: &str| s.server_log().contains(text);
    assert!(
        eventually(Duration::from_secs(30), || {
            s.json(&["builds", "--json", "-a", &app])
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["status"] == "running"))
        }),
        "the slow build never started"
    );
    std::thread::sleep(Duration::from_secs(1));
    kill9(&s);
    faults += 1;
    let _ = cli.wait_with_output();
    s.spawn();
    check_consistent(&s, &app, "mid-build");
    let builds = s.json(&["builds", "--json", "-a", &app]);
    assert!(
        builds
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["status"] == "failed"
                && b["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("stopped during the build"))),
        "interrupted build marked failed: {builds:#}"
    );

    // 2. Mid-deploy: the new process takes seconds to listen, so the rollout is
    // still waiting on it when the server dies.
    let late = hello_source();
    let manifest = std::fs::read_to_string(late.path().join("berth.yml")).expect("berth.yml");
    write(
        late.path(),
        "berth.yml",
        &manifest.replace("    health: /\n", "    health: {path: /, grace: 20}\n").replace(
            "    port: 8080\n",
            "    port: 8080\n    command: [\"/bin/sh\", \"-c\", \"sleep 5; exec httpd -f -p 8080 -h /www\"]\n",
        ),
    );
    let before = containers(&app).len();
    let cli = spawn_cli(&s, late.path(), &["deploy", "-a", &app]);
    assert!(
        wait_new_container(&app, before),
        "the new process never started"
    );
    kill9(&s);
    faults += 1;
    let _ = cli.wait_with_output();
    s.spawn();
    check_consistent(&s, &app, "mid-deploy");
    assert!(
        log_has(&s, "the server stopped during the deploy") || {
            // The rollout may have finished in the instant before the kill.
            s.json(&["releases", "--json", "-a", &app])
                .as_array()
                .is_some_and(|r| {
                    r.iter().any(|r| {
                        r["status"] == "active"
                            && r["description"].as_str().unwrap_or("").starts_with("build")
                    })
                })
        }
    );

    // 3. Mid-env-change (rolled out): same rollout, started by `env set --promote`.
    let before = containers(&app).len();
    let cli = spawn_cli(
        &s,
        src.path(),
        &["env", "set", "FAULT=1", "--promote", "-a", &app],
    );
    assert!(
        wait_new_container(&app, before),
        "the env change never rolled out"
    );
    kill9(&s);
    faults += 1;
    let _ = cli.wait_with_output();
    s.spawn();
    check_consistent(&s, &app, "mid-env-change");
    let env = s.ok(&["env", "-a", &app]);
    // The change was saved before its rollout began, so it survives the crash.
    assert!(
        env.contains("FAULT=1"),
        "env readable after the crash: {env}"
    );
    println!(
        "reliability: faults injected: {faults} (kill -9 of the server), apps left not serving: 0"
    );
}

/// A source whose web service runs `command` (a shell line) instead of httpd.
fn with_command(command: &str, extra: &str) -> tempfile::TempDir {
    let src = hello_source();
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    let line = format!(
        "    port: 8080\n    command: [\"/bin/sh\", \"-c\", {}]\n{extra}",
        serde_json::to_string(command).expect("json string")
    );
    write(
        src.path(),
        "berth.yml",
        &manifest
            .replace(
                "    health: /\n",
                "    health: {path: /, interval: 1, attempts: 2}\n",
            )
            .replace("    port: 8080\n", &line),
    );
    src
}

#[test]
fn misbehaving_processes_are_reported_with_the_reason_and_stall_no_other_app() {
    let mut s = Server::start();
    let good = s.create_app("calm");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &good]);
    let good_host = format!("web.{good}.localhost");
    let mut faults = 0;
    let cases = [
        ("exits", "echo bye; exit 3", "", "exited with code 3"),
        ("deaf", "sleep 600", "", "failed its health check"),
        (
            "hog",
            "x=a; while true; do x=$x$x$x$x; done",
            "    scale: {memory: 16}\n",
            "out of memory",
        ),
    ];
    for (name, command, extra, reason) in cases {
        let app = s.create_app(name);
        let bad = with_command(command, extra);
        let out = s.cli_in(bad.path(), &["deploy", "-a", &app]);
        faults += 1;
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{name}: deploy should fail:\n{text}");
        assert!(
            text.contains(reason),
            "{name}: reason {reason:?} missing:\n{text}"
        );
        let releases = s.json(&["releases", "--json", "-a", &app]);
        let error = releases[0]["error"].as_str().unwrap_or("").to_string();
        assert_eq!(releases[0]["status"], "failed", "{name}: {releases:#}");
        assert!(error.contains(reason), "{name}: release error {error:?}");
        let logs = s.ok(&["logs", "-a", &app]);
        assert!(
            logs.contains(reason),
            "{name}: berth logs lacks {reason:?}:\n{logs}"
        );
        // The other app never noticed.
        assert_eq!(s.get(&good_host, "/").0, 200, "{name}: calm app stalled");
    }

    // A process that ignores SIGTERM: stopping it takes its grace, then SIGKILL;
    // the supervisor restarts it and the calm app is served meanwhile.
    let stubborn = s.create_app("stubborn");
    let src = with_command(
        "trap '' TERM; httpd -f -p 8080 -h /www; while true; do sleep 1; done",
        "    termination: {grace: 2}\n",
    );
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    write(
        src.path(),
        "berth.yml",
        &manifest.replace("    termination: {grace: 5}\n", ""),
    );
    s.ok_in(src.path(), &["deploy", "-a", &stubborn]);
    let ps = s.json(&["ps", "--json", "-a", &stubborn]);
    let id = ps[0]["id"].as_str().expect("process id").to_string();
    let stop = std::thread::scope(|scope| {
        let stopping = scope.spawn(|| s.cli(&["ps", "stop", &id, "-a", &stubborn]));
        let served = (0..10).all(|_| {
            std::thread::sleep(Duration::from_millis(100));
            s.get(&good_host, "/").0 == 200
        });
        assert!(served, "calm app stalled while a process ignored SIGTERM");
        stopping.join().expect("ps stop")
    });
    faults += 1;
    assert!(stop.status.success(), "ps stop: {}", stderr(&stop));
    assert!(
        eventually(Duration::from_secs(30), || {
            let ps = s.json(&["ps", "--json", "-a", &stubborn]);
            ps.as_array().is_some_and(|p| {
                // Restarted in place; 137 = SIGKILL once the grace ran out.
                p.len() == 1
                    && p[0]["restarts"].as_u64().is_some_and(|r| r >= 1)
                    && p[0]["last_exit"] == 137
                    && p[0]["state"] == "running"
            })
        }),
        "the stubborn process was not killed after its grace and restarted: {}",
        s.ok(&["ps", "-a", &stubborn])
    );
    let logs = s.ok(&["logs", "-a", &stubborn]);
    assert!(
        logs.contains(&format!("process {id} stopped by request")),
        "{logs}"
    );
    println!("reliability: misbehaving processes injected: {faults}, other apps stalled: 0");
}

/// Unmounts on drop, whatever the test did.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_an_upload_is_a_clear_error_and_the_store_survives() {
    let mut s = Server::start();
    let app = s.create_app("full");
    // The server spools uploads to DATA/tmp: make that a 1 MiB tmpfs.
    let tmp = s.data.path().join("rack/tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir tmp");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&tmp)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN)"
    );
    let guard = Mount(tmp.clone());
    let src = hello_source();
    let out = s.cli_in(src.path(), &["deploy", "-a", &app]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "deploy onto a full disk: {text}");
    assert!(
        text.contains("cannot store the upload") && text.contains("free space"),
        "clear error: {text}"
    );
    // The store still reads and writes, and nothing half-made is listed.
    s.ok(&["env", "set", "AFTER=1", "-a", &app]);
    assert!(s.ok(&["env", "-a", &app]).contains("AFTER=1"));
    assert_eq!(
        s.json(&["builds", "--json", "-a", &app]),
        serde_json::json!([])
    );
    drop(guard);
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    println!("reliability: disk-full faults injected: 1, store left corrupt: 0");
}
