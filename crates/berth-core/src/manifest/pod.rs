//! Kubernetes `kind: Pod` documents, accepted in place of `berth.yml`.
//!
//! Each container becomes a service of the same name (image, command/args,
//! env, the port it serves HTTP on, memory/CPU limits, an HTTP probe as its
//! health check, volume mounts). Pod volumes (`emptyDir`, `hostPath`) become
//! the app's named volumes: berth never binds host paths into containers, and
//! its volumes outlive releases, unlike an `emptyDir`. Everything else is
//! refused with the field's line and column, so nothing is silently dropped
//! except what is listed as accepted-and-ignored below.

use super::hints::{did_you_mean, join};
use super::values::check_health_path;
use super::yaml::{Node, R, Raw, at};
use crate::env::{EnvKeyError, check_env_key};
use crate::model::{
    DEFAULT_DRAIN, DEFAULT_TIMEOUT, EnvRequirement, Health, ImageSource, Manifest, Scale, Service,
    Termination, VolumeMount,
};
use crate::names::{validate_app_name, validate_service_name, validate_volume_name};
use std::collections::BTreeMap;

const TOP_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
/// `labels` and `annotations` mean nothing to berth; accepted so that Pod specs
/// copied from the Kubernetes docs work as they are.
const METADATA_KEYS: &[&str] = &["name", "labels", "annotations", "namespace"];
const SPEC_KEYS: &[&str] = &[
    "containers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "ports",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "volumeMounts",
];
const ENV_KEYS: &[&str] = &["name", "value"];
const PORT_KEYS: &[&str] = &["name", "containerPort", "hostPort", "protocol"];
/// `requests` are a scheduler's input; berth has no scheduler, only limits.
const RESOURCE_KEYS: &[&str] = &["limits", "requests"];
const LIMIT_KEYS: &[&str] = &["memory", "cpu"];
const PROBE_KEYS: &[&str] = &[
    "httpGet",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
];
const HTTP_GET_KEYS: &[&str] = &["path", "port", "scheme"];
const MOUNT_KEYS: &[&str] = &["name", "mountPath"];
const VOLUME_KEYS: &[&str] = &["name", "emptyDir", "hostPath"];

/// Whether a parsed document is a Pod (`kind: Pod` at the top level).
pub(super) fn is_pod(root: &Node) -> bool {
    let Raw::Map(entries) = &root.value else {
        return false;
    };
    entries.iter().any(|(k, v)| {
        matches!(&k.value, Raw::Str(s) if s == "kind")
            && matches!(&v.value, Raw::Str(s) if s == "Pod")
    })
}

fn entries<'n>(node: &'n Node, path: &str) -> R<&'n [(Node, Node)]> {
    match &node.value {
        Raw::Map(e) => Ok(e),
        _ => Err(at(node, format!("{path}: expected a mapping"))),
    }
}

/// The mapping's entries by key, refusing keys outside `allowed`.
fn fields<'n>(node: &'n Node, path: &str, allowed: &[&str]) -> R<BTreeMap<&'n str, &'n Node>> {
    let mut out = BTreeMap::new();
    for (k, v) in entries(node, path)? {
        let Raw::Str(key) = &k.value else {
            return Err(at(k, format!("{path}: expected a field name")));
        };
        if !allowed.contains(&key.as_str()) {
            let mut msg = format!(
                "`{}` is not supported in a Pod spec deployed by berth",
                join(path, key)
            );
            match did_you_mean(key, allowed.iter().copied()) {
                Some(close) => msg.push_str(&format!("; did you mean `{close}`?")),
                None => msg.push_str(&format!(
                    "; remove it (supported here: {})",
                    allowed.join(", ")
                )),
            }
            return Err(at(k, msg));
        }
        out.insert(key.as_str(), v);
    }
    Ok(out)
}

fn string<'n>(node: &'n Node, path: &str) -> R<&'n str> {
    match &node.value {
        Raw::Str(s) => Ok(s),
        _ => Err(at(node, format!("{path}: expected a string"))),
    }
}

