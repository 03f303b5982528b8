//! Against the real Docker engine on this machine. Each test labels everything it
//! creates with its own `berth.rack=test-<random>` and removes it all again, even
//! when an assertion fails, so tests run in parallel and leave nothing behind.

use berth_runtime::{
    BuildRequest, ContainerSpec, ContainerState, DockerRuntime, LABEL_RACK, LogStream, Runtime,
    RuntimeError,
};
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, RemoveContainerOptions,
    RemoveImageOptions,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const BUSYBOX: &str = "/bin/busybox";

fn random_suffix() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// One test's namespace on the engine; removes everything labelled with it when
/// dropped, also after a failed assertion.
struct Rack {
    id: String,
    suffix: String,
    runtime: DockerRuntime,
    /// Build steps' intermediate images of failed builds, which carry no label.
    stray_images: std::sync::Mutex<Vec<String>>,
}

impl Rack {
    async fn new() -> Rack {
        let suffix = random_suffix();
        let runtime = DockerRuntime::connect()
            .await
            .expect("connecting to the Docker engine");
        Rack {
            id: format!("test-{suffix}"),
            suffix,
            runtime,
            stray_images: Default::default(),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_RACK.to_string(), self.id.clone())])
    }

    fn name(&self, what: &str) -> String {
        format!("berth-test-{what}-{}", self.suffix)
    }
}

