//! The validated manifest: what `berth.yml` (or a Pod spec) asks for, after every
//! check has passed. Parsing lives in `manifest`; these types carry no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole app manifest, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Optional app name from `app:`; the CLI uses it when `--app` is absent.
    pub app: Option<String>,
    /// App-wide environment requirements and defaults, in file order.
    pub environment: Vec<EnvRequirement>,
    /// Services by name (sorted, so diffs and output are stable).
    pub services: BTreeMap<String, Service>,
    pub timers: BTreeMap<String, Timer>,
}

/// `KEY` (must be set before deploy) or `KEY=value` (a default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRequirement {
    pub key: String,
    pub default: Option<String>,
}

/// Default for [`Service::drain`], seconds.
pub const DEFAULT_DRAIN: u32 = 10;
/// Default for [`Service::timeout`], seconds.
pub const DEFAULT_TIMEOUT: u32 = 60;
/// Default for [`Health::interval`], seconds: a healthy process is checked this
/// seldom, so berth's own requests do not crowd the app's log (a new, failing
/// or unhealthy process is checked every second whatever the interval).
pub const DEFAULT_HEALTH_INTERVAL: u32 = 10;
/// Default for [`Health::grace`] of a service without a port, seconds: how long
/// a new process must stay up to count as healthy. Most workers that cannot
/// start (a missing setting, a bad command) exit well within it.
pub const DEFAULT_UPTIME_GRACE: u32 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub source: ImageSource,
    /// `None`: the image's own command.
    pub command: Option<Vec<String>>,
    /// HTTP port inside the container; `None` means not routed and no HTTP health check.
    pub port: Option<u16>,
    /// Custom domains, in addition to `<service>.<app>.<rack domain>`.
    pub domains: Vec<String>,
    /// Service-level environment (requirements and defaults), overriding app-wide defaults.
    pub environment: Vec<EnvRequirement>,
    pub health: Health,
    pub scale: Scale,
    pub deployment: Deployment,
    pub termination: Termination,
    /// Seconds in-flight requests may finish after a process leaves the router.
    pub drain: u32,
    pub volumes: Vec<VolumeMount>,
    pub singleton: bool,
    /// Per-request timeout at the router, seconds.
    pub timeout: u32,
    /// `tls:` options at the router.
    #[serde(default)]
    pub tls: TlsOptions,
    /// Where its processes may run on a swarm: Swarm placement constraints
    /// such as `node.labels.disk==ssd`. A single engine has one place.
    #[serde(default)]
    pub placement: Vec<String>,
    /// Resources (`resources:` at the top) whose URLs its processes get.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Set when this service *is* a resource: berth's own container for a
    /// database or cache (see [`Resource`]), not written in `services:`.
    #[serde(default)]
    pub resource: Option<Resource>,
}

/// What kind of resource: which image interface, port, data path and URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Postgres,
    Redis,
}

/// The kinds `type:` accepts, as written.
pub const RESOURCE_KINDS: &[&str] = &["postgres", "redis"];

impl ResourceKind {
    pub fn parse(s: &str) -> Option<ResourceKind> {
        match s {
            "postgres" => Some(ResourceKind::Postgres),
            "redis" => Some(ResourceKind::Redis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Postgres => "postgres",
            ResourceKind::Redis => "redis",
        }
    }

    /// The image used when `image:` is not given.
    pub fn default_image(self) -> &'static str {
        match self {
            ResourceKind::Postgres => "postgres:16",
            ResourceKind::Redis => "redis:7",
        }
    }

    /// The TCP port it listens on inside the app network.
    pub fn port(self) -> u16 {
        match self {
            ResourceKind::Postgres => 5432,
            ResourceKind::Redis => 6379,
        }
    }

    /// Where its data lives in the container (the resource's volume).
    pub fn data_path(self) -> &'static str {
        match self {
            ResourceKind::Postgres => "/var/lib/postgresql/data",
            ResourceKind::Redis => "/data",
        }
    }

    /// The environment variable every service naming the only resource of
    /// this kind also gets (`DATABASE_URL`, `REDIS_URL`).
    pub fn conventional_env(self) -> &'static str {
        match self {
            ResourceKind::Postgres => "DATABASE_URL",
            ResourceKind::Redis => "REDIS_URL",
        }
    }
}

