//! `SwarmRuntime` against a real 3-node swarm on this machine
//! (`scripts/swarmlab.sh`: node containers with their own dockerd, node1 the
//! manager, node engines at `unix:///run/swarmlab/nodeN/docker.sock`).
//!
//! The first test to need the lab runs `scripts/swarmlab.sh up` (idempotent,
//! about 30 s from nothing, a few seconds when it is up) and the file leaves
//! the lab up for the next test binary; `scripts/swarmlab.sh down` removes
//! it. Each test labels what it makes with its own `berth.rack` and removes
//! it again, also after a failed assertion. Tests that take a node away
//! (drain, kill) hold the lab alone; the others share it.

use berth_runtime::{
    BuildRequest, ContainerSpec, ContainerState, DirectNodeEngines, DockerRuntime, LABEL_RACK,
    Runtime, RuntimeError, RuntimeEvent, SessionOutput, SwarmRuntime,
};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, mpsc};

/// The lab's workload image (static busybox: sh, httpd, nc, nslookup), on every node.
const BUSYBOX: &str = "swarmlab-busybox:latest";
const MANAGER: &str = "unix:///run/swarmlab/node1/docker.sock";
/// The overlays' address pool (`swarmlab.sh`'s SWARMLAB_ADDR_POOL).
const OVERLAY_POOL: &str = "10.214.";

/// Readers share the lab; a test that takes a node away writes.
static LAB: RwLock<()> = RwLock::const_new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn swarmlab(args: &[&str]) {
    let status = std::process::Command::new(repo_root().join("scripts/swarmlab.sh"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("running scripts/swarmlab.sh");
    assert!(status.success(), "scripts/swarmlab.sh {args:?} failed");
}

/// Brings the lab up once per test binary.
fn lab_up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| swarmlab(&["up"]));
}

fn random_suffix() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

async fn docker_at(address: &str) -> Docker {
    let path = address.trim_start_matches("unix://");
    Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// One test's rack on the swarm, cleaned up when dropped.
struct Rack {
    id: String,
    suffix: String,
    rt: SwarmRuntime,
    /// Node id → (hostname, socket).
    nodes: BTreeMap<String, (String, String)>,
    /// Images to remove from every engine.
    images: std::sync::Mutex<Vec<String>>,
}

impl Rack {
    async fn new() -> Rack {
        lab_up();
        let manager = DockerRuntime::from_client(docker_at(MANAGER).await)
            .await
            .unwrap()
            .with_endpoint(MANAGER);
        let mut nodes = BTreeMap::new();
        for node in manager.client().list_nodes(None).await.unwrap() {
            let hostname = node.description.and_then(|d| d.hostname).unwrap();
            let n = hostname.trim_start_matches("swarmlab-node").to_string();
            let socket = format!("unix:///run/swarmlab/node{n}/docker.sock");
            nodes.insert(node.id.unwrap(), (hostname, socket));
        }
        let engines =
            DirectNodeEngines::new(nodes.iter().map(|(id, (_, s))| (id.clone(), s.clone())))
                .with_probe_image(BUSYBOX);
        let rt = SwarmRuntime::new(manager, Arc::new(engines)).await.unwrap();
        let suffix = random_suffix();
        Rack {
            id: format!("test-{suffix}"),
            suffix,
            rt,
            nodes,
            images: Default::default(),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_RACK.to_string(), self.id.clone())])
    }

    fn name(&self, what: &str) -> String {
        format!("berth-{}-{what}", self.id)
    }

    fn network(&self) -> String {
        self.name("net")
    }

    async fn setup_network(&self) {
        self.rt
            .ensure_network(&self.network(), &self.labels())
            .await
            .unwrap();
    }

    /// A process serving its hostname over HTTP on 8080.
    fn web(&self, name: &str, aliases: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: self.name(name),
            image: BUSYBOX.into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /www; hostname > /www/index.html; echo started; exec httpd -f -p 8080 -h /www"
                    .into(),
            ]),
            labels: self.labels(),
            network: self.network(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            hostname: Some(name.to_string()),
            stop_grace: 5,
            ..Default::default()
        }
    }

    fn hostname_of_node(&self, id: &str) -> String {
        self.nodes[id].0.clone()
    }

    fn node_id(&self, hostname: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, (h, _))| h == hostname)
            .map(|(id, _)| id.clone())
            .unwrap()
    }
}

