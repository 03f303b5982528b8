//! A full disk under the server's data dir: while a build packs its context
//! (`DATA/tmp`), while an upload is unpacked, and while app logs are written
//! (`DATA/logs`). Each dir is a small tmpfs mounted by the test (needs root).
//! Builds fail with an error naming the disk, the free space and the fix; the log
//! writer reports the condition once, keeps the server and the app serving, and
//! writes again once there is room; the store stays consistent throughout.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted on `path`; unmounted on drop (lazily if still in use),
/// whatever the test did.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mkdir mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN)"
        );
        Tmpfs(path.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(ok.success(), "remount {} to {size}", self.0.display());
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Writes `name` until the disk is full, or `limit` bytes.
    fn fill(&self, name: &str, limit: u64) {
        let mut f = std::fs::File::create(self.0.join(name)).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0;
        while written < limit {
            let n = chunk.len().min((limit - written) as usize);
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            written += n as u64;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Bytes a tar of `dir` takes, roughly (headers and 512-byte blocks).
fn tar_size(dir: &Path) -> u64 {
    let mut total = 1024;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += 512;
        if meta.is_dir() {
            total += tar_size(&entry.path());
        } else {
            total += meta.len().div_ceil(512) * 512;
        }
    }
    total
}

#[test]
fn a_disk_filling_during_a_build_fails_it_clearly_and_the_rack_keeps_serving() {
    let mut s = Server::start();
    let app = s.create_app("diskb");
    let hello = hello_source();
    s.ok_in(hello.path(), &["deploy", "-a", &app]);
    let web = format!("web.{app}.localhost");
    assert_eq!(s.get(&web, "/").0, 200);
    let tmpfs = Tmpfs::mount(&s.data.path().join("rack/tmp"), "64m");

    // Two images, built one after the other. The first (web) has a tiny context,
    // on top of the image just deployed, and takes a few seconds (a step unique to
    // this run, so never cached); the disk fills meanwhile, and packing the second
    // one's context (worker: the whole source, busybox included) finds no room.
    let deployed = s.json(&["builds", "--json", "-a", &app])[0]["images"]["web"]
        .as_str()
        .expect("image of the deployed build")
        .to_string();
    let src = hello_source();
    std::fs::create_dir(src.path().join("slow")).expect("mkdir slow");
    write(
        &src.path().join("slow"),
        "Dockerfile",
        &format!("FROM {deployed}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"sleep 4 # {app}\"]\n"),
    );
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    write(
        src.path(),
        "berth.yml",
        &format!(
            "{}  worker:\n    build: .\n    command: [\"/bin/sh\", \"-c\", \"sleep 3600\"]\n",
            manifest.replace("    build: .\n", "    build: slow\n")
        ),
    );
    let started = Instant::now();
    let (deploy, filled_at) = std::thread::scope(|scope| {
        let deploy = scope.spawn(|| s.cli_in(src.path(), &["deploy", "-a", &app]));
        let running = eventually(Duration::from_secs(30), || {
            s.json(&["builds", "--json", "-a", &app])
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["status"] == "running"))
        });
        assert!(running, "the build never started");
        std::thread::sleep(Duration::from_secs(1));
        tmpfs.fill("filler", u64::MAX);
        let filled_at = started.elapsed();
        (deploy.join().expect("deploy thread"), filled_at)
    });
    let text = format!("{}{}", stdout(&deploy), stderr(&deploy));
    assert!(!deploy.status.success(), "deploy onto a full disk: {text}");
    let error_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("")
            .to_string()
    };
    println!("disk full during the build: {}", error_line(&text));
    for want in [
        "build context of service worker",
        "data dir (tmp/)",
        "no space left on the disk",
        "free space",
    ] {
        assert!(text.contains(want), "{want:?} missing: {text}");
    }
    let builds = s.json(&["builds", "--json", "-a", &app]);
    let newest = &builds[0];
    assert_eq!(newest["status"], "failed", "{builds:#}");
    assert!(
        newest["error"]
            .as_str()
            .is_some_and(|e| e.contains("no space left on the disk")),
        "the build keeps the reason: {builds:#}"
    );
    let releases = s.json(&["releases", "--json", "-a", &app]);
    assert_eq!(
        releases.as_array().map(Vec::len),
        Some(1),
        "no release from the failed build: {releases:#}"
    );
    assert_eq!(releases[0]["status"], "active");
    assert_eq!(s.get(&web, "/").0, 200, "the deployed app keeps serving");
    // Nothing of the failed build is left in the temp dir but the filler.
    let left = || -> Vec<String> {
        std::fs::read_dir(&tmpfs.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(5), || left() == ["filler"]),
        "leftovers in DATA/tmp: {:?}",
        left()
    );
    let mut faults = 1;

    // The disk is so full that the upload fits but unpacking it does not.
    std::fs::remove_file(tmpfs.0.join("filler")).expect("rm filler");
    let upload = tar_size(src.path());
    let room = upload * 3 / 2;
    tmpfs.fill("filler", tmpfs.free().saturating_sub(room));
    let out = s.cli_in(src.path(), &["deploy", "-a", &app]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "unpacking onto a full disk: {text}");
    println!("disk full while unpacking: {}", error_line(&text));
    for want in [
        "cannot unpack the upload",
        "no space left on the disk",
        "free space",
    ] {
        assert!(text.contains(want), "{want:?} missing: {text}");
    }
    faults += 1;
    assert_eq!(
        s.json(&["builds", "--json", "-a", &app])
            .as_array()
            .map(Vec::len),
        builds.as_array().map(Vec::len),
        "no build row for an upload that was never unpacked"
    );
    assert_eq!(s.get(&web, "/").0, 200);

    // Room again: the same deploy goes through.
    std::fs::remove_file(tmpfs.0.join("filler")).expect("rm filler");
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    assert_eq!(s.get(&web, "/").0, 200);
    let ps = s.json(&["ps", "--json", "-a", &app]);
    assert_eq!(
        ps.as_array().map(Vec::len),
        Some(2),
        "web and worker: {ps:#}"
    );
    println!(
        "reliability: disk-full faults during a build injected: {faults} (filled {:.1} s into the deploy; upload of {} KiB unpacked onto {} KiB free), \
         builds left running: 0, releases made: 0, app not serving: 0",
        filled_at.as_secs_f64(),
        upload / 1024,
        room / 1024
    );
    s.stop();
    drop(tmpfs);
}

