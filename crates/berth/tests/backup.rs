//! `berth rack backup` and `berth rack restore` against the real engine: a
//! backup taken while a deploy runs, a restored rack that serves the same apps
//! with the same env, tokens and releases, and damaged archives, wrong keys and
//! wrong passphrases refused without leaving a half-restored data dir.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// `berth rack backup ARGS > file` against `s`.
fn backup_to(s: &Server, file: &Path, args: &[&str]) {
    let mut all = vec!["rack", "backup"];
    all.extend_from_slice(args);
    let out = s
        .cli_command(Path::new("."), &all)
        .stdout(std::fs::File::create(file).expect("archive file"))
        .output()
        .expect("run berth rack backup");
    assert!(
        out.status.success(),
        "rack backup {args:?}: {}\n{}",
        stderr(&out),
        tail(&s.server_log(), 30)
    );
}

/// `berth rack restore --data-dir DIR ARGS < archive` (no server involved).
fn restore(archive: &[u8], dir: &Path, args: &[&str]) -> Output {
    let file = tempfile::NamedTempFile::new().expect("temp archive");
    std::fs::write(file.path(), archive).expect("write archive");
    std::process::Command::new(BERTH)
        .args(["rack", "restore", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdin(std::fs::File::open(file.path()).expect("open archive"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run berth rack restore")
}

/// A restore that must be refused with `needle` in its message, leaving `dir`
/// absent and no staging dir beside it.
fn refused(archive: &[u8], dir: &Path, args: &[&str], needle: &str) {
    let out = restore(archive, dir, args);
    assert!(!out.status.success(), "restore succeeded: {}", stdout(&out));
    assert!(
        stderr(&out).contains(needle),
        "restore's error lacks {needle:?}: {}",
        stderr(&out)
    );
    assert!(!dir.exists(), "{} was left behind", dir.display());
    let parent = dir.parent().expect("parent");
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .expect("read parent")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "staging dirs left: {leftovers:?}");
}

fn releases(s: &Server, app: &str) -> Vec<serde_json::Value> {
    s.json(&["releases", "-a", app, "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_restored_rack_serves_the_same_apps_env_tokens_and_releases() {
    let mut s = Server::start();
    let app = s.create_app("bkp");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &app]);
    let secret = format!("s3cr3t-{}", unique_app("v"));
    s.ok(&[
        "env",
        "set",
        &format!("GREETING={secret}"),
        "--promote",
        "-a",
        &app,
    ]);
    let out = s.cli(&["tokens", "create", "--role", "deploy", "--app", &app]);
    assert!(out.status.success(), "tokens create: {}", stderr(&out));
    let deploy_token = stdout(&out).trim().to_string();

    let work = tempfile::tempdir().expect("work dir");
    // A backup while a deploy runs: the snapshot is consistent and restorable.
    let deploy = spawn_cli(&s, src.path(), &["deploy", "-a", &app]);
    std::thread::sleep(Duration::from_millis(300));
    let during = work.path().join("during.tar");
    backup_to(&s, &during, &[]);
    let deployed = deploy.wait_with_output().expect("deploy");
    assert!(deployed.status.success(), "deploy: {}", stderr(&deployed));
    let key_file = s.data.path().join("rack/master.key");
    let during_dir = work.path().join("during/rack");
    let out = restore(
        &std::fs::read(&during).expect("read"),
        &during_dir,
        &["--master-key", key_file.to_str().expect("utf-8 path")],
    );
    assert!(
        out.status.success(),
        "restore of the mid-deploy backup: {}",
        stderr(&out)
    );

    // The backup to restore, and what the rack looks like at that moment.
    let archive_file = work.path().join("rack.tar");
    backup_to(&s, &archive_file, &[]);
    let archive = std::fs::read(&archive_file).expect("read archive");
    let before = releases(&s, &app);
    assert_eq!(before.len(), 3, "three releases: {before:?}");

    // The old rack goes away: its server and router stop, and its app's
    // containers are removed, so the restored rack must start them itself.
    s.stop();
    s.stop_router();
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=berth.app={app}"),
        "--filter",
        "label=berth.process",
    ]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }

    // Refusals first, each leaving nothing behind.
    let fresh = tempfile::tempdir().expect("restore dir");
    let target = fresh.path().join("rack");
    refused(
        &archive[..archive.len() / 2],
        &target,
        &["--master-key", key_file.to_str().expect("utf-8")],
        "damaged or truncated",
    );
    let mut flipped = archive.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    refused(
        &flipped,
        &target,
        &["--master-key", key_file.to_str().expect("utf-8")],
        "damaged or truncated",
    );
    refused(&archive, &target, &[], "--master-key");
    let wrong_key = work.path().join("wrong.key");
    std::fs::write(&wrong_key, [7u8; 32]).expect("write key");
    refused(
        &archive,
        &target,
        &["--master-key", wrong_key.to_str().expect("utf-8")],
        "does not open this store's sealed values",
    );
    let occupied = work.path().join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("berth.db"), b"someone's").expect("write");
    let out = restore(
        &archive,
        &occupied,
        &["--master-key", key_file.to_str().expect("utf-8")],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("is not empty"),
        "a non-empty target: {}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(occupied.join("berth.db")).expect("still there"),
        b"someone's"
    );

    // The real restore, into an empty directory.
    std::fs::create_dir_all(&target).expect("mkdir");
    let out = restore(
        &archive,
        &target,
        &["--master-key", key_file.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert!(stdout(&out).contains("1 apps"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(target.join("ca/ca.pem")).ok(),
        std::fs::read(s.data.path().join("rack/ca/ca.pem")).ok(),
        "the cluster CA comes back"
    );

    let mut r = Server::start_on(fresh, &s.token);
    r.apps.push(app.clone());
    let host = format!("web.{app}.localhost");
    let served = eventually(Duration::from_secs(60), || {
        r.get(&host, "/cgi-bin/env").1.contains(&secret)
    });
    assert!(
        served,
        "the restored rack serves the app with its env: {:?}\n{}",
        r.get(&host, "/cgi-bin/env"),
        tail(&r.server_log(), 40)
    );
    assert_eq!(r.ok(&["env", "get", "GREETING", "-a", &app]).trim(), secret);
    let header = format!("Bearer {deploy_token}");
    let (status, body) = request(
        r.api,
        "127.0.0.1",
        "GET",
        &format!("/apps/{app}/releases"),
        Some(&header),
        None,
    )
    .expect("request");
    assert_eq!(status, 200, "the deploy token works: {body}");
    let after = releases(&r, &app);
    let key = |rs: &[serde_json::Value]| -> Vec<(String, String, String)> {
        rs.iter()
            .map(|r| {
                (
                    r["id"].to_string(),
                    r["status"].to_string(),
                    r["build"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(key(&after), key(&before), "the same releases");

    // --with-key: sealed with a passphrase, restored without --master-key.
    let pass = work.path().join("pass");
    std::fs::write(&pass, "a long passphrase\n").expect("write");
    let sealed_file = work.path().join("sealed.tar");
    backup_to(
        &r,
        &sealed_file,
        &[
            "--with-key",
            "--passphrase-file",
            pass.to_str().expect("utf-8"),
        ],
    );
    let sealed = std::fs::read(&sealed_file).expect("read");
    assert!(
        !sealed.windows(7).any(|w| w == b"ustar  "),
        "a sealed archive shows no tar headers"
    );
    let keyed = tempfile::tempdir().expect("dir");
    let keyed_target: PathBuf = keyed.path().join("rack");
    let wrong = work.path().join("wrong-pass");
    std::fs::write(&wrong, "another passphrase\n").expect("write");
    refused(
        &sealed,
        &keyed_target,
        &["--passphrase-file", wrong.to_str().expect("utf-8")],
        "passphrase does not open the archive",
    );
    let out = restore(
        &sealed,
        &keyed_target,
        &["--passphrase-file", pass.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "sealed restore: {}", stderr(&out));
    assert_eq!(
        std::fs::read(keyed_target.join("master.key")).expect("key restored"),
        std::fs::read(&key_file).expect("old key")
    );
    // A too-short passphrase is refused by the server before any work.
    std::fs::write(&wrong, "short\n").expect("write");
    let out = r.cli(&[
        "rack",
        "backup",
        "--with-key",
        "--passphrase-file",
        wrong.to_str().expect("utf-8"),
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("at least 8"),
        "{}",
        stderr(&out)
    );

    // The engine loses the app's image (a restore onto another engine): the
    // app is reported, not failing silently, and a deploy brings it back.
    r.stop();
    r.stop_router();
    for filter in ["ps -aq", "images -q"] {
        let mut args: Vec<&str> = filter.split(' ').collect();
        let label = format!("label=berth.app={app}");
        args.extend(["--filter", &label]);
        for id in docker(&args).split_whitespace() {
            let rm = if filter.starts_with("ps") {
                "rm"
            } else {
                "rmi"
            };
            docker(&[rm, "-f", id]);
        }
    }
    r.spawn();
    let reported = eventually(Duration::from_secs(20), || {
        r.json(&["ps", "-a", &app, "--json"])
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["state"] == "image missing"))
    });
    assert!(
        reported,
        "ps shows the missing image: {}\n{}",
        r.ok(&["ps", "-a", &app]),
        tail(&r.server_log(), 30)
    );
    let apps = r.json(&["apps", "--json"]);
    assert!(
        apps.as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["name"] == app && a["status"] == "image missing")),
        "apps shows it: {apps}"
    );
    let logs = r.ok(&["logs", "-a", &app]);
    assert_eq!(
        logs.matches("is not on the Docker engine").count(),
        1,
        "the app log says it once: {logs}"
    );
    assert!(logs.contains("berth deploy"), "and the fix: {logs}");
    r.ok_in(src.path(), &["deploy", "-a", &app]);
    assert!(
        eventually(Duration::from_secs(30), || r
            .get(&host, "/cgi-bin/env")
            .1
            .contains(&secret)),
        "served again after a deploy"
    );
    let apps = r.json(&["apps", "--json"]);
    assert!(
        apps.as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["name"] == app && a["status"] == "running")),
        "apps: {apps}"
    );
    r.stop();
}
