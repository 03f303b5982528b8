//! Wire types shared by the server, the client and the CLI. Serde only.
//!
//! Routes (all but `GET /health`, `GET /ca.pem` and `GET /openapi.json` need
//! `Authorization: Bearer <token>`); their OpenAPI 3.1 document is `docs/openapi.json`:
//! - `GET /health` → `"ok"`
//! - `GET /openapi.json` → this API's OpenAPI 3.1 document (generated from the server's
//!   handlers and, with the `openapi` feature, this crate's types)
//! - `GET /ca.pem` → the cluster CA's certificate (`application/x-pem-file`), which a
//!   client checks against the fingerprint it was given (`berth login --ca-sha256`)
//! - `GET /rack` → [`RackInfo`]
//! - `GET /apps` → `Vec<App>`; `GET /apps?services=true` → `Vec<AppInfo>` (each app as
//!   `GET /apps/{app}` answers it, in one call); `POST /apps` [`CreateApp`] → [`App`]
//! - `GET /apps/{app}` → [`AppInfo`]; `DELETE /apps/{app}` → 204
//! - `POST /apps/{app}/builds` (body: source tar; `?manifest=berth.yml`) → NDJSON [`Event`]s;
//!   the last is `result` with a [`BuildResult`]
//! - `POST /apps/{app}/deploy` (body: source tar; `?manifest=berth.yml`) → NDJSON [`Event`]s:
//!   build, release, rollout; the last is `result` ([`DeployResult`]) or `error`
//! - `GET /apps/{app}/builds` → `Vec<Build>`; `GET /apps/{app}/builds/{id}/logs` → text
//! - `GET /apps/{app}/releases` → `Vec<Release>`
//! - `POST /apps/{app}/releases/{id}/promote[?force=true]` → NDJSON [`Event`]s (rollout; the
//!   active release is left as it is unless `force`, which replaces its processes)
//! - `POST /apps/{app}/releases/{id}/rollback[?force=true]` → NDJSON [`Event`]s (new release,
//!   rollout); 409 for a release that failed, unless `force`
//! - `GET /apps/{app}/env` → `BTreeMap<String,String>` (the values set with `env set`)
//! - `GET /apps/{app}/env/effective` → [`EffectiveEnv`] (those values and the manifest's
//!   defaults, each with its source)
//! - `GET /apps/{app}/env/keys` → [`EnvKeys`] (keys only, never values; a `read` token may)
//! - `POST /apps/{app}/env` [`EnvChange`] → NDJSON [`Event`]s (new release, rollout if
//!   `promote`; a change that changes nothing makes neither, and its `result` is `null`)
//! - `POST /apps/{app}/services/{service}/scale` [`ScaleRequest`] → NDJSON [`Event`]s
//! - `GET /apps/{app}/processes` → `Vec<Process>`; `DELETE /apps/{app}/processes/{id}` → 204
//! - `POST /apps/{app}/restart` [`RestartRequest`] → NDJSON [`Event`]s
//! - `GET /apps/{app}/logs?since=SECS&service=S&tail=N&follow=true` → NDJSON [`LogEntry`]s
//!   in time order (`tail`: only the last N stored lines; an unknown `service` is a 404
//!   naming the app's services)
//! - `GET /apps/{app}/run` (WebSocket, first message a [`RunRequest`], then
//!   [`SessionMessage`]s and stream frames); `POST /apps/{app}/run` [`RunRequest`] →
//!   [`RunStarted`] (detached)
//! - `GET /apps/{app}/processes/{id}/exec` (WebSocket, first message an [`ExecRequest`])
//! - `GET /apps/{app}/timers` → `Vec<TimerInfo>`
//! - `GET /tokens` → `Vec<TokenInfo>`; `POST /tokens` [`CreateToken`] → [`CreatedToken`];
//!   `DELETE /tokens/{id}` → 204 (admin only)
//! - `GET /audit?limit=N` → `Vec<AuditEntry>` (admin only)
//! - `GET /apps/{app}/volumes` → `Vec<VolumeEntry>`; `GET /apps/{app}/volumes/{name}/archive`
//!   → tar of its content; `PUT /apps/{app}/volumes/{name}/archive` (body: tar) → 204;
//!   `DELETE /apps/{app}?volumes=true` deletes the app's volumes too (refused without it)
//! - `GET /apps/{app}/resources` → `Vec<ResourceEntry>` (URLs with the password masked);
//!   `GET /apps/{app}/resources/{name}` → [`ResourceEntry`]; `GET .../{name}/url` →
//!   [`ResourceUrl`] (revealed; deploy role, audited); `GET .../{name}/backup` → a logical
//!   dump (`pg_dump --format=custom`; redis: an RDB snapshot); `PUT .../{name}/backup`
//!   (body: such a dump) → 204 (`pg_restore --clean --if-exists`); both deploy role;
//!   `GET .../{name}/proxy` (WebSocket, deploy role): first frame `{}`, then binary
//!   frames are bytes to the resource and `[1, bytes...]` frames its answers, as for exec;
//!   `POST .../{name}/upgrade` (body: [`ResourceUpgrade`]; deploy role) → NDJSON
//!   [`Event`]s: the backup, the new container, its check; the last is `result`
//!   ([`ResourceUpgraded`]) or `error` (the old image runs again)
//! - `POST /apps/{app}/image?image=NAME[&manifest_text=YAML]` (body: `docker save` tar)
//!   → NDJSON [`Event`]s: load, build, release, rollout; the last is `result` ([`DeployResult`])
//! - `POST /apps/{app}/image/layers` (body: `Vec<String>` layer chain ids) → those the
//!   server's engine has (their data may be left out of the `docker save` tar)
//! - `GET /apps/{app}/releases/{id}/info` → [`ReleaseInfo`]
//! - `POST /rack/prune` → [`PruneReport`]
//! - `POST /rack/backup` [`BackupRequest`] → the rack's backup archive (a tar, or
//!   with the master key a tar sealed with the passphrase; admin)
//! - `GET /instances` → `Vec<Instance>`; `POST /instances/join` → [`JoinInstructions`]
//!   (admin); `POST /instances/{id}/drain[?force=true]`, `POST /instances/{id}/activate` → 204 (admin;
//!   a drain is refused with 409 while processes that cannot move run there, unless forced)
//! - `POST /agent/hello` [`AgentHello`] → [`AgentWelcome`] (node tokens only)
//! - `GET /certs` → `Vec<CertInfo>`; `POST /certs` [`ImportCert`] → [`CertInfo`];
//!   `POST /certs/generate` [`GenerateCert`] → [`CertInfo`]; `POST /certs/{id}/default` →
//!   [`CertInfo`] (served to clients without SNI); `DELETE /certs/{id}` → 204 (admin)
//! - `GET /drains` → `Vec<DrainInfo>` (every drain); `POST /drains` [`AddDrain`] →
//!   [`DrainInfo`] (a rack-wide drain); `DELETE /drains/{id}` → 204 (admin)
//! - `GET /apps/{app}/drains` → `Vec<DrainInfo>` (read); `POST /apps/{app}/drains`
//!   [`AddDrain`] → [`DrainInfo`]; `DELETE /apps/{app}/drains/{id}` → 204 (deploy)
//!
//! The web console (HTML for browsers, not for clients of this crate) is served
//! beside the API. Its pages need a session cookie from the sign-in, not a
//! bearer token; every page and form calls the routes above with the session's
//! token, so the same roles apply. Every `POST` needs the session's CSRF token
//! (`_csrf`) and a same-origin browser.
//! - `GET /` and `GET /console` → redirect to `/console/`
//! - `GET /console/signin` (no session) → the sign-in form; `POST /console/signin`
//!   (`token`, `_csrf`) → a new session cookie, redirect to `/console/`
//! - `POST /console/signout` → the session ends
//! - `GET /console/assets/console.css`, `GET /console/assets/console.js` (no session)
//! - `GET /console/` → the rack: version, engine, domain, uptime, apps (and a swarm's nodes)
//! - `GET /console/apps/{app}` → services and processes;
//!   `POST /console/apps/{app}/processes/{id}/stop`
//! - `GET /console/apps/{app}/releases`; `GET /console/apps/{app}/releases/{id}/{promote|rollback}`
//!   → the confirmation; `POST` the same → the rollout's progress, streamed as HTML
//! - `GET /console/apps/{app}/builds`, `GET /console/apps/{app}/builds/{id}` (its output)
//! - `GET /console/apps/{app}/env[?reveal=KEY]`; `POST /console/apps/{app}/env`
//!   (`key`+`value` or `unset`, `promote`) → progress, streamed as HTML
//! - `GET /console/apps/{app}/volumes`, `.../timers`, `.../certs`
//! - `GET /console/apps/{app}/logs[?service=S]`; `GET /console/apps/{app}/logs/stream[?service=S&tail=N]`
//!   → Server-Sent Events, one [`LogEntry`] (JSON) per event, following
//! - `GET /console/tokens`, `POST /console/tokens` (`role`, `app`) → the secret, once;
//!   `POST /console/tokens/{id}/revoke`; `GET /console/audit` (admin)

