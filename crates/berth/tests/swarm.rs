//! berth on a real 3-node Docker Swarm (`scripts/swarmlab.sh`: node
//! containers with their own dockerd, node1 the manager). The server runs on
//! this machine against node1's engine (`DOCKER_HOST`), listening on the
//! lab's gateway address (10.213.0.1) where the nodes reach it; an agent runs
//! on every node (`berth agent`, the binary mounted into the nodes at
//! /opt/berth by the lab), started with the very command `berth instances
//! join` prints. Requests go to each node's router at the node's address.
//!
//! One swarm rack at a time (the tests share the lab and take turns); each
//! removes what it made, also after a failed assertion.

mod common;

use common::pebble::{Pebble, has_acme_certificate};
use common::rsyslog::Rsyslog;
use common::swarm::*;
use common::{BERTH, BerthCli, eventually, free_port, hello_source, tail, unique_app, write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn an_app_on_three_nodes_is_served_by_every_node_without_a_registry() {
    let rack = SwarmRack::start();
    let app = unique_app("sw");
    // A rack-wide log drain to an rsyslogd of the test's, added before the
    // deploy: the nodes' output reaches it through the server.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let syslog = Rsyslog::start(&scratch.path().join("syslog"), None);
    rack.ok(&[
        "drains",
        "add",
        &format!("syslog+tcp://127.0.0.1:{}", syslog.port),
    ]);
    let (source, first) = rack.deploy_hello(&app, 3);
    // Each node that runs a process got the image through berth, layer by layer.
    assert!(first.contains("layers sent"), "{first}");

    // --- processes spread over the nodes, each node's router answers
    let processes = rack.processes(&app);
    assert_eq!(running(&processes), 3, "{processes:#?}");
    let nodes = nodes_of(&processes);
    assert!(nodes.len() >= 2, "all on {nodes:?}");
    let host = format!("web.{app}.localhost");
    for n in 1..=3 {
        let (status, body) = rack.get(n, &host, "/");
        assert_eq!(status, 200, "node {n}'s router: {body}");
        assert!(body.contains("hello"), "{body}");
    }
    let ps = rack.ok(&["ps", "-a", &app]);
    assert!(ps.contains("NODE") && ps.contains("swarmlab-node"), "{ps}");

    // --- no registry anywhere: not on this machine, not on a node
    for n in 1..=3 {
        let images = on_node(n, &["ps", "-a", "--format", "{{.Image}}"]);
        assert!(!images.contains("registry"), "node {n}: {images}");
    }
    let host_images = common::docker(&["ps", "-a", "--format", "{{.Image}}"]);
    assert!(!host_images.contains("registry"), "{host_images}");

    // --- logs from all three nodes in the one stream
    for n in 1..=3 {
        for _ in 0..5 {
            rack.get(n, &host, "/");
        }
    }
    let all_nodes_logged = eventually(Duration::from_secs(20), || {
        let logs = rack.ok(&["logs", "-a", &app, "--tail", "200"]);
        nodes.iter().all(|node| logs.contains(&format!("@{node}")))
    });
    assert!(
        all_nodes_logged,
        "{}",
        rack.ok(&["logs", "-a", &app, "--tail", "50"])
    );
    // ... and in the drain: output of every process, on whichever node, with
    // the app as APP-NAME and the process as PROCID.
    let ids: Vec<String> = processes
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect();
    let drained = eventually(Duration::from_secs(20), || {
        let lines = syslog.lines();
        ids.iter().all(|id| {
            lines
                .iter()
                .any(|l| l.split(' ').take(2).eq([app.as_str(), id.as_str()]))
        })
    });
    assert!(
        drained,
        "not every process's output reached the drain ({ids:?}):\n{}",
        tail(&syslog.lines().join("\n"), 30)
    );

    // --- exec into and run beside the process on node 3
    let processes = rack.processes(&app);
    let far = processes
        .iter()
        .find(|p| p["node"] == "swarmlab-node3")
        .or_else(|| processes.iter().find(|p| p["node"] != "swarmlab-node1"))
        .expect("a process off the manager");
    let id = far["id"].as_str().expect("id").to_string();
    let hostname = rack.ok(&["exec", &id, "-a", &app, "--", "hostname"]);
    assert_eq!(hostname.trim(), id);
    let ran = rack.ok(&[
        "run",
        "web",
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo ran on $BERTH_APP",
    ]);
    assert_eq!(ran.trim(), format!("ran on {app}"));

    // --- CPU and memory per process, sampled on each node
    let measured = eventually(Duration::from_secs(20), || {
        rack.processes(&app)
            .iter()
            .all(|p| p["memory"].as_u64().is_some_and(|m| m > 0))
    });
    assert!(measured, "{:#?}", rack.processes(&app));

    // --- a changed app moves only the changed layer to each node
    write(
        &source.path().join("www"),
        "index.html",
        "<h1>hello again</h1>\n",
    );
    let second = rack.deploy(source.path(), &app);
    let sent: Vec<&str> = second
        .lines()
        .filter(|l| l.contains("layers sent"))
        .collect();
    assert!(!sent.is_empty(), "{second}");
    for line in &sent {
        assert!(
            line.contains(": 1 of "),
            "more than the changed layer: {line}"
        );
    }
    for n in 1..=3 {
        assert_eq!(rack.get(n, &host, "/").1.trim(), "<h1>hello again</h1>");
    }
}

#[test]
fn the_nodes_keep_serving_while_the_server_is_away_and_it_adopts_them_again() {
    let mut rack = SwarmRack::start();
    let app = unique_app("swaway");
    rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    let before = rack.processes(&app);
    rack.stop_server();
    for n in 1..=3 {
        assert_eq!(
            rack.get(n, &host, "/").0,
            200,
            "node {n} without its server"
        );
    }
    // A process prints while the server is away: its node's engine keeps the
    // line, and the server, back, collects it once.
    let far = before
        .iter()
        .find(|p| p["node"] != "swarmlab-node1")
        .expect("a process off the manager");
    let n: usize = far["node"]
        .as_str()
        .and_then(|node| node.strip_prefix("swarmlab-node"))
        .and_then(|n| n.parse().ok())
        .expect("a lab node");
    let process = far["id"].as_str().expect("id");
    let container = on_node(
        n,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=berth.process={process}"),
        ],
    );
    let marker = format!("printed-while-away-{}", rack.rack_id);
    on_node(
        n,
        &[
            "exec",
            container.trim(),
            "sh",
            "-c",
            &format!("echo {marker} > /proc/1/fd/1"),
        ],
    );
    let load = Load::start(node_ip(2), rack.http, host.clone());
    rack.spawn_server();
    rack.wait_linked(&[1, 2, 3]);
    std::thread::sleep(Duration::from_secs(3));
    let (sent, failed) = load.finish();
    assert!(sent > 10);
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}\n{}",
        failed.len(),
        &failed[..failed.len().min(3)],
        rack.diagnostics()
    );
    let after = rack.processes(&app);
    let ids = |ps: &[serde_json::Value]| {
        let mut ids: Vec<String> = ps.iter().map(|p| p["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&before),
        ids(&after),
        "the restarted server replaced processes"
    );
    assert!(after.iter().all(|p| p["restarts"] == 0), "{after:#?}");
    let count = || {
        rack.ok(&["logs", "-a", &app, "--tail", "1000"])
            .matches(&marker)
            .count()
    };
    assert!(
        eventually(Duration::from_secs(20), || count() >= 1),
        "the line printed while the server was away never arrived; the engine of node {n} has:\n{}\nberth logs:\n{}",
        on_node(n, &["logs", "--tail", "5", container.trim()]),
        rack.ok(&["logs", "-a", &app, "--tail", "20"])
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(), 1, "the line printed while the server was away");

    // A node's router that restarts (empty) gets the table again at once.
    let router = format!("berth-router-{}", rack.rack_id);
    on_node(2, &["restart", "-t", "1", &router]);
    let served_again = eventually(Duration::from_secs(10), || rack.get(2, &host, "/").0 == 200);
    assert!(
        served_again,
        "node 2's restarted router serves the app again"
    );
}

#[test]
fn rollouts_and_stops_under_load_through_one_node_lose_no_request() {
    let rack = SwarmRack::start();
    let app = unique_app("swload");
    let (source, _) = rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    let load = Load::start(node_ip(1), rack.http, host.clone());
    rack.ok(&["scale", "web", "--count", "4", "-a", &app]);
    rack.ok(&["env", "set", "GREETING=hi", "-a", &app, "--promote"]);
    rack.ok(&["restart", "-a", &app]);
    let releases = rack.json(&["releases", "-a", &app, "--json"]);
    let first = releases
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == "R1"))
        .is_some();
    assert!(first, "{releases}");
    rack.ok(&["releases", "rollback", "R1", "-a", &app]);
    let processes = rack.processes(&app);
    let off_node1 = processes
        .iter()
        .find(|p| p["node"] != "swarmlab-node1")
        .and_then(|p| p["id"].as_str())
        .expect("a process on another node")
        .to_string();
    rack.ok(&["ps", "stop", &off_node1, "-a", &app]);
    rack.ok(&["scale", "web", "--count", "3", "-a", &app]);
    // A drained node gives up its processes, which come up elsewhere first.
    rack.ok(&["instances", "drain", "swarmlab-node2"]);
    let instances = rack.json(&["instances", "--json"]);
    let node2 = instances
        .as_array()
        .and_then(|i| i.iter().find(|i| i["hostname"] == "swarmlab-node2"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (node2["availability"].as_str(), node2["processes"].as_u64()),
        (Some("drain"), Some(0)),
        "{instances:#}"
    );
    let three = eventually(Duration::from_secs(30), || {
        running(&rack.processes(&app)) == 3
    });
    assert!(three, "{:#?}", rack.processes(&app));
    rack.ok(&["instances", "activate", "swarmlab-node2"]);
    let (sent, failed) = load.finish();
    assert!(sent > 50, "only {sent} requests");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: first {:?}, last {:?}\n{}",
        failed.len(),
        failed.first(),
        failed.last(),
        rack.diagnostics()
    );
    let back = eventually(Duration::from_secs(30), || {
        running(&rack.processes(&app)) == 3
    });
    assert!(back, "{:#?}", rack.processes(&app));

    // A release that never gets healthy is not promoted; the old one serves on.
    let active = |rack: &SwarmRack| {
        rack.json(&["apps", "info", &app, "--json"])["release"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let serving = active(&rack);
    let manifest = std::fs::read_to_string(source.path().join("berth.yml")).expect("berth.yml");
    write(
        source.path(),
        "berth.yml",
        &manifest.replace("health: /", "health: /missing"),
    );
    let load = Load::start(node_ip(3), rack.http, host.clone());
    let failed_deploy = rack.cli_in(source.path(), &["deploy", "-a", &app]);
    let (sent, failed) = load.finish();
    assert!(
        !failed_deploy.status.success(),
        "an unhealthy release was promoted"
    );
    assert_eq!(active(&rack), serving);
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: first {:?}, last {:?}\n{}",
        failed.len(),
        failed.first(),
        failed.last(),
        rack.diagnostics()
    );
    assert_eq!(running(&rack.processes(&app)), 3);
}

