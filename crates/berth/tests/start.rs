//! `berth start` against the real engine: it serves the app on its printed URL,
//! copies an edited served file into the running container without a build,
//! rebuilds on a Dockerfile change, leaves nothing of its rack after SIGINT, and
//! cleans up after a `kill -9` on the next start.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `berth start` process with its output in files.
struct Start {
    child: Option<Child>,
    out: PathBuf,
}

impl Start {
    fn spawn(src: &Path, tmp: &Path, home: &Path, n: usize) -> Start {
        let out = tmp.join(format!("start-{n}.out"));
        let err = tmp.join(format!("start-{n}.err"));
        let child = Command::new(BERTH)
            .arg("start")
            .current_dir(src)
            .env("TMPDIR", tmp)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("BERTH_HOST")
            .env_remove("BERTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(err).expect("stderr file"))
            .spawn()
            .expect("spawn berth start");
        Start {
            child: Some(child),
            out,
        }
    }

    fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let err = std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", tail(&out, 40), tail(&err, 20))
    }

    /// The router port of the printed `serving http://web.APP.localhost:PORT/`.
    fn wait_url(&self, app: &str) -> u16 {
        let prefix = format!("serving http://web.{app}.localhost:");
        let mut port = None;
        let found = eventually(Duration::from_secs(90), || {
            let out = std::fs::read_to_string(&self.out).unwrap_or_default();
            port = out.lines().find_map(|l| {
                let rest = &l[l.find(&prefix)? + prefix.len()..];
                rest.trim_end_matches('/').parse::<u16>().ok()
            });
            port.is_some()
        });
        assert!(found, "berth start printed no URL:\n{}", self.output());
        port.unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
        }
    }

    /// Waits for the exit after a signal; returns whether it exited successfully.
    fn wait_exit(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("berth start did not exit in {limit:?}:\n{}", self.output());
    }
}

impl Drop for Start {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whatever a failed test leaves: containers, networks, volumes and images of
/// the app, and routers of `berth start` data dirs under the test's TMPDIR.
struct Cleanup {
    app: String,
    tmp: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.tmp) {
            for entry in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(entry.path().join("router.pid")) {
                    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
                }
            }
        }
        cleanup_engine(&self.app);
    }
}

fn get(port: u16, app: &str, path: &str) -> (u16, String) {
    http_get(port, &format!("web.{app}.localhost"), path).unwrap_or((0, String::new()))
}

/// Image ids (sorted) carrying the app's label.
fn images(app: &str) -> Vec<String> {
    let mut ids: Vec<String> = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Process containers of the rack: (id, running).
fn rack_containers(rack: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", &format!("label=berth.rack={rack}")])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn rack_of(app: &str) -> String {
    docker(&[
        "ps",
        "--filter",
        &format!("label=berth.app={app}"),
        "--format",
        "{{.Label \"berth.rack\"}}",
    ])
    .lines()
    .next()
    .unwrap_or_default()
    .trim()
    .to_string()
}

/// Nothing of `rack` is left on the engine.
fn assert_rack_gone(rack: &str, app: &str, what: &str) {
    let gone = eventually(Duration::from_secs(10), || {
        rack_containers(rack).is_empty()
            && docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name=berth-{rack}-"),
            ])
            .trim()
            .is_empty()
            && docker(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=berth.rack={rack}"),
            ])
            .trim()
            .is_empty()
            && images(app).is_empty()
    });
    assert!(
        gone,
        "{what}: the rack {rack} left containers {:?}, networks {:?}, volumes {:?}, images {:?}",
        rack_containers(rack),
        docker(&["network", "ls", "--filter", &format!("name=berth-{rack}-")]),
        docker(&[
            "volume",
            "ls",
            "--filter",
            &format!("label=berth.rack={rack}")
        ]),
        images(app)
    );
}