/// The version of this API. Every answer of the API carries it in the
/// [`API_VERSION_HEADER`] header (and `GET /rack` in [`RackInfo::api_version`]);
/// it goes up when a route or type changes in a way an older client or server
/// would misread. Paths carry no version: the role policy, the audit and the
/// metrics are keyed by route, and a client checks the header of every answer.
pub const API_VERSION: u32 = 1;
/// The response header naming the server's [`API_VERSION`].
pub const API_VERSION_HEADER: &str = "berth-api-version";

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Body of every error response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong and how to fix it, in one or two sentences.
    pub error: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RackInfo {
    pub version: String,
    /// The API's version ([`API_VERSION`] of the server's build; 0: a server
    /// from before versioning).
    #[serde(default)]
    pub api_version: u32,
    pub uptime_secs: u64,
    /// e.g. `docker 20.10.24 (API 1.41)`
    pub engine: String,
    pub domain: String,
    /// Base URL of the HTTP router, e.g. `http://127.0.0.1:8080`.
    pub router: String,
    pub apps: u64,
    pub processes: u64,
    pub builds: u64,
    pub releases: u64,
    /// The berth version the router process runs, when known.
    #[serde(default)]
    pub router_version: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateApp {
    /// 1 to 30 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-'.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$", example = "shop")
    )]
    pub name: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// RFC 3339
    pub created: String,
    /// The promoted release, if any.
    pub release: Option<String>,
    /// `new` (never deployed), `running`, `deploying`, `image missing` (a
    /// process cannot start: the engine lacks its image; deploy again)
    pub status: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppInfo {
    #[serde(flatten)]
    pub app: App,
    pub services: Vec<ServiceInfo>,
    /// What its processes use together, as last sampled: percent of one core
    /// (`None` until sampled twice) and memory in bytes.
    #[serde(default)]
    pub cpu: Option<f64>,
    #[serde(default)]
    pub memory: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceInfo {
    pub name: String,
    /// URLs through the router (empty when the service has no port).
    pub urls: Vec<String>,
    pub port: Option<u16>,
    pub count: u32,
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
    /// Running and healthy processes of the promoted release.
    pub healthy: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Build {
    pub id: String,
    pub app: String,
    /// `running`, `succeeded`, `failed`
    pub status: String,
    pub created: String,
    pub finished: Option<String>,
    /// service → image
    pub images: BTreeMap<String, String>,
    pub error: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildResult {
    pub build: Build,
    pub release: Release,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    pub app: String,
    pub build: Option<String>,
    /// Version of the app's environment this release carries.
    pub env_version: u64,
    pub created: String,
    /// `created`, `active` (the promoted one), `superseded`, `failed`
    pub status: String,
    /// Why it exists: `build B2`, `env set GREETING`, `rollback to R1`, ...
    pub description: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployResult {
    pub release: Release,
    /// URLs of the routed services.
    pub urls: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct EnvChange {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub unset: Vec<String>,
    #[serde(default)]
    pub promote: bool,
}

/// The environment an app's processes get (`GET /apps/{app}/env/effective`): the
/// values set with `berth env set` and the defaults of the promoted release's
/// manifest, each with where it comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct EffectiveEnv {
    /// The release whose manifest gives the defaults; `None` before the first deploy.
    pub release: Option<String>,
    /// The services of that manifest: a service without a default of its own for
    /// a key gets the app-wide one.
    pub services: Vec<String>,
    /// Sorted by key; a key has one `set` entry, or an app-wide `default` and
    /// `service` entries for the services that override it.
    pub vars: Vec<EnvVar>,
    /// Keys the manifest requires that are not set.
    pub missing: Vec<String>,
}

/// The keys of an app's environment without their values (`GET /apps/{app}/env/keys`,
/// which a `read` token may call).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct EnvKeys {
    /// Sorted: keys set with `env set`, the manifest's defaults, and required keys.
    pub keys: Vec<String>,
    /// Keys the manifest requires that are not set.
    pub missing: Vec<String>,
}

/// One value of an [`EffectiveEnv`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
    pub source: EnvSource,
    /// For [`EnvSource::Service`]: the service whose default it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Where an environment value comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum EnvSource {
    /// `berth env set`; wins over every default.
    Set,
    /// The manifest's app-wide `environment:` (`KEY=default`).
    Default,
    /// A service's `environment:` in the manifest; wins over the app-wide default.
    Service,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ScaleRequest {
    pub count: Option<u32>,
    /// MiB
    pub memory: Option<u64>,
    /// cores
    pub cpu: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RestartRequest {
    /// `None`: every service.
    pub service: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub id: String,
    pub app: String,
    /// What it is: a process of its service, or a one-off of it.
    #[serde(default)]
    pub kind: ProcessKind,
    /// The plain service name, whatever the kind.
    pub service: String,
    /// The timer that started it (kind `timer`).
    #[serde(default)]
    pub timer: Option<String>,
    pub release: String,
    /// `starting`, `running`, `unhealthy`, `crashed`, `stopping`, `missing`,
    /// `image missing` (the engine lacks its release's image);
    /// one-offs: `starting`, `running`, `exited`
    pub state: String,
    /// RFC 3339, when the current container started.
    pub started: Option<String>,
    /// `ip:port` on the app network.
    pub address: Option<String>,
    pub restarts: u32,
    pub last_exit: Option<i64>,
    /// The node it runs on (on a swarm; `None` on a single engine).
    #[serde(default)]
    pub node: Option<String>,
    /// Share of one core it used over the last few seconds, in percent
    /// (150.0: one and a half cores); `None` until sampled twice.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Memory it uses, bytes (page cache left out).
    #[serde(default)]
    pub memory: Option<u64>,
    /// Its memory limit, bytes: `scale.memory`, else what the engine enforces
    /// (the machine's memory when nothing is set).
    #[serde(default)]
    pub memory_limit: Option<u64>,
}

/// What a [`Process`] is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    /// One of its service's processes, kept running by the reconciler.
    #[default]
    Service,
    /// A one-off of the service (`berth run`).
    Run,
    /// A one-off started by a timer.
    Timer,
}

/// One line of an app's log stream.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    /// RFC 3339 in UTC with all nine digits of nanoseconds
    /// (`2024-05-01T12:00:00.120000000Z`), so every timestamp has the same
    /// width and sorts as text. Lines written by older servers may have fewer
    /// digits; they are still RFC 3339.
    pub ts: String,
    /// `web/web-3f9a2c` for process output, `build/B2` for build output, `berth` for system events.
    pub source: String,
    pub text: String,
    /// The service a system event is about (`process web-3f9a2c exited with
    /// code 42`), so `logs --service web` shows it; absent for other lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// One item of a streamed (NDJSON) response of long work.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Build output, one line.
    Build { text: String },
    /// A step of the work, e.g. `release R3 created`, `web-3f9a2c healthy`.
    Step { text: String },
    /// The work failed; `logs` holds the failing process's last lines, if any.
    Error { error: String, logs: Vec<String> },
    /// The work succeeded; the value depends on the route.
    Result { value: serde_json::Value },
}

/// `POST /tokens`: a token with `role` (`admin`, `deploy` or `read`), limited to `app` if given.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateToken {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A token as listed (never its secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub role: String,
    pub app: Option<String>,
    pub created: String,
    pub last_used: Option<String>,
}

/// A new token; `secret` is shown this once and never stored in the clear.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatedToken {
    pub token: TokenInfo,
    pub secret: String,
}