impl Drop for Rack {
    fn drop(&mut self) {
        let rack = self.id.clone();
        let sockets: Vec<String> = self.nodes.values().map(|(_, s)| s.clone()).collect();
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cleanup(rack, sockets, images));
        });
        let _ = cleanup.join();
    }
}

async fn cleanup(rack: String, sockets: Vec<String>, images: Vec<String>) {
    let filter = HashMap::from([("label".to_string(), vec![format!("{LABEL_RACK}={rack}")])]);
    let manager = docker_at(MANAGER).await;
    let services = manager
        .list_services(Some(bollard::query_parameters::ListServicesOptions {
            filters: Some(filter.clone()),
            status: None,
        }))
        .await
        .unwrap_or_default();
    for s in services {
        let _ = manager.delete_service(&s.id.unwrap_or_default()).await;
    }
    for socket in &sockets {
        // A killed node that did not come back is skipped.
        let Ok(node) = tokio::time::timeout(Duration::from_secs(5), docker_at(socket)).await else {
            continue;
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let containers = node
                .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                    all: true,
                    filters: Some(filter.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            // Task containers go with their services; wait for them so their
            // volumes and networks can go too.
            let tasks_left = containers.iter().any(|c| {
                c.labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("com.docker.swarm.task.id"))
            });
            for c in containers {
                let _ = node
                    .remove_container(
                        &c.id.unwrap_or_default(),
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            v: true,
                            link: false,
                        }),
                    )
                    .await;
            }
            if !tasks_left || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let volumes = node
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(filter.clone()),
            }))
            .await
            .ok()
            .and_then(|v| v.volumes)
            .unwrap_or_default();
        for v in volumes {
            let _ = node
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
        for image in &images {
            let _ = node
                .remove_image(
                    image,
                    Some(bollard::query_parameters::RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await;
        }
    }
    let networks = manager
        .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
            filters: Some(filter),
        }))
        .await
        .unwrap_or_default();
    for n in networks {
        let _ = manager.remove_network(&n.id.unwrap_or_default()).await;
    }
}

