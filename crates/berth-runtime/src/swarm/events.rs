//! Process events on a swarm. The manager's event stream says when services
//! change, not when their tasks' containers start or die (those events stay
//! on each node), so they are made by polling the tasks: `start` when a task
//! runs, `die` (with its exit code) when it ends or its node is lost,
//! `destroy` when the service is gone. Each carries the service's id as the
//! container id and its labels plus `name`, as an engine's event would.

use super::model::{Phase, exit_code, node_ready, parse_time, phase};
use crate::docker::convert::{label_filter, map_err, status_of};
use crate::{Result, RuntimeEvent};
use bollard::Docker;
use bollard::models::{Node, Service, Task};
use bollard::query_parameters::{ListNodesOptions, ListServicesOptions, ListTasksOptions};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// How often the tasks are looked at.
const POLL: Duration = Duration::from_secs(1);

struct Watch {
    docker: Docker,
    key: String,
    value: String,
    /// Changes before this (ns since the epoch) happened before the call.
    since: i128,
    /// Each task's phase when last seen; `None` before the first look.
    tasks: Option<HashMap<String, (String, Phase)>>,
    /// Labels (with `name`) of the services seen last time, by id.
    services: HashMap<String, BTreeMap<String, String>>,
    ready: VecDeque<RuntimeEvent>,
    failed: bool,
}

pub(crate) fn task_events(
    docker: Docker,
    key: &str,
    value: &str,
) -> BoxStream<'static, Result<RuntimeEvent>> {
    let since = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let watch = Watch {
        docker,
        key: key.to_string(),
        value: value.to_string(),
        since,
        tasks: None,
        services: HashMap::new(),
        ready: VecDeque::new(),
        failed: false,
    };
    stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(event) = w.ready.pop_front() {
                return Some((Ok(event), w));
            }
            if w.failed {
                return None;
            }
            if w.tasks.is_some() {
                tokio::time::sleep(POLL).await;
            }
            if let Err(e) = w.look().await {
                w.failed = true;
                return Some((Err(e), w));
            }
        }
    })
    .boxed()
}

impl Watch {
    async fn look(&mut self) -> Result<()> {
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(&self.key, &self.value)),
                status: None,
            }))
            .await
            .map_err(map_err)?;
        let nodes = self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(map_err)?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let tasks = if ids.is_empty() {
            Vec::new()
        } else {
            let only = ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), ids)])),
            };
            match self.docker.list_tasks(Some(only)).await {
                Ok(tasks) => tasks,
                // One of them was removed since: all tasks, then.
                Err(e) if status_of(&e) == Some(404) => self
                    .docker
                    .list_tasks(None::<ListTasksOptions>)
                    .await
                    .map_err(map_err)?,
                Err(e) => return Err(map_err(e)),
            }
        };
        let now = labelled(&services);
        let events = diff(
            self.tasks.as_ref(),
            &now,
            &tasks,
            &nodes,
            self.since,
            &self.services,
        );
        self.ready.extend(events.events);
        self.tasks = Some(events.phases);
        self.services = now;
        Ok(())
    }
}

fn labelled(services: &[Service]) -> HashMap<String, BTreeMap<String, String>> {
    services
        .iter()
        .filter_map(|s| {
            let id = s.id.clone()?;
            let spec = s.spec.clone().unwrap_or_default();
            let mut labels: BTreeMap<String, String> =
                spec.labels.unwrap_or_default().into_iter().collect();
            labels.insert("name".into(), spec.name.unwrap_or_default());
            Some((id, labels))
        })
        .collect()
}

struct Diff {
    events: Vec<RuntimeEvent>,
    phases: HashMap<String, (String, Phase)>,
}