/// One change made through the API: who, what, when and the answer's status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: String,
    pub token: String,
    pub role: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A one-off process to start: `POST /apps/{app}/run` (detached) or the first
/// text message on the `GET /apps/{app}/run` WebSocket (attached).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RunRequest {
    pub service: String,
    /// Default: the app's promoted release.
    #[serde(default)]
    pub release: Option<String>,
    /// Empty: the service's own command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Allocate a TTY (the client's stdin is a terminal).
    #[serde(default)]
    pub tty: bool,
    /// Forward the client's stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Stop the process after this many seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// The terminal's size, for `tty`.
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
}

/// A started one-off process.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunStarted {
    pub id: String,
    pub release: String,
}

/// The first text message on the `GET /apps/{app}/processes/{id}/exec` WebSocket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
}

/// Text messages of a run/exec WebSocket after the request. Binary messages
/// carry the streams: server → client `[1 (stdout) | 2 (stderr), bytes...]`,
/// client → server raw stdin bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionMessage {
    /// Server: the process runs (its one-off id, or the exec's process).
    Started { id: String },
    /// Client: the terminal was resized.
    Resize { rows: u16, cols: u16 },
    /// Client: stdin ended.
    Eof,
    /// Server, last: the exit code (`None` if unknown), whether `timeout` stopped
    /// it and whether it was killed at its memory limit.
    Exit {
        code: Option<i64>,
        #[serde(default)]
        timed_out: bool,
        #[serde(default)]
        oom_killed: bool,
    },
    /// Server, last: the process could not be run.
    Error { error: String },
}

