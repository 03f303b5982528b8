//! Typed HTTP client of the berth API (see `berth_api` for the routes and wire types).
//!
//! Plain requests return typed values; routes that stream NDJSON return a
//! [`futures_util::Stream`] of items so the caller can show progress as it happens.
//! Source and image uploads stream a file from disk and report the bytes sent; an
//! image upload can leave out the layers the server already has
//! ([`Client::thin_image`], on [`saved_image`]).

mod access;
mod certs;
pub mod config;
mod drains;
mod image;
mod ndjson;
mod resources;
pub mod session;
pub mod source;
mod tls;
mod update;
mod volumes;

pub use tls::{fetch_pinned_ca, install_default_crypto_provider};

pub use berth_image::saved_image;

use berth_api::{
    App, AppInfo, Build, CreateApp, EffectiveEnv, EnvChange, ErrorBody, Event, Instance,
    JoinInstructions, LogEntry, Process, PruneReport, RackInfo, Release, ReleaseInfo,
    RestartRequest, ScaleRequest,
};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{Config, ConfigError};
pub use image::Thinning;
use ndjson::ndjson;

/// Everything a client call can fail with. The messages are meant for the user as they are.
/// The oldest server API ([`berth_api::API_VERSION`]) this client works with.
pub const MIN_SERVER_API: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server URL {url:?}: {reason}; use a URL like http://127.0.0.1:7070")]
    InvalidUrl { url: String, reason: String },

    #[error(
        "cannot connect to the berth server at {url} ({reason}); start it with `berth server` or set BERTH_HOST to its URL"
    )]
    Connect { url: String, reason: String },

    #[error("the server refused the token; run `berth login URL --token T` or set BERTH_TOKEN")]
    Unauthorized,

    /// The server's certificate does not chain to the trusted CA (the configured
    /// one, else the system's roots).
    #[error(
        "the certificate of the berth server at {url} is not trusted ({reason}); run `berth login {url} --token T --ca-sha256 FP` with the CA fingerprint `berth instances join` prints (also in the server's log), or set BERTH_CA_CERT to the server's CA certificate file (DATA/ca/ca.pem)"
    )]
    Untrusted { url: String, reason: String },

    #[error(
        "{what} cannot be used: {reason}; give the PEM file of the berth server's CA (DATA/ca/ca.pem on the server)"
    )]
    BadCa { what: String, reason: String },

    #[error(
        "{given:?} is not a SHA-256 fingerprint: it must be 64 hex digits (colons allowed), as `berth instances join` prints it"
    )]
    BadFingerprint { given: String },

    #[error(
        "the CA certificate {url} answered has the SHA-256 fingerprint {got}, not the expected {expected}; check the URL and the fingerprint (`berth instances join` on the server prints it): something between you and the server may be impersonating it"
    )]
    FingerprintMismatch {
        url: String,
        expected: String,
        got: String,
    },

    /// A non-2xx answer; `message` is the server's [`ErrorBody::error`].
    #[error("{message}")]
    Api { status: u16, message: String },

    /// An answer no berth API gives (HTML, plain text where JSON belongs): the URL is
    /// berth's router, or not berth at all. `message` says which and what to use.
    #[error("{message}")]
    NotBerth { url: String, message: String },

    /// The server's API is older than this client needs ([`MIN_SERVER_API`]).
    #[error(
        "the berth server at {url} speaks API version {server}, older than version {needed} this berth {client} needs; update the server to this berth's version (or use a berth CLI as old as the server)"
    )]
    ServerTooOld {
        url: String,
        server: u32,
        needed: u32,
        client: &'static str,
    },

    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },

    #[error("unexpected response from {url}: {reason}")]
    Decode { url: String, reason: String },

    /// Writing what a process printed failed, e.g. to a closed pipe (`| head -1`); the
    /// I/O error stays the source so the CLI can tell a closed stdout.
    #[error("cannot write the process's output: {source}")]
    Output {
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    SavedImage(#[from] saved_image::SavedImageError),

    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// The HTTP status for errors the server answered with.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized => Some(401),
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Reads of uploads: large enough that an image of hundreds of MiB is few reads,
/// small enough that the progress bar still moves smoothly.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// A stream of the NDJSON [`Event`]s of long work (build, deploy, rollout).
pub type EventStream = BoxStream<'static, Result<Event, Error>>;
/// A stream of log lines.
pub type LogStream = BoxStream<'static, Result<LogEntry, Error>>;

/// Which log lines to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    /// Only lines of the last this many seconds.
    pub since: Option<u64>,
    /// Only lines older than this many seconds.
    pub until: Option<u64>,
    /// Only lines of this service.
    pub service: Option<String>,
    /// Only output of this process.
    pub process: Option<String>,
    /// Only lines from this kind of source: build, process, timer, router, system.
    pub source: Option<String>,
    /// Only lines whose text holds this.
    pub grep: Option<String>,
    /// Only the last this many stored lines (the server picks them, so the
    /// rest of a long log never travels).
    pub tail: Option<usize>,
    /// Keep the stream open and send new lines as they come.
    pub follow: bool,
}

/// Client of one berth server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    /// The TLS settings, for WebSocket sessions too.
    tls: std::sync::Arc<rustls::ClientConfig>,
}

