//! Node-local work: one-offs and volume helpers (plain containers on one
//! node, ids `<node id>/<container id>`), and volumes, which live on nodes.

use super::model::{hostname, local_id, node_active, node_ready};
use super::{SwarmRuntime, at, on_node};
use crate::docker::convert::map_err;
use crate::{ContainerInfo, ContainerSpec, LABEL_RACK, Result, Runtime, RuntimeError, VolumeInfo};
use bollard::models::{Node, TaskState};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

impl SwarmRuntime {
    /// Ready nodes with their engines; nodes that cannot be reached fail the call
    /// (volumes must not go missing from a list someone acts on).
    async fn ready_engines(&self, nodes: &[Node]) -> Result<Vec<(String, Arc<dyn Runtime>)>> {
        let mut out = Vec::new();
        for node in nodes.iter().filter(|n| node_ready(n)) {
            if let Some(id) = node.id.as_deref() {
                out.push((id.to_string(), self.engine(id).await?));
            }
        }
        Ok(out)
    }

    /// The node for new node-local work: the Ready, active node running the
    /// fewest berth tasks.
    async fn pick_node(&self, nodes: &[Node]) -> Result<String> {
        let services = self
            .docker()
            .list_services(Some(ListServicesOptions {
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![LABEL_RACK.to_string()],
                )])),
                status: None,
            }))
            .await
            .map_err(map_err)?;
        let berth: std::collections::HashSet<&str> =
            services.iter().filter_map(|s| s.id.as_deref()).collect();
        let tasks = self
            .docker()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([(
                    "desired-state".to_string(),
                    vec!["running".to_string()],
                )])),
            }))
            .await
            .map_err(map_err)?;
        let mut load: HashMap<&str, usize> = HashMap::new();
        for task in &tasks {
            let running = task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
            if let (true, Some(service), Some(node)) =
                (running, task.service_id.as_deref(), task.node_id.as_deref())
                && berth.contains(service)
            {
                *load.entry(node).or_default() += 1;
            }
        }
        nodes
            .iter()
            .filter(|n| node_ready(n) && node_active(n))
            .filter_map(|n| n.id.as_deref().map(|id| (load.get(id).copied().unwrap_or(0), hostname(n), id)))
            .min()
            .map(|(_, _, id)| id.to_string())
            .ok_or_else(|| {
                RuntimeError::Engine(
                    "no node is ready and active to run on; check `docker node ls` (drained or down nodes take no work)".into(),
                )
            })
    }

    /// The node holding the first of `volumes` found on a node. Volumes are
    /// found by the labels `ensure_volume` was given (the trait lists volumes
    /// by label); one it was not told about is found nowhere.
    pub(super) async fn node_holding(
        &self,
        volumes: &[(String, String)],
        nodes: &[Node],
    ) -> Result<Option<String>> {
        let labels = self.volume_labels();
        let wanted: Vec<(&String, (&String, &String))> = volumes
            .iter()
            .filter_map(|(volume, _)| {
                let labels = labels.get(volume)?;
                let label = labels
                    .get_key_value(LABEL_RACK)
                    .or_else(|| labels.iter().next())?;
                Some((volume, label))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        for (node, engine) in self.ready_engines(nodes).await? {
            for (volume, (key, value)) in &wanted {
                let listed = engine.list_volumes(key, value).await.map_err(at(&node))?;
                if listed.iter().any(|v| &v.name == *volume) {
                    return Ok(Some(node));
                }
            }
        }
        Ok(None)
    }

    /// Where node-local work with `volumes` goes: the node holding them, else
    /// the least busy one.
    async fn place(&self, volumes: &[(String, String)]) -> Result<(String, Arc<dyn Runtime>)> {
        let nodes = self.swarm_nodes().await?;
        let node = match self.node_holding(volumes, &nodes).await? {
            Some(node) => node,
            None => self.pick_node(&nodes).await?,
        };
        let engine = self.engine(&node).await?;
        Ok((node, engine))
    }

    /// The image on `node`, sent there if it lacks it.
    async fn image_on(&self, node: &str, image: &str) -> Result<()> {
        let details = self
            .manager
            .image_details(image)
            .await?
            .ok_or_else(|| RuntimeError::ImageMissing(image.to_string()))?;
        let nodes: Vec<Node> = self
            .swarm_nodes()
            .await?
            .into_iter()
            .filter(|n| n.id.as_deref() == Some(node))
            .collect();
        for (_, outcome) in self.send_image(image, &details.id, &nodes, None).await {
            if let super::distribute::Outcome::Failed(why) = outcome {
                return Err(RuntimeError::Engine(format!(
                    "image {image} could not be sent to node {node}: {why}"
                )));
            }
        }
        Ok(())
    }

    /// Creates the volumes `ensure_volume` was told about on `engine`, with
    /// their labels, before a bind would make them unlabelled.
    async fn volumes_on(
        &self,
        node: &str,
        engine: &dyn Runtime,
        volumes: &[(String, String)],
    ) -> Result<()> {
        let labels = self.volume_labels();
        for (volume, _) in volumes {
            if let Some(labels) = labels.get(volume) {
                engine
                    .ensure_volume(volume, labels)
                    .await
                    .map_err(at(node))?;
            }
        }
        Ok(())
    }

    /// A one-off: a plain container on one node, on the app's attachable
    /// overlay (a service could not be attached to before it starts).
    pub(super) async fn create_oneoff(&self, spec: &ContainerSpec) -> Result<String> {
        let (node, engine) = self.place(&spec.volumes).await?;
        // The leftover of this name may be on another node.
        let nodes = self.swarm_nodes().await?;
        for other in nodes.iter().filter(|n| node_ready(n)) {
            if let Some(id) = other.id.as_deref().filter(|id| *id != node)
                && let Ok(e) = self.engine(id).await
            {
                let _ = e.remove_container(&spec.name).await;
            }
        }
        self.image_on(&node, &spec.image).await?;
        self.volumes_on(&node, &*engine, &spec.volumes).await?;
        let id = engine.create_container(spec).await.map_err(at(&node))?;
        Ok(local_id(&node, &id))
    }

    pub(super) async fn remove_local(&self, node: &str, container: &str) -> Result<()> {
        // A node that left the swarm took its containers with it.
        let known = self
            .swarm_nodes()
            .await?
            .iter()
            .any(|n| n.id.as_deref() == Some(node));
        if !known {
            return Ok(());
        }
        self.engine(node)
            .await?
            .remove_container(container)
            .await
            .map_err(at(node))
    }

    pub(super) async fn inspect_local(
        &self,
        node: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>> {
        let nodes = self.swarm_nodes().await?;
        let Some(found) = nodes.iter().find(|n| n.id.as_deref() == Some(node)) else {
            return Ok(None);
        };
        let Some(mut info) = self
            .engine(node)
            .await?
            .inspect_container(container)
            .await
            .map_err(at(node))?
        else {
            return Ok(None);
        };
        info.id = local_id(node, &info.id);
        info.node = Some(hostname(found));
        Ok(Some(info))
    }

    /// The volumes of every Ready node carrying `key=value`, one entry per name.
    pub(super) async fn volumes_everywhere(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<VolumeInfo>> {
        let nodes = self.swarm_nodes().await?;
        let mut all: BTreeMap<String, VolumeInfo> = BTreeMap::new();
        for (node, engine) in self.ready_engines(&nodes).await? {
            for volume in engine.list_volumes(key, value).await.map_err(at(&node))? {
                all.entry(volume.name.clone()).or_insert(volume);
            }
        }
        Ok(all.into_values().collect())
    }

    /// Removes the volume from every Ready node that has it.
    pub(super) async fn remove_volume_everywhere(&self, name: &str) -> Result<()> {
        let nodes = self.swarm_nodes().await?;
        for (node, engine) in self.ready_engines(&nodes).await? {
            engine.remove_volume(name).await.map_err(|e| match e {
                RuntimeError::Engine(m) => RuntimeError::Engine(format!("on node {node}: {m}")),
                other => on_node(&node, other),
            })?;
        }
        self.volume_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    /// A volume helper on the node holding the volumes.
    pub(super) async fn helper(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
        volumes: &[(String, String)],
    ) -> Result<String> {
        let (node, engine) = self.place(volumes).await?;
        self.image_on(&node, image).await?;
        self.volumes_on(&node, &*engine, volumes).await?;
        let id = engine
            .create_helper(name, image, labels, volumes)
            .await
            .map_err(at(&node))?;
        Ok(local_id(&node, &id))
    }
}