/// A timer of the promoted release and its runs (`GET /apps/{app}/timers`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimerInfo {
    pub name: String,
    pub schedule: String,
    pub service: String,
    pub command: Vec<String>,
    /// RFC 3339 start of the last run.
    pub last_run: Option<String>,
    pub exit_code: Option<i64>,
    /// One-off id of the run in progress.
    pub running: Option<String>,
    /// RFC 3339 (UTC).
    pub next_run: Option<String>,
}

/// A named app volume (`GET /apps/{app}/volumes`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeEntry {
    pub name: String,
    /// Bytes of its content (as a tar: file data plus 512-byte headers).
    pub size: Option<u64>,
    /// Services of the promoted release that mount it.
    pub used_by: Vec<String>,
}

/// `POST /rack/backup`: what the archive holds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupRequest {
    /// Put the master key in the archive too, and seal the whole archive with
    /// `passphrase`.
    #[serde(default)]
    pub with_key: bool,
    /// Required with `with_key` (at least 8 characters), refused without it.
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// A resource of the app's promoted release (`GET /apps/{app}/resources`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceEntry {
    pub name: String,
    /// `postgres` or `redis`.
    #[serde(rename = "type")]
    pub kind: String,
    pub image: String,
    /// Its process's state: `running`, `starting`, `unhealthy`, `crashed`,
    /// or `stopped` when no process runs it.
    pub status: String,
    /// Its process, when one runs.
    pub process: Option<String>,
    /// Its URL on the app network, the password as `****`.
    pub url: String,
    /// The environment variables that carry its URL to the services naming it.
    pub env: Vec<String>,
    /// Services that name it.
    pub used_by: Vec<String>,
    /// The volume holding its data.
    pub volume: String,
}

