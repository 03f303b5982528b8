//! The `berth.yml` format: which keys exist where, what each may hold, and
//! how they combine into a [`Manifest`].

use super::checker::{Checker, Entry};
use super::cron::check_cron;
use super::hints::{did_you_mean, join};
use super::values::{
    check_domain, check_health_path, check_placement, normalise_relative, parse_volume,
    split_command,
};
use super::yaml::{Fail, Node, R, Raw, at, line_of, pos};
use crate::env::{EnvKeyError, check_env_key, parse_env_requirement};
use crate::model::{
    BuildSpec, DEFAULT_DRAIN, DEFAULT_TIMEOUT, DEFAULT_UPTIME_GRACE, Deployment, EnvRequirement,
    Health, ImageSource, Manifest, RESOURCE_KINDS, Resource, ResourceKind, Scale, Service,
    Termination, Timer, VolumeMount,
};
use crate::names::{validate_app_name, validate_service_name, validate_timer_name};
use std::collections::BTreeMap;

const TOP_KEYS: &[&str] = &["app", "environment", "resources", "services", "timers"];
const RESOURCE_KEYS: &[&str] = &["type", "image"];
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
    "placement",
    "resources",
];
const TLS_KEYS: &[&str] = &["redirect", "hsts"];
const HSTS_KEYS: &[&str] = &["max_age", "include_subdomains"];
const BUILD_KEYS: &[&str] = &["path", "dockerfile", "args"];
const HEALTH_KEYS: &[&str] = &["path", "grace", "interval", "timeout", "attempts"];
const SCALE_KEYS: &[&str] = &["count", "memory", "cpu"];
const DEPLOYMENT_KEYS: &[&str] = &["minimum", "maximum"];
const TERMINATION_KEYS: &[&str] = &["grace"];
const TIMER_KEYS: &[&str] = &["schedule", "service", "command"];

/// Check `root`, read from `src`, as a `berth.yml`.
pub(super) fn manifest(src: &str, root: &Node) -> R<Manifest> {
    Checker { src }.manifest(root)
}

