//! A rack without Docker: the real store in a temp dir, the in-memory engine
//! (`MemoryRuntime`) and berth's real router in this process
//! (`InProcessRouter`), with the API (`http::app`) called in memory.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use berth_server::rack::{Parts, Rack};
use berth_testkit::{InProcessRouter, MemoryRuntime};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub struct TestRack {
    pub rack: Arc<Rack>,
    pub runtime: MemoryRuntime,
    pub router: Arc<InProcessRouter>,
    /// The admin token's secret.
    pub admin: String,
    pub data: tempfile::TempDir,
}

impl TestRack {
    pub async fn new() -> TestRack {
        let data = tempfile::tempdir().expect("a temp data dir");
        let outcome = berth_server::init(data.path()).expect("init the data dir");
        let admin = outcome.new_admin_token.expect("a new admin token");
        let runtime = MemoryRuntime::new();
        let router = InProcessRouter::start().await.expect("a router");
        let rack = Arc::new(Rack::new(Self::parts(&data, &runtime, &router)));
        // Health checks put replaced and restarted processes back in the router.
        tokio::spawn(berth_server::lifecycle::health::monitor(rack.clone()));
        TestRack {
            rack,
            runtime,
            router,
            admin,
            data,
        }
    }

    fn parts(
        data: &tempfile::TempDir,
        runtime: &MemoryRuntime,
        router: &Arc<InProcessRouter>,
    ) -> Parts {
        let (key, _) = berth_store::MasterKey::load_or_create(&data.path().join("master.key"))
            .expect("the master key");
        let store =
            berth_store::Store::open(&data.path().join("berth.db"), key).expect("the store");
        let rack_id = store.meta("rack_id").ok().flatten().unwrap_or_default();
        Parts {
            store,
            runtime: Arc::new(runtime.clone()),
            router: router.clone(),
            logs: berth_server::logs::LogBook::new(data.path().join("logs")).expect("logs"),
            rack_id,
            domain: "test".into(),
            data_dir: data.path().to_path_buf(),
            engine: "memory".into(),
            max_upload: 1 << 20,
            swarm: false,
            api_url: "http://127.0.0.1:7070".into(),
            agents: Default::default(),
            ca: Arc::new(
                berth_server::cluster_ca::ClusterCa::load_or_create(data.path())
                    .expect("the cluster CA"),
            ),
        }
    }

    /// The same data dir, engine and router seen by a new server, as after a
    /// restart of `berth server`.
    pub fn restarted(&self) -> Arc<Rack> {
        Arc::new(Rack::new(Self::parts(
            &self.data,
            &self.runtime,
            &self.router,
        )))
    }

    /// The texts of the log lines a (non-followed) `GET .../logs` read answers.
    pub async fn log_texts(&self, path: &str) -> Vec<String> {
        let (status, body) = self.admin(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        // One line of NDJSON is a JSON document too, and `send` reads it as one.
        let entries = match body {
            serde_json::Value::Object(_) => vec![body],
            _ => ndjson(&body),
        };
        entries
            .iter()
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Requests in flight from the router to `process`.
    pub fn router_inflight(&self, process: &str) -> usize {
        self.router.inflight(process)
    }

    /// When process `id` was created (its row's timestamp).
    pub fn created(&self, id: &str) -> String {
        self.rack
            .store
            .processes(None)
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.created)
            .unwrap_or_default()
    }

    pub fn token(&self, role: &str, app: Option<&str>) -> String {
        self.rack.store.create_token(role, app).expect("a token").1
    }

    /// One API call in memory: (status, body as JSON or as a JSON string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let request = match body {
            Some(json) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("a request");
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = berth_server::http::app(self.rack.clone())
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let token = self.admin.clone();
        self.call(method, path, Some(&token), body).await
    }

    pub async fn create_app(&self, name: &str) {
        let (status, body) = self
            .admin(
                Method::POST,
                "/apps",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Deploys a source (file name → content) and returns the NDJSON events.
    pub async fn deploy(&self, app: &str, files: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/apps/{app}/deploy"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .body(Body::from(source_tar(files)))
            .expect("a request");
        let (status, body) = self.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ndjson(&body)
    }

    /// GET `path` through the router with `Host: host`: (status, body).
    pub async fn get(&self, host: &str, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream =
            tokio::net::TcpStream::connect(berth_router::RouterHandle::http_addr(&*self.router))
                .await
                .expect("the router answers");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// The events of an NDJSON body (read as one JSON string by `send`).
pub fn ndjson(body: &serde_json::Value) -> Vec<serde_json::Value> {
    body.as_str()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last event of a stream: `result` or `error`.
pub fn outcome(events: &[serde_json::Value]) -> &serde_json::Value {
    events.last().expect("at least one event")
}

/// A plain tar of `files`.
pub fn source_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, text.as_bytes())
            .expect("append");
    }
    tar.into_inner().expect("a tar")
}

/// A web service built from a Dockerfile whose container runs `command`
/// (a `MemoryRuntime` program, e.g. `serve`).
pub fn web_app(command: &str, service_extra: &str) -> Vec<(&'static str, String)> {
    let dockerfile = format!("FROM scratch\nEXPOSE 8080\nCMD {command}\n");
    let manifest = format!(
        "services:\n  web:\n    build: .\n    port: 8080\n    termination: {{grace: 2}}\n{service_extra}"
    );
    vec![("Dockerfile", dockerfile), ("berth.yml", manifest)]
}

pub fn files<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, t)| (*n, t.as_str())).collect()
}

/// Polls `f` every 20 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