/// A resource's URL with its password (`GET /apps/{app}/resources/{name}/url`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceUrl {
    pub url: String,
}

/// `POST /apps/{app}/resources/{name}/upgrade`: the image to run the resource on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceUpgrade {
    /// An image the engine has (`docker load` or build it first).
    pub image: String,
}

/// The result of a resource upgrade.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceUpgraded {
    pub name: String,
    /// The image it runs now.
    pub image: String,
    /// The image it ran before.
    pub previous: String,
    /// The backup taken first, a path on the server.
    pub backup: String,
}

/// One update of the rack's own binary (`POST /rack/update`, `GET /rack/updates`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RackUpdate {
    /// `u-` and 8 hex digits.
    pub id: String,
    pub from_version: String,
    pub to_version: String,
    /// `updating`, `done` or `rolled back`.
    pub state: String,
    /// RFC 3339.
    pub started: String,
    pub finished: Option<String>,
    /// Why it was rolled back, or what became of the router.
    pub message: Option<String>,
}

/// `GET /rack/settings`: the rack's settings that can change while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RackSettings {
    /// App log lines older than this are removed (seconds).
    pub log_retention_secs: u64,
    /// Each app's stored log is kept under this (bytes), plus one segment.
    pub log_max_size_bytes: u64,
}

/// `POST /rack/settings`: the settings to change; the others stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RackSettingsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_retention_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_size_bytes: Option<u64>,
}

/// What `POST /rack/prune` removed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PruneReport {
    pub containers: u64,
    pub images: u64,
    /// Bytes of the removed images (their size as the engine reports it).
    pub bytes: u64,
}

/// A release with what changed since the one before it (`GET /apps/{app}/releases/{id}/info`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub release: Release,
    /// The release it is compared with; `None` for the first.
    pub previous: Option<String>,
    /// Keys only, never values.
    pub env_added: Vec<String>,
    pub env_removed: Vec<String>,
    pub env_changed: Vec<String>,
    /// Line diff of the manifest: lines prefixed `+ `, `- ` or `  `; empty when equal.
    pub manifest_diff: Vec<String>,
}

