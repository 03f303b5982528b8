//! Parsing and validation of a manifest: `berth.yml`, or a Kubernetes Pod spec
//! in its place.
//!
//! The YAML is first read into a small span-carrying tree (`yaml`), under
//! tight budgets so that YAML bombs and absurd nesting are refused quickly.
//! Validation then walks that tree by hand, as a Pod spec (`pod`) when it says
//! `kind: Pod` and as `berth.yml` otherwise, so every error, syntax or
//! semantic, names the file, line and column of the node at fault, what was
//! expected, and how to fix it.

mod cron;
mod hints;
mod pod;
mod values;
mod yaml;

pub use cron::check_cron;
pub use yaml::MAX_MANIFEST_BYTES;

use crate::env::{EnvKeyError, check_env_key, parse_env_requirement};
use crate::model::{
    BuildSpec, DEFAULT_DRAIN, DEFAULT_TIMEOUT, Deployment, EnvRequirement, Health, ImageSource,
    Manifest, Scale, Service, Termination, Timer, VolumeMount,
};
use crate::names::{validate_app_name, validate_service_name, validate_timer_name};
use hints::{did_you_mean, join, list_keys, truncate};
use std::collections::BTreeMap;
use thiserror::Error;
use values::{check_domain, check_health_path, normalise_relative, parse_volume, split_command};
use yaml::{Fail, Node, R, Raw, at, line_of, pos, read_yaml};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ManifestError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

const TOP_KEYS: &[&str] = &["app", "environment", "services", "timers"];
const SERVICE_KEYS: &[&str] = &[
    "build",
    "image",
    "command",
    "port",
    "domain",
    "environment",
    "health",
    "scale",
    "deployment",
    "termination",
    "drain",
    "volumes",
    "singleton",
    "timeout",
    "tls",
];
const TLS_KEYS: &[&str] = &["redirect"];
const BUILD_KEYS: &[&str] = &["path", "dockerfile", "args"];
const HEALTH_KEYS: &[&str] = &["path", "grace", "interval", "timeout", "attempts"];
const SCALE_KEYS: &[&str] = &["count", "memory", "cpu"];
const DEPLOYMENT_KEYS: &[&str] = &["minimum", "maximum"];
const TERMINATION_KEYS: &[&str] = &["grace"];
const TIMER_KEYS: &[&str] = &["schedule", "service", "command"];

/// Parse and validate a manifest. `file` names it in errors.
pub fn parse_manifest(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let to_err = |f: Fail| ManifestError {
        file: file.to_string(),
        line: f.line,
        column: f.column,
        message: f.message,
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(to_err(Fail {
            line: 1,
            column: 1,
            message: format!(
                "the file is {} bytes; a manifest may be at most {} bytes. Check that this is the right file",
                text.len(),
                MAX_MANIFEST_BYTES
            ),
        }));
    }
    let root = read_yaml(text).map_err(to_err)?;
    // A Kubernetes Pod spec is accepted in place of berth.yml (see `pod`).
    if pod::is_pod(&root) {
        return pod::manifest(&root).map_err(to_err);
    }
    Checker { src: text }.manifest(&root).map_err(to_err)
}

/// A key of a mapping, with its node and value.
struct Entry<'n> {
    key: &'n str,
    key_node: &'n Node,
    value: &'n Node,
}

struct Fields<'n> {
    entries: Vec<Entry<'n>>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&Entry<'n>> {
        self.entries.iter().find(|e| e.key == key)
    }
    fn value(&self, key: &str) -> Option<&'n Node> {
        self.get(key).map(|e| e.value)
    }
    /// Like `value`, but an empty value (`key:` with nothing after it) counts as absent.
    fn value_or_empty(&self, key: &str) -> Option<&'n Node> {
        self.value(key).filter(|n| !matches!(n.value, Raw::Null))
    }
}

/// Validation state: the source text, for quoting numbers as written.
struct Checker<'s> {
    src: &'s str,
}

