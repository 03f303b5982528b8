//! Resources against the real engine: an app whose web service keeps notes in
//! a postgres resource (examples/notes) and pings a redis one. The data
//! survives a redeploy, a rollback and a server restart; `resources` masks the
//! password and `resources url` reveals it; a dump restored into a fresh app
//! gives the same rows; a release may not change a resource's image, `resources
//! upgrade` does (a backup first, back on the old image when the new one fails
//! its check); deleting the app keeps the resource volumes unless `--volumes`.
//!
//! The postgres, redis and psql images are built FROM scratch from Debian's
//! packages by scripts/debian-images.sh, once per engine (cached by tag).

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const IMAGES: &[(&str, &str)] = &[
    ("postgres", "berth-test/postgres:15"),
    ("redis", "berth-test/redis:7"),
    ("psql", "berth-test/psql:15"),
];

/// Debian's psql (postgresql-client-15, installed by scripts/setup-test-host.sh).
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// Builds the test images that are not on the engine yet.
fn ensure_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/debian-images.sh");
    for (what, tag) in IMAGES {
        if docker(&["image", "inspect", "--format", "{{.Id}}", tag])
            .trim()
            .is_empty()
        {
            let out = Command::new("bash")
                .arg(&script)
                .arg(what)
                .output()
                .expect("run debian-images.sh");
            assert!(
                out.status.success(),
                "debian-images.sh {what} failed:\n{}",
                stderr(&out)
            );
        }
    }
}

/// A second name for a test image, standing for a new version of it; untagged
/// when dropped, whatever happened.
struct Tag(String);

impl Tag {
    fn new(image: &str, repository: &str) -> Tag {
        let tag = format!("{repository}:next-{}", std::process::id());
        docker(&["tag", image, &tag]);
        Tag(tag)
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

fn notes_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp source dir");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notes"),
        dir.path(),
    );
    dir
}

fn host(app: &str) -> String {
    format!("web.{app}.localhost")
}

/// The notes of `app`, one per line.
fn notes(server: &Server, app: &str) -> String {
    let (status, body) = server.get(&host(app), "/cgi-bin/list");
    assert_eq!(status, 200, "{body}");
    body.trim().to_string()
}

fn resource(server: &Server, app: &str, name: &str) -> serde_json::Value {
    server.json(&["resources", "info", name, "-a", app, "--json"])
}