// `checker` has the typed reads; the schema is kept apart so each file reads
// as one thing.
impl Checker<'_> {
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
        let mut resources: BTreeMap<String, (Resource, &Node)> = BTreeMap::new();
        if let Some(node) = f.value_or_empty("resources") {
            let what =
                "a mapping of resource names to resources, for example `{db: {type: postgres}}`";
            for (k, v) in self.entries(node, "resources", what)? {
                let name = self.key_name(k, "resources")?;
                validate_service_name(name).map_err(|e| at(k, format!("resources: {e}")))?;
                let res = self.resource(k, v, &join("resources", name))?;
                resources.insert(name.to_string(), (res, k));
            }
        }
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
            if let Some((_, rk)) = resources.get(name) {
                return Err(at(
                    k,
                    format!(
                        "services: `{name}` is also the name of a resource (line {}); a resource runs as a service of its name, so rename one of them",
                        line_of(rk)
                    ),
                ));
            }
            let svc = self.service(k, v, &path, &resources)?;
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

        for (name, (res, _)) in resources {
            manifest
                .services
                .insert(name.clone(), resource_service(&name, res));
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

    /// `{type: postgres}` or `{type: redis, image: my/redis:7}`.
    fn resource(&self, name_node: &Node, node: &Node, path: &str) -> R<Resource> {
        let example = "{type: postgres}";
        let f = self.fields(
            node,
            path,
            &format!("a mapping such as `{example}`"),
            RESOURCE_KEYS,
        )?;
        let Some(t) = f.value("type") else {
            return Err(at(
                name_node,
                format!(
                    "{path}: missing `type` (one of {}); a resource looks like `{example}`",
                    RESOURCE_KINDS.join(", ")
                ),
            ));
        };
        let tp = join(path, "type");
        let ts = self.string(t, &tp, "a resource type such as `postgres` or `redis`")?;
        let Some(kind) = ResourceKind::parse(ts) else {
            let mut msg = format!("{tp}: berth has no resource type `{ts}`");
            match did_you_mean(ts, RESOURCE_KINDS.iter().copied()) {
                Some(close) => msg.push_str(&format!("; did you mean `{close}`?")),
                None => msg.push_str(&format!("; the types are {}", RESOURCE_KINDS.join(", "))),
            }
            return Err(at(t, msg));
        };
        let image = match f.value("image") {
            Some(n) => self.image(n, &join(path, "image"))?,
            None => kind.default_image().to_string(),
        };
        Ok(Resource { kind, image })
    }

    /// A service's `resources: [db, cache]`, each a name under `resources:`.
    fn service_resources(
        &self,
        node: &Node,
        path: &str,
        resources: &BTreeMap<String, (Resource, &Node)>,
    ) -> R<Vec<String>> {
        let Raw::Seq(items) = &node.value else {
            return Err(self.expected(
                node,
                path,
                "a list of resource names, for example `[db, cache]`",
            ));
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let name = self.string(item, &ipath, "the name of a resource")?;
            if !resources.contains_key(name) {
                let mut msg = format!("{ipath}: there is no resource `{name}` in `resources`");
                match did_you_mean(name, resources.keys().map(String::as_str)) {
                    Some(close) => msg.push_str(&format!("; did you mean `{close}`?")),
                    None if resources.is_empty() => msg.push_str(&format!(
                        "; declare it at the top level, for example `resources: {{{name}: {{type: postgres}}}}`"
                    )),
                    None => msg.push_str(&format!(
                        "; the resources are {}",
                        resources
                            .keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
                return Err(at(item, msg));
            }
            if out.iter().any(|n| n == name) {
                return Err(at(
                    item,
                    format!("{path}: `{name}` is listed twice; remove one"),
                ));
            }
            out.push(name.to_string());
        }
        Ok(out)
    }

    fn service(
        &self,
        name_node: &Node,
        node: &Node,
        path: &str,
        resources: &BTreeMap<String, (Resource, &Node)>,
    ) -> R<Service> {
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
            Some(h) if port.is_none() => self.uptime_health(h, &join(path, "health"))?,
            Some(h) => self.health(h.value, &join(path, "health"))?,
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
        if let Some(v) = volumes.iter().find(|v| resources.contains_key(&v.volume)) {
            let node = f.value("volumes").unwrap_or(node);
            return Err(at(
                node,
                format!(
                    "{path}.volumes: volume `{}` is the data of resource `{}`, which only the resource mounts; give your volume another name",
                    v.volume, v.volume
                ),
            ));
        }
        let service_resources = match f.value_or_empty("resources") {
            Some(n) => self.service_resources(n, &join(path, "resources"), resources)?,
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
                if let Some(h) = tf.value("hsts") {
                    t.hsts = self.hsts(h, &join(&p, "hsts"))?;
                }
                t
            }
            None => Default::default(),
        };
        let placement = match f.value_or_empty("placement") {
            Some(n) => self.placement(n, &join(path, "placement"))?,
            None => Vec::new(),
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
            placement,
            resources: service_resources,
            resource: None,
        })
    }

    /// `hsts: true`, `false`, or `{max_age: SECONDS, include_subdomains: BOOL}`.
    fn hsts(&self, node: &Node, path: &str) -> R<Option<crate::model::Hsts>> {
        use crate::model::{DEFAULT_HSTS_MAX_AGE, Hsts};
        if let Raw::Bool(on) = node.value {
            return Ok(on.then_some(Hsts {
                max_age: DEFAULT_HSTS_MAX_AGE,
                include_subdomains: false,
            }));
        }
        let f = self.fields(
            node,
            path,
            "`true`, or a mapping such as `{max_age: 31536000, include_subdomains: true}`",
            HSTS_KEYS,
        )?;
        let max_age = match f.value("max_age") {
            Some(n) => self.uint(
                n,
                &join(path, "max_age"),
                0,
                10 * DEFAULT_HSTS_MAX_AGE,
                "a number of seconds up to 315360000 (ten years), e.g. 31536000 for one",
            )?,
            None => DEFAULT_HSTS_MAX_AGE,
        };
        let include_subdomains = match f.value("include_subdomains") {
            Some(n) => self.boolean(n, &join(path, "include_subdomains"))?,
            None => false,
        };
        Ok(Some(Hsts {
            max_age,
            include_subdomains,
        }))
    }

    fn placement(&self, node: &Node, path: &str) -> R<Vec<String>> {
        const WHAT: &str = "a constraint such as `node.labels.disk==ssd`, or a list of them";
        let items: Vec<&Node> = match &node.value {
            Raw::Str(_) => vec![node],
            Raw::Seq(items) => items.iter().collect(),
            _ => return Err(self.expected(node, path, WHAT)),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let c = self.string(item, path, WHAT)?;
            check_placement(c).map_err(|e| at(item, format!("{path}: {e}")))?;
            out.push(c.split_whitespace().collect::<String>());
        }
        Ok(out)
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
                    "a URL path such as `/health`, or a mapping such as `{path: /health, grace: 5, interval: 10, timeout: 3, attempts: 3}`",
                ));
            }
        }
        Ok(h)
    }

    /// `health` of a service without a port: nothing answers HTTP, so only
    /// `grace` applies, the seconds a new process must stay up to count as
    /// healthy.
    fn uptime_health(&self, entry: &Entry<'_>, path: &str) -> R<Health> {
        let only_grace = format!(
            "without a port, only `health: {{grace: N}}` applies: a new process counts as healthy once it has stayed up N seconds (default {DEFAULT_UPTIME_GRACE})"
        );
        if !matches!(entry.value.value, Raw::Map(_)) {
            return Err(at(
                entry.key_node,
                format!(
                    "{path}: the health check is an HTTP request to the service's `port`, but it has none; add `port:` or remove `health` ({only_grace})"
                ),
            ));
        }
        let f = self.fields(entry.value, path, "", HEALTH_KEYS)?;
        for key in HEALTH_KEYS.iter().filter(|k| **k != "grace") {
            if let Some(e) = f.get(key) {
                return Err(at(
                    e.key_node,
                    format!(
                        "{path}.{key}: the health check is an HTTP request to the service's `port`, but it has none; add `port:` or remove `{key}` ({only_grace})"
                    ),
                ));
            }
        }
        let mut h = Health::default();
        if let Some(n) = f.value("grace") {
            h.grace = self.seconds(n, &join(path, "grace"), 1, 3600)?;
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
}

/// The service a resource runs as: its image, a volume of its name on the
/// kind's data path, one process that stops before its replacement starts,
/// never routed. Credentials and the health check are the server's.
fn resource_service(name: &str, res: Resource) -> Service {
    Service {
        source: ImageSource::Image(res.image.clone()),
        command: None,
        port: None,
        domains: Vec::new(),
        environment: Vec::new(),
        health: Health {
            grace: 0,
            attempts: 60,
            ..Health::default()
        },
        scale: Scale::default(),
        deployment: Deployment::default(),
        termination: Termination::default(),
        drain: 0,
        volumes: vec![VolumeMount {
            volume: name.to_string(),
            path: res.kind.data_path().to_string(),
        }],
        singleton: true,
        timeout: DEFAULT_TIMEOUT,
        tls: Default::default(),
        placement: Vec::new(),
        resources: Vec::new(),
        resource: Some(res),
    }
}

impl Checker<'_> {
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

        if services.get(service).is_some_and(|s| s.resource.is_some()) {
            return Err(at(
                svc_node,
                format!(
                    "{svp}: `{service}` is a resource, which runs berth's image of it; name a service from `services`"
                ),
            ));
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