/// When `check` first held, polling every 200 ms for at most `limit`.
fn time_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Running tasks of a plain Swarm service on nodes other than `lost`.
fn swarm_tasks_running(service: &str, lost: &str) -> usize {
    on_node(
        1,
        &[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
    )
    .lines()
    .filter(|l| !l.starts_with(lost) && l.contains("Running"))
    .count()
}

#[test]
fn a_lost_node_is_shown_down_and_its_processes_come_back_elsewhere() {
    let rack = SwarmRack::start();
    let app = unique_app("swlost");
    rack.deploy_hello(&app, 3);
    let host = format!("web.{app}.localhost");
    // Swarm's own reschedule of a plain 3-replica service, timed in the same run.
    let baseline = format!("swbase-{}", rack.rack_id);
    on_node(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            &baseline,
            "--label",
            &format!("berth.rack={}", rack.rack_id),
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--endpoint-mode",
            "dnsrr",
            "swarmlab-busybox:latest",
            "sleep",
            "3600",
        ],
    );
    let spread = eventually(Duration::from_secs(30), || {
        swarm_tasks_running(&baseline, "-") == 3
    });
    assert!(spread, "the baseline service did not start");
    // With one per node, the baseline cannot come back to 3 without node 3:
    // allow two per node for the reschedule.
    on_node(
        1,
        &[
            "service",
            "update",
            "--detach",
            "--replicas-max-per-node",
            "2",
            &baseline,
        ],
    );

    let load = Load::start(node_ip(1), rack.http, host.clone());
    std::thread::sleep(Duration::from_secs(1));
    swarmlab(&["kill", "3"]);
    let killed = std::time::Instant::now();
    let restore = scopeguard(|| swarmlab(&["start", "3"]));

    let shown_down = time_until(Duration::from_secs(30), || {
        rack.json(&["instances", "--json"])
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["hostname"] == "swarmlab-node3" && i["status"] == "down")
    });
    // Both watched in one loop, so neither time waits on the other.
    let (mut berth_back, mut swarm_back) = (None, None);
    while killed.elapsed() < Duration::from_secs(90)
        && (berth_back.is_none() || swarm_back.is_none())
    {
        if berth_back.is_none()
            && rack
                .processes(&app)
                .iter()
                .filter(|p| p["state"] == "running" && p["node"] != "swarmlab-node3")
                .count()
                == 3
        {
            berth_back = Some(killed.elapsed());
        }
        if swarm_back.is_none() && swarm_tasks_running(&baseline, "swarmlab-node3") == 3 {
            swarm_back = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (sent, failed) = load.finish();
    drop(restore);
    on_node(1, &["service", "rm", &baseline]);

    println!(
        "bench: node kill: shown down after {shown_down:?}; berth back to 3 after {berth_back:?}; \
         Swarm's own reschedule of a plain service {swarm_back:?}; failed GETs {} of {sent} through node 1",
        failed.len()
    );
    let shown_down = shown_down.expect("node 3 shown down in `berth instances`");
    assert!(shown_down < Duration::from_secs(20), "{shown_down:?}");
    berth_back.expect("berth's processes back to 3 on the surviving nodes");
    assert!(
        failed.is_empty(),
        "{} of {sent} GETs failed across the node kill: {failed:?}\n{}",
        failed.len(),
        rack.diagnostics()
    );
    for n in 1..=2 {
        assert_eq!(rack.get(n, &host, "/").0, 200);
    }
}

/// The sizes in `==> node: N of M layers sent (SIZE)` progress lines.
fn sent_sizes(progress: &str) -> Vec<String> {
    progress
        .lines()
        .filter(|l| l.contains("layers sent"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// `bench/swarm.sh` runs this (ignored in the test suite): deploy to three
/// nodes against one, and the bytes each node is sent, against `docker save`.
#[test]
#[ignore = "a benchmark: bench/swarm.sh"]
fn bench_deploy_three_nodes_against_one() {
    let rack = SwarmRack::start();
    // A first deploy finds no layer of the app on the workers.
    for n in 2..=3 {
        let images = on_node(n, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in images.lines().filter(|i| i.starts_with("berth/")) {
            on_node(n, &["rmi", "-f", image]);
        }
    }
    let spread = unique_app("swbench3");
    let started = std::time::Instant::now();
    let (source, first) = rack.deploy_hello(&spread, 3);
    let three = started.elapsed();

    let pinned = unique_app("swbench1");
    let one_source = hello_source();
    let manifest = std::fs::read_to_string(one_source.path().join("berth.yml")).expect("berth.yml");
    let manifest = manifest.replace("app: hello", &format!("app: {pinned}")).replace(
        "    port: 8080\n",
        "    port: 8080\n    scale: {count: 3}\n    placement: [node.hostname==swarmlab-node1]\n",
    );
    write(one_source.path(), "berth.yml", &manifest);
    rack.ok(&["apps", "create", &pinned]);
    let started = std::time::Instant::now();
    rack.deploy(one_source.path(), &pinned);
    let one = started.elapsed();

    let saved = Command::new("docker")
        .args(["save", &format!("berth/{spread}:B1")])
        .env("DOCKER_HOST", "unix:///run/swarmlab/node1/docker.sock")
        .output()
        .map(|o| o.stdout.len())
        .unwrap_or(0);
    write(
        &source.path().join("www"),
        "index.html",
        "<h1>hello again</h1>\n",
    );
    let second = rack.deploy(source.path(), &spread);
    println!(
        "bench: deploy of the example app, 3 processes on 3 nodes: {three:.1?}; on 1 node: {one:.1?}; ratio {:.2}",
        three.as_secs_f64() / one.as_secs_f64()
    );
    println!("bench: docker save of the image: {saved} bytes");
    println!("bench: first deploy sent {:?}", sent_sizes(&first));
    println!("bench: changed deploy sent {:?}", sent_sizes(&second));
}

#[test]
fn images_volumes_timers_and_certificates_work_on_a_swarm_as_on_one_engine() {
    let rack = SwarmRack::start();
    let app = unique_app("swday");
    // An image built on this machine, deployed with --image: no registry.
    let image = format!("berth-swtest-{}:dev", rack.rack_id);
    let _image = local_hello_image(&image);
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "berth.yml",
        &format!(
            "app: {app}\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /\n    volumes: [data:/data]\n\
             timers:\n  tick:\n    schedule: \"* * * * *\"\n    service: web\n    command: [\"sh\", \"-c\", \"echo tick >> /data/ticks\"]\n"
        ),
    );
    rack.ok(&["apps", "create", &app]);
    let deployed = rack.cli_in(dir.path(), &["deploy", "--image", &image, "-a", &app]);
    assert!(
        deployed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    let host = format!("web.{app}.localhost");
    for n in 1..=3 {
        assert_eq!(rack.get(n, &host, "/").0, 200, "node {n}");
    }

    // A volume stays on its node: a restarted process finds its data.
    let first = rack.processes(&app);
    let process = first[0]["id"].as_str().expect("id").to_string();
    let node = first[0]["node"].clone();
    rack.ok(&[
        "exec",
        &process,
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo kept > /data/note",
    ]);
    rack.ok(&["ps", "stop", &process, "-a", &app]);
    let back = eventually(Duration::from_secs(60), || {
        rack.processes(&app)
            .iter()
            .any(|p| p["id"] == process.as_str() && p["state"] == "running")
    });
    assert!(back, "{:#?}", rack.processes(&app));
    let again = rack.processes(&app);
    assert_eq!(again[0]["node"], node, "the process left its volume's node");
    let note = rack.ok(&["exec", &process, "-a", &app, "--", "cat", "/data/note"]);
    assert_eq!(note.trim(), "kept");

    // HTTPS on every node's router with a certificate made through the CLI.
    rack.ok(&["certs", "generate", &host]);
    let served = eventually(Duration::from_secs(20), || {
        let out = Command::new("curl")
            .args(["-sS", "-k", "--resolve"])
            .arg(format!("{host}:{}:{}", rack.https, node_ip(2)))
            .arg(format!("https://{host}:{}/", rack.https))
            .output()
            .expect("curl is installed");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hello")
    });
    assert!(served, "HTTPS through node 2's router");

    // The timer runs (within a minute) on the volume's node.
    let ticked = eventually(Duration::from_secs(80), || {
        rack.cli_in(
            Path::new("."),
            &["exec", &process, "-a", &app, "--", "cat", "/data/ticks"],
        )
        .stdout
        .starts_with(b"tick")
    });
    assert!(ticked, "{}", rack.ok(&["timers", "-a", &app]));

    // Draining the volume's node is refused, naming the service that cannot
    // move, and leaves the node as it was; --force stops the process until
    // the node is active again, and then it comes back with its data.
    let node = node.as_str().expect("node name").to_string();
    let availability = |rack: &SwarmRack| {
        rack.json(&["instances", "--json"])
            .as_array()
            .and_then(|all| all.iter().find(|i| i["hostname"] == node.as_str()).cloned())
            .map(|i| i["availability"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let refused = rack.cli_in(Path::new("."), &["instances", "drain", &node]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("web of app {app}")) && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(availability(&rack), "active");
    assert_eq!(rack.get(2, &host, "/").0, 200);
    rack.ok(&["instances", "drain", &node, "--force"]);
    assert_eq!(availability(&rack), "drain");
    let stopped = eventually(Duration::from_secs(60), || {
        running(&rack.processes(&app)) == 0
    });
    assert!(stopped, "{:#?}", rack.processes(&app));
    rack.ok(&["instances", "activate", &node]);
    let back = eventually(Duration::from_secs(90), || {
        let now = rack.processes(&app);
        running(&now) == 1 && now[0]["node"] == node.as_str()
    });
    assert!(back, "{:#?}", rack.processes(&app));
    let id = rack.processes(&app)[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let note = rack.ok(&["exec", &id, "-a", &app, "--", "cat", "/data/note"]);
    assert_eq!(note.trim(), "kept");
}

/// The memory and CPU limits of `app`'s processes as Swarm has them.
fn service_limits(app: &str) -> Vec<String> {
    let ids = on_node(
        1,
        &[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=berth.app={app}"),
        ],
    );
    ids.split_whitespace()
        .map(|id| {
            on_node(
                1,
                &[
                    "service",
                    "inspect",
                    "-f",
                    "{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}",
                    id,
                ],
            )
            .trim()
            .to_string()
        })
        .collect()
}

#[test]
fn pod_specs_resource_limits_and_acme_certificates_work_on_a_swarm() {
    let mut pebble = Pebble::prepare();
    let metrics = common::free_port();
    let mut extra = vec![
        "--domain".to_string(),
        "berth.test".to_string(),
        "--metrics".to_string(),
        format!("127.0.0.1:{metrics}"),
    ];
    extra.extend(pebble.server_args());
    let rack = SwarmRack::start_with(extra);
    // Pebble resolves every name to node 2: the challenge is fetched through
    // node 2's router, while the server that asked runs on this machine.
    pebble.start(&node_ip(2), rack.http);
    let app = unique_app("swpod");

    // The Pod's image is on the manager's engine only, as an operator would
    // load it there; berth sends it to the node that runs the process.
    let image = format!("berth-swpod-{}:1.0", rack.rack_id);
    let _image = local_hello_image(&image);
    let loaded = Command::new("sh")
        .args(["-c", &format!("docker save {image} | DOCKER_HOST=unix:///run/swarmlab/node1/docker.sock docker load -q")])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker save | docker load");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let image_id = on_node(1, &["image", "inspect", "-f", "{{.Id}}", &image])
        .trim()
        .to_string();
    assert!(image_id.starts_with("sha256:"), "{image_id}");

    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "pod.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: {image}
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
        path: /index.html
        port: 80
      periodSeconds: 1
"
        ),
    );
    rack.ok(&["apps", "create", &app]);
    rack.ok_in(dir.path(), &["deploy", "-f", "pod.yaml", "-a", &app]);
    let host = format!("nginx.{app}.berth.test");
    for n in 1..=3 {
        let (status, body) = rack.get(n, &host, "/");
        assert_eq!(status, 200, "node {n}: {body}");
    }
    let process = rack.processes(&app);
    let node = process[0]["node"]
        .as_str()
        .expect("the process's node")
        .to_string();
    let n: usize = node
        .trim_start_matches("swarmlab-node")
        .parse()
        .expect("node number");
    assert_eq!(
        on_node(n, &["image", "inspect", "-f", "{{.Id}}", &image_id]).trim(),
        image_id,
        "the image did not reach {node}"
    );
    assert_eq!(service_limits(&app), ["67108864 500000000"]);

    // /metrics adds up every node's router: two more GETs through each node
    // count six more.
    let served = |app: &str| -> f64 {
        let (status, text) = common::http_get(metrics, "127.0.0.1", "/metrics").expect("/metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .filter(|l| {
                l.starts_with("berth_router_requests_total{")
                    && l.contains(&format!("app=\"{app}\""))
                    && l.contains("code=\"200\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = served(&app);
    for n in 1..=3 {
        for _ in 0..2 {
            assert_eq!(rack.get(n, &host, "/").0, 200);
        }
    }
    assert_eq!(served(&app) - before, 6.0);

    // `berth scale` changes the limits: the process is replaced, still served.
    rack.ok(&[
        "scale", "nginx", "--memory", "96", "--cpu", "0.25", "-a", &app,
    ]);
    assert_eq!(service_limits(&app), ["100663296 250000000"]);
    assert_eq!(rack.get(3, &host, "/").0, 200);

    // An ACME certificate for the app's domain, validated through node 2's
    // router, served by node 3's.
    let issued = eventually(Duration::from_secs(120), || {
        has_acme_certificate(&rack, &host)
    });
    assert!(
        issued,
        "no ACME certificate for {host}:\n{}\n{}",
        tail(&rack.server_log(), 40),
        pebble.log()
    );
    assert!(
        pebble.log().contains(&format!(
            "Attempting to validate w/ HTTP: http://{host}:{}/.well-known/acme-challenge/",
            rack.http
        )),
        "{}",
        pebble.log()
    );
    let root = pebble.root();
    let served = eventually(Duration::from_secs(20), || {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&root)
            .arg("--resolve")
            .arg(format!("{host}:{}:{}", rack.https, node_ip(3)))
            .arg(format!("https://{host}:{}/", rack.https))
            .output()
            .expect("curl is installed");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Hello from berth")
    });
    assert!(
        served,
        "HTTPS with the ACME certificate through node 3's router"
    );
}

#[test]
fn swarm_mode_needs_a_swarm_manager_and_says_so() {
    // This machine's own engine is in no swarm.
    let data = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let out = Command::new(BERTH)
        .args(["server", "--swarm", "--data"])
        .arg(data.path().join("rack"))
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .env_remove("DOCKER_HOST")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .expect("run berth server --swarm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not a Swarm manager") || stderr.contains("no swarm"),
        "{stderr}"
    );
}