async fn wait_for<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Output of a session until it ends.
async fn output(mut session: berth_runtime::Session) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = session.output.next().await {
        match chunk.unwrap() {
            SessionOutput::Stdout(b) | SessionOutput::Stderr(b) => out.extend_from_slice(&b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn events_of(rt: &SwarmRuntime, rack: &str) -> mpsc::UnboundedReceiver<RuntimeEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut events = rt.events(LABEL_RACK, rack);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let event = event.expect("the event stream failed");
            // Shown with a failing test's output.
            eprintln!(
                "event {} {} {:?}",
                event.action, event.container_id, event.exit_code
            );
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<RuntimeEvent>,
    action: &str,
    container: &str,
) -> RuntimeEvent {
    let wait = async {
        while let Some(event) = rx.recv().await {
            if event.action == action && event.container_id == container {
                return event;
            }
        }
        panic!("the event stream ended before a {action} of {container}");
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {action} event for {container} within 20 s"))
}

#[tokio::test]
async fn a_process_runs_on_a_node_and_is_reached_there() {
    let _shared = LAB.read().await;
    let rack = Rack::new().await;
    let rt = &rack.rt;
    let mut events = events_of(rt, &rack.id);
    rack.setup_network().await;

    // --- a process: a service on some node, with an overlay address
    let web = rt
        .run_container(&rack.web("web-1", &["web"]))
        .await
        .unwrap();
    assert_eq!(web.state, ContainerState::Running, "{web:?}");
    assert_eq!(web.name, rack.name("web-1"));
    assert_eq!(web.labels.get(LABEL_RACK), Some(&rack.id));
    let node = web.node.clone().expect("the node it runs on");
    assert!(node.starts_with("swarmlab-node"), "{node}");
    let ip = web.ip.expect("its address on the overlay");
    assert!(ip.to_string().starts_with(OVERLAY_POOL), "{ip}");
    next_event(&mut events, "start", &web.id).await;

    let listed = rt.list_containers(LABEL_RACK, &rack.id).await.unwrap();
    let found = listed.iter().find(|c| c.id == web.id).expect("listed");
    assert_eq!(
        (found.node.as_deref(), found.ip),
        (Some(node.as_str()), Some(ip))
    );
    let inspected = rt.inspect_container(&web.id).await.unwrap().unwrap();
    assert_eq!(inspected.node.as_deref(), Some(node.as_str()));
    assert!(inspected.started_at.is_some(), "{inspected:?}");

    // --- node-local work on its node: probe, stats, logs, exec
    let status = wait_for(
        "a health check to pass",
        Duration::from_secs(20),
        async || {
            rt.probe(
                SocketAddr::new(ip, 8080),
                "web",
                "/",
                Duration::from_secs(3),
            )
            .await
            .inspect_err(|e| eprintln!("probe of {ip} on {node}: {e}"))
            .ok()
        },
    )
    .await;
    assert_eq!(status, 200);
    let refused = rt
        .probe(SocketAddr::new(ip, 9), "web", "/", Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        berth_runtime::probe::not_listening_yet(&refused),
        "{refused}"
    );
    let stats = rt.stats(&web.id).await.unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");
    let lines = rt.tail_logs(&web.id, 10).await.unwrap();
    assert!(lines.iter().any(|l| l.text == "started"), "{lines:?}");
    let (exec, session) = rt
        .exec(
            &web.id,
            &["cat".into(), "/www/index.html".into()],
            false,
            false,
        )
        .await
        .unwrap();
    assert!(exec.contains('/'), "an exec id names its node: {exec}");
    assert_eq!(output(session).await.trim(), "web-1");
    let code = wait_for("the exec's exit code", Duration::from_secs(5), async || {
        rt.exec_exit_code(&exec).await.unwrap()
    })
    .await;
    assert_eq!(code, 0);

    // --- two processes under one alias are both found by DNS from a third
    let a = rt
        .run_container(&rack.web("api-1", &["api"]))
        .await
        .unwrap();
    let b = rt
        .run_container(&rack.web("api-2", &["api"]))
        .await
        .unwrap();
    let (ip_a, ip_b) = (a.ip.unwrap(), b.ip.unwrap());
    let answer = wait_for(
        "both api addresses in DNS",
        Duration::from_secs(20),
        async || {
            let (_, session) = rt
                .exec(&web.id, &["nslookup".into(), "api".into()], false, false)
                .await
                .ok()?;
            let answer = output(session).await;
            (answer.contains(&ip_a.to_string()) && answer.contains(&ip_b.to_string()))
                .then_some(answer)
        },
    )
    .await;
    assert!(!answer.contains(&ip.to_string()), "{answer}");

    // --- a one-off on a node, on the overlay, reaches a process by its alias
    let oneoff = ContainerSpec {
        name: rack.name("run-1"),
        image: BUSYBOX.into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 8080".into(),
        ]),
        labels: rack.labels(),
        network: rack.network(),
        ..Default::default()
    };
    let id = rt.create_container(&oneoff).await.unwrap();
    let (one_node, _) = id.split_once('/').expect("a node-local id names its node");
    assert!(rack.nodes.contains_key(one_node), "{id}");
    let attached = rt.attach_container(&id, false).await.unwrap();
    rt.start_container(&id).await.unwrap();
    let said = output(attached).await;
    assert_eq!(rt.wait_container(&id).await.unwrap(), 0, "{said}");
    assert!(said.contains("200 OK") && said.contains("web-1"), "{said}");
    let info = rt.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.node, Some(rack.hostname_of_node(one_node)));
    let listed = rt.list_containers(LABEL_RACK, &rack.id).await.unwrap();
    assert!(listed.iter().any(|c| c.id == id), "{listed:?}");
    assert_eq!(
        listed.len(),
        4,
        "three processes and the one-off: {listed:?}"
    );
    rt.remove_container(&id).await.unwrap();
    assert!(rt.inspect_container(&id).await.unwrap().is_none());

    // --- stop gives an exit code (and a `die`), remove removes (and `destroy`)
    rt.stop_container(&web.id, 5).await.unwrap();
    let stopped = rt.inspect_container(&web.id).await.unwrap().unwrap();
    let ContainerState::Exited {
        code: Some(code), ..
    } = stopped.state
    else {
        panic!("stopped: {stopped:?}");
    };
    assert_eq!(rt.wait_container(&web.id).await.unwrap(), code);
    let died = next_event(&mut events, "die", &web.id).await;
    assert_eq!(died.exit_code, Some(code));
    assert_eq!(died.labels.get("name"), Some(&rack.name("web-1")));
    rt.stop_container(&web.id, 5).await.unwrap(); // stopped already: no error
    rt.remove_container(&web.id).await.unwrap();
    assert!(rt.inspect_container(&web.id).await.unwrap().is_none());
    next_event(&mut events, "destroy", &web.id).await;
    rt.remove_container(&web.id).await.unwrap(); // absent: no error

    // --- a process that exits at once is Exited with its code, as on one engine
    let mut quick = rack.web("quick-1", &[]);
    quick.command = Some(vec!["sh".into(), "-c".into(), "exit 3".into()]);
    let quick = rt.run_container(&quick).await.unwrap();
    // Its task may still be seen running when the start returns (so may a
    // container on one engine): the exit and its code follow.
    let exited = wait_for(
        "the quick process's exit",
        Duration::from_secs(20),
        async || {
            let info = rt.inspect_container(&quick.id).await.unwrap()?;
            matches!(info.state, ContainerState::Exited { .. }).then_some(info.state)
        },
    )
    .await;
    assert_eq!(
        exited,
        ContainerState::Exited {
            code: Some(3),
            oom_killed: false
        }
    );
    // Its name is taken again: the leftover service goes first.
    let again = rt.run_container(&rack.web("quick-1", &[])).await.unwrap();
    assert_eq!(again.state, ContainerState::Running);
    assert!(rt.inspect_container(&quick.id).await.unwrap().is_none());
}