/// A scalar as text (env values may be written as numbers or booleans).
fn scalar(node: &Node, path: &str) -> R<String> {
    match &node.value {
        Raw::Str(s) => Ok(s.clone()),
        Raw::Int(i) => Ok(i.to_string()),
        Raw::Float(f) => Ok(f.to_string()),
        Raw::Bool(b) => Ok(b.to_string()),
        Raw::Null => Ok(String::new()),
        _ => Err(at(node, format!("{path}: expected a string"))),
    }
}

fn seq<'n>(node: &'n Node, path: &str) -> R<&'n [Node]> {
    match &node.value {
        Raw::Seq(items) => Ok(items),
        _ => Err(at(node, format!("{path}: expected a list"))),
    }
}

fn uint(node: &Node, path: &str, max: i128) -> R<u32> {
    match &node.value {
        Raw::Int(i) if (0..=max).contains(i) => Ok(u32::try_from(*i).unwrap_or(u32::MAX)),
        _ => Err(at(
            node,
            format!("{path}: expected a whole number from 0 to {max}"),
        )),
    }
}

fn strings(node: &Node, path: &str) -> R<Vec<String>> {
    seq(node, path)?
        .iter()
        .enumerate()
        .map(|(i, n)| scalar(n, &format!("{path}[{i}]")))
        .collect()
}

/// Kubernetes memory quantity → MiB, rounded up: `128Mi`, `1Gi`, `500M`, `1e9`, `1048576`.
fn parse_memory(q: &str) -> Result<u64, String> {
    let units: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(suffix, f)| q.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((q, 1.0));
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            format!("{q:?} is not a memory quantity; write for example `128Mi` or `1Gi`")
        })?;
    let mib = (value * factor / (1024.0 * 1024.0)).ceil();
    if !(1.0..=1e9).contains(&mib) {
        return Err(format!(
            "{q:?} is out of range; berth needs at least 1Mi (write for example `128Mi`)"
        ));
    }
    Ok(mib as u64)
}

/// Kubernetes CPU quantity → cores: `500m`, `0.5`, `2`.
fn parse_cpu(q: &str) -> Result<f64, String> {
    let cores = match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => q.parse::<f64>(),
    }
    .ok()
    .filter(|c| c.is_finite() && *c > 0.0 && *c <= 1024.0)
    .ok_or_else(|| format!("{q:?} is not a CPU quantity; write for example `500m` or `1`"))?;
    Ok(cores)
}

/// Maps a Pod document to berth's manifest.
pub(super) fn manifest(root: &Node) -> R<Manifest> {
    let top = fields(root, "", TOP_KEYS)?;
    if let Some(v) = top.get("apiVersion") {
        let version = string(v, "apiVersion")?;
        if version != "v1" {
            return Err(at(
                v,
                format!("apiVersion {version:?} is not supported; a Pod is `apiVersion: v1`"),
            ));
        }
    }
    let mut out = Manifest::default();
    if let Some(meta) = top.get("metadata") {
        let meta = fields(meta, "metadata", METADATA_KEYS)?;
        if let Some(name) = meta.get("name") {
            let name_text = string(name, "metadata.name")?;
            // The Pod's name is the default app only when it is a valid app name;
            // `-a APP` still decides where it is deployed.
            if validate_app_name(name_text).is_ok() {
                out.app = Some(name_text.to_string());
            }
        }
    }
    let spec_node = top.get("spec").ok_or_else(|| {
        at(
            root,
            "a Pod needs `spec:` with `containers:`; see the README's Pod specs section",
        )
    })?;
    let spec = fields(spec_node, "spec", SPEC_KEYS)?;
    if let Some(policy) = spec.get("restartPolicy") {
        let p = string(policy, "spec.restartPolicy")?;
        if p != "Always" {
            return Err(at(
                policy,
                format!(
                    "spec.restartPolicy {p:?} is not supported: berth always restarts services' processes; remove it or write `Always`"
                ),
            ));
        }
    }
    let grace = match spec.get("terminationGracePeriodSeconds") {
        Some(n) => uint(n, "spec.terminationGracePeriodSeconds", 3600)?,
        None => Termination::default().grace,
    };
    let volumes = pod_volumes(spec.get("volumes").copied())?;
    let containers_node = spec.get("containers").ok_or_else(|| {
        at(
            spec_node,
            "spec: a Pod needs `containers:` with at least one container",
        )
    })?;
    let containers = seq(containers_node, "spec.containers")?;
    if containers.is_empty() {
        return Err(at(
            containers_node,
            "spec.containers is empty; add at least one container",
        ));
    }
    for (i, c) in containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        let (name, service) = container(c, &path, &volumes, grace)?;
        if out.services.contains_key(&name) {
            return Err(at(
                c,
                format!(
                    "{path}: a second container is named {name:?}; give each container its own name"
                ),
            ));
        }
        out.services.insert(name, service);
    }
    Ok(out)
}

