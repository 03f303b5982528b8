//! Day-two operations against the real engine: named volumes (kept across
//! releases, shared, backed up and restored, guarded on app deletion),
//! registry-free image deploys, Kubernetes Pod specs, `services`,
//! `releases info` and `rack prune`.

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Containers and images a test made with the docker CLI, removed however
/// the test ends.
struct Made {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for c in &self.containers {
            docker(&["rm", "-f", c]);
        }
        for image in &self.images {
            docker(&["rmi", "-f", image]);
        }
    }
}

fn host(service: &str, app: &str) -> String {
    format!("{service}.{app}.localhost")
}

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join("www/cgi-bin").join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"Content-Type: text/plain\"\necho \"\"\n{body}\n"),
    )
    .expect("write CGI script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// Runs the CLI with stdin from `input`.
fn cli_with_stdin(server: &Server, args: &[&str], input: &Path) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_HOST", format!("http://127.0.0.1:{}", server.api))
        .env("BERTH_TOKEN", &server.token)
        .env("HOME", server.home.path())
        .env("XDG_CONFIG_HOME", server.home.path().join("config"))
        .stdin(Stdio::from(std::fs::File::open(input).expect("open input")))
        .output()
        .expect("run berth CLI")
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    let mut names = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("path").display().to_string();
        let mut content = String::new();
        let _ = entry.read_to_string(&mut content);
        names.push(format!("{name}={}", content.trim()));
    }
    names
}

#[test]
fn volumes_outlive_releases_round_trip_and_guard_deletion() {
    let mut server = Server::start();
    let app = server.create_app("vol");
    let src = hello_source();
    write(
        src.path(),
        "berth.yml",
        "services:\n  web:\n    build: .\n    port: 8080\n    health: /\n    termination: {grace: 2}\n    volumes: [data:/data]\n  reader:\n    build: .\n    port: 8080\n    health: /\n    termination: {grace: 2}\n    volumes: [data:/mnt/shared]\n",
    );
    script(
        src.path(),
        "write",
        "echo \"$QUERY_STRING\" > /data/note && echo written",
    );
    script(
        src.path(),
        "read",
        "cat /data/note 2>/dev/null || cat /mnt/shared/note",
    );
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let (status, body) = server.get(&host("web", &app), "/cgi-bin/write?one");
    assert_eq!((status, body.trim()), (200, "written"));
    // Shared: the other service sees the same volume at its own path.
    let (_, body) = server.get(&host("reader", &app), "/cgi-bin/read");
    assert_eq!(body.trim(), "one");

    // A new release (new containers) keeps the data.
    server.ok(&["env", "set", "X=1", "-a", &app, "--promote"]);
    let (_, body) = server.get(&host("web", &app), "/cgi-bin/read");
    assert_eq!(body.trim(), "one", "data lost across releases");

    let table = server.ok(&["volumes", "-a", &app]);
    assert!(
        table.contains("NAME") && table.contains("USED-BY"),
        "{table}"
    );
    assert!(
        table.contains("data") && table.contains("reader,web"),
        "{table}"
    );
    let list = server.json(&["volumes", "-a", &app, "--json"]);
    assert_eq!(list[0]["name"], "data", "{list}");
    assert!(list[0]["size"].as_u64().unwrap_or(0) > 0, "{list}");

    // Backup → change → restore → the backed-up content is back.
    let backup = server.cli(&["volumes", "backup", "data", "-a", &app]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    let names = tar_names(&backup.stdout);
    assert!(names.iter().any(|n| n == "./note=one"), "{names:?}");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &backup.stdout).expect("save backup");
    server.get(&host("web", &app), "/cgi-bin/write?two");
    let (_, body) = server.get(&host("web", &app), "/cgi-bin/read");
    assert_eq!(body.trim(), "two");
    let out = cli_with_stdin(
        &server,
        &["volumes", "restore", "data", "-a", &app],
        file.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, body) = server.get(&host("web", &app), "/cgi-bin/read");
    assert_eq!(body.trim(), "one", "restore did not bring the backup back");
    let missing = server.cli(&["volumes", "backup", "nope", "-a", &app]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no volume nope"),
        "{}",
        stderr(&missing)
    );

    // The helper containers that reached the volume are gone.
    assert!(
        eventually(std::time::Duration::from_secs(10), || docker(&[
            "ps",
            "-aq",
            "--filter",
            "label=berth.helper=volume",
            "--filter",
            &format!("label=berth.app={app}"),
        ])
        .trim()
        .is_empty()),
        "volume helper containers were left behind"
    );

    // Deletion refuses while volumes exist, and disturbs nothing.
    let refused = server.cli(&["apps", "delete", &app]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("--volumes") && err.contains("data"), "{err}");
    let (status, _) = server.get(&host("web", &app), "/");
    assert_eq!(status, 200, "a refused delete stopped the app");
    server.ok(&["apps", "delete", &app, "--volumes"]);
    let left = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    assert!(left.trim().is_empty(), "volumes left: {left}");
}

