//! `berth install` and `berth uninstall`. This machine runs no systemd, so the
//! files are written under a throwaway root (`--root`), and the server is
//! started with the very command line the unit would run (its ExecStart, the
//! flags from its environment file); a real install here must refuse, having
//! written nothing, and say what to run instead. Where the Debian package's
//! unit is present, only the flags are written. (The package itself is tested
//! by scripts/deb-test.sh.)

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn berth(args: &[&str], home: &Path) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("BERTH_NODE_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The value of `key=` in a systemd file (quotes removed).
fn setting(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
        .trim_matches('"')
        .to_string()
}

/// The server started as the unit would start it, with its paths under the
/// throwaway root; killed (with its router) when dropped.
struct Unit {
    child: Child,
    data: std::path::PathBuf,
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.data.join("router.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

#[test]
fn install_writes_a_unit_that_starts_the_server_and_uninstall_keeps_the_data() {
    let root = tempfile::tempdir().expect("temp root");
    let home = tempfile::tempdir().expect("temp home");
    let r = root.path();
    let (api, http) = (free_port(), free_port());
    let api_flag = format!("127.0.0.1:{api}");
    let http_flag = format!("127.0.0.1:{http}");
    let args = [
        "install",
        "--root",
        &r.to_string_lossy(),
        "--",
        "--api",
        &api_flag,
        "--http",
        &http_flag,
    ];
    let out = berth(&args, home.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing was started"),
        "{}",
        stdout(&out)
    );

    let bin = r.join("usr/local/bin/berth");
    let unit_path = r.join("etc/systemd/system/berth.service");
    let env_path = r.join("etc/berth/server.env");
    let data = r.join("var/lib/berth");
    assert_eq!(std::fs::read(&bin).ok(), std::fs::read(BERTH).ok());
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&unit_path), 0o644);
    assert_eq!(mode(&env_path), 0o600);
    assert_eq!(mode(&data), 0o700);
    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    assert_eq!(setting(&unit, "KillMode"), "process", "{unit}");
    assert_eq!(setting(&unit, "EnvironmentFile"), "-/etc/berth/server.env");

    // ExecStart with $BERTH_FLAGS split at whitespace, as systemd does.
    let env = std::fs::read_to_string(&env_path).expect("env file");
    let flags = setting(&env, "BERTH_FLAGS");
    let exec = setting(&unit, "ExecStart").replace("$BERTH_FLAGS", &flags);
    let words: Vec<String> = exec
        .split_whitespace()
        .map(|w| match w {
            "/usr/local/bin/berth" => bin.to_string_lossy().to_string(),
            "/var/lib/berth" => data.to_string_lossy().to_string(),
            w => w.to_string(),
        })
        .collect();
    assert_eq!(words[1..4], ["server", "--data", &*data.to_string_lossy()]);
    let log = std::fs::File::create(home.path().join("server.log")).expect("log");
    let unit_run = Unit {
        child: Command::new(&words[0])
            .args(&words[1..])
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start the unit's command"),
        data: data.clone(),
    };
    let up = eventually(Duration::from_secs(30), || {
        matches!(http_get(api, "127.0.0.1", "/health"), Ok((200, _)))
    });
    let server_log = || std::fs::read_to_string(home.path().join("server.log")).unwrap_or_default();
    assert!(
        up,
        "the unit's command did not serve the API:\n{}",
        server_log()
    );
    let token = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let apps = Command::new(BERTH)
        .args(["apps"])
        .env("BERTH_HOST", format!("http://127.0.0.1:{api}"))
        .env("BERTH_TOKEN", token.trim())
        .env("HOME", home.path())
        .output()
        .expect("berth apps");
    assert!(apps.status.success(), "{}", stderr(&apps));
    drop(unit_run);

    // Installing again with other flags changes them and nothing else.
    let args = [
        "install",
        "--root",
        &r.to_string_lossy(),
        "--",
        "--api",
        &api_flag,
        "--domain",
        "example.com",
    ];
    let out = berth(&args, home.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(&env_path).expect("env file");
    assert!(
        setting(&env, "BERTH_FLAGS").ends_with("--domain example.com"),
        "{env}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("admin.token"))
            .ok()
            .as_deref(),
        Some(token.as_str())
    );

    // Flags that would not start the server are refused, naming the flag,
    // and the installed files stay as they were.
    let bad = berth(
        &[
            "install",
            "--root",
            &r.to_string_lossy(),
            "--",
            "--api",
            "nowhere",
        ],
        home.path(),
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--api"), "{}", stderr(&bad));
    assert_eq!(std::fs::read_to_string(&env_path).ok(), Some(env));

    // Uninstall removes the unit and keeps the data; --purge deletes it.
    let out = berth(&["uninstall", "--root", &r.to_string_lossy()], home.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("kept the data"), "{}", stdout(&out));
    assert!(!unit_path.exists() && !env_path.exists());
    assert!(data.join("admin.token").exists());
    let out = berth(
        &["uninstall", "--root", &r.to_string_lossy(), "--purge"],
        home.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!data.exists() && !bin.exists());
}

#[test]
fn the_agent_unit_keeps_its_token_out_of_the_unit_and_the_command_line() {
    let root = tempfile::tempdir().expect("temp root");
    let home = tempfile::tempdir().expect("temp home");
    let r = root.path().to_string_lossy().to_string();
    let token = "berth_0123456789abcdef";
    let out = berth(
        &[
            "install",
            "--agent",
            "--root",
            &r,
            "--",
            "--server",
            "https://10.0.0.1:7070",
            "--token",
            token,
            "--ca-sha256",
            "ab12",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = std::fs::read_to_string(root.path().join("etc/systemd/system/berth-agent.service"))
        .expect("agent unit");
    let env_path = root.path().join("etc/berth/agent.env");
    let env = std::fs::read_to_string(&env_path).expect("agent env");
    assert_eq!(mode(&env_path), 0o600);
    assert!(!unit.contains(token), "{unit}");
    assert_eq!(setting(&env, "BERTH_NODE_TOKEN"), token);
    assert_eq!(
        setting(&env, "BERTH_FLAGS"),
        "--server https://10.0.0.1:7070 --ca-sha256 ab12"
    );
    assert_eq!(
        setting(&unit, "ExecStart"),
        "/usr/local/bin/berth agent --data /var/lib/berth-agent $BERTH_FLAGS"
    );
    assert_eq!(mode(&root.path().join("var/lib/berth-agent")), 0o700);
}

#[test]
fn without_systemd_a_real_install_says_what_to_run_and_writes_nothing() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("this machine runs systemd: a real install would install; not tried");
        return;
    }
    let uid = Command::new("id").arg("-u").output().map(|o| stdout(&o));
    if uid.ok().as_deref().map(str::trim) != Some("0") {
        eprintln!("not root: berth install refuses before looking for systemd; not tried");
        return;
    }
    let home = tempfile::tempdir().expect("temp home");
    let before = Path::new("/etc/systemd/system/berth.service").exists();
    let out = berth(&["install", "--", "--api", "127.0.0.1:7070"], home.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("does not run systemd")
            && err.contains("server --data /var/lib/berth --api 127.0.0.1:7070")
            && err.contains("--root"),
        "{err}"
    );
    assert_eq!(
        Path::new("/etc/systemd/system/berth.service").exists(),
        before
    );
}

#[test]
fn where_the_package_installed_berth_only_the_flags_are_written() {
    let root = tempfile::tempdir().expect("temp root");
    let home = tempfile::tempdir().expect("temp home");
    let r = root.path();
    let units = r.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).expect("unit dir");
    let unit = include_str!("../packaging/debian/berth.service");
    std::fs::write(units.join("berth.service"), unit).expect("package unit");
    let out = berth(
        &[
            "install",
            "--root",
            &r.to_string_lossy(),
            "--",
            "--domain",
            "example.com",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(r.join("etc/berth/server.env")).expect("env file");
    assert_eq!(setting(&env, "BERTH_FLAGS"), "--domain example.com");
    assert_eq!(mode(&r.join("var/lib/berth")), 0o700);
    assert!(!r.join("usr/local/bin/berth").exists());
    assert!(!r.join("etc/systemd/system/berth.service").exists());
    assert_eq!(
        std::fs::read_to_string(units.join("berth.service"))
            .ok()
            .as_deref(),
        Some(unit)
    );

    // Removing it is the package manager's business.
    let out = berth(&["uninstall", "--root", &r.to_string_lossy()], home.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apt remove berth"),
        "{}",
        stderr(&out)
    );
    assert!(r.join("etc/berth/server.env").exists());
}
