//! Swarm's models and berth's: a process's service spec, a task's state, a
//! node, and the ids of node-local containers. Pure functions.

use crate::docker::convert::to_hash_map;
use crate::{ContainerSpec, ContainerState, NodeInfo};
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, Mount, MountType, MountVolumeOptions,
    NetworkAttachmentConfig, Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use std::collections::{BTreeMap, HashMap};

/// The label Swarm puts on the container of each task; node-local containers
/// (one-offs, helpers) lack it.
pub(crate) const TASK_ID_LABEL: &str = "com.docker.swarm.task.id";

/// The id of a container on one node: `<node id>/<container id>`, so every
/// later call finds the node again. Swarm ids and container ids have no `/`.
pub(crate) fn local_id(node: &str, id: &str) -> String {
    format!("{node}/{id}")
}

/// `(node id, container id)` of a node-local id; `None` for a service id.
pub(crate) fn split_local(id: &str) -> Option<(&str, &str)> {
    id.split_once('/')
}

/// The service of one process: replicas 1, DNS round robin (the kernel may
/// lack IPVS for virtual IPs, and berth's routers need none), no restarts
/// (berth's reconciler restarts, counts and backs off as on one engine), the
/// labels on the service and on its task's container.
///
/// `image` is the image's id: Swarm then uses each node's own copy and never
/// asks a registry. `volume_labels` are the labels a node gives a volume it
/// creates for a mount; `constraints` are the placement constraints.
pub(crate) fn service_spec(
    spec: &ContainerSpec,
    image: &str,
    volume_labels: &HashMap<String, BTreeMap<String, String>>,
    constraints: Vec<String>,
) -> ServiceSpec {
    let labels = to_hash_map(&spec.labels);
    let mounts = spec
        .volumes
        .iter()
        .map(|(volume, path)| Mount {
            target: Some(path.clone()),
            source: Some(volume.clone()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: volume_labels.get(volume).map(to_hash_map),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let container = TaskSpecContainerSpec {
        image: Some(image.to_string()),
        labels: Some(labels.clone()),
        // `Args` replaces the image's CMD and keeps its ENTRYPOINT, as `Cmd`
        // does for a container (`Command` would replace the entrypoint).
        args: spec.command.clone(),
        hostname: spec.hostname.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin),
        mounts: (!mounts.is_empty()).then_some(mounts),
        stop_grace_period: Some(i64::from(spec.stop_grace) * 1_000_000_000),
        // As on one engine: docker-init forwards SIGTERM to programs that
        // never installed a handler and reaps zombies.
        init: Some(true),
        ..Default::default()
    };
    let limits = Limit {
        nano_cpus: spec.cpu.map(|c| (c * 1e9).round() as i64),
        memory_bytes: spec
            .memory_mib
            .map(|m| i64::try_from(m.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)),
        pids: None,
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(TaskSpecResources {
            limits: Some(limits),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        }),
        placement: (!constraints.is_empty()).then(|| TaskSpecPlacement {
            constraints: Some(constraints),
            ..Default::default()
        }),
        // A node keeps a process's output while the server cannot read it
        // (the server resumes from its cursor), bounded: 5 files of 10 MiB.
        log_driver: Some(TaskSpecLogDriver {
            name: Some("json-file".into()),
            options: Some(HashMap::from([
                ("max-size".to_string(), "10m".to_string()),
                ("max-file".to_string(), "5".to_string()),
            ])),
        }),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(spec.network.clone()),
            aliases: (!spec.aliases.is_empty()).then(|| spec.aliases.clone()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels),
        task_template: Some(task),
        mode: Some(replicated(1)),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: None,
        }),
        ..Default::default()
    }
}

pub(crate) fn replicated(replicas: i64) -> ServiceSpecMode {
    ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(replicas),
        }),
        ..Default::default()
    }
}

/// How far a task got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not running yet (new … starting).
    Starting,
    Running,
    /// Finished, failed, rejected, shut down, or on a node that is gone.
    Ended,
}

/// A task's phase; a task on a node that is not ready counts as ended: its
/// manager keeps reporting it running, but nothing of it is left to reach.
pub(crate) fn phase(task: &Task, node_ready: bool) -> Phase {
    let state = task.status.as_ref().and_then(|s| s.state);
    match state {
        Some(TaskState::RUNNING) if node_ready => Phase::Running,
        Some(
            TaskState::COMPLETE
            | TaskState::FAILED
            | TaskState::SHUTDOWN
            | TaskState::REJECTED
            | TaskState::ORPHANED
            | TaskState::REMOVE,
        ) => Phase::Ended,
        // Assigned to a node that is gone: it will never start there.
        _ if !node_ready && task.node_id.is_some() => Phase::Ended,
        Some(TaskState::RUNNING) => Phase::Ended,
        _ => Phase::Starting,
    }
}