/// A certificate the router serves (`GET /certs`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertInfo {
    pub id: String,
    /// Names served, exact or `*.example.com`.
    pub domains: Vec<String>,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// `imported`, `self-signed` or `acme`.
    pub source: String,
    /// Served to HTTPS clients that send no server name (SNI), e.g. by address.
    #[serde(default)]
    pub default: bool,
    /// RFC 3339 time until which the OCSP response stapled to it holds; `None`:
    /// none is stapled (no OCSP URI in the certificate, or no good answer yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp_good_until: Option<String>,
}

/// A log drain (`GET /drains`, `GET /apps/{app}/drains`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DrainInfo {
    pub id: String,
    /// The receiver's URL with any user and password masked.
    pub url: String,
    /// The app whose lines it forwards; `None`: every app's (rack-wide).
    #[serde(default)]
    pub app: Option<String>,
    /// Lines the receiver took since the drain was added.
    pub sent: u64,
    /// Lines dropped because its buffer was full (since the server started).
    pub dropped: u64,
    /// Bytes waiting in its buffer, and the buffer's bound.
    pub buffered: u64,
    pub max_bytes: u64,
    /// The last failure to send, while it lasts.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `POST /drains`, `POST /apps/{app}/drains`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AddDrain {
    /// `syslog+tcp://host:port`, `syslog+tls://host:port` or `otlp+http://host:port[/path]`.
    pub url: String,
    /// A PEM CA trusted for a `syslog+tls` receiver besides the system roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Bound of the drain's on-disk buffer, bytes (default 64 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// `POST /certs`: a PEM chain and its PEM private key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize)]
pub struct ImportCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ImportCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportCert").finish_non_exhaustive()
    }
}

/// `POST /certs/generate`: a self-signed certificate for these names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenerateCert {
    pub domains: Vec<String>,
}

/// An agent introduces itself to the server (`POST /agent/hello`, node token),
/// every few seconds: the server knows the agent is alive by these.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentHello {
    /// The Swarm node id of the engine the agent serves.
    pub node_id: String,
    pub hostname: String,
    /// The agent's HTTPS base URL as the server reaches it, e.g. `https://10.0.0.12:7071`.
    pub url: String,
    /// A secret the agent made at start: the server sends it as
    /// `Authorization: Bearer` on every call to the agent.
    pub key: String,
    /// berth's version on the node.
    pub version: String,
}

/// The server's answer to [`AgentHello`]: how to run the node's router and the
/// certificate to serve the agent's HTTPS with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentWelcome {
    /// The rack (`berth.rack` label) whose containers the agent looks after.
    pub rack_id: String,
    pub router: RouterSettings,
    pub tls: AgentTls,
}

/// How every node's router serves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouterSettings {
    /// Host address (port) the router serves plain HTTP on, e.g. `0.0.0.0:80`.
    pub http: String,
    /// Host address for HTTPS, if any.
    pub https: Option<String>,
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// Largest request body forwarded, bytes.
    pub max_body: u64,
    /// Largest request head, bytes (`--max-header-size`).
    #[serde(default = "default_max_head")]
    pub max_head: usize,
    /// Longest pause of a request body, seconds (`--body-timeout`).
    #[serde(default = "default_body_timeout")]
    pub body_timeout: u64,
}

fn default_max_head() -> usize {
    64 * 1024
}

fn default_body_timeout() -> u64 {
    60
}

/// A certificate for the agent's own HTTPS, issued by the cluster's CA, and
/// that CA (to trust the server with).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// One machine of the rack (`GET /instances`): the engine itself on a single
/// engine, each Swarm node on a swarm.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `disconnected` or `unknown`, as the cluster sees it.
    pub status: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// Its agent: `connected`, `lost` (no hello for a while) or `missing`
    /// (never heard of); `None` on a single engine, which needs none.
    pub agent: Option<String>,
    /// berth processes (not one-offs) running on it.
    pub processes: u32,
    /// Cores and bytes of memory it offers.
    pub cpus: f64,
    pub memory: u64,
}

/// What `POST /instances/join` answers: a new node token and the command that
/// starts an agent with it on a node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinInstructions {
    /// The node token's id (revoke it with `berth tokens revoke`).
    pub token_id: String,
    pub command: String,
}