#[tokio::test]
async fn volumes_live_on_the_node_of_their_process() {
    let _shared = LAB.read().await;
    let rack = Rack::new().await;
    let rt = &rack.rt;
    rack.setup_network().await;
    let volume = rack.name("data");
    let mut labels = rack.labels();
    labels.insert("berth.volume".into(), "data".into());
    rt.ensure_volume(&volume, &labels).await.unwrap();
    assert!(
        rt.list_volumes(LABEL_RACK, &rack.id)
            .await
            .unwrap()
            .is_empty()
    );

    let mut spec = rack.web("db-1", &[]);
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo kept > /data/file; exec sleep 1000".into(),
    ]);
    spec.volumes = vec![(volume.clone(), "/data".into())];
    let db = rt.run_container(&spec).await.unwrap();
    assert_eq!(db.state, ContainerState::Running);
    let volumes = rt.list_volumes(LABEL_RACK, &rack.id).await.unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0].name, volume);
    assert_eq!(
        volumes[0].labels.get("berth.volume").map(String::as_str),
        Some("data")
    );

    // Started again, it stays with its volume.
    let db2 = rt.run_container(&spec).await.unwrap();
    assert_eq!(db2.node, db.node);

    // A helper on that node reads it.
    let helper = rt
        .create_helper(
            &rack.name("helper"),
            BUSYBOX,
            &rack.labels(),
            &[(volume.clone(), "/v".into())],
        )
        .await
        .unwrap();
    let node = helper.split_once('/').map(|(n, _)| n.to_string()).unwrap();
    assert_eq!(Some(rack.hostname_of_node(&node)), db.node);
    let mut tar = Vec::new();
    let mut archive = rt.download_archive(&helper, "/v/.");
    while let Some(chunk) = archive.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8_lossy(&tar);
    assert!(text.contains("file") && text.contains("kept"), "{text}");
    rt.remove_container(&helper).await.unwrap();

    let err = rt.remove_volume(&volume).await.unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    rt.stop_container(&db2.id, 1).await.unwrap();
    rt.remove_container(&db2.id).await.unwrap();
    wait_for(
        "the volume to be free",
        Duration::from_secs(20),
        async || rt.remove_volume(&volume).await.ok(),
    )
    .await;
    assert!(
        rt.list_volumes(LABEL_RACK, &rack.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A build context of files (name, contents).
fn context(files: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut tar = tar::Builder::new(file.reopen().unwrap());
    for (name, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, contents.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
    file
}

async fn build(rack: &Rack, tag: &str, files: &[(&str, &str)], dockerfile: &str) {
    let mut files = files.to_vec();
    files.push(("Dockerfile", dockerfile));
    let ctx = context(&files);
    rack.images.lock().unwrap().push(tag.to_string());
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    rack.rt
        .build_image(
            BuildRequest {
                context_tar: ctx.path(),
                dockerfile: "Dockerfile".into(),
                tag: tag.into(),
                args: BTreeMap::new(),
                labels: rack.labels(),
            },
            tx,
        )
        .await
        .unwrap();
}

async fn distribute(rt: &SwarmRuntime, image: &str) -> Vec<String> {
    let (tx, mut rx) = mpsc::channel(16);
    rt.distribute_image(image, tx).await.unwrap();
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line);
    }
    lines.sort();
    lines
}

#[tokio::test]
async fn images_reach_the_nodes_with_only_the_layers_they_lack() {
    let _shared = LAB.read().await;
    let rack = Rack::new().await;
    let rt = &rack.rt;
    // Built on the manager (node1): the busybox layer every node has, and two of its own.
    let first = format!("berth-test/{}:1", rack.suffix);
    let unique = rack.suffix.clone();
    build(
        &rack,
        &first,
        &[("a", &unique), ("b", "b")],
        &format!("FROM {BUSYBOX}\nCOPY a /a\nCOPY b /b\n"),
    )
    .await;
    let lines = distribute(rt, &first).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "swarmlab-node1: has the image");
    assert!(
        lines[1].starts_with("swarmlab-node2: 2 of 3 layers sent ("),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("swarmlab-node3: 2 of 3 layers sent ("),
        "{lines:?}"
    );
    let details = rt.image_details(&first).await.unwrap().unwrap();
    for (_, socket) in rack.nodes.values() {
        let node = DockerRuntime::from_client(docker_at(socket).await)
            .await
            .unwrap();
        let there = node.image_details(&first).await.unwrap();
        assert_eq!(there.map(|d| d.id), Some(details.id.clone()), "on {socket}");
    }
    // Everyone has it now.
    let again = distribute(rt, &first).await;
    assert!(
        again.iter().all(|l| l.ends_with("has the image")),
        "{again:?}"
    );

    // A changed image: only its new layer travels.
    let second = format!("berth-test/{}:2", rack.suffix);
    build(
        &rack,
        &second,
        &[("c", "changed")],
        &format!("FROM {first}\nCOPY c /c\n"),
    )
    .await;
    let lines = distribute(rt, &second).await;
    assert!(
        lines[1].starts_with("swarmlab-node2: 1 of 4 layers sent"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("swarmlab-node3: 1 of 4 layers sent"),
        "{lines:?}"
    );

    let missing = rt
        .distribute_image("berth-test/none:1", mpsc::channel(1).0)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RuntimeError::ImageMissing(_)),
        "{missing}"
    );

    rt.remove_image(&second).await.unwrap();
    rt.remove_image(&first).await.unwrap();
    assert!(!rt.image_exists(&first).await.unwrap());
}