#[test]
fn start_serves_syncs_rebuilds_and_cleans_up() {
    let src = hello_source();
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let app = unique_app("devstart");
    let _cleanup = Cleanup {
        app: app.clone(),
        tmp: tmp.path().to_path_buf(),
    };
    // The app's name, a volume (so the clean-up of volumes is seen), a required
    // variable from .env, which must not reach the image.
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    let manifest = manifest
        .replace("app: hello", &format!("app: {app}"))
        .replace("  - GREETING=hello", "  - GREETING=hello\n  - DEV_SECRET")
        .replace(
            "    port: 8080",
            "    port: 8080\n    volumes: [data:/data]",
        );
    write(src.path(), "berth.yml", &manifest);
    write(src.path(), ".env", "DEV_SECRET=from-dotenv\n");
    // The whole source goes into /src too (so a synced file has two places, and
    // /src shows what was uploaded); the CGI shows DEV_SECRET and /src.
    let dockerfile = std::fs::read_to_string(src.path().join("Dockerfile")).expect("Dockerfile");
    write(
        src.path(),
        "Dockerfile",
        &dockerfile.replace("COPY www /www", "COPY www /www\nCOPY . /src"),
    );
    write(
        src.path(),
        "www/cgi-bin/env",
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"secret=$DEV_SECRET\"\nls -a /src\ncat /src/www/index.html\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            src.path().join("www/cgi-bin/env"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }

    // Without .env and a terminal, the missing variable is named with the fix.
    std::fs::rename(src.path().join(".env"), tmp.path().join("dotenv")).expect("move .env");
    let out = Command::new(BERTH)
        .arg("start")
        .current_dir(src.path())
        .env("TMPDIR", tmp.path())
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("berth start");
    let text = stderr(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("DEV_SECRET") && text.contains(".env"),
        "error names the variable and .env: {text}"
    );
    std::fs::rename(tmp.path().join("dotenv"), src.path().join(".env")).expect("move .env back");

    let mut start = Start::spawn(src.path(), tmp.path(), home.path(), 1);
    let port = start.wait_url(&app);
    let (status, body) = get(port, &app, "/");
    assert_eq!(status, 200, "{body}\n{}", start.output());
    assert!(body.contains("Hello from berth"), "{body}");
    let (_, env) = get(port, &app, "/cgi-bin/env");
    assert!(env.contains("secret=from-dotenv"), "{env}");
    assert!(env.contains("Dockerfile"), "{env}");
    assert!(
        !env.lines().any(|l| l == ".env"),
        ".env stays out of the image: {env}"
    );
    let rack = rack_of(&app);
    assert!(rack.starts_with('s'), "rack label of berth start: {rack:?}");
    let built = images(&app);

    // An edited served file is in the container within 2 s, without a build.
    write(
        src.path(),
        "www/index.html",
        "<h1>edited while running</h1>\n",
    );
    let synced = eventually(Duration::from_secs(2), || {
        get(port, &app, "/").1.contains("edited while running")
    });
    assert!(
        synced,
        "the edit was not synced in 2 s:\n{}",
        start.output()
    );
    assert!(
        get(port, &app, "/cgi-bin/env")
            .1
            .contains("edited while running"),
        "synced to every place the Dockerfile copies it"
    );
    assert_eq!(images(&app), built, "no new image for a synced file");

    // A Dockerfile change builds and rolls a new image.
    let dockerfile = std::fs::read_to_string(src.path().join("Dockerfile")).expect("Dockerfile");
    write(
        src.path(),
        "Dockerfile",
        &format!(
            "{dockerfile}RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo rebuilt > /www/rebuilt.txt\"]\n"
        ),
    );
    let rebuilt = eventually(Duration::from_secs(60), || {
        get(port, &app, "/rebuilt.txt").1.contains("rebuilt")
    });
    assert!(
        rebuilt,
        "no rebuild after a Dockerfile change:\n{}",
        start.output()
    );
    assert!(
        images(&app).iter().any(|id| !built.contains(id)),
        "a new image id after the rebuild"
    );

    // SIGINT removes everything of the rack, and the private data dir.
    start.signal("INT");
    assert!(
        start.wait_exit(Duration::from_secs(60)),
        "{}",
        start.output()
    );
    assert_rack_gone(&rack, &app, "after SIGINT");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("berth-start-"))
        .collect();
    assert!(leftovers.is_empty(), "the data dir is removed");

    // kill -9 leaves containers and the router; the next start removes them first.
    let mut crashed = Start::spawn(src.path(), tmp.path(), home.path(), 2);
    crashed.wait_url(&app);
    let old = rack_containers(&rack);
    assert!(!old.is_empty());
    let data = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("berth-start-"))
        .map(|e| e.path())
        .expect("the data dir of berth start");
    let router_pid = std::fs::read_to_string(data.join("router.pid")).expect("router.pid");
    crashed.signal("KILL");
    crashed.wait_exit(Duration::from_secs(10));
    assert_eq!(rack_containers(&rack), old, "kill -9 cleans nothing up");

    let mut again = Start::spawn(src.path(), tmp.path(), home.path(), 3);
    let port = again.wait_url(&app);
    assert_eq!(get(port, &app, "/rebuilt.txt").0, 200, "{}", again.output());
    let now = rack_containers(&rack);
    assert_eq!(now.len(), 1, "one process, no duplicates: {now:?}");
    assert!(
        old.iter().all(|id| !now.contains(id)),
        "the crashed run's containers are gone"
    );
    assert!(
        !Path::new(&format!("/proc/{}", router_pid.trim())).exists(),
        "the crashed run's router was stopped"
    );
    again.signal("INT");
    assert!(
        again.wait_exit(Duration::from_secs(60)),
        "{}",
        again.output()
    );
    assert_rack_gone(&rack, &app, "after the second SIGINT");
}