/// The exit code Swarm recorded for a task's container, once it ended (a
/// running container's is 0, which would be wrong for one lost with its node).
pub(crate) fn exit_code(task: &Task) -> Option<i64> {
    let status = task.status.as_ref()?;
    let ended = matches!(
        status.state,
        Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::SHUTDOWN | TaskState::REJECTED)
    );
    ended
        .then(|| status.container_status.as_ref()?.exit_code)
        .flatten()
}

/// The id of a task's container on its node, once it has one.
pub(crate) fn container_id(task: &Task) -> Option<&str> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.as_deref())
        .filter(|id| !id.is_empty())
}

/// Why a task failed, as Swarm says it (`no suitable node …`, `task: non-zero exit (3)`).
pub(crate) fn task_error(task: &Task) -> Option<String> {
    let status = task.status.as_ref()?;
    status
        .err
        .clone()
        .filter(|e| !e.is_empty())
        .or_else(|| status.message.clone().filter(|m| !m.is_empty()))
}

pub(crate) fn container_state(task: &Task, node_ready: bool) -> ContainerState {
    match phase(task, node_ready) {
        Phase::Starting => ContainerState::Created,
        Phase::Running => ContainerState::Running,
        Phase::Ended => ContainerState::Exited {
            code: exit_code(task),
            oom_killed: false,
        },
    }
}

/// The task that stands for the process now: the newest. A service of berth
/// has one task at a time; older ones stay in the history until Swarm prunes it.
pub(crate) fn current_task<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks.into_iter().max_by_key(|t| {
        (
            t.created_at.as_deref().and_then(parse_time),
            t.version.as_ref().and_then(|v| v.index),
        )
    })
}

/// Nanoseconds since the epoch of an RFC 3339 time as the engine writes it.
pub(crate) fn parse_time(text: &str) -> Option<i128> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub(crate) fn node_ready(node: &Node) -> bool {
    node.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY)
}

pub(crate) fn node_active(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::ACTIVE)
}

pub(crate) fn hostname(node: &Node) -> String {
    node.description
        .as_ref()
        .and_then(|d| d.hostname.clone())
        .or_else(|| node.id.clone())
        .unwrap_or_default()
}

pub(crate) fn node_info(node: &Node) -> NodeInfo {
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let resources = node
        .description
        .as_ref()
        .and_then(|d| d.resources.clone())
        .unwrap_or_default();
    NodeInfo {
        id: node.id.clone().unwrap_or_default(),
        hostname: hostname(node),
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => "manager",
            _ => "worker",
        }
        .into(),
        status: status
            .state
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        availability: spec
            .availability
            .map(|a| a.to_string())
            .unwrap_or_else(|| "active".into()),
        addr: status.addr.filter(|a| !a.is_empty()),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
        memory: u64::try_from(resources.memory_bytes.unwrap_or(0)).unwrap_or(0),
    }
}

