//! Engine models to berth's types, and engine errors to `RuntimeError`
//! (the label and error helpers are shared with the Swarm runtime).

use crate::{ContainerInfo, ContainerState, ProcessStats, RuntimeError, RuntimeEvent};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, EndpointSettings, EventMessage,
};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

pub(crate) fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])
}

pub(crate) fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The error and its causes, `: `-joined: hyper's own messages ("client error
/// (Connect)") hide the useful part ("Connection refused") in the sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn map_err(err: BollardError) -> RuntimeError {
    match err {
        BollardError::SocketNotFoundError(path) => {
            RuntimeError::Connect(format!("socket {path} does not exist"))
        }
        BollardError::HyperLegacyError { err } if err.is_connect() => {
            RuntimeError::Connect(error_chain(&err))
        }
        BollardError::IOError { err }
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            RuntimeError::Connect(error_chain(&err))
        }
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Engine(format!("{message} (HTTP {status_code})")),
        BollardError::RequestTimeoutError => {
            RuntimeError::Engine("the engine did not answer in time".to_string())
        }
        other => RuntimeError::Engine(error_chain(&other)),
    }
}

fn ip_of(endpoint: &EndpointSettings) -> Option<IpAddr> {
    [&endpoint.ip_address, &endpoint.global_ipv6_address]
        .into_iter()
        .flatten()
        .find_map(|a| a.parse().ok())
}

/// The address on `preferred` if given, else on the first network (by name,
/// for a stable answer) that has one.
fn pick_ip(
    networks: Option<&HashMap<String, EndpointSettings>>,
    preferred: Option<&str>,
) -> Option<IpAddr> {
    let networks = networks?;
    if let Some(name) = preferred {
        return networks.get(name).and_then(ip_of);
    }
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(|n| ip_of(&networks[n]))
}

/// The exit code from a list entry's status text, e.g. `Exited (137) 2 minutes ago`.
fn exit_code_from_status(status: &str) -> Option<i64> {
    let start = status.find('(')? + 1;
    let end = start + status[start..].find(')')?;
    status[start..end].parse().ok()
}

pub(super) fn info_from_summary(c: ContainerSummary) -> ContainerInfo {
    let state = match c.state {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerSummaryStateEnum::EXITED
            | ContainerSummaryStateEnum::DEAD
            | ContainerSummaryStateEnum::REMOVING,
        ) => ContainerState::Exited {
            code: c.status.as_deref().and_then(exit_code_from_status),
            oom_killed: false,
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let ip = pick_ip(
        c.network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref()),
        None,
    );
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        state,
        ip,
        started_at: None,
        node: None,
    }
}

pub(super) fn info_from_inspect(
    c: ContainerInspectResponse,
    network: Option<&str>,
) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let mapped = match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING,
        ) => ContainerState::Exited {
            code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let config = c.config.unwrap_or_default();
    let ip = pick_ip(
        c.network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref()),
        network,
    );
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        // The name it was created from (like the list reports), not the image id.
        image: config.image.or(c.image).unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        state: mapped,
        ip,
        // The engine reports the zero time for a container that never started.
        started_at: state
            .started_at
            .filter(|s| !s.is_empty() && !s.starts_with("0001-")),
        node: None,
    }
}

pub(super) fn runtime_event(event: EventMessage) -> RuntimeEvent {
    let actor = event.actor.unwrap_or_default();
    let labels: BTreeMap<String, String> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    RuntimeEvent {
        container_id: actor.id.unwrap_or_default(),
        action: event.action.unwrap_or_default(),
        exit_code: labels.get("exitCode").and_then(|c| c.parse().ok()),
        labels,
    }
}

/// Every app gets its own network, and dockerd's default address pools hold
/// only about 30 of them; say how to make room instead of passing on the
/// engine's terse message.
pub(super) fn network_error(name: &str, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Engine(message) if is_pool_exhausted(&message) => {
            RuntimeError::Engine(format!(
                "cannot create network {name}: the Docker engine has no free address pool left ({message}); \
             each berth app uses one network, and dockerd's default pools hold about 30. Add more in \
             /etc/docker/daemon.json, e.g. \"default-address-pools\": [{{\"base\": \"10.200.0.0/14\", \"size\": 24}}], \
             restart dockerd; or start berth with `--network-pool 10.210.0.0/16` to give each app a /24 of that pool; \
             or delete unused apps and networks (`docker network prune`)"
            ))
        }
        other => other,
    }
}

fn is_pool_exhausted(message: &str) -> bool {
    message.contains("non-overlapping") && message.contains("address pool")
}

/// The counters of one stats sample.
pub(super) fn process_stats(s: &bollard::models::ContainerStatsResponse) -> ProcessStats {
    let memory = s.memory_stats.as_ref();
    // Page cache is reclaimable; `docker stats` leaves it out too.
    let cache = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| {
            st.get("inactive_file")
                .or_else(|| st.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    ProcessStats {
        cpu_nanos: s
            .cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0),
        memory_bytes: memory
            .and_then(|m| m.usage)
            .unwrap_or(0)
            .saturating_sub(cache),
        memory_limit: memory.and_then(|m| m.limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_address_pool_says_how_to_add_pools() {
        let engine = RuntimeError::Engine(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        );
        let message = network_error("berth-r-shop", engine).to_string();
        assert!(message.contains("berth-r-shop"), "{message}");
        assert!(message.contains("default-address-pools"), "{message}");
        let other = network_error("n", RuntimeError::Engine("boom".into())).to_string();
        assert_eq!(other, "Docker engine error: boom");
    }

    #[test]
    fn exit_code_from_list_status() {
        assert_eq!(
            exit_code_from_status("Exited (137) 2 minutes ago"),
            Some(137)
        );
        assert_eq!(
            exit_code_from_status("Exited (0) Less than a second ago"),
            Some(0)
        );
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }
}
