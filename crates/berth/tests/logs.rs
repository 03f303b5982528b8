//! Logs that are kept and searchable: the retention holds under a process
//! that prints as fast as it can, it changes at run time (admin only,
//! audited, kept across restarts), and `berth rack logs` shows the server's
//! and the router's own logs.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// The segment size for bounds this small (a sixteenth, at least 256 KiB).
const SEGMENT: u64 = 256 * 1024;

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The highest segment number in `dir` (segments are numbered as written).
fn last_segment(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.split('_').next()?.parse::<u64>().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn retention_holds_under_a_fast_printer_and_changes_at_run_time() {
    let mut s = Server::start_with(&["--log-max-size", "4MiB", "--log-retention", "7d"]);
    let settings = s.json(&["rack", "settings", "--json"]);
    assert_eq!(settings["log_max_size_bytes"], 4 * MIB);
    assert_eq!(settings["log_retention_secs"], 7 * 86_400);

    let app = s.create_app("lgk-flood");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "services:\n  flood:\n    build: .\n    command: [sh, -c, \"yes lgk-flood-line-padded-to-look-like-a-real-log-line-of-a-busy-app\"]\n",
    );
    s.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let dir = s.data.path().join("rack/logs").join(&app);

    // Watch the log dir while the printer fills segment after segment: at
    // least three times the bound must go through it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut largest = 0;
    // Looked at once at least: a fast printer may have gone past the target
    // before the first look.
    loop {
        let bytes = dir_bytes(&dir);
        largest = largest.max(bytes);
        assert!(
            bytes <= 4 * MIB + SEGMENT,
            "the log dir holds {bytes} bytes, over the bound 4 MiB + one segment"
        );
        if last_segment(&dir) >= 3 * 4 * MIB / SEGMENT {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the printer's lines did not fill {} segments in 60 s (at {}); server log:\n{}",
            3 * 4 * MIB / SEGMENT,
            last_segment(&dir),
            tail(&s.server_log(), 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(largest > 3 * MIB, "the bound was reached: {largest}");

    // The newest lines are there, and searchable.
    let found = s.ok(&[
        "logs",
        "-a",
        &app,
        "--grep",
        "lgk-flood-line",
        "--tail",
        "3",
    ]);
    assert_eq!(found.lines().count(), 3, "{found}");

    // A smaller bound at run time, by an admin only; audited.
    let deploy = s.ok(&["tokens", "create", "--role", "deploy"]);
    let out = cli_for(
        &s.api_url(),
        deploy.trim(),
        s.home.path(),
        None,
        Path::new("."),
        &["rack", "set", "log-max-size=1MiB"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "a deploy token changed the settings");
    let bad = s.cli(&["rack", "set", "log-max-size=10KiB"]);
    assert!(stderr(&bad).contains("at least 1MiB"), "{}", stderr(&bad));
    let set = s.ok(&["rack", "set", "log-max-size=2MiB", "log-retention=3d"]);
    assert!(set.contains("2.0 MiB") && set.contains("3d"), "{set}");
    let shrunk = eventually(Duration::from_secs(20), || {
        dir_bytes(&dir) <= 2 * MIB + SEGMENT
    });
    assert!(shrunk, "the log dir still holds {} bytes", dir_bytes(&dir));
    for _ in 0..20 {
        let bytes = dir_bytes(&dir);
        assert!(
            bytes <= 2 * MIB + SEGMENT,
            "{bytes} bytes over the new bound"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let audit = s.ok(&["audit"]);
    assert!(audit.contains("/rack/settings"), "{audit}");

    // A restart keeps what was set, over the flags.
    s.stop();
    s.spawn();
    let settings = s.json(&["rack", "settings", "--json"]);
    assert_eq!(settings["log_max_size_bytes"], 2 * MIB);
    assert_eq!(settings["log_retention_secs"], 3 * 86_400);

    // A deleted app's log is removed.
    s.ok(&["apps", "delete", &app, "--yes"]);
    assert!(!dir.exists(), "the log of a deleted app is kept");
}

#[test]
fn rack_logs_show_the_server_and_the_router_and_follow() {
    let s = Server::start();
    let out = s.ok(&["rack", "logs", "--tail", "200"]);
    assert!(
        out.contains(" server ") && out.contains("berth server ready"),
        "{out}"
    );
    assert!(
        out.contains(" router ") && out.contains("berth router ready"),
        "{out}"
    );

    let deploy = s.ok(&["tokens", "create", "--role", "deploy"]);
    let refused = cli_for(
        &s.api_url(),
        deploy.trim(),
        s.home.path(),
        None,
        Path::new("."),
        &["rack", "logs"],
    )
    .output()
    .unwrap();
    assert!(
        !refused.status.success(),
        "a deploy token read the rack's logs"
    );

    // Following: a line the server logs after the command started shows up.
    let mut follow = s
        .cli_command(Path::new("."), &["rack", "logs", "--follow", "--tail", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The follower is connected once the server answers it; then log a line.
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["rack", "set", "log-retention=5d"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("log retention changed") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        found,
        "the followed rack log did not show the change: {seen:?}"
    );
}