/// A resource of the app (`resources: {db: {type: postgres}}`): berth runs it
/// as a singleton service of the same name with a volume of the same name,
/// generated credentials and a protocol health check; it is never routed and
/// a release never replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub image: String,
}

/// The user and database name in a postgres resource's URL.
pub const RESOURCE_DB_USER: &str = "app";

/// The environment variable naming resource `name`'s URL: `db` → `DB_URL`,
/// `my-cache` → `MY_CACHE_URL`.
pub fn resource_env_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    out.push_str("_URL");
    out
}

/// Resource `name`'s URL as the app's services reach it, with `password`.
pub fn resource_url(name: &str, kind: ResourceKind, password: &str) -> String {
    match kind {
        ResourceKind::Postgres => format!(
            "postgres://{RESOURCE_DB_USER}:{password}@{name}:{}/{RESOURCE_DB_USER}",
            kind.port()
        ),
        // `default` is redis' own user (ACLs, redis 6 and later); an empty user
        // name makes some clients (redis-cli 7.0) send `AUTH "" password`.
        ResourceKind::Redis => format!("redis://default:{password}@{name}:{}", kind.port()),
    }
}

impl Service {
    /// Whether its processes stay on one node of a swarm: its placement names
    /// a node, or it has volumes, which live on the local disk of the node
    /// that holds them.
    pub fn stays_on_one_node(&self) -> bool {
        !self.volumes.is_empty() || names_a_node(&self.placement)
    }

    /// The TCP port its processes listen on: its `port`, or a resource's.
    /// Only `port` is routed.
    pub fn listen_port(&self) -> Option<u16> {
        self.port.or(self.resource.as_ref().map(|r| r.kind.port()))
    }

    /// Seconds a new process gets before its first health check; for a service
    /// without a port, the seconds it must stay up to count as healthy.
    pub fn health_grace(&self) -> u32 {
        match self.port {
            None if self.health.grace == 0 => DEFAULT_UPTIME_GRACE,
            _ => self.health.grace,
        }
    }
}

/// Whether placement constraints name one node (`node.id==…` or
/// `node.hostname==…`).
pub fn names_a_node(constraints: &[String]) -> bool {
    constraints.iter().any(|c| {
        let c = c.trim_start();
        (c.starts_with("node.id") || c.starts_with("node.hostname")) && c.contains("==")
    })
}

/// A service's `tls:` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsOptions {
    /// Plain HTTP requests are answered with a redirect to HTTPS.
    #[serde(default)]
    pub redirect: bool,
    /// `Strict-Transport-Security` on the service's HTTPS responses.
    #[serde(default)]
    pub hsts: Option<Hsts>,
}

/// HSTS: browsers use only HTTPS for the domain for `max_age` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
}

/// One year, what `hsts: true` means (and what preload lists ask for).
pub const DEFAULT_HSTS_MAX_AGE: u64 = 31_536_000;