/// Pod volume name → where it came from, for the mounts to check against.
fn pod_volumes(node: Option<&Node>) -> R<BTreeMap<String, ()>> {
    let mut out = BTreeMap::new();
    let Some(node) = node else {
        return Ok(out);
    };
    for (i, v) in seq(node, "spec.volumes")?.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        let f = fields(v, &path, VOLUME_KEYS)?;
        let name_node = f
            .get("name")
            .ok_or_else(|| at(v, format!("{path}: a volume needs a `name`")))?;
        let name = string(name_node, &join(&path, "name"))?;
        validate_volume_name(name).map_err(|e| at(name_node, format!("{path}.name: {e}")))?;
        if !f.contains_key("emptyDir") && !f.contains_key("hostPath") {
            return Err(at(
                v,
                format!(
                    "{path}: only `emptyDir` and `hostPath` volumes are supported (both become the app's named volume {name:?})"
                ),
            ));
        }
        out.insert(name.to_string(), ());
    }
    Ok(out)
}

fn container(
    node: &Node,
    path: &str,
    volumes: &BTreeMap<String, ()>,
    grace: u32,
) -> R<(String, Service)> {
    let f = fields(node, path, CONTAINER_KEYS)?;
    let name_node = f
        .get("name")
        .ok_or_else(|| at(node, format!("{path}: a container needs a `name`")))?;
    let name = string(name_node, &join(path, "name"))?;
    validate_service_name(name).map_err(|e| at(name_node, format!("{path}.name: {e}")))?;
    let image_node = f.get("image").ok_or_else(|| {
        at(
            node,
            format!("{path}: container {name} needs an `image` (berth does not build Pod specs)"),
        )
    })?;
    let image = string(image_node, &join(path, "image"))?.trim();
    if image.is_empty() {
        return Err(at(
            image_node,
            format!("{path}.image is empty; name an image"),
        ));
    }
    // `command` replaces the entrypoint in Kubernetes; berth sets the command
    // (Cmd), so both together form the whole command line.
    let mut command: Option<Vec<String>> = None;
    if let Some(c) = f.get("command") {
        command = Some(strings(c, &join(path, "command"))?);
    }
    if let Some(a) = f.get("args") {
        let args = strings(a, &join(path, "args"))?;
        command = Some(
            command
                .unwrap_or_default()
                .into_iter()
                .chain(args)
                .collect(),
        );
    }
    let mut environment = Vec::new();
    if let Some(env) = f.get("env") {
        for (i, e) in seq(env, &join(path, "env"))?.iter().enumerate() {
            let epath = format!("{path}.env[{i}]");
            let ef = fields(e, &epath, ENV_KEYS)?;
            let key_node = ef
                .get("name")
                .ok_or_else(|| at(e, format!("{epath}: needs a `name`")))?;
            let key = string(key_node, &join(&epath, "name"))?;
            match check_env_key(key) {
                Ok(()) => {}
                Err(EnvKeyError::Invalid { .. }) => {
                    return Err(at(
                        key_node,
                        format!(
                            "{epath}.name {key:?} is not a valid variable name; use letters, digits and '_'"
                        ),
                    ));
                }
                Err(e) => return Err(at(key_node, format!("{epath}.name: {e}"))),
            }
            let value = match ef.get("value") {
                Some(v) => scalar(v, &join(&epath, "value"))?,
                None => String::new(),
            };
            environment.push(EnvRequirement {
                key: key.to_string(),
                default: Some(value),
            });
        }
    }
    let mut port: Option<(u16, Option<String>)> = None;
    if let Some(ports) = f.get("ports") {
        for (i, p) in seq(ports, &join(path, "ports"))?.iter().enumerate() {
            let ppath = format!("{path}.ports[{i}]");
            let pf = fields(p, &ppath, PORT_KEYS)?;
            if let Some(proto) = pf.get("protocol") {
                let text = string(proto, &join(&ppath, "protocol"))?;
                if text != "TCP" {
                    return Err(at(
                        proto,
                        format!("{ppath}.protocol {text:?}: berth routes HTTP over TCP only"),
                    ));
                }
            }
            // The router reaches the process on its own network address, so
            // the container port is what matters; hostPort is accepted but no
            // host port is ever published.
            let number_node = pf
                .get("containerPort")
                .or_else(|| pf.get("hostPort"))
                .ok_or_else(|| at(p, format!("{ppath}: needs `containerPort`")))?;
            let number = uint(number_node, &ppath, 65535)?;
            if number == 0 {
                return Err(at(number_node, format!("{ppath}: port 0 is not a port")));
            }
            if port.is_some() {
                return Err(at(
                    p,
                    format!(
                        "{ppath}: berth routes one HTTP port per container; keep only the port it serves HTTP on"
                    ),
                ));
            }
            let pname = match pf.get("name") {
                Some(n) => Some(string(n, &join(&ppath, "name"))?.to_string()),
                None => None,
            };
            port = Some((u16::try_from(number).unwrap_or(0), pname));
        }
    }
    let mut scale = Scale::default();
    if let Some(res) = f.get("resources") {
        let rpath = join(path, "resources");
        let rf = fields(res, &rpath, RESOURCE_KEYS)?;
        if let Some(limits) = rf.get("limits") {
            let lpath = join(&rpath, "limits");
            let lf = fields(limits, &lpath, LIMIT_KEYS)?;
            if let Some(m) = lf.get("memory") {
                let q = scalar(m, &join(&lpath, "memory"))?;
                scale.memory =
                    Some(parse_memory(&q).map_err(|e| at(m, format!("{lpath}.memory: {e}")))?);
            }
            if let Some(c) = lf.get("cpu") {
                let q = scalar(c, &join(&lpath, "cpu"))?;
                scale.cpu = Some(parse_cpu(&q).map_err(|e| at(c, format!("{lpath}.cpu: {e}")))?);
            }
        }
    }
    let probe = f
        .get("readinessProbe")
        .map(|p| (p, "readinessProbe"))
        .or_else(|| f.get("livenessProbe").map(|p| (p, "livenessProbe")));
    let mut health = Health::default();
    if let Some((p, key)) = probe {
        health = probe_health(p, &join(path, key), port.as_ref())?;
    }
    // The other probe is checked too, so its unsupported fields are not hidden.
    if let (true, Some(l)) = (f.contains_key("readinessProbe"), f.get("livenessProbe")) {
        probe_health(l, &join(path, "livenessProbe"), port.as_ref())?;
    }
    let mut mounts = Vec::new();
    if let Some(vm) = f.get("volumeMounts") {
        for (i, m) in seq(vm, &join(path, "volumeMounts"))?.iter().enumerate() {
            let mpath = format!("{path}.volumeMounts[{i}]");
            let mf = fields(m, &mpath, MOUNT_KEYS)?;
            let vname_node = mf
                .get("name")
                .ok_or_else(|| at(m, format!("{mpath}: needs a `name`")))?;
            let vname = string(vname_node, &join(&mpath, "name"))?;
            if !volumes.contains_key(vname) {
                return Err(at(
                    vname_node,
                    format!("{mpath}.name: no volume {vname:?} under spec.volumes; add it there"),
                ));
            }
            let mp_node = mf
                .get("mountPath")
                .ok_or_else(|| at(m, format!("{mpath}: needs a `mountPath`")))?;
            let mp = string(mp_node, &join(&mpath, "mountPath"))?;
            if !mp.starts_with('/')
                || mp.split('/').any(|s| s == "..")
                || mp.trim_matches('/').is_empty()
            {
                return Err(at(
                    mp_node,
                    format!(
                        "{mpath}.mountPath {mp:?} must be an absolute directory path other than `/`"
                    ),
                ));
            }
            mounts.push(VolumeMount {
                volume: vname.to_string(),
                path: mp.trim_end_matches('/').to_string(),
            });
        }
    }
    let service = Service {
        source: ImageSource::Image(image.to_string()),
        command,
        port: port.map(|(p, _)| p),
        domains: vec![],
        environment,
        health,
        scale,
        deployment: Default::default(),
        termination: Termination { grace },
        drain: DEFAULT_DRAIN,
        volumes: mounts,
        singleton: false,
        timeout: DEFAULT_TIMEOUT,
        tls: Default::default(),
        placement: Vec::new(),
        resources: Vec::new(),
        resource: None,
    };
    Ok((name.to_string(), service))
}