fn volumes_of(app: &str) -> Vec<String> {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[test]
fn a_database_keeps_its_data_through_releases_restarts_and_backups() {
    ensure_images();
    let mut server = Server::start();
    let app = server.create_app("rsc");
    let src = notes_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);

    let (status, body) = server.get(&host(&app), "/cgi-bin/add?first");
    assert_eq!((status, body.trim()), (200, "added"), "{body}");
    assert_eq!(notes(&server, &app), "first");
    let (_, pong) = server.get(&host(&app), "/cgi-bin/ping");
    assert_eq!(pong.trim(), "PONG", "redis answers the app");

    // Listed with the password masked; `url` reveals it.
    let url = server.ok(&["resources", "url", "db", "-a", &app]);
    let url = url.trim();
    let password = url
        .strip_prefix("postgres://app:")
        .and_then(|rest| rest.strip_suffix("@db:5432/app"))
        .unwrap_or_else(|| panic!("unexpected URL {url}"));
    assert!(password.len() >= 16, "{url}");
    let table = server.ok(&["resources", "-a", &app]);
    for part in [
        "NAME",
        "TYPE",
        "STATUS",
        "URL",
        "postgres://app:****@db:5432/app",
        "redis://default:****@cache:6379",
        "running",
    ] {
        assert!(table.contains(part), "{part} missing from:\n{table}");
    }
    assert!(!table.contains(password), "password shown:\n{table}");
    let db = resource(&server, &app, "db");
    assert_eq!(db["env"], serde_json::json!(["DB_URL", "DATABASE_URL"]));
    let db_process = db["process"].as_str().expect("a process").to_string();

    // `resources proxy`: a local port reaching the resource through the API.
    let cache_url = server.ok(&["resources", "url", "cache", "-a", &app]);
    let cache_password = cache_url
        .trim()
        .strip_prefix("redis://default:")
        .and_then(|rest| rest.strip_suffix("@cache:6379"))
        .unwrap_or_else(|| panic!("unexpected URL {cache_url}"))
        .to_string();
    let port = free_port();
    let mut proxy = spawn_cli(
        &server,
        Path::new("."),
        &[
            "resources",
            "proxy",
            "cache",
            "-a",
            &app,
            "--port",
            &port.to_string(),
        ],
    );
    let ping = || -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "*2\r\n$4\r\nAUTH\r\n${}\r\n{cache_password}\r\n*1\r\n$4\r\nPING\r\n",
            cache_password.len()
        )?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"+PONG\r\n") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).to_string())
    };
    let mut answer = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            answer = ping().unwrap_or_else(|e| e.to_string());
            answer == "+OK\r\n+PONG\r\n"
        }),
        "redis through the proxy answered {answer:?}"
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
    // And a psql on this machine reads the app's rows through one.
    let port = free_port();
    let mut proxy = spawn_cli(
        &server,
        Path::new("."),
        &[
            "resources",
            "proxy",
            "db",
            "-a",
            &app,
            "--port",
            &port.to_string(),
        ],
    );
    let local_url = format!("postgres://app:{password}@127.0.0.1:{port}/app");
    let mut rows = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let out = Command::new(PSQL)
                .args([&local_url, "-Atc", "SELECT body FROM notes"])
                .output()
                .expect("run psql");
            rows = format!("{}{}", stdout(&out), stderr(&out));
            rows.trim() == "first"
        }),
        "psql through the proxy: {rows}"
    );
    let _ = proxy.kill();
    let _ = proxy.wait();

    // A new release and a rollback replace the web process, not the database.
    server.ok(&["env", "set", "X=1", "-a", &app, "--promote"]);
    assert_eq!(notes(&server, &app), "first", "data lost by a release");
    server.ok(&["releases", "rollback", "R1", "-a", &app]);
    assert_eq!(notes(&server, &app), "first", "data lost by a rollback");
    assert_eq!(
        resource(&server, &app, "db")["process"],
        db_process.as_str(),
        "a release replaced the database"
    );

    // A server restart adopts it as it is.
    server.stop();
    server.spawn();
    assert!(
        eventually(Duration::from_secs(20), || {
            server.get(&host(&app), "/cgi-bin/list").1.trim() == "first"
        }),
        "data after a server restart: {}",
        server.get(&host(&app), "/cgi-bin/list").1
    );

    // The reconciler restarts a crashed resource, like any process.
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.process={db_process}"),
    ]);
    assert!(
        !container.trim().is_empty(),
        "no container for {db_process}"
    );
    docker(&["kill", container.trim()]);
    assert!(
        eventually(Duration::from_secs(30), || {
            server.get(&host(&app), "/cgi-bin/list").1.trim() == "first"
        }),
        "data after a crash of the database: {}",
        server.get(&host(&app), "/cgi-bin/list").1
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            resource(&server, &app, "db")["status"] == "running"
        }),
        "the restarted database passes its protocol check again: {}",
        resource(&server, &app, "db")
    );
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let restarts = ps
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == db_process.as_str()))
        .map(|p| p["restarts"].clone());
    assert_eq!(
        restarts,
        Some(serde_json::json!(1)),
        "the same process, restarted: {ps}"
    );

    // A deploy may not change a resource's image.
    let other = src.path().join("berth.yml");
    let text = std::fs::read_to_string(&other).expect("berth.yml");
    std::fs::write(
        &other,
        text.replace("berth-test/postgres:15}", "berth-test/postgres:16}"),
    )
    .expect("write berth.yml");
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("runs image berth-test/postgres:15")
            && said.contains("berth resources upgrade db --image berth-test/postgres:16"),
        "{said}"
    );
    std::fs::write(&other, text.clone()).expect("write berth.yml");

    // `resources upgrade`: refusals first, each a 4xx naming the fix, nothing changed.
    let next_tag = Tag::new("berth-test/postgres:15", "berth-test/postgres");
    let next = next_tag.0.clone();
    for (args, expected) in [
        (
            vec!["nope", "--image", next.as_str()],
            "has no resource nope",
        ),
        (
            vec!["db", "--image", "berth-test/postgres:rup-missing"],
            "docker load",
        ),
        (
            vec!["db", "--image", "berth-test/postgres:15"],
            "already runs image berth-test/postgres:15",
        ),
    ] {
        let mut cmd = vec!["resources", "upgrade"];
        cmd.extend(args);
        cmd.extend(["-a", app.as_str()]);
        let out = server.cli(&cmd);
        assert!(!out.status.success(), "{cmd:?} succeeded");
        assert!(stderr(&out).contains(expected), "{cmd:?}: {}", stderr(&out));
    }
    assert_eq!(
        resource(&server, &app, "db")["process"],
        db_process.as_str()
    );

    // A compatible image (the same one under another tag): the rows stay, a
    // backup is kept on the server, and the new image is recorded.
    let said = server.ok(&["resources", "upgrade", "db", "--image", &next, "-a", &app]);
    assert!(said.contains(&format!("runs image {next}")), "{said}");
    let backups = server.data.path().join("rack/resource-backups").join(&app);
    let dumps: Vec<_> = std::fs::read_dir(&backups)
        .unwrap_or_else(|e| panic!("{}: {e}", backups.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(said.contains(&dumps[0].display().to_string()), "{said}");
    assert!(
        std::fs::read(&dumps[0])
            .expect("backup")
            .starts_with(b"PGDMP")
    );
    assert_eq!(notes(&server, &app), "first", "data lost by an upgrade");
    let db = resource(&server, &app, "db");
    assert_eq!(
        (db["image"].as_str(), db["status"].as_str()),
        (Some(next.as_str()), Some("running")),
        "{db}"
    );

    // berth.yml must follow: the old image is refused, the new one deploys.
    let out = server.cli_in(src.path(), &["deploy", ".", "-a", &app]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("berth.yml should say `image: {next}`")),
        "{said}"
    );

    // An image that cannot serve the data: refused after the check, the old
    // image serves again with the same rows, the backup named.
    let out = server.cli(&[
        "resources",
        "upgrade",
        "db",
        "--image",
        "berth-test/psql:15",
        "-a",
        &app,
    ]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("runs image {next} again"))
            && said.contains("berth resources restore")
            && said.contains("resource-backups"),
        "{said}"
    );
    assert_eq!(notes(&server, &app), "first", "data after a failed upgrade");
    let db = resource(&server, &app, "db");
    assert_eq!(
        (db["image"].as_str(), db["status"].as_str()),
        (Some(next.as_str()), Some("running")),
        "{db}"
    );
    std::fs::write(
        &other,
        text.replace("berth-test/postgres:15}", &format!("{next}}}")),
    )
    .expect("write berth.yml");
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    assert_eq!(notes(&server, &app), "first");
    std::fs::write(&other, text).expect("write berth.yml");
    // A redis resource's backup is a tar of its volume.
    let next_redis = Tag::new("berth-test/redis:7", "berth-test/redis");
    let said = server.ok(&[
        "resources",
        "upgrade",
        "cache",
        "--image",
        &next_redis.0,
        "-a",
        &app,
    ]);
    assert!(said.contains(".tar (on the server)"), "{said}");
    let (_, pong) = server.get(&host(&app), "/cgi-bin/ping");
    assert_eq!(pong.trim(), "PONG", "redis answers after its upgrade");

    // Backup, then restore into a fresh app: the same rows.
    let dump = tempfile::NamedTempFile::new().expect("temp file");
    let out = server
        .cli_command(Path::new("."), &["resources", "backup", "db", "-a", &app])
        .stdout(Stdio::from(dump.reopen().expect("reopen")))
        .output()
        .expect("run berth");
    assert!(out.status.success(), "{}", stderr(&out));
    let size = std::fs::metadata(dump.path()).expect("dump").len();
    let head = std::fs::read(dump.path()).expect("dump");
    assert!(
        head.starts_with(b"PGDMP"),
        "not a pg_dump custom archive ({size} bytes)"
    );

    let fresh = server.create_app("rsc2");
    server.ok_in(src.path(), &["deploy", ".", "-a", &fresh]);
    let (_, before) = server.get(&host(&fresh), "/cgi-bin/list");
    assert!(
        before.contains("notes"),
        "a fresh app has no table: {before}"
    );
    let out = server
        .cli_command(
            Path::new("."),
            &["resources", "restore", "db", "-a", &fresh],
        )
        .stdin(Stdio::from(std::fs::File::open(dump.path()).expect("dump")))
        .output()
        .expect("run berth");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(notes(&server, &fresh), "first");
    let fresh_url = server.ok(&["resources", "url", "db", "-a", &fresh]);
    assert_ne!(fresh_url.trim(), url, "each app has its own password");

    // Deleting keeps the resource volumes unless --volumes.
    let out = server.cli(&["apps", "delete", &fresh, "--yes"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--volumes"), "{}", stderr(&out));
    assert_eq!(volumes_of(&fresh).len(), 2, "the db and cache volumes");
    server.ok(&["apps", "delete", &fresh, "--volumes", "--yes"]);
    assert!(volumes_of(&fresh).is_empty());
    server.ok(&["apps", "delete", &app, "--volumes", "--yes"]);
    assert!(volumes_of(&app).is_empty());
}