impl Hsts {
    /// The `Strict-Transport-Security` header's value.
    pub fn header_value(&self) -> String {
        if self.include_subdomains {
            format!("max-age={}; includeSubDomains", self.max_age)
        } else {
            format!("max-age={}", self.max_age)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageSource {
    Build(BuildSpec),
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// Context directory relative to the uploaded source root, normalised, `.` for the root.
    pub path: String,
    /// Dockerfile path relative to the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
}

impl BuildSpec {
    /// The Dockerfile's path in the source, `/`-separated (`Dockerfile`,
    /// `api/Dockerfile.api`).
    pub fn dockerfile_in_source(&self) -> String {
        match self.path.trim_end_matches('/') {
            "" | "." => self.dockerfile.clone(),
            context => format!("{context}/{}", self.dockerfile),
        }
    }

    /// Why this spec cannot build when its Dockerfile is not in the source; the
    /// server (in the upload) and the CLI (before uploading) say the same.
    pub fn missing_dockerfile(&self) -> String {
        format!(
            "{}/{} is missing from the upload; add a Dockerfile or set build.dockerfile in berth.yml",
            self.path, self.dockerfile
        )
    }

    /// Why this spec cannot build when its context is not a directory of the source.
    pub fn missing_context(&self, service: &str) -> String {
        format!(
            "build path {:?} of service {service} is not a directory in the upload",
            self.path
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub path: String,
    /// Seconds to wait after start before the first check. A service without a
    /// port has no check: its process counts as healthy once it has stayed up
    /// this long (0: [`DEFAULT_UPTIME_GRACE`]); see [`Service::health_grace`].
    pub grace: u32,
    /// Seconds between checks of a healthy process.
    pub interval: u32,
    /// Seconds one check may take.
    pub timeout: u32,
    /// Consecutive failures that make a process unhealthy; also the number of
    /// checks a new process gets (after `grace`) to pass before the rollout fails.
    pub attempts: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            path: "/".into(),
            grace: 0,
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: 3,
            attempts: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub count: u32,
    /// MiB; `None` = no limit.
    pub memory: Option<u64>,
    /// Cores; `None` = no limit.
    pub cpu: Option<f64>,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            count: 1,
            memory: None,
            cpu: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Percent of `count` kept healthy during a rollout.
    pub minimum: u32,
    /// Percent of `count` allowed to run during a rollout.
    pub maximum: u32,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            minimum: 100,
            maximum: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// Seconds between SIGTERM and SIGKILL.
    pub grace: u32,
}

impl Default for Termination {
    fn default() -> Self {
        Termination { grace: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub volume: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub schedule: String,
    pub service: String,
    pub command: Vec<String>,
}

impl Manifest {
    /// The app's resources (services that are one), by name.
    pub fn resources(&self) -> impl Iterator<Item = (&String, &Resource)> {
        self.services
            .iter()
            .filter_map(|(n, s)| Some((n, s.resource.as_ref()?)))
    }

    /// The URL variables service `service` gets, given each resource's
    /// password: `<NAME>_URL` for each resource it names, plus `DATABASE_URL`
    /// (`REDIS_URL`) when it names exactly one resource of that kind.
    pub fn resource_env(
        &self,
        service: &str,
        password: &dyn Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(svc) = self.services.get(service) else {
            return out;
        };
        let mut per_kind: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for name in &svc.resources {
            let Some(res) = self.services.get(name).and_then(|s| s.resource.as_ref()) else {
                continue;
            };
            let Some(pass) = password(name) else { continue };
            let url = resource_url(name, res.kind, &pass);
            per_kind
                .entry(res.kind.conventional_env())
                .or_default()
                .push(url.clone());
            out.insert(resource_env_name(name), url);
        }
        for (key, urls) in per_kind {
            if let [only] = urls.as_slice() {
                out.insert(key.to_string(), only.clone());
            }
        }
        out
    }

    /// Every required key (no default anywhere) that `env` does not set, sorted.
    pub fn missing_env(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        let mut missing = std::collections::BTreeSet::new();
        let app_defaults: std::collections::BTreeSet<&str> = self
            .environment
            .iter()
            .filter(|r| r.default.is_some())
            .map(|r| r.key.as_str())
            .collect();
        for req in &self.environment {
            if req.default.is_none() && !env.contains_key(&req.key) {
                missing.insert(req.key.clone());
            }
        }
        for svc in self.services.values() {
            for req in &svc.environment {
                if req.default.is_none()
                    && !env.contains_key(&req.key)
                    && !app_defaults.contains(req.key.as_str())
                {
                    missing.insert(req.key.clone());
                }
            }
        }
        missing.into_iter().collect()
    }

    /// Where `key` is required with no default to fall back on, as
    /// [`Manifest::missing_env`] counts it: `None` for the app-wide
    /// `environment:`, `Some(service)` for a service's.
    pub fn required_by(&self, key: &str) -> Vec<Option<String>> {
        let app_default = self
            .environment
            .iter()
            .any(|r| r.key == key && r.default.is_some());
        let mut out = Vec::new();
        if self
            .environment
            .iter()
            .any(|r| r.key == key && r.default.is_none())
        {
            out.push(None);
        }
        if !app_default {
            for (name, svc) in &self.services {
                if svc
                    .environment
                    .iter()
                    .any(|r| r.key == key && r.default.is_none())
                {
                    out.push(Some(name.clone()));
                }
            }
        }
        out
    }

    /// The environment one service's processes get: app defaults, then service
    /// defaults, then the app's env values (which win).
    pub fn service_env(
        &self,
        service: &str,
        env: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for req in &self.environment {
            if let Some(d) = &req.default {
                out.insert(req.key.clone(), d.clone());
            }
        }
        if let Some(svc) = self.services.get(service) {
            for req in &svc.environment {
                if let Some(d) = &req.default {
                    out.insert(req.key.clone(), d.clone());
                }
            }
        }
        for (k, v) in env {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_manifest;
    use std::collections::BTreeMap;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_env() {
        let text = "environment: [DATABASE_URL, LOG_LEVEL=info, SHARED=x]\nservices:\n  web:\n    image: x\n    environment: [PORT=8080, API_KEY, SHARED]\n  worker:\n    image: x\n    environment: [QUEUE]\n";
        let m = parse_manifest("berth.yml", text).unwrap();
        let mut env = BTreeMap::new();
        assert_eq!(
            m.missing_env(&env),
            strings(&["API_KEY", "DATABASE_URL", "QUEUE"])
        );
        env.insert("DATABASE_URL".to_string(), "postgres://".to_string());
        env.insert("QUEUE".to_string(), String::new());
        assert_eq!(m.missing_env(&env), strings(&["API_KEY"]));
        env.insert("API_KEY".to_string(), "k".to_string());
        assert!(m.missing_env(&env).is_empty());

        let web = m.service_env("web", &env);
        assert_eq!(web["LOG_LEVEL"], "info");
        assert_eq!(web["PORT"], "8080");
        assert_eq!(web["SHARED"], "x");
        assert_eq!(web["DATABASE_URL"], "postgres://");
        env.insert("LOG_LEVEL".to_string(), "debug".to_string());
        assert_eq!(
            m.service_env("web", &env)["LOG_LEVEL"],
            "debug",
            "app env wins over defaults"
        );
    }

    #[test]
    fn requirements_are_found_with_their_line() {
        let text = "environment: [DATABASE_URL, LOG_LEVEL=info, SHARED=x]\nservices:\n  web:\n    image: x\n    environment:\n      - PORT=8080\n      - API_KEY\n      - SHARED\n";
        let m = parse_manifest("berth.yml", text).unwrap();
        assert_eq!(m.required_by("DATABASE_URL"), [None]);
        assert_eq!(m.required_by("API_KEY"), [Some("web".to_string())]);
        // An app-wide default satisfies the service's requirement.
        assert!(m.required_by("SHARED").is_empty());
        assert!(m.required_by("LOG_LEVEL").is_empty());
        let line = |service, key| crate::manifest::env_requirement_line(text, service, key);
        assert_eq!(line(None, "DATABASE_URL"), Some(1));
        assert_eq!(line(None, "LOG_LEVEL"), Some(1));
        assert_eq!(line(Some("web"), "API_KEY"), Some(7));
        assert_eq!(line(Some("web"), "PORT"), Some(6));
        assert_eq!(line(Some("web"), "NOPE"), None);
        assert_eq!(line(Some("nope"), "API_KEY"), None);
    }

    #[test]
    fn a_service_stays_on_one_node_with_volumes_or_a_named_node() {
        assert!(super::names_a_node(&strings(&["node.id==x"])));
        assert!(super::names_a_node(&strings(&[" node.hostname == n2"])));
        assert!(!super::names_a_node(&strings(&["node.labels.disk==ssd"])));
        assert!(!super::names_a_node(&strings(&["node.id!=x"])));
        let m = parse_manifest(
            "berth.yml",
            "services:\n  db: {build: ., volumes: [data:/data]}\n  web: {build: ., placement: [node.role==worker]}\n  pinned: {build: ., placement: [node.hostname==n2]}\n",
        )
        .expect("manifest");
        assert!(m.services["db"].stays_on_one_node());
        assert!(!m.services["web"].stays_on_one_node());
        assert!(m.services["pinned"].stays_on_one_node());
    }
}