/// Turns `127.0.0.1:7070`, `http://host:7070/` and the like into a base URL.
pub fn normalize_host(host: &str) -> Result<Url, Error> {
    let trimmed = host.trim();
    let invalid = |reason: &str| Error::InvalidUrl {
        url: host.to_string(),
        reason: reason.into(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7070`) using `token`;
    /// an `https` server must have a certificate the system trusts.
    pub fn new(base_url: &str, token: &str) -> Result<Client, Error> {
        Client::with_ca(base_url, token, None)
    }

    /// A client of the server at `base_url` using `token` that, over HTTPS, trusts only
    /// the CA certificate(s) of `ca_pem` when given (the cluster CA), else the
    /// system's roots.
    pub fn with_ca(base_url: &str, token: &str, ca_pem: Option<&str>) -> Result<Client, Error> {
        let base = normalize_host(base_url)?;
        let tls = tls::client_config(ca_pem)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Request {
                url: base.to_string(),
                reason: root_cause(&e),
            })?;
        Ok(Client {
            http,
            base,
            token: token.to_string(),
            tls: std::sync::Arc::new(tls),
        })
    }

    /// A client of the server `BERTH_HOST` and `BERTH_TOKEN` name, else the config
    /// `berth login` wrote (see [`config::resolve`]).
    pub fn from_config() -> Result<Client, Error> {
        let config = config::resolve()?;
        Client::with_ca(&config.host, &config.token, config.ca_pem.as_deref())
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    // ---- rack ----

    /// `GET /health` (no token needed).
    pub async fn health(&self) -> Result<String, Error> {
        let url = self.url(&["health"])?;
        let resp = self.send(self.http.get(url.clone()), false).await?;
        let text = resp.text().await.map_err(|e| self.body_error(&url, &e))?;
        Ok(serde_json::from_str::<String>(&text).unwrap_or(text))
    }

    /// `GET /health`, insisting on berth's answer (`ok`), so that a URL of berth's
    /// router or of another server is named as such before a token is tried on it.
    pub async fn check_berth(&self) -> Result<(), Error> {
        let url = self.url(&["health"])?;
        let resp = self.send(self.http.get(url.clone()), false).await?;
        let status = resp.status();
        let content_type = content_type(&resp);
        let text = resp.text().await.map_err(|e| self.body_error(&url, &e))?;
        let is_berth = text.trim() == "ok" || text.trim() == "\"ok\"";
        if is_berth {
            return Ok(());
        }
        Err(not_berth(
            &self.base_url(),
            "GET",
            url.path(),
            status,
            content_type.as_deref(),
            text.as_bytes(),
        ))
    }

    /// `GET /rack`
    pub async fn rack(&self) -> Result<RackInfo, Error> {
        self.get_json(&["rack"]).await
    }

    /// `POST /rack/backup`: the archive's bytes.
    pub async fn backup(&self, req: &berth_api::BackupRequest) -> Result<Vec<u8>, Error> {
        let url = self.url(&["rack", "backup"])?;
        let resp = self.send(self.http.post(url).json(req), true).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        Ok(bytes.to_vec())
    }

    /// `POST /rack/prune`
    pub async fn prune(&self) -> Result<PruneReport, Error> {
        self.post_json(&["rack", "prune"], None::<&()>).await
    }

    /// `GET /rack/settings` (admin)
    pub async fn rack_settings(&self) -> Result<berth_api::RackSettings, Error> {
        self.get_json(&["rack", "settings"]).await
    }

    /// `POST /rack/settings` (admin): changes the given settings.
    pub async fn change_rack_settings(
        &self,
        change: &berth_api::RackSettingsChange,
    ) -> Result<berth_api::RackSettings, Error> {
        self.post_json(&["rack", "settings"], Some(change)).await
    }

    /// `GET /rack/logs` (admin): the server's and the router's own log lines;
    /// with `follow`, it stays open.
    pub async fn rack_logs(&self, tail: Option<usize>, follow: bool) -> Result<LogStream, Error> {
        let mut url = self.url(&["rack", "logs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(tail) = tail {
                pairs.append_pair("tail", &tail.to_string());
            }
            if follow {
                pairs.append_pair("follow", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.get_ndjson(url).await
    }

    // ---- instances ----

    /// `GET /instances`
    pub async fn instances(&self) -> Result<Vec<Instance>, Error> {
        self.get_json(&["instances"]).await
    }

    /// `POST /instances/join`
    pub async fn join_instance(&self) -> Result<JoinInstructions, Error> {
        self.post_json(&["instances", "join"], None::<&()>).await
    }

    /// `POST /agent/hello` (a node token): the agent's heartbeat.
    pub async fn agent_hello(
        &self,
        hello: &berth_api::AgentHello,
    ) -> Result<berth_api::AgentWelcome, Error> {
        self.post_json(&["agent", "hello"], Some(hello)).await
    }

    /// `POST /instances/{id}/drain[?force=true]` (`active`: `/activate`)
    pub async fn set_instance_availability(
        &self,
        id: &str,
        drain: bool,
        force: bool,
    ) -> Result<(), Error> {
        let action = if drain { "drain" } else { "activate" };
        let mut url = self.url(&["instances", id, action])?;
        if force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        self.send(self.http.post(url), true).await?;
        Ok(())
    }

    // ---- apps ----

    /// `GET /apps`
    pub async fn apps(&self) -> Result<Vec<App>, Error> {
        self.get_json(&["apps"]).await
    }

    /// `POST /apps`
    pub async fn create_app(&self, name: &str) -> Result<App, Error> {
        let body = CreateApp {
            name: name.to_string(),
        };
        self.post_json(&["apps"], Some(&body)).await
    }

    /// `GET /apps/{app}`
    pub async fn app(&self, app: &str) -> Result<AppInfo, Error> {
        self.get_json(&["apps", app]).await
    }

    /// `DELETE /apps/{app}`
    pub async fn delete_app(&self, app: &str) -> Result<(), Error> {
        self.delete_app_with(app, false).await
    }

    /// `DELETE /apps/{app}?volumes=BOOL`: with `volumes`, its volumes go too.
    pub async fn delete_app_with(&self, app: &str, volumes: bool) -> Result<(), Error> {
        let mut url = self.url(&["apps", app])?;
        if volumes {
            url.query_pairs_mut().append_pair("volumes", "true");
        }
        self.send(self.http.request(Method::DELETE, url), true)
            .await?;
        Ok(())
    }

    // ---- builds and deploys ----

    /// `POST /apps/{app}/builds`: uploads the source tar at `source_tar` and streams the
    /// build's events; the last is `result` ([`berth_api::BuildResult`]) or `error`.
    /// `manifest` is the manifest's path inside the tar; `progress` gets the bytes sent so far.
    pub async fn build(
        &self,
        app: &str,
        source_tar: &Path,
        manifest: &str,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<EventStream, Error> {
        self.upload(&["apps", app, "builds"], source_tar, manifest, progress)
            .await
    }

    /// `POST /apps/{app}/deploy`: like [`Client::build`], then release and rollout; the last
    /// event is `result` ([`berth_api::DeployResult`]) or `error`.
    pub async fn deploy(
        &self,
        app: &str,
        source_tar: &Path,
        manifest: &str,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<EventStream, Error> {
        self.upload(&["apps", app, "deploy"], source_tar, manifest, progress)
            .await
    }

    /// `GET /apps/{app}/builds`
    pub async fn builds(&self, app: &str) -> Result<Vec<Build>, Error> {
        self.get_json(&["apps", app, "builds"]).await
    }

    /// `GET /apps/{app}/builds/{id}/logs`
    pub async fn build_logs(&self, app: &str, id: &str) -> Result<String, Error> {
        let url = self.url(&["apps", app, "builds", id, "logs"])?;
        let resp = self.send(self.http.get(url.clone()), true).await?;
        let resp = self.expect_type("GET", &url, resp, "text/plain")?;
        resp.text().await.map_err(|e| self.body_error(&url, &e))
    }

    // ---- releases ----

    /// `GET /apps/{app}/releases`
    pub async fn releases(&self, app: &str) -> Result<Vec<Release>, Error> {
        self.get_json(&["apps", app, "releases"]).await
    }

    /// `GET /apps/{app}/releases/{id}/info`
    pub async fn release_info(&self, app: &str, id: &str) -> Result<ReleaseInfo, Error> {
        self.get_json(&["apps", app, "releases", id, "info"]).await
    }

    /// `POST /apps/{app}/releases/{id}/promote`. With `force`, an already active release has its processes replaced
    /// (without it, promoting the active release does nothing).
    pub async fn promote(&self, app: &str, id: &str, force: bool) -> Result<EventStream, Error> {
        self.post_forced(&["apps", app, "releases", id, "promote"], force)
            .await
    }

    /// `POST /apps/{app}/releases/{id}/rollback`; a release that failed is
    /// refused unless `force`.
    pub async fn rollback(&self, app: &str, id: &str, force: bool) -> Result<EventStream, Error> {
        self.post_forced(&["apps", app, "releases", id, "rollback"], force)
            .await
    }

    /// A bodiless POST of long work, with `?force=true` when `force`.
    async fn post_forced(&self, segments: &[&str], force: bool) -> Result<EventStream, Error> {
        let mut url = self.url(segments)?;
        if force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        let req = self
            .http
            .post(url.clone())
            .header("accept", "application/x-ndjson");
        let resp = self.send(req, true).await?;
        Ok(ndjson(resp, url.to_string()))
    }

    // ---- environment ----

    /// `GET /apps/{app}/env`
    pub async fn env(&self, app: &str) -> Result<BTreeMap<String, String>, Error> {
        self.get_json(&["apps", app, "env"]).await
    }

    /// `GET /apps/{app}/env/effective`: the values and the manifest's defaults,
    /// each with its source.
    pub async fn effective_env(&self, app: &str) -> Result<EffectiveEnv, Error> {
        self.get_json(&["apps", app, "env", "effective"]).await
    }

    /// `POST /apps/{app}/env`: makes a new release; rolls it out when `change.promote`.
    pub async fn change_env(&self, app: &str, change: &EnvChange) -> Result<EventStream, Error> {
        self.post_stream(&["apps", app, "env"], Some(change)).await
    }

    // ---- processes ----

    /// `POST /apps/{app}/services/{service}/scale`
    pub async fn scale(
        &self,
        app: &str,
        service: &str,
        request: &ScaleRequest,
    ) -> Result<EventStream, Error> {
        self.post_stream(&["apps", app, "services", service, "scale"], Some(request))
            .await
    }

    /// `GET /apps/{app}/processes`
    pub async fn processes(&self, app: &str) -> Result<Vec<Process>, Error> {
        self.get_json(&["apps", app, "processes"]).await
    }

    /// `DELETE /apps/{app}/processes/{id}`
    pub async fn stop_process(&self, app: &str, id: &str) -> Result<(), Error> {
        self.delete(&["apps", app, "processes", id]).await
    }

    /// `POST /apps/{app}/restart`
    pub async fn restart(&self, app: &str, request: &RestartRequest) -> Result<EventStream, Error> {
        self.post_stream(&["apps", app, "restart"], Some(request))
            .await
    }

    /// `GET /apps/{app}/logs`: a stream of log lines; with `follow`, it stays open.
    pub async fn logs(&self, app: &str, query: &LogsQuery) -> Result<LogStream, Error> {
        let mut url = self.url(&["apps", app, "logs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(since) = query.since {
                pairs.append_pair("since", &since.to_string());
            }
            if let Some(until) = query.until {
                pairs.append_pair("until", &until.to_string());
            }
            for (name, value) in [
                ("service", &query.service),
                ("process", &query.process),
                ("source", &query.source),
                ("grep", &query.grep),
            ] {
                if let Some(value) = value {
                    pairs.append_pair(name, value);
                }
            }
            if let Some(tail) = query.tail {
                pairs.append_pair("tail", &tail.to_string());
            }
            if query.follow {
                pairs.append_pair("follow", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.get_ndjson(url).await
    }

    async fn get_ndjson(&self, url: Url) -> Result<LogStream, Error> {
        let req = self
            .http
            .get(url.clone())
            .header("accept", "application/x-ndjson");
        let resp = self.send(req, true).await?;
        let resp = self.expect_type("GET", &url, resp, "application/x-ndjson")?;
        Ok(ndjson(resp, url.to_string()))
    }

    // ---- plumbing ----

    /// The URL of `segments` under the base URL; each segment is percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidUrl {
                url: self.base.to_string(),
                reason: "it cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn get_json<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, Error> {
        let url = self.url(segments)?;
        let resp = self.send(self.http.get(url.clone()), true).await?;
        self.decode("GET", &url, resp).await
    }

    /// GETs a body of `content_type` (a volume's tar, a dump), streamed.
    async fn get_stream(
        &self,
        segments: &[&str],
        content_type: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let url = self.url(segments)?;
        let resp = self.send(self.http.get(url.clone()), true).await?;
        let resp = self.expect_type("GET", &url, resp, content_type)?;
        let shown = url.to_string();
        Ok(resp
            .bytes_stream()
            .map(move |c| {
                c.map_err(|e| Error::Request {
                    url: shown.clone(),
                    reason: e.to_string(),
                })
            })
            .boxed())
    }

    /// PUTs what `body` reads (e.g. stdin) as `content_type`, streamed.
    async fn put_stream(
        &self,
        segments: &[&str],
        content_type: &str,
        body: impl tokio::io::AsyncRead + Send + 'static,
    ) -> Result<(), Error> {
        let url = self.url(segments)?;
        let body = tokio_util::io::ReaderStream::with_capacity(body, UPLOAD_CHUNK);
        let req = self
            .http
            .put(url)
            .header("content-type", content_type)
            .body(reqwest::Body::wrap_stream(body));
        self.send(req, true).await?;
        Ok(())
    }

    /// POSTs `body` as JSON (or nothing) and decodes the JSON answer.
    async fn post_json<B: serde::Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T, Error> {
        let url = self.url(segments)?;
        let mut req = self.http.post(url.clone());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req, true).await?;
        self.decode("POST", &url, resp).await
    }

    async fn delete(&self, segments: &[&str]) -> Result<(), Error> {
        let url = self.url(segments)?;
        self.send(self.http.request(Method::DELETE, url), true)
            .await?;
        Ok(())
    }

    async fn post_stream<B: serde::Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<EventStream, Error> {
        let url = self.url(segments)?;
        let mut req = self
            .http
            .post(url.clone())
            .header("accept", "application/x-ndjson");
        req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let resp = self.send(req, true).await?;
        let resp = self.expect_type("POST", &url, resp, "application/x-ndjson")?;
        Ok(ndjson(resp, url.to_string()))
    }

    async fn upload(
        &self,
        segments: &[&str],
        source_tar: &Path,
        manifest: &str,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<EventStream, Error> {
        let mut url = self.url(segments)?;
        url.query_pairs_mut().append_pair("manifest", manifest);
        self.post_tar(url, source_tar, progress).await
    }

    /// POSTs the tar at `path`, streamed from disk, and follows the events of the work
    /// it starts; `progress` gets the bytes sent so far.
    async fn post_tar(
        &self,
        url: Url,
        path: &Path,
        mut progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<EventStream, Error> {
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let len = file.metadata().await.map_err(io_err)?.len();
        let mut sent = 0u64;
        progress(0);
        let body = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK).map(
            move |chunk: std::io::Result<Bytes>| {
                if let Ok(bytes) = &chunk {
                    sent += bytes.len() as u64;
                    progress(sent);
                }
                chunk
            },
        );
        let req = self
            .http
            .post(url.clone())
            .header("content-type", "application/x-tar")
            .header("content-length", len)
            .header("accept", "application/x-ndjson")
            .body(reqwest::Body::wrap_stream(body));
        let resp = self.send(req, true).await?;
        let resp = self.expect_type("POST", &url, resp, "application/x-ndjson")?;
        Ok(ndjson(resp, url.to_string()))
    }

    /// Sends `req` (with the token when `auth`), mapping transport failures and
    /// non-2xx answers to [`Error`].
    async fn send(&self, req: RequestBuilder, auth: bool) -> Result<Response, Error> {
        let req = if auth {
            req.bearer_auth(&self.token)
        } else {
            req
        };
        let request = req.build().map_err(|e| self.transport_error(&e))?;
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let resp = match self.http.execute(request).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.transport_error(&e)),
        };
        let status = resp.status();
        if status.is_success() {
            self.check_api_version(&resp)?;
            return Ok(resp);
        }
        let content_type = content_type(&resp);
        let body = resp.bytes().await.unwrap_or_default();
        Err(answer_error(
            &self.base_url(),
            method.as_str(),
            &path,
            status,
            content_type.as_deref(),
            &body,
        ))
    }

    /// `resp` when it has the content type berth's API gives this route, else the
    /// error naming what answered instead.
    fn expect_type(
        &self,
        method: &str,
        url: &Url,
        resp: Response,
        wanted: &str,
    ) -> Result<Response, Error> {
        let content_type = content_type(&resp);
        if content_type
            .as_deref()
            .is_some_and(|t| t.starts_with(wanted))
        {
            return Ok(resp);
        }
        Err(not_berth(
            &self.base_url(),
            method,
            url.path(),
            resp.status(),
            content_type.as_deref(),
            b"",
        ))
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        method: &str,
        url: &Url,
        resp: Response,
    ) -> Result<T, Error> {
        let status = resp.status();
        let content_type = content_type(&resp);
        let bytes = resp.bytes().await.map_err(|e| self.body_error(url, &e))?;
        if !content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return Err(not_berth(
                &self.base_url(),
                method,
                url.path(),
                status,
                content_type.as_deref(),
                &bytes,
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// Refuses an answer of a server older than [`MIN_SERVER_API`]: berth's
    /// answers carry [`berth_api::API_VERSION_HEADER`]; a JSON answer without it
    /// is a berth server from before versioning (version 0). Other answers
    /// without it are not berth's at all, which `decode` names.
    fn check_api_version(&self, resp: &Response) -> Result<(), Error> {
        let server = match resp.headers().get(berth_api::API_VERSION_HEADER) {
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(0),
            None if content_type(resp).is_some_and(|t| t.starts_with("application/json")) => 0,
            None => return Ok(()),
        };
        if server < MIN_SERVER_API {
            return Err(Error::ServerTooOld {
                url: self.base_url(),
                server,
                needed: MIN_SERVER_API,
                client: env!("CARGO_PKG_VERSION"),
            });
        }
        Ok(())
    }

    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let base = self.base_url();
        if tls::is_untrusted_certificate(e) {
            return Error::Untrusted {
                url: base,
                reason: root_cause(e),
            };
        }
        if e.is_connect() {
            let reason = if has_io_kind(e, std::io::ErrorKind::ConnectionRefused) {
                "connection refused".to_string()
            } else {
                root_cause(e)
            };
            return Error::Connect { url: base, reason };
        }
        let url = e.url().map(|u| u.to_string()).unwrap_or(base);
        Error::Request {
            url,
            reason: root_cause(e),
        }
    }

    fn body_error(&self, url: &Url, e: &reqwest::Error) -> Error {
        Error::Request {
            url: url.to_string(),
            reason: root_cause(e),
        }
    }
}

/// The text of an error answer: the [`ErrorBody`] message, else the body, else the status.
fn error_message(status: StatusCode, body: &str) -> String {
    if let Ok(b) = serde_json::from_str::<ErrorBody>(body) {
        return b.error;
    }
    let body = body.trim();
    if !body.is_empty() && body.len() < 2000 {
        return format!("the server answered {status}: {body}");
    }
    format!("the server answered {status}")
}

/// The error of a non-2xx answer: the API's own ([`ErrorBody`] as JSON), or one that
/// says the URL is not berth's API.
pub(crate) fn answer_error(
    base: &str,
    method: &str,
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Error {
    let is_json = content_type.is_some_and(|t| t.starts_with("application/json"));
    if !is_json {
        return not_berth(base, method, path, status, content_type, body);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Error::Unauthorized;
    }
    Error::Api {
        status: status.as_u16(),
        message: error_message(status, &String::from_utf8_lossy(body)),
    }
}

/// Where the API is, for messages about a URL that is not it.
const USE_THE_API: &str = "use the address of berth's API instead: the --api of `berth server` (default http://127.0.0.1:7070), with `berth login URL --token T` or BERTH_HOST";

/// Says what answered `method path` at `base` instead of berth's API: berth's router
/// (its own answers are plain text starting `berth: `), or another server.
pub(crate) fn not_berth(
    base: &str,
    method: &str,
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Error {
    let text = String::from_utf8_lossy(body);
    let is_plain = content_type.is_some_and(|t| t.starts_with("text/plain"));
    let message = if is_plain && text.starts_with("berth: ") {
        format!(
            "{base} is berth's router, which serves the apps, not berth's API ({method} {path} answered {status}: {}); {USE_THE_API}",
            first_line(&text)
        )
    } else {
        let what = match content_type {
            Some(t) => t.split(';').next().unwrap_or(t).trim().to_string(),
            None => "no content type".into(),
        };
        let said = html_title(&text)
            .or_else(|| {
                is_plain
                    .then(|| first_line(&text))
                    .filter(|l| !l.is_empty())
            })
            .map(|s| format!(" ({s:?})"))
            .unwrap_or_default();
        format!(
            "{base} is not a berth API: {method} {path} answered {status} with {what}{said}, where berth's API answers JSON; {USE_THE_API}"
        )
    };
    Error::NotBerth {
        url: base.to_string(),
        message,
    }
}

fn content_type(resp: &Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

/// The first line of `text`, cut to a length that fits an error message.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let mut cut: String = line.chars().take(160).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}

/// An HTML page's `<title>`, which names what is serving it better than its markup.
fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let len = lower[open_end..].find("</title")?;
    let title = text.get(open_end..open_end + len)?.trim();
    (!title.is_empty()).then(|| first_line(title))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{response, serve_once};

    #[test]
    fn hosts_are_normalized() {
        let cases = [
            ("127.0.0.1:7070", "http://127.0.0.1:7070/"),
            ("http://127.0.0.1:7070", "http://127.0.0.1:7070/"),
            ("http://h:1/", "http://h:1/"),
            ("https://h/berth", "https://h/berth/"),
            (" http://h:1 ", "http://h:1/"),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_host(input).map(|u| u.to_string()).ok().as_deref(),
                Some(want)
            );
        }
        for bad in ["", "ftp://h", "http://", "http://h/?a=b"] {
            assert!(normalize_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls_encode_segments_and_keep_prefix() -> Result<(), Error> {
        let c = Client::new("http://h:1", "t")?;
        assert_eq!(
            c.url(&["apps", "shop", "env"])?.as_str(),
            "http://h:1/apps/shop/env"
        );
        assert_eq!(c.url(&["apps", "a/b"])?.as_str(), "http://h:1/apps/a%2Fb");
        let c = Client::new("http://h:1/prefix/", "t")?;
        assert_eq!(c.url(&["rack"])?.as_str(), "http://h:1/prefix/rack");
        assert_eq!(c.base_url(), "http://h:1/prefix");
        Ok(())
    }

    #[test]
    fn error_bodies() {
        let s = StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(s, r#"{"error":"no app shop"}"#),
            "no app shop"
        );
        assert_eq!(
            error_message(s, "nope"),
            "the server answered 404 Not Found: nope"
        );
        assert_eq!(error_message(s, ""), "the server answered 404 Not Found");
    }

    #[tokio::test]
    async fn a_server_older_than_the_client_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let body = "[]";
        let old = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (url, _task) = serve_once(old).await?;
        let err = Client::new(&url, "t")?
            .apps()
            .await
            .err()
            .ok_or("apps succeeded")?;
        assert!(
            matches!(
                err,
                Error::ServerTooOld {
                    server: 0,
                    needed: MIN_SERVER_API,
                    ..
                }
            ),
            "{err}"
        );
        let (url, _task) = serve_once(response("200 OK", "application/json", body)).await?;
        assert!(Client::new(&url, "t")?.apps().await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn unauthorized_says_how_to_log_in() -> Result<(), Box<dyn std::error::Error>> {
        let body = r#"{"error":"missing or wrong token"}"#;
        let (url, task) =
            serve_once(response("401 Unauthorized", "application/json", body)).await?;
        let err = Client::new(&url, "bad")?
            .apps()
            .await
            .err()
            .ok_or("apps succeeded")?;
        assert!(matches!(err, Error::Unauthorized));
        let msg = err.to_string();
        assert!(
            msg.contains("berth login URL --token T") && msg.contains("BERTH_TOKEN"),
            "{msg}"
        );
        let req = String::from_utf8(task.await??)?;
        assert!(req.starts_with("GET /apps HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer bad\r\n"),
            "{req}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn other_errors_carry_the_server_message() -> Result<(), Box<dyn std::error::Error>> {
        let body =
            r#"{"error":"app shop does not exist; create it with `berth apps create shop`"}"#;
        let (url, _task) = serve_once(response("404 Not Found", "application/json", body)).await?;
        let err = Client::new(&url, "t")?
            .processes("shop")
            .await
            .err()
            .ok_or("ps succeeded")?;
        assert_eq!(err.status(), Some(404));
        assert_eq!(
            err.to_string(),
            "app shop does not exist; create it with `berth apps create shop`"
        );
        Ok(())
    }

    #[tokio::test]
    async fn streams_events_in_order() -> Result<(), Box<dyn std::error::Error>> {
        let body = concat!(
            "{\"type\":\"step\",\"text\":\"release R2 created\"}\n",
            "{\"type\":\"build\",\"text\":\"Step 1/2\"}\n",
            "{\"type\":\"result\",\"value\":{\"ok\":true}}\n",
        );
        let (url, task) = serve_once(response("200 OK", "application/x-ndjson", body)).await?;
        let change = EnvChange {
            promote: true,
            ..EnvChange::default()
        };
        let events: Vec<Event> = Client::new(&url, "t")?
            .change_env("shop", &change)
            .await?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            Event::Step {
                text: "release R2 created".into()
            }
        );
        assert!(matches!(&events[2], Event::Result { value } if value["ok"] == true));
        let req = String::from_utf8(task.await??)?;
        assert!(req.starts_with("POST /apps/shop/env HTTP/1.1"), "{req}");
        assert!(
            req.ends_with(r#"{"set":{},"unset":[],"promote":true}"#),
            "{req}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn uploads_stream_the_file_and_report_progress() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let tar = dir.path().join("src.tar");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&tar, &data)?;
        let body = "{\"type\":\"result\",\"value\":null}\n";
        let (url, task) = serve_once(response("200 OK", "application/x-ndjson", body)).await?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let events = Client::new(&url, "t")?
            .deploy("shop", &tar, "k8s/pod.yml", move |n| {
                if let Ok(mut v) = record.lock() {
                    v.push(n);
                }
            })
            .await?
            .collect::<Vec<_>>()
            .await;
        assert_eq!(events.len(), 1);
        let req = task.await??;
        let split = req
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no head")?
            + 4;
        let head = String::from_utf8_lossy(&req[..split]).to_ascii_lowercase();
        assert!(
            head.starts_with("post /apps/shop/deploy?manifest=k8s%2fpod.yml http/1.1"),
            "{head}"
        );
        assert!(head.contains("content-length: 200000"), "{head}");
        assert!(req[split..] == data[..], "body differs");
        let seen = seen.lock().map_err(|_| "poisoned")?.clone();
        assert_eq!(seen.first(), Some(&0));
        assert_eq!(seen.last(), Some(&200_000));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        Ok(())
    }

    #[tokio::test]
    async fn berths_router_is_named_as_not_the_api() -> Result<(), Box<dyn std::error::Error>> {
        let body =
            "berth: no app serves host \"127.0.0.1\"; check the domain or run 'berth apps'\n";
        let (url, _task) =
            serve_once(response("404 Not Found", "text/plain; charset=utf-8", body)).await?;
        let err = Client::new(&url, "t")?
            .rack()
            .await
            .err()
            .ok_or("rack succeeded")?;
        let msg = err.to_string();
        assert!(matches!(err, Error::NotBerth { .. }), "{msg}");
        assert!(
            msg.contains("is berth's router") && msg.contains("--api") && msg.contains(&url),
            "{msg}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn other_servers_are_named_without_their_pages() -> Result<(), Box<dyn std::error::Error>>
    {
        let page = "<!doctype html><html><head><title>Welcome to nginx!</title></head><body>"
            .to_string()
            + &"<p>filler</p>".repeat(100)
            + "</body></html>";
        for (status, call) in [
            ("200 OK", "apps"),
            ("404 Not Found", "apps"),
            ("401 Unauthorized", "apps"),
            ("200 OK", "health"),
        ] {
            let (url, _task) = serve_once(response(status, "text/html", &page)).await?;
            let client = Client::new(&url, "t")?;
            let err = match call {
                "apps" => client.apps().await.err(),
                _ => client.check_berth().await.err(),
            }
            .ok_or("the call succeeded")?;
            let msg = err.to_string();
            assert!(
                matches!(err, Error::NotBerth { .. }),
                "{status} {call}: {msg}"
            );
            assert!(
                msg.contains("is not a berth API")
                    && msg.contains("text/html")
                    && msg.contains("Welcome to nginx!")
                    && msg.contains("--api"),
                "{msg}"
            );
            assert!(!msg.contains("filler"), "the page is dumped: {msg}");
        }
        let (url, _task) =
            serve_once(response("200 OK", "text/plain; charset=utf-8", "ok")).await?;
        Client::new(&url, "t")?.check_berth().await?;
        Ok(())
    }

    #[tokio::test]
    async fn connection_refused_names_the_url() -> Result<(), Box<dyn std::error::Error>> {
        // Bind then drop a listener so the port is (very likely) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let c = Client::new(&format!("http://127.0.0.1:{port}"), "t")?;
        let err = c.rack().await.err().ok_or("rack succeeded")?;
        let msg = err.to_string();
        assert!(matches!(err, Error::Connect { .. }), "{msg}");
        assert!(msg.contains(&format!("http://127.0.0.1:{port}")), "{msg}");
        assert!(
            msg.contains("berth server") && msg.contains("BERTH_HOST"),
            "{msg}"
        );
        Ok(())
    }
}