#[test]
fn image_deploys_pod_specs_and_views() {
    let mut server = Server::start();
    let app = server.create_app("img");
    let src = hello_source();
    // The user's image, built locally with the docker CLI.
    let image = format!("berthtest-{app}:v1");
    let pod_image = format!("berthtest-nginx-{app}:1.14.2");
    let _made = Made {
        containers: vec![],
        images: vec![image.clone(), pod_image.clone()],
    };
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(src.path())
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{}", stderr(&built));
    let empty = tempfile::tempdir().expect("temp dir");
    let deployed = server.cli_in(empty.path(), &["deploy", "--image", &image, "-a", &app]);
    let (out, err) = (stdout(&deployed), stderr(&deployed));
    assert!(deployed.status.success(), "{out}\n{err}");
    assert!(out.contains(&host("web", &app)), "{out}");
    // The server shares this engine, so no layer data needs to travel.
    assert!(err.contains("3 of 3 layers already on the server"), "{err}");
    let (status, body) = server.get(&host("web", &app), "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from berth"), "{body}");
    assert!(
        !docker(&["images", "-q", &image]).trim().is_empty(),
        "the user's own image was removed"
    );

    // services view.
    let services = server.ok(&["services", "-a", &app]);
    assert!(
        services.contains("SERVICE") && services.contains("HEALTHY"),
        "{services}"
    );
    let row = services
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        row,
        ["web", &host("web", &app), "8080", "1", "1"],
        "{services}"
    );

    // releases info: env keys (never values) and the manifest diff.
    server.ok(&["env", "set", "SECRET=s3cret-value", "-a", &app, "--promote"]);
    let info = server.ok(&["releases", "info", "R2", "-a", &app]);
    assert!(info.contains("SECRET"), "{info}");
    assert!(!info.contains("s3cret-value"), "a value leaked: {info}");
    assert!(info.contains("Manifest: unchanged"), "{info}");
    let first = server.json(&["releases", "info", "R1", "-a", &app, "--json"]);
    assert_eq!(first["release"]["build"], "B1", "{first}");
    assert!(
        first["manifest_diff"]
            .as_array()
            .is_some_and(|d| d.iter().any(|l| l == "+     port: 8080")),
        "{first}"
    );

    // A Pod spec written the way the Kubernetes docs write them.
    let pod_app = server.create_app("pod");
    docker(&["tag", &image, &pod_image]);
    let pod = |probe: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  containers:
  - name: nginx
    image: {pod_image}
    command: [\"/bin/httpd\"]
    args: [\"-f\", \"-p\", \"80\", \"-h\", \"/www\"]
    ports:
    - containerPort: 80
    resources:
      limits:
        memory: \"64Mi\"
        cpu: \"500m\"
    readinessProbe:
      httpGet:
        path: {probe}
        port: 80
      periodSeconds: 1
      failureThreshold: 2
    volumeMounts:
    - mountPath: /cache
      name: cache-volume
  volumes:
  - name: cache-volume
    emptyDir: {{}}
"
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // The readiness probe is the health check: a path that 404s fails the deploy.
    write(dir.path(), "pod.yaml", &pod("/missing"));
    let failed = server.cli_in(dir.path(), &["deploy", "-f", "pod.yaml", "-a", &pod_app]);
    assert!(!failed.status.success(), "{}", stdout(&failed));
    write(dir.path(), "pod.yaml", &pod("/index.html"));
    server.ok_in(dir.path(), &["deploy", "-f", "pod.yaml", "-a", &pod_app]);
    let (status, body) = server.get(&host("nginx", &pod_app), "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from berth"), "{body}");
    let vols = server.json(&["volumes", "-a", &pod_app, "--json"]);
    assert_eq!(vols[0]["name"], "cache-volume", "{vols}");
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.app={pod_app}"),
    ]);
    let limits = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        container.trim(),
    ]);
    assert_eq!(limits.trim(), "67108864 500000000");

    // Unsupported fields are named with their line and column.
    write(
        dir.path(),
        "bad.yaml",
        &pod("/").replace(
            "    ports:\n",
            "    securityContext:\n      runAsUser: 1000\n    ports:\n",
        ),
    );
    let bad = server.cli_in(dir.path(), &["deploy", "-f", "bad.yaml", "-a", &pod_app]);
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(
        err.contains("bad.yaml:13:5") && err.contains("securityContext"),
        "{err}"
    );
    server.ok(&["apps", "delete", &pod_app, "--volumes"]);
}