fn probe_health(node: &Node, path: &str, port: Option<&(u16, Option<String>)>) -> R<Health> {
    let f = fields(node, path, PROBE_KEYS)?;
    let http_node = f.get("httpGet").ok_or_else(|| {
        at(
            node,
            format!("{path}: only `httpGet` probes are supported (exec and tcpSocket are not)"),
        )
    })?;
    let hpath = join(path, "httpGet");
    let hf = fields(http_node, &hpath, HTTP_GET_KEYS)?;
    let mut health = Health::default();
    if let Some(p) = hf.get("path") {
        let text = string(p, &join(&hpath, "path"))?;
        health.path = check_health_path(text).map_err(|e| at(p, format!("{hpath}.path: {e}")))?;
    }
    if let Some(s) = hf.get("scheme") {
        let text = string(s, &join(&hpath, "scheme"))?;
        if text != "HTTP" {
            return Err(at(
                s,
                format!("{hpath}.scheme {text:?}: berth checks health over plain HTTP only"),
            ));
        }
    }
    let Some((container_port, port_name)) = port else {
        return Err(at(
            http_node,
            format!(
                "{hpath}: the container declares no port under `ports:`, so there is nothing to probe; add `ports: [{{containerPort: N}}]`"
            ),
        ));
    };
    if let Some(p) = hf.get("port") {
        let same = match &p.value {
            Raw::Int(n) => *n == i128::from(*container_port),
            Raw::Str(s) => Some(s) == port_name.as_ref() || s == &container_port.to_string(),
            _ => false,
        };
        if !same {
            return Err(at(
                p,
                format!(
                    "{hpath}.port must be the container's port ({container_port}); berth probes the port it routes to"
                ),
            ));
        }
    }
    if let Some(n) = f.get("initialDelaySeconds") {
        health.grace = uint(n, &join(path, "initialDelaySeconds"), 3600)?;
    }
    if let Some(n) = f.get("periodSeconds") {
        health.interval = uint(n, &join(path, "periodSeconds"), 3600)?.max(1);
    }
    if let Some(n) = f.get("timeoutSeconds") {
        health.timeout = uint(n, &join(path, "timeoutSeconds"), 3600)?.max(1);
    }
    if let Some(n) = f.get("failureThreshold") {
        health.attempts = uint(n, &join(path, "failureThreshold"), 1000)?.max(1);
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use crate::parse_manifest;

    /// The nginx example of https://kubernetes.io/docs/concepts/workloads/pods/,
    /// with a readiness probe and limits as the docs write them.
    const NGINX: &str = "apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: nginx:1.14.2
    ports:
    - containerPort: 80
    resources:
      limits:
        memory: \"128Mi\"
        cpu: \"500m\"
    readinessProbe:
      httpGet:
        path: /healthz
        port: 80
      initialDelaySeconds: 3
      periodSeconds: 3
    env:
    - name: GREETING
      value: \"hello\"
    volumeMounts:
    - mountPath: /cache
      name: cache-volume
  volumes:
  - name: cache-volume
    emptyDir: {}
";

    #[test]
    fn nginx_pod_maps_to_a_service() {
        let m = parse_manifest("pod.yaml", NGINX).unwrap();
        assert_eq!(m.app.as_deref(), Some("nginx"));
        let s = &m.services["nginx"];
        assert_eq!(s.source, crate::ImageSource::Image("nginx:1.14.2".into()));
        assert_eq!(s.port, Some(80));
        assert_eq!(s.scale.memory, Some(128));
        assert_eq!(s.scale.cpu, Some(0.5));
        assert_eq!(s.health.path, "/healthz");
        assert_eq!((s.health.grace, s.health.interval), (3, 3));
        assert_eq!(s.environment[0].key, "GREETING");
        assert_eq!(s.environment[0].default.as_deref(), Some("hello"));
        assert_eq!(s.volumes[0].volume, "cache-volume");
        assert_eq!(s.volumes[0].path, "/cache");
    }

    #[test]
    fn command_and_args_join() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    command: [\"/bin/httpd\"]\n    args: [\"-f\", \"-p\", 8080]\n";
        let m = parse_manifest("pod.yaml", text).unwrap();
        assert_eq!(
            m.services["web"].command.as_deref(),
            Some(
                &[
                    "/bin/httpd".to_string(),
                    "-f".into(),
                    "-p".into(),
                    "8080".into()
                ][..]
            )
        );
    }

    #[test]
    fn unsupported_fields_are_named_with_their_position() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    securityContext:\n      runAsUser: 1000\n";
        let e = parse_manifest("pod.yaml", text).unwrap_err();
        assert_eq!((e.line, e.column), (7, 5), "{e}");
        assert!(
            e.message.contains("spec.containers[0].securityContext"),
            "{e}"
        );
        let text =
            "apiVersion: v1\nkind: Pod\nspec:\n  nodeSelector: {disk: ssd}\n  containers: []\n";
        let e = parse_manifest("pod.yaml", text).unwrap_err();
        assert_eq!((e.line, e.column), (4, 3), "{e}");
        assert!(e.message.contains("spec.nodeSelector"), "{e}");
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    ports: [{containerPort: 80}]\n    livenessProbe:\n      exec: {command: [cat]}\n";
        let e = parse_manifest("pod.yaml", text).unwrap_err();
        assert!(e.message.contains("livenessProbe.exec"), "{e}");
    }

    #[test]
    fn quantities() {
        use super::{parse_cpu, parse_memory};
        assert_eq!(parse_memory("128Mi"), Ok(128));
        assert_eq!(parse_memory("1Gi"), Ok(1024));
        assert_eq!(parse_memory("500M"), Ok(477));
        assert_eq!(parse_memory("1048576"), Ok(1));
        assert!(parse_memory("lots").is_err());
        assert_eq!(parse_cpu("500m"), Ok(0.5));
        assert_eq!(parse_cpu("2"), Ok(2.0));
        assert!(parse_cpu("0").is_err());
    }

    #[test]
    fn env_names_follow_the_env_key_rule() {
        let pod = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    env:\n    - name: {name}\n      value: v\n"
            )
        };
        let e = parse_manifest("pod.yaml", &pod("1X")).unwrap_err();
        assert!(
            e.message
                .contains("spec.containers[0].env[0].name \"1X\" is not a valid variable name"),
            "{e}"
        );
        let e = parse_manifest("pod.yaml", &pod(&"K".repeat(257))).unwrap_err();
        assert!(e.message.contains("at most 256 bytes"), "{e}");
        assert!(parse_manifest("pod.yaml", &pod(&"K".repeat(256))).is_ok());
    }

    #[test]
    fn probe_port_must_match() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    ports: [{containerPort: 80, name: http}]\n    readinessProbe:\n      httpGet: {path: /, port: http}\n";
        assert!(parse_manifest("pod.yaml", text).is_ok());
        let text = text.replace("port: http}", "port: 81}");
        let e = parse_manifest("pod.yaml", &text).unwrap_err();
        assert!(e.message.contains("must be the container's port"), "{e}");
    }
}