#[tokio::test]
async fn only_a_manager_will_do() {
    let _shared = LAB.read().await;
    lab_up();
    let nodes = Arc::new(DirectNodeEngines::new([]));
    let worker =
        DockerRuntime::from_client(docker_at("unix:///run/swarmlab/node2/docker.sock").await)
            .await
            .unwrap()
            .with_endpoint("unix:///run/swarmlab/node2/docker.sock");
    let err = SwarmRuntime::new(worker, nodes.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("node2") && text.contains("not a Swarm manager") && text.contains("worker"),
        "{text}"
    );
    assert!(text.contains("docker swarm init"), "{text}");
    // The host's own engine is in no swarm.
    if let Ok(host) = DockerRuntime::connect().await {
        let err = SwarmRuntime::new(host, nodes).await.unwrap_err();
        assert!(err.to_string().contains("in no swarm"), "{err}");
    }
}

#[tokio::test]
async fn drained_and_lost_nodes_give_up_their_processes() {
    let _alone = LAB.write().await;
    let rack = Rack::new().await;
    let rt = &rack.rt;
    rack.setup_network().await;
    let nodes = rt.nodes().await.unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes
            .iter()
            .all(|n| n.status == "ready" && n.availability == "active"),
        "{nodes:?}"
    );
    assert_eq!(nodes.iter().filter(|n| n.role == "manager").count(), 1);
    assert!(nodes.iter().all(|n| n.cpus > 0.0 && n.memory > 0));
    let err = rt
        .set_node_availability(&nodes[1].id, "gone")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"gone\""), "{err}");

    // --- drain: Swarm stops the node's processes (berth's reconciler starts
    // them again, elsewhere, as after any exit)
    let mut spec = rack.web("web-1", &["web"]);
    spec.placement = vec!["node.role==worker".into()];
    let web = rt.run_container(&spec).await.unwrap();
    let drained = rack.node_id(web.node.as_deref().unwrap());
    rt.set_node_availability(&drained, "drain").await.unwrap();
    let result = async {
        let exited = wait_for(
            "the drained node's process to stop",
            Duration::from_secs(20),
            async || {
                let info = rt.inspect_container(&web.id).await.unwrap()?;
                matches!(info.state, ContainerState::Exited { .. }).then_some(info)
            },
        )
        .await;
        assert_eq!(exited.node, web.node);
        let moved = rt.run_container(&spec).await.unwrap();
        assert_eq!(moved.state, ContainerState::Running);
        assert_ne!(moved.node, web.node, "{moved:?}");
        let shown = rt.nodes().await.unwrap();
        let shown = shown.iter().find(|n| n.id == drained).unwrap();
        assert_eq!(shown.availability, "drain");
    };
    // The node is made active again even when an assertion failed.
    let outcome = AssertUnwindSafe(result).catch_unwind().await;
    rt.set_node_availability(&drained, "active").await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    // --- node loss: a process on node 3 is Exited once node 3 is gone
    spec.placement = vec!["node.hostname==swarmlab-node3".into()];
    let on3 = rt.run_container(&spec).await.unwrap();
    assert_eq!(on3.node.as_deref(), Some("swarmlab-node3"));
    let mut events = events_of(rt, &rack.id);
    swarmlab(&["kill", "3"]);
    let lost = async {
        let exited = wait_for(
            "the lost node's process to exit",
            Duration::from_secs(30),
            async || {
                let info = rt.inspect_container(&on3.id).await.unwrap()?;
                matches!(info.state, ContainerState::Exited { .. }).then_some(info)
            },
        )
        .await;
        assert_eq!(
            exited.state,
            ContainerState::Exited {
                code: None,
                oom_killed: false
            }
        );
        let died = next_event(&mut events, "die", &on3.id).await;
        assert_eq!(died.exit_code, None);
        let three = rack.node_id("swarmlab-node3");
        let down = rt.nodes().await.unwrap();
        assert_eq!(
            down.iter()
                .find(|n| n.id == three)
                .map(|n| n.status.as_str()),
            Some("down")
        );
        // Its containers cannot be reached, and say so by naming the node.
        let err = rt.tail_logs(&on3.id, 5).await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::NodeUnreachable { .. }),
            "{err:?}"
        );
    };
    let outcome = AssertUnwindSafe(lost).catch_unwind().await;
    swarmlab(&["start", "3"]);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let back = rt.nodes().await.unwrap();
    assert!(back.iter().all(|n| n.status == "ready"), "{back:?}");
}