impl Checker<'_> {
    /// The source text of a scalar, as written (for numbers: `0x1F`, `1_000`).
    fn text(&self, node: &Node) -> Option<&str> {
        let span = node.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let t = self.src.get(start..start.checked_add(len)?)?;
        (!t.is_empty() && !t.starts_with('*')).then_some(t)
    }

    /// How a value is named in "found ..." parts of messages.
    fn found(&self, node: &Node) -> String {
        match &node.value {
            Raw::Null => "nothing".into(),
            Raw::Bool(b) => b.to_string(),
            Raw::Int(i) => self
                .text(node)
                .map(|t| truncate(t, 40))
                .unwrap_or_else(|| i.to_string()),
            Raw::Float(f) => self
                .text(node)
                .map(|t| truncate(t, 40))
                .unwrap_or_else(|| f.to_string()),
            Raw::Str(s) => format!("{:?}", truncate(s, 60)),
            Raw::Seq(_) => "a list".into(),
            Raw::Map(_) => "a mapping".into(),
        }
    }

    fn expected(&self, node: &Node, path: &str, what: &str) -> Fail {
        at(
            node,
            format!("{path}: expected {what}, found {}", self.found(node)),
        )
    }

    fn entries<'n>(&self, node: &'n Node, path: &str, what: &str) -> R<&'n [(Node, Node)]> {
        match &node.value {
            Raw::Map(entries) => Ok(entries),
            _ => Err(self.expected(node, path, what)),
        }
    }

    /// A mapping key used as a name (of a service, a timer, a build arg...).
    fn key_name<'n>(&self, key: &'n Node, path: &str) -> R<&'n str> {
        match &key.value {
            Raw::Str(s) => Ok(s),
            _ => Err(at(
                key,
                format!(
                    "{path}: expected a name as key, found {}; write a name such as `web`",
                    self.found(key)
                ),
            )),
        }
    }

    /// A mapping with a fixed set of keys; unknown keys are errors.
    fn fields<'n>(
        &self,
        node: &'n Node,
        path: &str,
        what: &str,
        allowed: &[&str],
    ) -> R<Fields<'n>> {
        let entries = self.entries(node, path, what)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = self.key_name(k, path)?;
            if !allowed.contains(&key) {
                return Err(self.unknown_key(k, key, v, path, allowed));
            }
            out.push(Entry {
                key,
                key_node: k,
                value: v,
            });
        }
        Ok(Fields { entries: out })
    }

    fn unknown_key(&self, k: &Node, key: &str, value: &Node, path: &str, allowed: &[&str]) -> Fail {
        let place = if path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{path}`")
        };
        let mut msg = format!("unknown key `{key}` {place}");
        if let Some(close) = did_you_mean(key, allowed.iter().copied()) {
            msg.push_str(&format!("; did you mean `{close}`?"));
        } else {
            if path.is_empty() && looks_like_service(value) {
                msg.push_str(&format!(
                    "; services go under `services:` (indent `{key}:` below a `services:` line);"
                ));
            } else {
                msg.push(';');
            }
            msg.push_str(&format!(" valid keys are {}", list_keys(allowed)));
        }
        at(k, msg)
    }

    fn string<'n>(&self, node: &'n Node, path: &str, what: &str) -> R<&'n str> {
        match &node.value {
            Raw::Str(s) => Ok(s),
            _ => Err(self.expected(node, path, what)),
        }
    }

    fn nonempty_string<'n>(&self, node: &'n Node, path: &str, what: &str) -> R<&'n str> {
        let s = self.string(node, path, what)?;
        if s.trim().is_empty() {
            return Err(self.expected(node, path, what));
        }
        Ok(s)
    }

    /// A scalar used as text: strings as they are, numbers and booleans as written.
    fn scalar_text(&self, node: &Node, path: &str, what: &str) -> R<String> {
        match &node.value {
            Raw::Str(s) => Ok(s.clone()),
            Raw::Bool(b) => Ok(b.to_string()),
            Raw::Int(i) => Ok(self
                .text(node)
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string())),
            Raw::Float(f) => Ok(self
                .text(node)
                .map(str::to_string)
                .unwrap_or_else(|| f.to_string())),
            _ => Err(self.expected(node, path, what)),
        }
    }

    /// A whole number in `min..=max`. A quoted number ("8080") is accepted too.
    fn uint(&self, node: &Node, path: &str, min: u64, max: u64, what: &str) -> R<u64> {
        let n = match &node.value {
            Raw::Int(i) => Some(*i),
            Raw::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= i128::from(min) && n <= i128::from(max) => {
                u64::try_from(n).map_err(|_| self.expected(node, path, what))
            }
            _ => Err(self.expected(node, path, what)),
        }
    }

    fn u32_in(&self, node: &Node, path: &str, min: u32, max: u32, what: &str) -> R<u32> {
        let v = self.uint(node, path, min.into(), max.into(), what)?;
        u32::try_from(v).map_err(|_| self.expected(node, path, what))
    }

    fn seconds(&self, node: &Node, path: &str, min: u32, max: u32) -> R<u32> {
        self.u32_in(
            node,
            path,
            min,
            max,
            &format!("a number of seconds from {min} to {max}"),
        )
    }

    fn boolean(&self, node: &Node, path: &str) -> R<bool> {
        match node.value {
            Raw::Bool(b) => Ok(b),
            _ => Err(self.expected(node, path, "`true` or `false`")),
        }
    }

    // -----------------------------------------------------------------------
    // The manifest.

    fn manifest(&self, root: &Node) -> R<Manifest> {
        if matches!(root.value, Raw::Null) {
            return Err(Fail {
                line: 1,
                column: 1,
                message: "the manifest is empty; it needs a `services:` mapping with at least one service, for example `services: {web: {build: ., port: 8080}}`".into(),
            });
        }
        let f = self.fields(
            root,
            "",
            "a mapping with `services:` at the top level",
            TOP_KEYS,
        )?;
        let mut manifest = Manifest::default();

        if let Some(node) = f.value("app") {
            let name = self.string(node, "app", "an app name such as `shop`")?;
            validate_app_name(name).map_err(|e| at(node, format!("app: {e}")))?;
            manifest.app = Some(name.to_string());
        }
        if let Some(node) = f.value_or_empty("environment") {
            manifest.environment = self.environment(node, "environment")?;
        }

        let Some(services) = f.get("services") else {
            return Err(at(
                root,
                "missing `services`: add a `services:` mapping with at least one service, for example `services: {web: {build: ., port: 8080}}`",
            ));
        };
        let mut service_nodes: BTreeMap<String, &Node> = BTreeMap::new();
        let mut domain_owner: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let entries = self.entries(
            services.value,
            "services",
            "a mapping of service names to services",
        )?;
        if entries.is_empty() {
            return Err(at(
                services.value,
                "services: needs at least one service, for example `services: {web: {build: ., port: 8080}}`",
            ));
        }
        for (k, v) in entries {
            let name = self.key_name(k, "services")?;
            validate_service_name(name).map_err(|e| at(k, format!("services: {e}")))?;
            let path = join("services", name);
            let svc = self.service(k, v, &path)?;
            for (i, d) in svc.domains.iter().enumerate() {
                if let Some((other, line)) = domain_owner.get(d) {
                    let node = self.domain_node(v, i);
                    return Err(at(
                        node,
                        format!(
                            "{path}.domain: `{d}` is already routed to service `{other}` (line {line}); give each domain to one service"
                        ),
                    ));
                }
                domain_owner.insert(d.clone(), (name.to_string(), line_of(k)));
            }
            service_nodes.insert(name.to_string(), k);
            manifest.services.insert(name.to_string(), svc);
        }

        if let Some(node) = f.value_or_empty("timers") {
            for (k, v) in self.entries(node, "timers", "a mapping of timer names to timers")? {
                let name = self.key_name(k, "timers")?;
                validate_timer_name(name).map_err(|e| at(k, format!("timers: {e}")))?;
                let timer = self.timer(k, v, &join("timers", name), &manifest.services)?;
                manifest.timers.insert(name.to_string(), timer);
            }
        }
        Ok(manifest)
    }

    /// The node of the `i`th domain of a service, for pointing at it.
    fn domain_node<'n>(&self, service: &'n Node, i: usize) -> &'n Node {
        let Raw::Map(entries) = &service.value else {
            return service;
        };
        let Some((_, d)) = entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Raw::Str(s) if s == "domain"))
        else {
            return service;
        };
        match &d.value {
            Raw::Seq(items) => items.get(i).unwrap_or(d),
            _ => d,
        }
    }

    fn environment(&self, node: &Node, path: &str) -> R<Vec<EnvRequirement>> {
        let what = "a list of `KEY` or `KEY=default` strings, for example `[DATABASE_URL, LOG_LEVEL=info]`";
        let Raw::Seq(items) = &node.value else {
            return Err(self.expected(node, path, what));
        };
        let mut out: Vec<EnvRequirement> = Vec::with_capacity(items.len());
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let s = self.string(item, &ipath, "`KEY` or `KEY=default`")?;
            let req = parse_env_requirement(s).map_err(|e| at(item, format!("{ipath}: {e}")))?;
            if let Some(line) = seen.get(&req.key) {
                return Err(at(
                    item,
                    format!(
                        "{path}: `{}` is listed twice (first on line {line}); remove one",
                        req.key
                    ),
                ));
            }
            seen.insert(req.key.clone(), line_of(item));
            out.push(req);
        }
        Ok(out)
    }

    fn service(&self, name_node: &Node, node: &Node, path: &str) -> R<Service> {
        let f = self.fields(
            node,
            path,
            "a mapping with `build:` or `image:` and the service's settings",
            SERVICE_KEYS,
        )?;

        let source = match (f.get("build"), f.get("image")) {
            (Some(b), Some(i)) => {
                let later = if (line_of(i.key_node), pos(&i.key_node.referenced).1)
                    > (line_of(b.key_node), pos(&b.key_node.referenced).1)
                {
                    i.key_node
                } else {
                    b.key_node
                };
                return Err(at(
                    later,
                    format!(
                        "{path}: has both `build` and `image`; keep one: `build` builds the image from your source, `image` runs an existing image"
                    ),
                ));
            }
            (Some(b), None) => ImageSource::Build(self.build(b.value, &join(path, "build"))?),
            (None, Some(i)) => ImageSource::Image(self.image(i.value, &join(path, "image"))?),
            (None, None) => {
                return Err(at(
                    name_node,
                    format!(
                        "{path}: needs `build` (a source directory to build, for example `build: .`) or `image` (an image to run, for example `image: redis:7`)"
                    ),
                ));
            }
        };

        let command = match f.value("command") {
            Some(n) => Some(self.command(n, &join(path, "command"))?),
            None => None,
        };
        let port = match f.value("port") {
            Some(n) => {
                Some(
                    self.u32_in(n, &join(path, "port"), 1, 65535, "a number from 1 to 65535")?
                        as u16,
                )
            }
            None => None,
        };
        let domains = match f.value_or_empty("domain") {
            Some(n) => self.domains(n, &join(path, "domain"))?,
            None => Vec::new(),
        };
        if let (Some(d), None, false) = (f.get("domain"), port, domains.is_empty()) {
            return Err(at(
                d.key_node,
                format!(
                    "{path}.domain: a domain routes HTTP requests to the service's `port`, but it has none; add `port:` (the port the service listens on) or remove `domain`"
                ),
            ));
        }
        let environment = match f.value_or_empty("environment") {
            Some(n) => self.environment(n, &join(path, "environment"))?,
            None => Vec::new(),
        };
        let health = match f.get("health") {
            Some(h) => {
                if port.is_none() {
                    return Err(at(
                        h.key_node,
                        format!(
                            "{path}.health: the health check is an HTTP request to the service's `port`, but it has none; add `port:` or remove `health`"
                        ),
                    ));
                }
                self.health(h.value, &join(path, "health"))?
            }
            None => Health::default(),
        };
        let scale = match f.value("scale") {
            Some(n) => self.scale(n, &join(path, "scale"))?,
            None => Scale::default(),
        };
        let singleton = match f.value("singleton") {
            Some(n) => self.boolean(n, &join(path, "singleton"))?,
            None => false,
        };
        if singleton && scale.count > 1 {
            let node = f.value("singleton").unwrap_or(node);
            return Err(at(
                node,
                format!(
                    "{path}.singleton: a singleton runs at most one process, but `scale.count` is {}; set `count` to 0 or 1, or remove `singleton: true`",
                    scale.count
                ),
            ));
        }
        let deployment = match f.value("deployment") {
            Some(n) => self.deployment(n, &join(path, "deployment"), singleton)?,
            None => Deployment::default(),
        };
        let termination = match f.value("termination") {
            Some(n) => {
                let p = join(path, "termination");
                let tf = self.fields(n, &p, "a mapping such as `{grace: 30}`", TERMINATION_KEYS)?;
                let mut t = Termination::default();
                if let Some(g) = tf.value("grace") {
                    t.grace = self.seconds(g, &join(&p, "grace"), 0, 3600)?;
                }
                t
            }
            None => Termination::default(),
        };
        let drain = match f.value("drain") {
            Some(n) => self.seconds(n, &join(path, "drain"), 0, 3600)?,
            None => DEFAULT_DRAIN,
        };
        let volumes = match f.value_or_empty("volumes") {
            Some(n) => self.volumes(n, &join(path, "volumes"))?,
            None => Vec::new(),
        };
        let timeout = match f.value("timeout") {
            Some(n) => self.seconds(n, &join(path, "timeout"), 1, 3600)?,
            None => DEFAULT_TIMEOUT,
        };
        let tls = match f.value("tls") {
            Some(n) => {
                let p = join(path, "tls");
                let tf = self.fields(n, &p, "a mapping such as `{redirect: true}`", TLS_KEYS)?;
                let mut t = crate::model::TlsOptions::default();
                if let Some(r) = tf.value("redirect") {
                    t.redirect = self.boolean(r, &join(&p, "redirect"))?;
                }
                t
            }
            None => Default::default(),
        };

        Ok(Service {
            source,
            command,
            port,
            domains,
            environment,
            health,
            scale,
            deployment,
            termination,
            drain,
            volumes,
            singleton,
            timeout,
            tls,
        })
    }

    fn build(&self, node: &Node, path: &str) -> R<BuildSpec> {
        let what = "a directory such as `.`, or a mapping such as `{path: ., dockerfile: Dockerfile, args: {KEY: value}}`";
        let mut spec = BuildSpec {
            path: ".".into(),
            dockerfile: "Dockerfile".into(),
            args: BTreeMap::new(),
        };
        match &node.value {
            Raw::Str(_) => {
                spec.path = self.build_path(node, path)?;
            }
            Raw::Map(_) => {
                let f = self.fields(node, path, what, BUILD_KEYS)?;
                if let Some(n) = f.value("path") {
                    spec.path = self.build_path(n, &join(path, "path"))?;
                }
                if let Some(n) = f.value("dockerfile") {
                    let p = join(path, "dockerfile");
                    let s = self.nonempty_string(n, &p, "a file name such as `Dockerfile`")?;
                    let df = normalise_relative(s).map_err(|e| {
                        at(n, format!("{p}: {e}; give the Dockerfile's path inside the build directory `{}`", spec.path))
                    })?;
                    if df == "." {
                        return Err(at(
                            n,
                            format!(
                                "{p}: {s:?} names the build directory itself; give a file name such as `Dockerfile`"
                            ),
                        ));
                    }
                    spec.dockerfile = df;
                }
                if let Some(n) = f.value_or_empty("args") {
                    let p = join(path, "args");
                    for (k, v) in self.entries(
                        n,
                        &p,
                        "a mapping of build argument names to values, such as `{VERSION: \"1.2\"}`",
                    )? {
                        let key = self.key_name(k, &p)?;
                        match check_env_key(key) {
                            Ok(()) => {}
                            Err(EnvKeyError::Invalid { .. }) => {
                                return Err(at(
                                    k,
                                    format!(
                                        "{p}: {key:?} is not a valid build argument name; use letters, digits and '_', not starting with a digit"
                                    ),
                                ));
                            }
                            Err(e) => return Err(at(k, format!("{p}: {e}"))),
                        }
                        let value = self.scalar_text(v, &join(&p, key), "a text value")?;
                        spec.args.insert(key.to_string(), value);
                    }
                }
            }
            _ => return Err(self.expected(node, path, what)),
        }
        Ok(spec)
    }

    fn build_path(&self, node: &Node, path: &str) -> R<String> {
        let s = self.nonempty_string(
            node,
            path,
            "a directory inside the source, such as `.` or `services/web`",
        )?;
        normalise_relative(s).map_err(|e| at(node, format!("{path}: {e}")))
    }

    fn image(&self, node: &Node, path: &str) -> R<String> {
        let s = self.nonempty_string(node, path, "an image reference such as `redis:7`")?;
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(at(
                node,
                format!(
                    "{path}: {s:?} has spaces; an image reference looks like `redis:7` or `ghcr.io/org/app:1.2`"
                ),
            ));
        }
        Ok(s.to_string())
    }

    fn command(&self, node: &Node, path: &str) -> R<Vec<String>> {
        let what = "a command line such as `./server --port 8080`, or a list such as `[\"./server\", \"--port\", \"8080\"]`";
        let argv = match &node.value {
            Raw::Str(s) => split_command(s).map_err(|e| at(node, format!("{path}: {e}")))?,
            Raw::Seq(items) => {
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    argv.push(self.scalar_text(
                        item,
                        &format!("{path}[{i}]"),
                        "a text argument",
                    )?);
                }
                argv
            }
            _ => return Err(self.expected(node, path, what)),
        };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(at(
                node,
                format!(
                    "{path}: the command is empty; give {what}, or remove `command` to run the image's own"
                ),
            ));
        }
        Ok(argv)
    }

    fn domains(&self, node: &Node, path: &str) -> R<Vec<String>> {
        let items: Vec<&Node> = match &node.value {
            Raw::Str(_) => vec![node],
            Raw::Seq(items) => items.iter().collect(),
            _ => {
                return Err(self.expected(
                    node,
                    path,
                    "a host name such as `shop.example.com`, or a list of them",
                ));
            }
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let d = self.string(item, path, "a host name such as `shop.example.com`")?;
            check_domain(d).map_err(|e| at(item, format!("{path}: {e}")))?;
            if out.iter().any(|o| o == d) {
                return Err(at(
                    item,
                    format!("{path}: `{d}` is listed twice; remove one"),
                ));
            }
            out.push(d.to_string());
        }
        Ok(out)
    }

    fn health(&self, node: &Node, path: &str) -> R<Health> {
        let mut h = Health::default();
        match &node.value {
            Raw::Str(s) => {
                h.path = check_health_path(s).map_err(|e| at(node, format!("{path}: {e}")))?
            }
            Raw::Map(_) => {
                let f = self.fields(node, path, "", HEALTH_KEYS)?;
                if let Some(n) = f.value("path") {
                    let p = join(path, "path");
                    let s = self.string(n, &p, "a URL path such as `/health`")?;
                    h.path = check_health_path(s).map_err(|e| at(n, format!("{p}: {e}")))?;
                }
                if let Some(n) = f.value("grace") {
                    h.grace = self.seconds(n, &join(path, "grace"), 0, 3600)?;
                }
                if let Some(n) = f.value("interval") {
                    h.interval = self.seconds(n, &join(path, "interval"), 1, 3600)?;
                }
                if let Some(n) = f.value("timeout") {
                    h.timeout = self.seconds(n, &join(path, "timeout"), 1, 3600)?;
                }
                if let Some(n) = f.value("attempts") {
                    h.attempts = self.u32_in(
                        n,
                        &join(path, "attempts"),
                        1,
                        100,
                        "a number of attempts from 1 to 100",
                    )?;
                }
            }
            _ => {
                return Err(self.expected(
                    node,
                    path,
                    "a URL path such as `/health`, or a mapping such as `{path: /health, grace: 5, interval: 1, timeout: 3, attempts: 3}`",
                ));
            }
        }
        Ok(h)
    }

    fn scale(&self, node: &Node, path: &str) -> R<Scale> {
        let f = self.fields(
            node,
            path,
            "a mapping such as `{count: 2, memory: 256, cpu: 0.5}`",
            SCALE_KEYS,
        )?;
        let mut s = Scale::default();
        if let Some(n) = f.value("count") {
            s.count = self.u32_in(
                n,
                &join(path, "count"),
                0,
                100,
                "a number of processes from 0 to 100",
            )?;
        }
        if let Some(n) = f.value("memory") {
            s.memory = Some(self.uint(
                n,
                &join(path, "memory"),
                6,
                4 * 1024 * 1024,
                "a memory limit in MiB of at least 6 (for example 256 for 256 MiB)",
            )?);
        }
        if let Some(n) = f.value("cpu") {
            let p = join(path, "cpu");
            let what = "a number of CPU cores greater than 0 and at most 64 (for example 0.5)";
            let v = match n.value {
                Raw::Float(v) => v,
                Raw::Int(i) => i as f64,
                _ => return Err(self.expected(n, &p, what)),
            };
            if !(v.is_finite() && v > 0.0 && v <= 64.0) {
                return Err(self.expected(n, &p, what));
            }
            s.cpu = Some(v);
        }
        Ok(s)
    }

    fn deployment(&self, node: &Node, path: &str, singleton: bool) -> R<Deployment> {
        let f = self.fields(
            node,
            path,
            "a mapping such as `{minimum: 100, maximum: 200}`",
            DEPLOYMENT_KEYS,
        )?;
        let mut d = Deployment::default();
        if let Some(n) = f.value("minimum") {
            d.minimum = self.u32_in(
                n,
                &join(path, "minimum"),
                0,
                100,
                "a percentage from 0 to 100",
            )?;
        }
        if let Some(n) = f.value("maximum") {
            d.maximum = self.u32_in(
                n,
                &join(path, "maximum"),
                100,
                200,
                "a percentage from 100 to 200",
            )?;
        }
        if !singleton && d.minimum == 100 && d.maximum == 100 {
            return Err(at(
                node,
                format!(
                    "{path}: with `minimum: 100` and `maximum: 100` a rollout can neither start a new process nor stop an old one; raise `maximum` (for example 200) or lower `minimum`"
                ),
            ));
        }
        Ok(d)
    }

    fn volumes(&self, node: &Node, path: &str) -> R<Vec<VolumeMount>> {
        let Raw::Seq(items) = &node.value else {
            return Err(self.expected(
                node,
                path,
                "a list of `name:/path/in/container`, for example `[data:/var/lib/data]`",
            ));
        };
        let mut out: Vec<VolumeMount> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let s = self.string(
                item,
                &ipath,
                "`name:/path/in/container`, for example `data:/var/lib/data`",
            )?;
            let mount = parse_volume(s).map_err(|e| at(item, format!("{ipath}: {e}")))?;
            if let Some(other) = out.iter().find(|m| m.path == mount.path) {
                return Err(at(
                    item,
                    format!(
                        "{ipath}: `{}` is already the mount point of volume `{}`; mount each path once",
                        mount.path, other.volume
                    ),
                ));
            }
            out.push(mount);
        }
        Ok(out)
    }

    fn timer(
        &self,
        name_node: &Node,
        node: &Node,
        path: &str,
        services: &BTreeMap<String, Service>,
    ) -> R<Timer> {
        let example = "{schedule: \"*/5 * * * *\", service: web, command: ./cleanup}";
        let f = self.fields(
            node,
            path,
            &format!("a mapping such as `{example}`"),
            TIMER_KEYS,
        )?;
        let missing = |key: &str, hint: &str| {
            at(
                name_node,
                format!("{path}: missing `{key}` ({hint}); a timer looks like `{example}`"),
            )
        };

        let sched_node = f
            .value("schedule")
            .ok_or_else(|| missing("schedule", "a 5-field cron expression"))?;
        let sp = join(path, "schedule");
        let schedule = self.string(
            sched_node,
            &sp,
            "a 5-field cron expression such as \"*/5 * * * *\"",
        )?;
        check_cron(schedule).map_err(|e| at(sched_node, format!("{sp}: {e}")))?;

        let svc_node = f
            .value("service")
            .ok_or_else(|| missing("service", "the service whose image runs the command"))?;
        let svp = join(path, "service");
        let service = self.string(svc_node, &svp, "the name of a service")?;
        if !services.contains_key(service) {
            let mut msg = format!("{svp}: there is no service `{service}` in `services`");
            match did_you_mean(service, services.keys().map(String::as_str)) {
                Some(close) => msg.push_str(&format!("; did you mean `{close}`?")),
                None => msg.push_str(&format!(
                    "; the services are {}",
                    services
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            return Err(at(svc_node, msg));
        }

        let cmd_node = f
            .value("command")
            .ok_or_else(|| missing("command", "what to run"))?;
        let command = self.command(cmd_node, &join(path, "command"))?;

        Ok(Timer {
            schedule: schedule.to_string(),
            service: service.to_string(),
            command,
        })
    }
}

fn looks_like_service(node: &Node) -> bool {
    match &node.value {
        Raw::Map(entries) => entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Raw::Str(s) if s == "build" || s == "image")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const EXAMPLE: &str = r#"app: shop
environment:            # app-wide; KEY must be set before deploy, KEY=v gives a default
  - DATABASE_URL
  - LOG_LEVEL=info
services:
  web:
    build: .            # or {path: ., dockerfile: Dockerfile, args: {K: V}}; or `image: NAME`
    command: ["./server", "--port", "8080"]   # string or list; default: the image's
    port: 8080          # HTTP port inside the container; no port = not routed
    domain: shop.example.com                  # string or list
    environment: [PORT=8080]
    health: /health     # or {path: /health, grace: 5, interval: 1, timeout: 3, attempts: 3}
    scale: {count: 2, memory: 256, cpu: 0.5}  # memory in MiB, cpu in cores
    deployment: {minimum: 100, maximum: 200}
    termination: {grace: 30}
    drain: 10
    volumes: [data:/var/lib/data]
    singleton: false
  worker:
    build: {path: ./workers/../worker/, dockerfile: docker/Dockerfile.worker, args: {VERSION: 1.10, DEBUG: true}}
    command: ./worker --queue 'high prio' "--name=a \"b\""
    environment:
      - SECRET
  redis:
    image: redis:7
    health: {path: /ping, grace: 5, interval: 2, timeout: 3, attempts: 4}
    port: 6379
    domain: [a.example.com, b.example.com]
    scale: {count: 1, cpu: 2}
    singleton: true
    timeout: 120
timers:
  cleanup: {schedule: "*/5 * * * *", service: web, command: "./cleanup"}
  nightly:
    schedule: 0 3 * jan-mar,DEC mon-fri
    service: worker
    command: [./report, --all]
"#;

    #[test]
    fn tls_redirect_is_a_service_option() {
        let text = "services:\n  web:\n    image: x\n    port: 80\n    tls: {redirect: true}\n";
        let m = parse_manifest("berth.yml", text).expect("valid manifest");
        assert!(m.services["web"].tls.redirect);
        let m = parse_manifest("berth.yml", "services:\n  web: {image: x}\n").expect("valid");
        assert!(!m.services["web"].tls.redirect, "off unless asked for");
        let e = err("services:\n  web:\n    image: x\n    tls: {redirekt: true}\n");
        assert!(e.to_string().contains("redirekt"), "{e}");
    }

    fn err(text: &str) -> ManifestError {
        match parse_manifest("berth.yml", text) {
            Ok(m) => panic!("expected an error, parsed {m:#?}"),
            Err(e) => e,
        }
    }

    /// 1-based line and (character) column of the only occurrence of `needle` in `text`.
    fn position_of(text: &str, needle: &str) -> (usize, usize) {
        let found: Vec<usize> = text.match_indices(needle).map(|(i, _)| i).collect();
        assert_eq!(
            found.len(),
            1,
            "{needle:?} must occur exactly once in {text:?}"
        );
        let before = &text[..found[0]];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// Asserts the error points at the start of `needle` (unique in `text`) and
    /// that its message contains each of `parts`.
    fn assert_err(text: &str, needle: &str, parts: &[&str]) {
        let (line, column) = position_of(text, needle);
        let e = err(text);
        assert_eq!(
            (e.line, e.column),
            (line, column),
            "should point at {needle:?}: {e}"
        );
        for p in parts {
            assert!(e.message.contains(p), "{e}\n  does not contain {p:?}");
        }
        assert!(
            e.to_string()
                .starts_with(&format!("berth.yml:{line}:{column}: ")),
            "{e}"
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn full_example_parses_to_the_model() {
        let m = parse_manifest("berth.yml", EXAMPLE).unwrap();
        assert_eq!(m.app.as_deref(), Some("shop"));
        assert_eq!(
            m.environment,
            vec![
                EnvRequirement {
                    key: "DATABASE_URL".into(),
                    default: None
                },
                EnvRequirement {
                    key: "LOG_LEVEL".into(),
                    default: Some("info".into())
                },
            ]
        );
        assert_eq!(
            m.services.keys().collect::<Vec<_>>(),
            ["redis", "web", "worker"]
        );

        let web = &m.services["web"];
        let expected_web = Service {
            source: ImageSource::Build(BuildSpec {
                path: ".".into(),
                dockerfile: "Dockerfile".into(),
                args: BTreeMap::new(),
            }),
            command: Some(strings(&["./server", "--port", "8080"])),
            port: Some(8080),
            domains: strings(&["shop.example.com"]),
            environment: vec![EnvRequirement {
                key: "PORT".into(),
                default: Some("8080".into()),
            }],
            health: Health {
                path: "/health".into(),
                ..Health::default()
            },
            scale: Scale {
                count: 2,
                memory: Some(256),
                cpu: Some(0.5),
            },
            deployment: Deployment {
                minimum: 100,
                maximum: 200,
            },
            termination: Termination { grace: 30 },
            drain: 10,
            volumes: vec![VolumeMount {
                volume: "data".into(),
                path: "/var/lib/data".into(),
            }],
            singleton: false,
            timeout: 60,
            tls: Default::default(),
        };
        assert_eq!(web, &expected_web);

        let worker = &m.services["worker"];
        let ImageSource::Build(b) = &worker.source else {
            panic!("{worker:?}")
        };
        assert_eq!(b.path, "worker");
        assert_eq!(b.dockerfile, "docker/Dockerfile.worker");
        assert_eq!(b.args["VERSION"], "1.10", "numbers keep their spelling");
        assert_eq!(b.args["DEBUG"], "true");
        assert_eq!(
            worker.command,
            Some(strings(&[
                "./worker",
                "--queue",
                "high prio",
                "--name=a \"b\""
            ]))
        );
        assert_eq!(worker.port, None);
        assert_eq!(worker.health, Health::default());
        assert_eq!(worker.scale, Scale::default());
        assert_eq!(worker.deployment, Deployment::default());
        assert_eq!(worker.termination, Termination::default());
        assert_eq!(
            (worker.drain, worker.timeout, worker.singleton),
            (10, 60, false)
        );

        let redis = &m.services["redis"];
        assert_eq!(redis.source, ImageSource::Image("redis:7".into()));
        assert_eq!(
            redis.health,
            Health {
                path: "/ping".into(),
                grace: 5,
                interval: 2,
                timeout: 3,
                attempts: 4
            }
        );
        assert_eq!(redis.domains, strings(&["a.example.com", "b.example.com"]));
        assert_eq!(
            redis.scale,
            Scale {
                count: 1,
                memory: None,
                cpu: Some(2.0)
            }
        );
        assert!(redis.singleton);
        assert_eq!(redis.timeout, 120);

        assert_eq!(
            m.timers["cleanup"],
            Timer {
                schedule: "*/5 * * * *".into(),
                service: "web".into(),
                command: strings(&["./cleanup"])
            }
        );
        assert_eq!(m.timers["nightly"].service, "worker");
        assert_eq!(m.timers["nightly"].command, strings(&["./report", "--all"]));
    }

    #[test]
    fn minimal_manifest_and_anchors() {
        let m = parse_manifest("berth.yml", "services:\n  web:\n    image: nginx\n").unwrap();
        assert_eq!(m.app, None);
        assert!(m.environment.is_empty() && m.timers.is_empty());
        let text = "services:\n  a: &base\n    image: nginx\n    port: 80\n  b:\n    <<: *base\n    port: 81\n  c: *base\n";
        let m = parse_manifest("berth.yml", text).unwrap();
        assert_eq!(m.services["b"].port, Some(81));
        assert_eq!(m.services["c"].source, ImageSource::Image("nginx".into()));
        // Empty sections are allowed.
        let m = parse_manifest(
            "berth.yml",
            "environment:\ntimers:\nservices:\n  w: {image: x, volumes: }\n",
        );
        assert!(m.is_ok(), "{m:?}");
        // A quoted port is accepted.
        let m = parse_manifest("b", "services:\n  web: {image: x, port: \"8080\"}\n").unwrap();
        assert_eq!(m.services["web"].port, Some(8080));
    }

    #[test]
    fn unknown_keys() {
        assert_err(
            "services:\n  web:\n    image: x\n    prot: 80\n",
            "prot",
            &[
                "unknown key `prot` in `services.web`",
                "did you mean `port`?",
            ],
        );
        assert_err(
            "servics:\n  web: {image: x}\n",
            "servics",
            &["did you mean `services`?"],
        );
        assert_err(
            "services:\n  web: {image: x}\nfrobnicate: 1\n",
            "frobnicate",
            &[
                "unknown key `frobnicate` at the top level",
                "`app`, `environment`, `services`, `timers`",
            ],
        );
        assert_err(
            "web:\n  build: .\n",
            "web",
            &["unknown key `web`", "services go under `services:`"],
        );
        assert_err(
            "services:\n  web:\n    image: x\n    port: 80\n    health: {path: /, intervl: 1}\n",
            "intervl",
            &["`services.web.health`", "did you mean `interval`?"],
        );
        assert_err(
            "services:\n  web:\n    build: {path: ., dockerfiel: D}\n",
            "dockerfiel",
            &["did you mean `dockerfile`?"],
        );
        assert_err(
            "services:\n  web: {image: x}\ntimers:\n  t: {schedule: \"* * * * *\", service: web, comand: x}\n",
            "comand",
            &["did you mean `command`?"],
        );
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "services:\n  web:\n    image: x\n    port: abc\n",
                "abc",
                &["services.web.port: expected a number from 1 to 65535, found \"abc\""],
            ),
            (
                "services:\n  web: {image: x, port: 70000}\n",
                "70000",
                &["found 70000"],
            ),
            (
                "services:\n  web: {image: x, port: 0x0}\n",
                "0x0",
                &["found 0x0"],
            ),
            (
                "services:\n  web: {image: x, port: 80.5}\n",
                "80.5",
                &["found 80.5"],
            ),
            (
                "services:\n  web: {image: x, scale: {count: 2, memory: 4, cpu: 1}}\n",
                "4,",
                &["services.web.scale.memory", "at least 6", "found 4"],
            ),
            (
                "services:\n  web: {image: x, scale: {cpu: 65}}\n",
                "65",
                &["services.web.scale.cpu", "at most 64", "found 65"],
            ),
            (
                "services:\n  web: {image: x, scale: {cpu: 0}}\n",
                "0}",
                &["greater than 0"],
            ),
            (
                "services:\n  web: {image: x, scale: {count: 101}}\n",
                "101",
                &["from 0 to 100"],
            ),
            (
                "services:\n  web: {image: x, deployment: {minimum: 101}}\n",
                "101",
                &[
                    "services.web.deployment.minimum: expected a percentage from 0 to 100, found 101",
                ],
            ),
            (
                "services:\n  web: {image: x, deployment: {maximum: 90}}\n",
                "90",
                &["percentage from 100 to 200"],
            ),
            (
                "services:\n  web: {image: x, deployment: {minimum: 100, maximum: 100}}\n",
                "{minimum",
                &["neither start a new process nor stop an old one"],
            ),
            (
                "services:\n  web: {image: x, termination: {grace: 3601}}\n",
                "3601",
                &["services.web.termination.grace", "seconds from 0 to 3600"],
            ),
            (
                "services:\n  web: {image: x, drain: -1}\n",
                "-1",
                &["services.web.drain", "from 0 to 3600"],
            ),
            (
                "services:\n  web: {image: x, timeout: 0}\n",
                "0}",
                &["services.web.timeout", "from 1 to 3600"],
            ),
            (
                "services:\n  web: {image: x, singleton: yes}\n",
                "yes",
                &["`true` or `false`, found \"yes\""],
            ),
            (
                "services:\n  web: {image: x, singleton: true, scale: {count: 2}}\n",
                "true",
                &["at most one process"],
            ),
            (
                "services:\n  web: {image: x, port: 80, health: health}\n",
                "health}",
                &["services.web.health", "starting with '/'"],
            ),
            (
                "services:\n  web: {image: x, port: 80, health: {path: /, interval: 0}}\n",
                "0}",
                &["services.web.health.interval", "from 1 to 3600"],
            ),
            (
                "services:\n  web: {image: x, port: 80, health: {attempts: 0}}\n",
                "0}",
                &["services.web.health.attempts", "from 1 to 100"],
            ),
            (
                "services:\n  web: {image: x, health: /h}\n",
                "health",
                &["has none; add `port:`"],
            ),
            (
                "services:\n  web: {image: x, command: \"\"}\n",
                "\"\"",
                &["command is empty"],
            ),
            (
                "services:\n  web: {image: x, command: []}\n",
                "[]",
                &["command is empty"],
            ),
            (
                "services:\n  web: {image: x, command: \"a 'b\"}\n",
                "\"a 'b\"",
                &["unclosed single quote"],
            ),
            (
                "services:\n  web: {image: x, command: {a: b}}\n",
                "{a: b}",
                &["a command line such as"],
            ),
            (
                "services:\n  web:\n    image: x\n    port: 80\n    domain: [ok.example.com, Shop.Example.com]\n",
                "Shop",
                &["lower case: `shop.example.com`"],
            ),
            (
                "services:\n  web: {image: x, port: 80, domain: \"-a.com\"}\n",
                "\"-a.com\"",
                &["starting or ending with '-'"],
            ),
            (
                "services:\n  web: {image: x, port: 80, domain: 10.0.0.1}\n",
                "10.0.0.1",
                &["IP address"],
            ),
            (
                "services:\n  web: {image: x, port: 80, domain: \"https://x.com\"}\n",
                "\"https://x.com\"",
                &["not a bare host name"],
            ),
            (
                "services:\n  web: {image: x, domain: x.com}\n",
                "domain",
                &["add `port:`"],
            ),
            (
                "services:\n  a: {image: x, port: 80, domain: s.example.com}\n  b: {image: x, port: 80, domain: [s.example.com]}\n",
                "s.example.com]",
                &["services.b.domain: `s.example.com` is already routed to service `a` (line 2)"],
            ),
            (
                "services:\n  web: {image: x, volumes: [\"Data:/x\"]}\n",
                "\"Data",
                &["services.web.volumes[0]", "invalid volume name \"Data\""],
            ),
            (
                "services:\n  web: {image: x, volumes: [\"data:x\"]}\n",
                "\"data:x",
                &["absolute path"],
            ),
            (
                "services:\n  web: {image: x, volumes: [\"data:/x:ro\"]}\n",
                "\"data",
                &["`:ro` are not supported"],
            ),
            (
                "services:\n  web: {image: x, volumes: [\"d:/x\", \"e:/x/\"]}\n",
                "\"e:",
                &[
                    "services.web.volumes[1]",
                    "already the mount point of volume `d`",
                ],
            ),
            (
                "services:\n  web: {image: \"my image\"}\n",
                "\"my image\"",
                &["has spaces"],
            ),
        ];
        for (text, needle, parts) in cases {
            assert_err(text, needle, parts);
        }
    }

    #[test]
    fn build_and_image() {
        assert_err(
            "services:\n  web:\n    build: .\n    image: nginx\n",
            "image",
            &["services.web: has both `build` and `image`"],
        );
        assert_err(
            "services:\n  web:\n    image: nginx\n    build: .\n",
            "build",
            &["services.web: has both `build` and `image`"],
        );
        assert_err(
            "services:\n  web:\n    port: 80\n",
            "web",
            &["services.web: needs `build`", "or `image`"],
        );
        assert_err(
            "services:\n  web:\n    build: ../other\n",
            "../other",
            &[
                "services.web.build",
                "leaves the source directory through `..`",
            ],
        );
        assert_err(
            "services:\n  web:\n    build: {path: a/../../b}\n",
            "a/../../b",
            &["services.web.build.path", "`..`"],
        );
        assert_err(
            "services:\n  web:\n    build: /srv/app\n",
            "/srv/app",
            &["absolute path"],
        );
        assert_err(
            "services:\n  web:\n    build: {dockerfile: ../Dockerfile}\n",
            "../Dockerfile",
            &["services.web.build.dockerfile"],
        );
        assert_err(
            "services:\n  web:\n    build: 12\n",
            "12",
            &["expected a directory", "found 12"],
        );
        assert_err(
            "services:\n  web:\n    build: {args: {1X: a}}\n",
            "1X",
            &["services.web.build.args", "not a valid build argument name"],
        );
    }

    #[test]
    fn names_and_environment() {
        assert_err(
            "services:\n  Web_1:\n    image: x\n",
            "Web_1",
            &["services: invalid service name \"Web_1\""],
        );
        assert_err(
            "app: My-App\nservices:\n  w: {image: x}\n",
            "My-App",
            &["app: invalid app name \"My-App\""],
        );
        assert_err(
            "environment:\n  - OK\n  - 1BAD=x\nservices:\n  w: {image: x}\n",
            "1BAD",
            &["environment[1]: \"1BAD\" is not a valid variable name"],
        );
        assert_err(
            "environment: [A, B=1, A=2]\nservices:\n  w: {image: x}\n",
            "A=2",
            &["`A` is listed twice (first on line 1)"],
        );
        assert_err(
            "services:\n  w: {image: x, environment: {A: 1}}\n",
            "{A: 1}",
            &["services.w.environment: expected a list of `KEY` or `KEY=default`"],
        );
        assert_err(
            "services:\n  w: {image: x, environment: [3]}\n",
            "3",
            &["services.w.environment[0]", "found 3"],
        );
        assert_err("app: x\n", "app", &["missing `services`"]);
        assert_err("services: {}\n", "{}", &["at least one service"]);
        assert_err("# only a comment\n", "# only", &["the manifest is empty"]);
        assert_err("- a\n- b\n", "- a", &["expected a mapping"]);
        assert_err(
            "services:\n  1: {image: x}\n",
            "1:",
            &["expected a name as key, found 1"],
        );
    }

    #[test]
    fn timers() {
        let base = "services:\n  web: {image: x}\ntimers:\n";
        let with = |t: &str| format!("{base}{t}");
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "  tick: {schedule: \"*/5 * * *\", service: web, command: x}\n",
                "\"*/5",
                &["timers.tick.schedule", "has 4 fields; a schedule has 5"],
            ),
            (
                "  tick: {schedule: \"61 * * * *\", service: web, command: x}\n",
                "\"61",
                &["the minute field \"61\" has 61, outside 0-59"],
            ),
            (
                "  tick: {schedule: \"* * * * */0\", service: web, command: x}\n",
                "\"*",
                &["day-of-week", "step \"0\""],
            ),
            (
                "  tick: {schedule: \"* 5-2 * * *\", service: web, command: x}\n",
                "\"*",
                &["runs backwards"],
            ),
            (
                "  tick: {schedule: \"* * * foo *\", service: web, command: x}\n",
                "\"*",
                &["month field \"foo\""],
            ),
            (
                "  tick: {schedule: 5, service: web, command: x}\n",
                "5,",
                &["expected a 5-field cron expression", "found 5"],
            ),
            (
                "  tick: {schedule: \"* * * * *\", service: wbe, command: x}\n",
                "wbe",
                &[
                    "timers.tick.service: there is no service `wbe` in `services`; did you mean `web`?",
                ],
            ),
            (
                "  tick: {schedule: \"* * * * *\", service: zzzzz, command: x}\n",
                "zzzzz",
                &["the services are `web`"],
            ),
            (
                "  tick: {schedule: \"* * * * *\", service: web}\n",
                "tick",
                &["missing `command`"],
            ),
            (
                "  tick: {service: web, command: x}\n",
                "tick",
                &["missing `schedule`"],
            ),
            (
                "  Tick: {schedule: \"* * * * *\", service: web, command: x}\n",
                "Tick",
                &["invalid timer name"],
            ),
        ];
        for (timer, needle, parts) in cases {
            assert_err(&with(timer), needle, parts);
        }
        for ok in [
            "0 0 1 1 0",
            "*/15 0-23/2 1,15 * 7",
            "0 12 * JAN-jun sun",
            "5/10 * * * *",
            "59 23 31 12 6",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}: {:?}", check_cron(ok));
        }
        for bad in [
            "* * * * * *",
            "",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "1,,2 * * * *",
            "a-b * * * *",
            "*/ * * * *",
            "-1 * * * *",
            "*/61 * * * *",
            "1-2-3 * * * *",
        ] {
            assert!(check_cron(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn yaml_errors_have_positions() {
        assert_err(
            "services:\n  web:\n    port: 1\n    port: 2\n",
            "port: 2",
            &["duplicate"],
        );
        assert_err(
            "services:\n  web: [a, b\n  x: 1\n",
            ": 1",
            &["invalid YAML"],
        );
        assert_err("services:\n\tweb: {}\n", "web", &["tabs"]);
        assert_err("a: 1\n---\nb: 2\n", "---", &["more than one YAML document"]);
    }

    #[test]
    fn billion_laughs_is_refused_fast() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
        }
        let start = Instant::now();
        let e = err(&text);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        assert!(e.message.contains("YAML bomb"), "{e}");
        assert!(e.line > 1, "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_fast() {
        let start = Instant::now();
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = err(&text);
        assert!(e.message.contains("nested more than 32 levels"), "{e}");
        let block: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let e = err(&block);
        assert!(e.message.contains("nested more than 32 levels"), "{e}");
        let flow = format!("services: {}{}", "{a: ".repeat(10_000), "}".repeat(10_000));
        let e = err(&flow);
        assert!(e.message.contains("nested more than 32 levels"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        let e = err(&"#".repeat(MAX_MANIFEST_BYTES + 1));
        assert!(e.message.contains("at most"), "{e}");
    }

    #[test]
    fn overlong_variable_names_are_refused() {
        let long = "K".repeat(257);
        let text = format!("environment: [{long}]\nservices:\n  w: {{image: x}}\n");
        let e = err(&text);
        assert!(e.message.starts_with("environment[0]: \"KKKK"), "{e}");
        assert!(e.message.contains("at most 256 bytes"), "{e}");
        let text = format!("services:\n  w:\n    build: {{args: {{{long}: a}}}}\n");
        let e = err(&text);
        assert!(e.message.starts_with("services.w.build.args: "), "{e}");
        assert!(e.message.contains("at most 256 bytes"), "{e}");
        let ok = "K".repeat(256);
        let text = format!("environment: [{ok}=1]\nservices:\n  w: {{image: x}}\n");
        assert!(parse_manifest("berth.yml", &text).is_ok());
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
}