impl Drop for Rack {
    fn drop(&mut self) {
        let docker = self.runtime.client().clone();
        let rack = self.id.clone();
        let strays = std::mem::take(&mut *self.stray_images.lock().unwrap());
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // separate thread gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let filter =
                    HashMap::from([("label".to_string(), vec![format!("{LABEL_RACK}={rack}")])]);
                let containers = docker
                    .list_containers(Some(ListContainersOptions {
                        all: true,
                        filters: Some(filter.clone()),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default();
                for c in containers {
                    let _ = docker
                        .remove_container(
                            c.id.as_deref().unwrap_or_default(),
                            Some(RemoveContainerOptions {
                                force: true,
                                v: true,
                                link: false,
                            }),
                        )
                        .await;
                }
                let networks = docker
                    .list_networks(Some(ListNetworksOptions {
                        filters: Some(filter.clone()),
                    }))
                    .await
                    .unwrap_or_default();
                for n in networks {
                    let _ = docker
                        .remove_network(n.id.as_deref().unwrap_or_default())
                        .await;
                }
                let images = docker
                    .list_images(Some(ListImagesOptions {
                        filters: Some(filter),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default();
                let force = RemoveImageOptions {
                    force: true,
                    noprune: false,
                    platforms: None,
                };
                for image in images.iter().map(|i| &i.id).chain(strays.iter().rev()) {
                    let _ = docker.remove_image(image, Some(force.clone()), None).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A build context: busybox plus `files` (path, contents, mode).
fn context_tar(files: &[(&str, &str, u32)]) -> tempfile::NamedTempFile {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing; these tests build their images from it: apt-get install busybox-static"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut tar = tar::Builder::new(file.reopen().unwrap());
    tar.append_path_with_name(BUSYBOX, "busybox").unwrap();
    let mut add = |path: &str, contents: &str, mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, path, contents.as_bytes())
            .unwrap();
    };
    for (path, contents, mode) in files {
        add(path, contents, *mode);
    }
    tar.into_inner().unwrap().flush().unwrap();
    file
}

/// The image's first step is a label unique to the test, so no two tests share
/// build-cache layers and one test's cleanup cannot pull a layer from under another.
fn dockerfile(rack: &Rack, steps: &str) -> String {
    format!(
        "FROM scratch\nLABEL berth.test={}\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n{steps}",
        rack.suffix
    )
}

/// Builds, collecting the streamed output. Intermediate images are noted for
/// cleanup, as a failed build leaves them behind.
async fn build(
    rack: &Rack,
    context: &Path,
    dockerfile: &str,
    args: BTreeMap<String, String>,
) -> (Result<String, RuntimeError>, Vec<String>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let result = rack
        .runtime
        .build_image(
            BuildRequest {
                context_tar: context,
                dockerfile: dockerfile.to_string(),
                tag: format!("berth-test/{}:b1", rack.suffix),
                args,
                labels: rack.labels(),
            },
            tx,
        )
        .await;
    let lines = collector.await.unwrap();
    let mut strays = rack.stray_images.lock().unwrap();
    for line in &lines {
        if let Some(id) = line.trim().strip_prefix("---> ")
            && id.len() == 12
            && id.chars().all(|c| c.is_ascii_hexdigit())
        {
            strays.push(id.to_string());
        }
    }
    (result, lines)
}

fn http_get(ip: IpAddr, path: &str) -> std::io::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::new(ip, 8080), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The server in a just-started container may need a moment to listen.
async fn http_get_retrying(ip: IpAddr, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = path.to_string();
        match tokio::task::spawn_blocking(move || http_get(ip, &path))
            .await
            .unwrap()
        {
            Ok(response) => return response,
            Err(e) if Instant::now() > deadline => panic!("GET {ip}:8080: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn version_and_networks() {
    let rack = Rack::new().await;
    let rt = &rack.runtime;

    let version = rt.version().await.unwrap();
    assert!(version.starts_with("docker "), "{version}");
    assert!(version.contains("(API 1."), "{version}");

    let labels = rack.labels();
    let net = rack.name("net");
    rt.ensure_network(&net, &labels).await.unwrap();
    rt.ensure_network(&net, &labels).await.unwrap();

    // Racing callers, also through separately connected runtimes, get one network.
    let other = DockerRuntime::connect().await.unwrap();
    let third = DockerRuntime::connect().await.unwrap();
    let raced = rack.name("raced");
    let (a, b, c) = tokio::join!(
        rt.ensure_network(&raced, &labels),
        other.ensure_network(&raced, &labels),
        third.ensure_network(&raced, &labels),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(count_networks(rt, &raced).await, 1);

    let networks = rt
        .client()
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([("name".to_string(), vec![net.clone()])])),
        }))
        .await
        .unwrap();
    let ours: Vec<_> = networks
        .iter()
        .filter(|n| n.name.as_deref() == Some(net.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "one network named {net}");
    assert_eq!(ours[0].driver.as_deref(), Some("bridge"));
    assert_eq!(
        ours[0]
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_RACK))
            .map(String::as_str),
        Some(rack.id.as_str())
    );

    rt.remove_network(&net).await.unwrap();
    rt.remove_network(&net).await.unwrap();
    rt.remove_network(&raced).await.unwrap();
    assert_eq!(count_networks(rt, &net).await, 0);
}

async fn count_networks(rt: &DockerRuntime, name: &str) -> usize {
    rt.client()
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        }))
        .await
        .unwrap()
        .iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .count()
}

#[tokio::test]
async fn failing_build_returns_the_engine_message() {
    let rack = Rack::new().await;
    let dockerfile = dockerfile(&rack, "RUN echo before-failure && /bin/false\n");
    let context = context_tar(&[("Dockerfile", &dockerfile, 0o644)]);
    let (result, lines) = build(&rack, context.path(), "Dockerfile", BTreeMap::new()).await;
    match result {
        Err(RuntimeError::Build(message)) => {
            assert!(message.contains("non-zero code: 1"), "{message}");
            assert!(lines.contains(&message), "error is streamed: {lines:?}");
        }
        other => panic!("expected a build error, got {other:?}"),
    }
    assert!(
        lines.iter().any(|l| l == "before-failure"),
        "output before the failure is streamed: {lines:?}"
    );
    assert!(
        !rack
            .runtime
            .image_exists(&format!("berth-test/{}:b1", rack.suffix))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn dockerfile_errors_are_build_errors() {
    let rack = Rack::new().await;
    let context = context_tar(&[("Dockerfile", "FROM scratch\nFROBNICATE x\n", 0o644)]);
    let (result, _) = build(&rack, context.path(), "Dockerfile", BTreeMap::new()).await;
    match result {
        Err(RuntimeError::Build(message)) => {
            assert!(message.contains("unknown instruction"), "{message}")
        }
        other => panic!("expected a build error, got {other:?}"),
    }
    let (result, _) = build(&rack, context.path(), "Nope.dockerfile", BTreeMap::new()).await;
    match result {
        Err(RuntimeError::Build(message)) => {
            assert!(message.contains("Nope.dockerfile"), "{message}")
        }
        other => panic!("expected a build error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_build_context_is_an_io_error() {
    let rack = Rack::new().await;
    let (tx, _rx) = mpsc::channel(1);
    let err = rack
        .runtime
        .build_image(
            BuildRequest {
                context_tar: Path::new("/nonexistent/context.tar"),
                dockerfile: "Dockerfile".to_string(),
                tag: format!("berth-test/{}:none", rack.suffix),
                args: BTreeMap::new(),
                labels: rack.labels(),
            },
            tx,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Io(_)), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/context.tar"),
        "{err}"
    );
}

#[tokio::test]
async fn build_run_observe_and_remove() {
    let rack = Rack::new().await;
    let rt = &rack.runtime;
    let labels = rack.labels();
    let net = rack.name("net");
    rt.ensure_network(&net, &labels).await.unwrap();

    // --- build
    let cgi =
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"APP_MESSAGE=$APP_MESSAGE\"\n";
    let dockerfile = dockerfile(
        &rack,
        "ARG GREETING\nRUN echo \"greeting=$GREETING\"\nCOPY www /www\nCMD [\"/bin/httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n",
    );
    let context = context_tar(&[
        ("deploy/Dockerfile.web", &dockerfile, 0o644),
        ("www/index.html", "hello from berth\n", 0o644),
        ("www/cgi-bin/env", cgi, 0o755),
    ]);
    let greeting = format!("hi-{}", rack.suffix);
    let (result, lines) = build(
        &rack,
        context.path(),
        "deploy/Dockerfile.web",
        BTreeMap::from([("GREETING".to_string(), greeting.clone())]),
    )
    .await;
    let image_id = result.unwrap_or_else(|e| panic!("build: {e}; output: {lines:?}"));
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "{lines:?}");
    assert!(
        lines.contains(&format!("greeting={greeting}")),
        "build arg reaches RUN and its output is streamed: {lines:?}"
    );
    let tag = format!("berth-test/{}:b1", rack.suffix);
    assert!(rt.image_exists(&tag).await.unwrap());
    let images = rt.list_images(LABEL_RACK, &rack.id).await.unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].id, image_id);
    assert_eq!(images[0].tags, vec![tag.clone()]);
    assert_eq!(images[0].labels.get(LABEL_RACK), Some(&rack.id));

    // --- a web process
    let alias = rack.name("web");
    let web_spec = ContainerSpec {
        name: rack.name("web-1"),
        image: tag.clone(),
        env: BTreeMap::from([("APP_MESSAGE".to_string(), "from-env".to_string())]),
        labels: labels.clone(),
        network: net.clone(),
        aliases: vec![alias.clone()],
        hostname: Some("web-1".to_string()),
        memory_mib: Some(64),
        cpu: Some(0.5),
        stop_grace: 1,
        ..Default::default()
    };
    // A leftover of the same name is replaced.
    let first = rt.run_container(&web_spec).await.unwrap();
    let web = rt.run_container(&web_spec).await.unwrap();
    assert_ne!(first.id, web.id);
    assert!(rt.inspect_container(&first.id).await.unwrap().is_none());
    assert_eq!(web.state, ContainerState::Running);
    assert_eq!(web.name, web_spec.name);
    assert_eq!(web.image, tag);
    assert_eq!(web.labels.get(LABEL_RACK), Some(&rack.id));
    assert!(web.started_at.is_some());
    let ip = web.ip.expect("an address on the app network");

    let response = http_get_retrying(ip, "/index.html").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("hello from berth\n"), "{response}");
    let response = http_get_retrying(ip, "/cgi-bin/env").await;
    assert!(response.contains("APP_MESSAGE=from-env"), "{response}");

    let inspected = rt.client().inspect_container(&web.id, None).await.unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(
        host.port_bindings.unwrap_or_default().len(),
        0,
        "no published ports"
    );
    let config = inspected.config.unwrap();
    assert_eq!(config.stop_timeout, Some(1));
    assert_eq!(config.hostname.as_deref(), Some("web-1"));

    // --- what it uses, and the one node a single engine is
    let stats = rt
        .stats(&web.id)
        .await
        .expect("stats of a running container");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(stats.cpu_percent >= 0.0, "{stats:?}");
    let nodes = rt.nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(nodes[0].cpus >= 1.0 && nodes[0].memory > 0, "{nodes:?}");
    assert!(
        rt.set_node_availability(&nodes[0].id, "drain")
            .await
            .is_err()
    );

    // --- a second process finds the first by its alias, and its output is followed
    let client = rt
        .run_container(&ContainerSpec {
            name: rack.name("client"),
            image: tag.clone(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                // The long line reaches the log in several pieces (the engine cuts at 16 KiB).
                format!(
                    "echo one; echo two >&2; head -c 40000 /dev/zero | tr '\\0' a; echo; \
                     wget -q -O - http://{alias}:8080/index.html; sleep 1"
                ),
            ]),
            labels: labels.clone(),
            network: net.clone(),
            stop_grace: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let lines: Vec<_> = tokio::time::timeout(
        Duration::from_secs(15),
        rt.logs(&client.id, 0).collect::<Vec<_>>(),
    )
    .await
    .expect("the log stream ends when the container stops")
    .into_iter()
    .collect::<Result<_, _>>()
    .unwrap();
    let long = "a".repeat(40000);
    // The engine copies stdout and stderr separately: their relative order varies.
    let of = |stream| {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(LogStream::Stdout),
        vec!["one", long.as_str(), "hello from berth"]
    );
    assert_eq!(of(LogStream::Stderr), vec!["two"]);
    for line in &lines {
        assert!(
            (line.ts_nanos - started).abs() < 60_000_000_000,
            "timestamp {} is about now ({started})",
            line.ts_nanos
        );
    }
    let stdout: Vec<_> = lines
        .iter()
        .filter(|l| l.stream == LogStream::Stdout)
        .collect();
    assert!(stdout.windows(2).all(|w| w[0].ts_nanos <= w[1].ts_nanos));

    let tail = rt.tail_logs(&client.id, 2).await.unwrap();
    let tail: Vec<&str> = tail.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(tail, vec![long.as_str(), "hello from berth"]);
    assert!(matches!(
        rt.tail_logs("berth-test-no-such-container", 5).await,
        Err(RuntimeError::NotFound(_))
    ));

    // --- listing by label
    let mut listed = rt.list_containers(LABEL_RACK, &rack.id).await.unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(&str, &ContainerState)> =
        listed.iter().map(|c| (c.name.as_str(), &c.state)).collect();
    assert_eq!(
        summary,
        vec![
            (
                client.name.as_str(),
                &ContainerState::Exited {
                    code: Some(0),
                    oom_killed: false
                }
            ),
            (web.name.as_str(), &ContainerState::Running),
        ]
    );
    let listed_web = listed.iter().find(|c| c.id == web.id).unwrap();
    assert_eq!(listed_web.ip, Some(ip));
    assert_eq!(listed_web.labels, web.labels);
    assert!(
        rt.list_containers(LABEL_RACK, "test-nobody")
            .await
            .unwrap()
            .is_empty()
    );

    // --- events: stopping the web process shows up as `die` with its exit code
    // Not polled before the stop: what happens after `events()` returns is seen anyway.
    let mut events = rt.events(LABEL_RACK, &rack.id);
    rt.stop_container(&web.id, 1).await.unwrap();
    let die = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if event.action == "die" && event.container_id == web.id {
                return event;
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("a die event");
    let code = die.exit_code.expect("die carries the exit code");
    assert_ne!(code, 0);
    assert_eq!(die.labels.get(LABEL_RACK), Some(&rack.id));
    drop(events);

    let stopped = rt.inspect_container(&web.id).await.unwrap().unwrap();
    assert_eq!(
        stopped.state,
        ContainerState::Exited {
            code: Some(code),
            oom_killed: false
        }
    );
    // Stopping what is stopped or gone is fine.
    rt.stop_container(&web.id, 1).await.unwrap();
    rt.stop_container("berth-test-no-such-container", 1)
        .await
        .unwrap();

    // --- an image that is not there
    let missing = format!("berth-test/{}:missing", rack.suffix);
    match rt
        .run_container(&ContainerSpec {
            name: rack.name("missing"),
            image: missing.clone(),
            labels: labels.clone(),
            network: net.clone(),
            ..Default::default()
        })
        .await
    {
        Err(RuntimeError::ImageMissing(name)) => assert_eq!(name, missing),
        other => panic!("expected ImageMissing, got {other:?}"),
    }

    // --- an image in use cannot be removed
    match rt.remove_image(&image_id).await {
        Err(RuntimeError::Engine(message)) => assert!(message.contains("conflict"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // --- removal
    for c in [&web, &client] {
        rt.remove_container(&c.id).await.unwrap();
        rt.remove_container(&c.id).await.unwrap();
        assert!(rt.inspect_container(&c.id).await.unwrap().is_none());
    }
    assert!(
        rt.list_containers(LABEL_RACK, &rack.id)
            .await
            .unwrap()
            .is_empty()
    );
    rt.remove_image(&tag).await.unwrap();
    rt.remove_image(&tag).await.unwrap();
    assert!(!rt.image_exists(&tag).await.unwrap());
    assert!(!rt.image_exists(&image_id).await.unwrap());
    rt.remove_network(&net).await.unwrap();
}

#[tokio::test]
async fn unreachable_engine_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    // A socket file nobody listens on: connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let client =
        bollard::Docker::connect_with_unix(path.to_str().unwrap(), 5, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let err = DockerRuntime::from_client(client).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Connect(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("refused"), "{message}");
    assert!(message.contains("DOCKER_HOST"), "{message}");
}

#[tokio::test]
async fn networks_from_a_pool_get_their_own_subnets_until_it_is_full() {
    let rack = Rack::new().await;
    let pool: berth_runtime::subnets::NetworkPool = "10.247.0.0/23".parse().unwrap();
    let rt = DockerRuntime::connect()
        .await
        .expect("connecting to the Docker engine")
        .with_network_pool(Some(pool));
    let labels = rack.labels();
    let subnet_of = |name: String| {
        let docker = rt.client().clone();
        async move {
            let network = docker
                .inspect_network(
                    &name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
                .unwrap();
            network
                .ipam
                .and_then(|i| i.config)
                .and_then(|c| c.into_iter().next())
                .and_then(|c| c.subnet)
                .unwrap_or_default()
        }
    };
    let (a, b, c) = (
        rack.name("pool-a"),
        rack.name("pool-b"),
        rack.name("pool-c"),
    );
    rt.ensure_network(&a, &labels).await.unwrap();
    rt.ensure_network(&b, &labels).await.unwrap();
    assert_eq!(subnet_of(a.clone()).await, "10.247.0.0/24");
    assert_eq!(subnet_of(b.clone()).await, "10.247.1.0/24");

    let err = rt
        .ensure_network(&c, &labels)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&c) && err.contains("10.247.0.0/23") && err.contains("--network-pool"),
        "{err}"
    );

    // A freed subnet is used again.
    rt.remove_network(&a).await.unwrap();
    rt.ensure_network(&c, &labels).await.unwrap();
    assert_eq!(subnet_of(c.clone()).await, "10.247.0.0/24");
}

#[tokio::test]
async fn endpoint_names_the_engine_it_connected_to() {
    let rt = DockerRuntime::connect()
        .await
        .expect("connecting to the Docker engine");
    let endpoint = rt.endpoint();
    assert!(endpoint.starts_with("unix://"), "{endpoint}");
    let elsewhere = rt.with_endpoint("tcp://10.0.0.5:2375");
    assert_eq!(elsewhere.endpoint(), "tcp://10.0.0.5:2375");
}
