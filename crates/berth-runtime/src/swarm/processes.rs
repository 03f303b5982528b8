//! Processes as Swarm services: start, stop, wait, remove, and what they look
//! like (state, node and address) from their newest task.

use super::SwarmRuntime;
use super::model::{
    Phase, TASK_ID_LABEL, container_id, container_state, current_task, exit_code, hostname,
    local_id, node_ready, phase, replicated, service_spec, task_error,
};
use crate::docker::convert::{label_filter, map_err, status_of};
use crate::{ContainerInfo, ContainerSpec, ContainerState, Result, Runtime, RuntimeError};
use bollard::errors::Error as BollardError;
use bollard::models::{Node, Service, Task, TaskState};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, UpdateServiceOptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long `run_container` waits for a new process's task to run.
const START_WAIT: Duration = Duration::from_secs(60);
/// How long a task may wait for a node with Swarm saying why (`no suitable
/// node …`) before the start counts as failed.
const UNPLACED_WAIT: Duration = Duration::from_secs(5);
/// How long a removed service's tasks get to go before its name is reused.
const REMOVE_WAIT: Duration = Duration::from_secs(30);
/// Beyond the grace period, for a stop to be seen by the manager.
const STOP_SLACK: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(250);

impl SwarmRuntime {
    async fn service(&self, id: &str) -> Result<Option<Service>> {
        match self.docker().inspect_service(id, None).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn tasks_of(&self, service_id: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let tasks = match self
            .docker()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(tasks) => tasks,
            // The service is gone, and with it its tasks.
            Err(e) if status_of(&e) == Some(404) => Vec::new(),
            Err(e) => return Err(map_err(e)),
        };
        // The filter also matches services whose name starts with the id.
        Ok(tasks
            .into_iter()
            .filter(|t| t.service_id.as_deref() == Some(service_id))
            .collect())
    }

    /// The container of a process's newest task: (node id, container id).
    pub(super) async fn task_container(&self, id: &str) -> Result<(String, String)> {
        let service = self
            .service(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let service_id = service.id.unwrap_or_else(|| id.to_string());
        let tasks = self.tasks_of(&service_id).await?;
        let task = current_task(&tasks).ok_or_else(|| {
            RuntimeError::Engine(format!(
                "process {id} has no task yet; Swarm has not placed it"
            ))
        })?;
        match (task.node_id.clone(), container_id(task)) {
            (Some(node), Some(container)) => Ok((node, container.to_string())),
            _ => Err(RuntimeError::Engine(format!(
                "process {id} has no container yet (its task is {})",
                task.status
                    .as_ref()
                    .and_then(|s| s.state)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            ))),
        }
    }

    /// One process as berth sees it; `None` when its service is gone.
    pub(super) async fn process(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let Some(service) = self.service(id).await? else {
            return Ok(None);
        };
        let service_id = service.id.clone().unwrap_or_default();
        let tasks = self.tasks_of(&service_id).await?;
        let nodes = self.swarm_nodes().await?;
        let mut containers = HashMap::new();
        if let Some(task) = current_task(&tasks)
            && let (Some(node), Some(container)) = (task.node_id.as_deref(), container_id(task))
            && let Ok(engine) = self.engine(node).await
            && let Ok(Some(info)) = engine.inspect_container(container).await
        {
            containers.insert(info.id.clone(), info);
        }
        let info = process_info(&service, tasks.iter(), &by_id(&nodes), &containers);
        self.remember_addresses(&nodes, [&info]);
        Ok(Some(info))
    }

    /// Notes which node each listed process's address is on (for `probe`).
    fn remember_addresses<'a>(
        &self,
        nodes: &[Node],
        processes: impl IntoIterator<Item = &'a ContainerInfo>,
    ) {
        for info in processes {
            let node = nodes
                .iter()
                .find(|n| info.node.as_deref() == Some(hostname(n).as_str()))
                .and_then(|n| n.id.as_deref());
            if let (Some(ip), Some(node)) = (info.ip, node) {
                self.remember_address(ip, node);
            }
        }
    }