/// The events between two looks. `before`: each task's (service, phase) at
/// the last look (`None`: this is the first, and only changes after `since`
/// count).
fn diff(
    before: Option<&HashMap<String, (String, Phase)>>,
    services: &HashMap<String, BTreeMap<String, String>>,
    tasks: &[Task],
    nodes: &[Node],
    since: i128,
    services_before: &HashMap<String, BTreeMap<String, String>>,
) -> Diff {
    let ready: HashMap<&str, bool> = nodes
        .iter()
        .filter_map(|n| Some((n.id.as_deref()?, node_ready(n))))
        .collect();
    let mut events = Vec::new();
    let mut phases = HashMap::new();
    let mut ordered: Vec<&Task> = tasks.iter().collect();
    ordered.sort_by_key(|t| t.created_at.as_deref().and_then(parse_time));
    for task in ordered {
        let (Some(id), Some(service)) = (task.id.as_deref(), task.service_id.as_deref()) else {
            continue;
        };
        let Some(labels) = services.get(service) else {
            continue;
        };
        let on_ready_node = task
            .node_id
            .as_deref()
            .and_then(|n| ready.get(n).copied())
            .unwrap_or(false);
        let now = phase(task, on_ready_node);
        let was = match before {
            Some(before) => before.get(id).map(|(_, p)| *p),
            // First look: what changed after the call, as if seen starting before it.
            None => {
                let changed = task
                    .status
                    .as_ref()
                    .and_then(|s| s.timestamp.as_deref())
                    .and_then(parse_time)
                    .is_some_and(|t| t >= since);
                if changed { None } else { Some(now) }
            }
        };
        let event = |action: &str, code: Option<i64>| {
            let mut labels = labels.clone();
            if let Some(code) = code {
                labels.insert("exitCode".into(), code.to_string());
            }
            RuntimeEvent {
                container_id: service.to_string(),
                action: action.to_string(),
                labels,
                exit_code: code,
            }
        };
        match (was, now) {
            (Some(a), b) if a == b => {}
            (_, Phase::Running) => events.push(event("start", None)),
            (_, Phase::Ended) => events.push(event("die", exit_code(task))),
            (_, Phase::Starting) => {}
        }
        phases.insert(id.to_string(), (service.to_string(), now));
    }
    let mut gone: Vec<(&String, &BTreeMap<String, String>)> = services_before
        .iter()
        .filter(|(id, _)| !services.contains_key(*id))
        .collect();
    gone.sort();
    for (id, labels) in gone {
        events.push(RuntimeEvent {
            container_id: id.clone(),
            action: "destroy".into(),
            labels: labels.clone(),
            exit_code: None,
        });
    }
    Diff { events, phases }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerStatus, NodeState, NodeStatus, ServiceSpec, TaskState, TaskStatus,
    };

    fn node(id: &str, state: NodeState) -> Node {
        Node {
            id: Some(id.into()),
            status: Some(NodeStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(id: &str, state: TaskState, at: &str, code: Option<i64>) -> Task {
        Task {
            id: Some(id.into()),
            service_id: Some("s1".into()),
            node_id: Some("n1".into()),
            created_at: Some("2024-01-01T00:00:00Z".into()),
            status: Some(TaskStatus {
                state: Some(state),
                timestamp: Some(at.into()),
                container_status: Some(ContainerStatus {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn services() -> HashMap<String, BTreeMap<String, String>> {
        labelled(&[Service {
            id: Some("s1".into()),
            spec: Some(ServiceSpec {
                name: Some("berth-r-a-web-1".into()),
                labels: Some([("berth.rack".to_string(), "r".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }])
    }

    fn actions(d: &Diff) -> Vec<(String, String, Option<i64>)> {
        d.events
            .iter()
            .map(|e| (e.action.clone(), e.container_id.clone(), e.exit_code))
            .collect()
    }

    #[test]
    fn starts_deaths_and_removals() {
        let since = parse_time("2024-01-01T00:00:10Z").unwrap_or_default();
        let up = [node("n1", NodeState::READY)];
        let down = [node("n1", NodeState::DOWN)];
        let svc = services();
        let none = HashMap::new();

        // First look: a task running since before the call is no news; one
        // that started after it is.
        let old = [task("t1", TaskState::RUNNING, "2024-01-01T00:00:05Z", None)];
        let d = diff(None, &svc, &old, &up, since, &none);
        assert!(d.events.is_empty());
        let new = [task("t1", TaskState::RUNNING, "2024-01-01T00:00:11Z", None)];
        let d = diff(None, &svc, &new, &up, since, &none);
        assert_eq!(actions(&d), [("start".into(), "s1".into(), None)]);
        assert_eq!(d.events[0].labels["name"], "berth-r-a-web-1");

        // It exits with 3: `die` with the code, once.
        let exited = [task(
            "t1",
            TaskState::FAILED,
            "2024-01-01T00:00:12Z",
            Some(3),
        )];
        let d2 = diff(Some(&d.phases), &svc, &exited, &up, since, &svc);
        assert_eq!(actions(&d2), [("die".into(), "s1".into(), Some(3))]);
        assert_eq!(d2.events[0].labels["exitCode"], "3");
        let d3 = diff(Some(&d2.phases), &svc, &exited, &up, since, &svc);
        assert!(d3.events.is_empty());

        // Its node is lost while it runs: `die` without a code.
        let d4 = diff(Some(&d.phases), &svc, &new, &down, since, &svc);
        assert_eq!(actions(&d4), [("die".into(), "s1".into(), None)]);

        // The service is removed.
        let d5 = diff(Some(&d2.phases), &none, &[], &up, since, &svc);
        assert_eq!(actions(&d5), [("destroy".into(), "s1".into(), None)]);
    }
}