#[test]
fn a_full_log_disk_is_reported_once_the_app_keeps_serving_and_logging_resumes() {
    let mut s = Server::start();
    // App logs go to DATA/logs; no app has a log file open yet.
    let tmpfs = Tmpfs::mount(&s.data.path().join("rack/logs"), "512k");
    let app = s.create_app("diskl");
    // A web process that serves and prints about 100 KB of log a second.
    let src = hello_source();
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    let noisy = "httpd -p 8080 -h /www; i=0; while true; do \
                 echo \"noise $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; \
                 i=$((i+1)); usleep 1000; done";
    write(
        src.path(),
        "berth.yml",
        &manifest.replace(
            "    port: 8080\n",
            &format!(
                "    port: 8080\n    command: [\"/bin/sh\", \"-c\", {}]\n",
                serde_json::to_string(noisy).expect("json")
            ),
        ),
    );
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let web = format!("web.{app}.localhost");
    assert!(
        eventually(Duration::from_secs(30), || tmpfs.free() < 8192),
        "the log disk never filled: {} bytes free",
        tmpfs.free()
    );
    let report = format!("cannot write the log of app {app}");
    assert!(
        eventually(Duration::from_secs(10), || s.server_log().contains(&report)),
        "the full log disk is reported:\n{}",
        tail(&s.server_log(), 20)
    );
    // Full for a while: the server, the app and the store carry on.
    let full_since = Instant::now();
    let mut served = 0;
    while full_since.elapsed() < Duration::from_secs(3) {
        assert_eq!(s.get(&web, "/").0, 200, "the app keeps serving");
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http_get(s.api, "127.0.0.1", "/health").map(|r| r.0).ok(),
        Some(200)
    );
    s.ok(&["env", "set", "FULL=1", "-a", &app]);
    assert!(s.ok(&["env", "-a", &app]).contains("FULL=1"));
    s.ok(&["logs", "-a", &app]);
    let ps = s.json(&["ps", "--json", "-a", &app]);
    assert!(ps[0]["state"] == "running", "{ps:#}");
    // A build and rollout while its output cannot be stored still goes through.
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    assert_eq!(s.get(&web, "/").0, 200);
    let log = s.server_log();
    assert_eq!(
        log.matches(&report).count(),
        1,
        "reported once, not per line:\n{}",
        tail(&log, 20)
    );

    // Room again: writing resumes, and the log says what was lost.
    let freed = Instant::now();
    tmpfs.resize("16m");
    let resumed = eventually(Duration::from_secs(15), || {
        let logs = s.ok(&["logs", "-a", &app]);
        logs.lines()
            .skip_while(|l| !l.contains("log lines were lost"))
            .any(|l| l.contains("noise"))
    });
    assert!(
        resumed,
        "logging did not resume:\n{}",
        tail(&s.ok(&["logs", "-a", &app]), 10)
    );
    let resumed_after = freed.elapsed();
    let logs = s.ok(&["logs", "-a", &app]);
    let lost: u64 = logs
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("berth")?;
            rest.trim()
                .split_once(" log lines were lost")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(lost > 0, "the loss is counted: {}", tail(&logs, 10));
    // The stored log is whole NDJSON: no torn line from the writes cut short.
    // (every segment of the app's log, `logs/<app>/*.ndjson`).
    let mut file = String::new();
    for segment in std::fs::read_dir(tmpfs.0.join(&app)).expect("app log dir") {
        let segment = segment.expect("a segment").path();
        file.push_str(&std::fs::read_to_string(&segment).expect("a segment's lines"));
    }
    assert!(file.contains("noise"), "the app's lines are in its log dir");
    let torn = file
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .count();
    assert_eq!(torn, 0, "torn lines in the app log");
    let log = s.server_log();
    assert_eq!(log.matches(&report).count(), 1, "still reported once");
    println!(
        "reliability: log disk full (512 KiB tmpfs) for {:.1} s: reported 1 time, {lost} lines lost and counted, \
         app answered {served}/{served} requests, redeploy succeeded, writing resumed {:.1} s after space was freed, torn lines: {torn}",
        freed.duration_since(full_since).as_secs_f64(),
        resumed_after.as_secs_f64()
    );
    s.stop();
    drop(tmpfs);
}