/// `active`, `pause` or `drain`, as Swarm spells them.
pub(crate) fn availability(value: &str) -> Option<NodeSpecAvailabilityEnum> {
    match value {
        "active" => Some(NodeSpecAvailabilityEnum::ACTIVE),
        "pause" => Some(NodeSpecAvailabilityEnum::PAUSE),
        "drain" => Some(NodeSpecAvailabilityEnum::DRAIN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus, ObjectVersion, TaskStatus};

    fn task(state: TaskState, created: &str, code: Option<i64>) -> Task {
        Task {
            id: Some(created.into()),
            node_id: Some("n1".into()),
            created_at: Some(created.into()),
            version: Some(ObjectVersion { index: Some(1) }),
            status: Some(TaskStatus {
                state: Some(state),
                container_status: Some(ContainerStatus {
                    container_id: Some("c".into()),
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn task_states_as_berth_sees_them() {
        let t = |s| task(s, "2024-01-01T00:00:00Z", Some(3));
        assert_eq!(
            container_state(&t(TaskState::RUNNING), true),
            ContainerState::Running
        );
        for starting in [TaskState::NEW, TaskState::PENDING, TaskState::PREPARING] {
            assert_eq!(container_state(&t(starting), true), ContainerState::Created);
        }
        for ended in [TaskState::FAILED, TaskState::COMPLETE, TaskState::SHUTDOWN] {
            assert_eq!(
                container_state(&t(ended), true),
                ContainerState::Exited {
                    code: Some(3),
                    oom_killed: false
                }
            );
        }
        // Its node died: the manager still says running, with exit code 0.
        assert_eq!(phase(&t(TaskState::RUNNING), false), Phase::Ended);
        assert_eq!(
            container_state(&t(TaskState::RUNNING), false),
            ContainerState::Exited {
                code: None,
                oom_killed: false
            }
        );
        // Not yet on any node: waiting for one, not ended.
        let mut pending = t(TaskState::PENDING);
        pending.node_id = None;
        assert_eq!(phase(&pending, false), Phase::Starting);
    }

    #[test]
    fn the_newest_task_is_current() {
        // Go trims trailing zeros from fractions: text order is not time order.
        let old = task(TaskState::SHUTDOWN, "2024-01-01T00:00:00.9Z", None);
        let new = task(TaskState::RUNNING, "2024-01-01T00:00:01.05Z", None);
        let tasks = [new.clone(), old.clone()];
        assert_eq!(
            current_task(&tasks).and_then(|t| t.id.clone()),
            new.id.clone()
        );
        assert!(current_task(&[]).is_none());
    }

    #[test]
    fn a_process_becomes_a_one_replica_dnsrr_service() {
        let spec = ContainerSpec {
            name: "berth-r-shop-web-1".into(),
            image: "berth/shop:B1".into(),
            command: Some(vec!["serve".into()]),
            env: [("A".to_string(), "1".to_string())].into(),
            labels: [("berth.rack".to_string(), "r".to_string())].into(),
            network: "berth-r-shop".into(),
            aliases: vec!["web".into()],
            hostname: Some("web-1".into()),
            memory_mib: Some(64),
            cpu: Some(0.5),
            volumes: vec![("berth-r-shop-data".into(), "/data".into())],
            stop_grace: 7,
            placement: vec!["node.labels.disk==ssd".into()],
            ..Default::default()
        };
        let volume_labels = HashMap::from([(
            "berth-r-shop-data".to_string(),
            BTreeMap::from([("berth.volume".to_string(), "data".to_string())]),
        )]);
        let s = service_spec(&spec, "sha256:abc", &volume_labels, spec.placement.clone());
        assert_eq!(s.name.as_deref(), Some("berth-r-shop-web-1"));
        assert_eq!(
            s.mode.and_then(|m| m.replicated).and_then(|r| r.replicas),
            Some(1)
        );
        assert_eq!(
            s.endpoint_spec.and_then(|e| e.mode),
            Some(EndpointSpecModeEnum::DNSRR)
        );
        let task = s.task_template.unwrap_or_default();
        let c = task.container_spec.unwrap_or_default();
        assert_eq!(c.image.as_deref(), Some("sha256:abc"));
        let logs = task.log_driver.clone().unwrap_or_default();
        assert_eq!(logs.name.as_deref(), Some("json-file"));
        assert!(logs.options.unwrap_or_default().contains_key("max-size"));
        assert_eq!(c.args, Some(vec!["serve".to_string()]));
        assert_eq!(c.command, None);
        assert_eq!(c.labels, s.labels);
        assert_eq!(c.stop_grace_period, Some(7_000_000_000));
        let mount = &c.mounts.unwrap_or_default()[0];
        assert_eq!(
            mount
                .volume_options
                .as_ref()
                .and_then(|o| o.labels.as_ref())
                .and_then(|l| l.get("berth.volume"))
                .map(String::as_str),
            Some("data")
        );
        assert_eq!(
            task.restart_policy.and_then(|r| r.condition),
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let limits = task.resources.and_then(|r| r.limits).unwrap_or_default();
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(limits.nano_cpus, Some(500_000_000));
        let net = &task.networks.unwrap_or_default()[0];
        assert_eq!(net.aliases, Some(vec!["web".to_string()]));
    }

    #[test]
    fn local_ids_carry_their_node() {
        let id = local_id("n1", "abc");
        assert_eq!(split_local(&id), Some(("n1", "abc")));
        assert_eq!(split_local("serviceid"), None);
    }
}