#[test]
fn manifests_kept_outside_the_source_directory_deploy() {
    let mut server = Server::start();
    let top = tempfile::tempdir().expect("temp dir");
    // berth.yml kept apart from the source it builds, named from here (as
    // `kubectl apply -f` names files): `deploy -f conf/berth.yml SRC`.
    let app = server.create_app("far");
    let src = hello_source();
    let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
    std::fs::remove_file(src.path().join("berth.yml")).expect("rm berth.yml");
    std::fs::create_dir(top.path().join("conf")).expect("mkdir");
    write(&top.path().join("conf"), "berth.yml", &manifest);
    let src_arg = src.path().to_string_lossy().to_string();
    server.ok_in(
        top.path(),
        &["deploy", "-f", "conf/berth.yml", &src_arg, "-a", &app],
    );
    let (status, body) = server.get(&host("web", &app), "/");
    assert_eq!(status, 200, "{body}");

    // A Pod spec elsewhere, deployed from a directory of unrelated files:
    // it builds nothing, so it alone is sent.
    let pod_app = server.create_app("farpod");
    let image = format!("berthtest-far-{pod_app}:1");
    let _made = Made {
        containers: vec![],
        images: vec![image.clone()],
    };
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(src.path())
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{}", stderr(&built));
    let specs = tempfile::tempdir().expect("temp dir");
    write(
        specs.path(),
        "pod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nginx\nspec:\n  containers:\n  - name: nginx\n    image: {image}\n    command: [\"/bin/httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports:\n    - containerPort: 80\n"
        ),
    );
    let pod = specs.path().join("pod.yaml").to_string_lossy().to_string();
    let out = server.cli_in(top.path(), &["deploy", "-f", &pod, "-a", &pod_app]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("builds nothing: sending it alone"),
        "{}",
        stderr(&out)
    );
    let (status, body) = server.get(&host("nginx", &pod_app), "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from berth"), "{body}");
}

#[test]
fn prune_removes_berth_leftovers_only() {
    let mut server = Server::start();
    let app = server.create_app("prune");
    let src = hello_source();
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    let running = docker(&["ps", "-q", "--filter", &format!("label=berth.app={app}")]);
    let rack = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"berth.rack\"}}",
        running.trim(),
    ]);
    let rack = rack.trim();
    assert!(!rack.is_empty());
    // Not berth's image: berth's images carry berth's labels, which containers inherit.
    let image = format!("berthtest-plain-{app}");
    let _made = Made {
        containers: vec![format!("plain-{app}")],
        images: vec![image.clone()],
    };
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(src.path())
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{}", stderr(&built));
    // A volume helper a crashed server left behind (the reconciler removes
    // other rack containers without a process row on its own).
    let labelled = docker(&[
        "create",
        "--label",
        &format!("berth.helper.rack={rack}"),
        "--label",
        "berth.helper=volume",
        "--label",
        &format!("berth.app={app}"),
        &image,
        "/bin/true",
    ]);
    let unlabelled = docker(&[
        "create",
        "--name",
        &format!("plain-{app}"),
        &image,
        "/bin/true",
    ]);
    let (labelled, unlabelled) = (labelled.trim(), unlabelled.trim());
    assert!(!labelled.is_empty() && !unlabelled.is_empty());
    // Both run and exit: stopped containers, one berth's, one not.
    docker(&["start", "-a", labelled]);
    docker(&["start", "-a", unlabelled]);

    let report = server.json(&["rack", "prune", "--json"]);
    assert!(report["containers"].as_u64() >= Some(1), "{report}");
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("id={labelled}")])
            .trim()
            .is_empty(),
        "the stopped berth container is still there"
    );
    assert!(
        !docker(&["ps", "-aq", "--filter", &format!("id={unlabelled}")])
            .trim()
            .is_empty(),
        "prune removed a container without berth's labels"
    );
    // The running app and its image are untouched.
    let (status, _) = server.get(&host("web", &app), "/");
    assert_eq!(status, 200);
    let text = server.ok(&["rack", "prune"]);
    assert!(text.contains("removed 0 stopped containers"), "{text}");
}