    /// Every process and node-local container carrying `key=value`. Nodes
    /// whose engines cannot be reached are skipped: their one-offs go
    /// missing from the list, and their processes lack an address.
    pub(super) async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let services = self
            .docker()
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(key, value)),
                status: None,
            }))
            .await
            .map_err(map_err)?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let tasks = if ids.is_empty() {
            Vec::new()
        } else {
            let only = ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), ids)])),
            };
            match self.docker().list_tasks(Some(only)).await {
                Ok(tasks) => tasks,
                // One of them was removed since: all tasks, then.
                Err(e) if status_of(&e) == Some(404) => self
                    .docker()
                    .list_tasks(None::<ListTasksOptions>)
                    .await
                    .map_err(map_err)?,
                Err(e) => return Err(map_err(e)),
            }
        };
        let nodes = self.swarm_nodes().await?;
        let listed = futures_util::future::join_all(
            nodes
                .iter()
                .filter(|n| node_ready(n))
                .filter_map(|n| Some((n.id.clone()?, hostname(n))))
                .map(|(node, name)| async move {
                    let found = match self.engine(&node).await {
                        Ok(engine) => engine.list_containers(key, value).await,
                        Err(e) => Err(e),
                    };
                    (node, name, found)
                }),
        )
        .await;
        let mut task_containers = HashMap::new();
        let mut out = Vec::new();
        for (node, name, found) in listed {
            for mut info in found.unwrap_or_default() {
                if info.labels.contains_key(TASK_ID_LABEL) {
                    task_containers.insert(info.id.clone(), info);
                } else {
                    info.id = local_id(&node, &info.id);
                    info.node = Some(name.clone());
                    out.push(info);
                }
            }
        }
        let mut tasks_by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
        for task in &tasks {
            if let Some(service) = task.service_id.as_deref() {
                tasks_by_service.entry(service).or_default().push(task);
            }
        }
        let swarm_nodes = nodes;
        let nodes = by_id(&swarm_nodes);
        for service in &services {
            let tasks = service
                .id
                .as_deref()
                .and_then(|id| tasks_by_service.get(id))
                .cloned()
                .unwrap_or_default();
            out.push(process_info(service, tasks, &nodes, &task_containers));
        }
        self.remember_addresses(&swarm_nodes, &out);
        Ok(out)
    }

    /// Creates the process's service (a leftover of its name removed first)
    /// and waits until its task runs, or ran and exited.
    pub(super) async fn run_process(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.remove_and_wait(&spec.name).await?;
        let image = self
            .manager
            .image_details(&spec.image)
            .await?
            .ok_or_else(|| RuntimeError::ImageMissing(spec.image.clone()))?;
        let nodes = self.swarm_nodes().await?;
        let mut constraints = spec.placement.clone();
        // Usually a no-op (a rollout distributed the image first); a node
        // that lacks it and cannot get it now must not be picked.
        for ((node, _), outcome) in self.send_image(&spec.image, &image.id, &nodes, None).await {
            if !outcome.has_image() {
                constraints.push(format!("node.id!={node}"));
            }
        }
        if !spec.volumes.is_empty()
            && !berth_core::names_a_node(&constraints)
            && let Some(node) = self.node_holding(&spec.volumes, &nodes).await?
        {
            constraints.push(format!("node.id=={node}"));
        }
        let body = service_spec(spec, &image.id, &self.volume_labels(), constraints);
        let created = self
            .docker()
            .create_service(body, None)
            .await
            .map_err(|e| match e {
                BollardError::DockerResponseServerError {
                    status_code: 409,
                    message,
                } => RuntimeError::Engine(format!(
                    "cannot create process {}: {message}; another start of it is under way",
                    spec.name
                )),
                e => map_err(e),
            })?;
        let id = created.id.ok_or_else(|| {
            RuntimeError::Engine(format!("the manager created {} without an id", spec.name))
        })?;
        self.wait_started(&id, &spec.name).await?;
        self.process(&id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(spec.name.clone()))
    }

    async fn wait_started(&self, id: &str, name: &str) -> Result<()> {
        let started = Instant::now();
        let mut unplaced_since: Option<Instant> = None;
        loop {
            let tasks = self.tasks_of(id).await?;
            let nodes = self.swarm_nodes().await?;
            let nodes = by_id(&nodes);
            let mut why = "Swarm has not made its task yet".to_string();
            if let Some(task) = current_task(&tasks) {
                let ready = task_node_ready(task, &nodes);
                let on = task
                    .node_id
                    .as_deref()
                    .and_then(|n| nodes.get(n))
                    .map(|n| format!(" on {}", hostname(n)))
                    .unwrap_or_default();
                let state = task.status.as_ref().and_then(|s| s.state);
                match phase(task, ready) {
                    Phase::Running => return Ok(()),
                    // It ran and exited, as a process may at once on one engine.
                    Phase::Ended
                        if exit_code(task).is_some() && state != Some(TaskState::REJECTED) =>
                    {
                        return Ok(());
                    }
                    Phase::Ended => {
                        let why = task_error(task).unwrap_or_else(|| "no reason given".into());
                        let _ = self.remove_process(id).await;
                        return Err(RuntimeError::Engine(format!(
                            "process {name} could not start{on}: {why}"
                        )));
                    }
                    Phase::Starting => match task_error(task) {
                        Some(e) if task.node_id.is_none() => {
                            let since = *unplaced_since.get_or_insert_with(Instant::now);
                            why = e;
                            if since.elapsed() >= UNPLACED_WAIT {
                                let _ = self.remove_process(id).await;
                                return Err(RuntimeError::Engine(format!(
                                    "process {name} found no node to run on: {why}; check its placement and the nodes' availability (`docker node ls`)"
                                )));
                            }
                        }
                        _ => {
                            unplaced_since = None;
                            why = format!(
                                "its task is {}{on}",
                                state.map(|s| s.to_string()).unwrap_or_default()
                            );
                        }
                    },
                }
            }
            if started.elapsed() >= START_WAIT {
                let _ = self.remove_process(id).await;
                return Err(RuntimeError::Engine(format!(
                    "process {name} did not start within {} s ({why})",
                    START_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Removes the service `name` if there is one and waits (bounded) until
    /// its tasks are gone, so its container no longer answers for the alias.
    async fn remove_and_wait(&self, name: &str) -> Result<()> {
        let Some(service) = self.service(name).await? else {
            return Ok(());
        };
        let id = service.id.unwrap_or_else(|| name.to_string());
        self.remove_process(&id).await?;
        let started = Instant::now();
        while started.elapsed() < REMOVE_WAIT {
            let tasks = self.tasks_of(&id).await?;
            let nodes = self.swarm_nodes().await?;
            let nodes = by_id(&nodes);
            // Tasks on lost nodes stay listed until the node is back.
            if tasks.iter().all(|t| !task_node_ready(t, &nodes)) {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    pub(super) async fn remove_process(&self, id: &str) -> Result<()> {
        match self.docker().delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// SIGTERM, SIGKILL after `grace`, by the task's node: Swarm's own stop
    /// would use the grace period the service was made with, and scaling to
    /// no replicas would delete the task, its exit code and its output. With
    /// no restart policy Swarm leaves the stopped task as it is.
    pub(super) async fn stop_process(&self, id: &str, grace: u32) -> Result<()> {
        let Some(service) = self.service(id).await? else {
            return Ok(());
        };
        let service_id = service.id.clone().unwrap_or_else(|| id.to_string());
        let tasks = self.tasks_of(&service_id).await?;
        let nodes = self.swarm_nodes().await?;
        let nodes = by_id(&nodes);
        let Some(task) = current_task(&tasks) else {
            return Ok(());
        };
        if phase(task, task_node_ready(task, &nodes)) == Phase::Ended {
            return Ok(());
        }
        let stopped = match (task.node_id.as_deref(), container_id(task)) {
            (Some(node), Some(container)) => match self.engine(node).await {
                Ok(engine) => match engine.stop_container(container, grace).await {
                    Ok(()) => true,
                    Err(RuntimeError::Connect(_) | RuntimeError::NodeUnreachable { .. }) => false,
                    Err(e) => return Err(e),
                },
                Err(RuntimeError::NodeUnreachable { .. }) => false,
                Err(e) => return Err(e),
            },
            _ => false,
        };
        if !stopped {
            // Not started yet, or its node cannot be reached: Swarm stops it
            // (and forgets the task) when it can.
            self.scale(&service, 0).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(grace)) + STOP_SLACK;
        while Instant::now() < deadline {
            let tasks = self.tasks_of(&service_id).await?;
            let nodes = self.swarm_nodes().await?;
            let nodes = by_id(&nodes);
            if tasks
                .iter()
                .all(|t| phase(t, task_node_ready(t, &nodes)) == Phase::Ended)
            {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(RuntimeError::Engine(format!(
            "process {id} did not stop within {grace} s and {} s more",
            STOP_SLACK.as_secs()
        )))
    }

    /// A stopped process runs again (a new task), as a stopped container would.
    pub(super) async fn start_process(&self, id: &str) -> Result<()> {
        let service = self
            .service(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let mut spec = service.spec.clone().unwrap_or_default();
        spec.mode = Some(replicated(1));
        // A forced update replaces the ended task with a new one.
        if let Some(task) = spec.task_template.as_mut() {
            task.force_update = Some(task.force_update.unwrap_or(0) + 1);
        }
        self.update(&service, spec).await
    }

    async fn scale(&self, service: &Service, replicas: i64) -> Result<()> {
        let mut spec = service.spec.clone().unwrap_or_default();
        let now = spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas);
        if now == Some(replicas) {
            return Ok(());
        }
        spec.mode = Some(replicated(replicas));
        self.update(service, spec).await
    }

    async fn update(&self, service: &Service, spec: bollard::models::ServiceSpec) -> Result<()> {
        let version = service
            .version
            .as_ref()
            .and_then(|v| v.index)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        let options = UpdateServiceOptions {
            version,
            registry_auth_from: "spec".into(),
            rollback: None,
        };
        let id = service.id.clone().unwrap_or_default();
        match self.docker().update_service(&id, spec, options, None).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(RuntimeError::NotFound(id)),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Waits until the process's task has ended; its exit code.
    pub(super) async fn wait_process(&self, id: &str) -> Result<i64> {
        loop {
            let service = self
                .service(id)
                .await?
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
            let service_id = service.id.unwrap_or_else(|| id.to_string());
            let tasks = self.tasks_of(&service_id).await?;
            let nodes = self.swarm_nodes().await?;
            let nodes = by_id(&nodes);
            if let Some(task) = current_task(&tasks)
                && phase(task, task_node_ready(task, &nodes)) == Phase::Ended
            {
                return exit_code(task).ok_or_else(|| {
                    RuntimeError::Engine(format!(
                        "process {id} ended without an exit code ({}); its node may be lost",
                        task_error(task).unwrap_or_else(|| "no reason given".into())
                    ))
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn by_id(nodes: &[Node]) -> HashMap<String, &Node> {
    nodes
        .iter()
        .filter_map(|n| Some((n.id.clone()?, n)))
        .collect()
}

fn task_node_ready(task: &Task, nodes: &HashMap<String, &Node>) -> bool {
    task.node_id
        .as_deref()
        .and_then(|n| nodes.get(n))
        .is_some_and(|n| node_ready(n))
}

/// A process from its service, its tasks, the nodes, and the task
/// containers found on the nodes (by container id; for address and OOM).
fn process_info<'a>(
    service: &Service,
    tasks: impl IntoIterator<Item = &'a Task>,
    nodes: &HashMap<String, &Node>,
    containers: &HashMap<String, ContainerInfo>,
) -> ContainerInfo {
    let spec = service.spec.clone().unwrap_or_default();
    let image = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let mut info = ContainerInfo {
        id: service.id.clone().unwrap_or_default(),
        name: spec.name.clone().unwrap_or_default(),
        image,
        labels: spec
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        state: ContainerState::Created,
        ip: None,
        started_at: None,
        node: None,
    };
    let Some(task) = current_task(tasks) else {
        return info;
    };
    info.state = container_state(task, task_node_ready(task, nodes));
    info.node = task
        .node_id
        .as_deref()
        .and_then(|n| nodes.get(n))
        .map(|n| hostname(n));
    if let Some(container) = container_id(task).and_then(|c| containers.get(c)) {
        info.ip = container.ip;
        info.started_at = container.started_at.clone();
        if let (
            ContainerState::Exited { code, oom_killed },
            ContainerState::Exited {
                code: node_code,
                oom_killed: node_oom,
            },
        ) = (&mut info.state, &container.state)
        {
            *oom_killed |= *node_oom;
            if code.is_none() {
                *code = *node_code;
            }
        }
    }
    info
}
