//! The container of a process or one-off: the release's image, the app's
//! environment plus `BERTH_*`, the service's limits and volumes, on the app
//! network. Processes and one-offs differ only in the labels and alias the
//! caller adds or removes.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_core::{ImageSource, Manifest, Service};
use berth_runtime::{ContainerSpec, LABEL_PROCESS, LABEL_RELEASE, LABEL_SERVICE};
use berth_store::{Formation, ProcessRow};

/// One container of a service at a release.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    pub app: &'a str,
    /// The process or one-off id; also the container's hostname.
    pub id: &'a str,
    pub service: &'a str,
    pub release: &'a str,
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
}

impl<'a> From<&'a ProcessRow> for Instance<'a> {
    fn from(row: &'a ProcessRow) -> Self {
        Instance {
            app: &row.app,
            id: &row.id,
            service: &row.service,
            release: &row.release,
            memory: row.memory,
            cpu: row.cpu,
        }
    }
}

/// Service `name` of a release's manifest, or a not-found error that lists the
/// services it has.
pub fn release_service<'m>(
    manifest: &'m Manifest,
    app: &str,
    release: &str,
    name: &str,
) -> Result<&'m Service> {
    manifest.services.get(name).ok_or_else(|| {
        Error::NotFound(format!(
            "app {app} has no service {name} (release {release}); its services are: {}",
            manifest
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// How many processes, and with which limits, a service runs.
pub fn desired(svc: &Service, formation: Option<&Formation>) -> (u32, Option<u64>, Option<f64>) {
    let count = formation.and_then(|f| f.count).unwrap_or(svc.scale.count);
    let memory = formation.and_then(|f| f.memory).or(svc.scale.memory);
    let cpu = formation.and_then(|f| f.cpu).or(svc.scale.cpu);
    (count, memory, cpu)
}

/// The container spec of `instance` (labelled as a process), with its network
/// and volumes ensured; also the port its process listens on.
pub async fn container(
    rack: &Rack,
    instance: Instance<'_>,
) -> Result<(ContainerSpec, Option<u16>)> {
    let Instance {
        app,
        id,
        service,
        release,
        memory,
        cpu,
    } = instance;
    let release_row = rack.store.release(app, release)?;
    let manifest = rack.manifest(&release_row)?;
    let svc = release_service(&manifest, app, release, service)?;
    let image = match &svc.source {
        // A resource runs the image `berth resources upgrade` recorded, if any.
        ImageSource::Image(name) => match &svc.resource {
            Some(_) => rack
                .store
                .resource_image(app, service)?
                .unwrap_or_else(|| name.clone()),
            None => name.clone(),
        },
        ImageSource::Build(_) => {
            let build_id = release_row
                .build
                .as_deref()
                .ok_or_else(|| Error::NotFound(format!("release {release} has no build")))?;
            let build = rack.store.build(app, build_id)?;
            build.images.get(service).cloned().ok_or_else(|| {
                Error::NotFound(format!(
                    "build {build_id} has no image for service {service}; deploy again"
                ))
            })?
        }
    };
    let env = rack.store.env(app, release_row.env_version)?;
    let mut labels = rack.labels(app);
    labels.insert(LABEL_SERVICE.into(), service.to_string());
    labels.insert(LABEL_RELEASE.into(), release.to_string());
    labels.insert(LABEL_PROCESS.into(), id.to_string());
    let network = rack.network_name(app);
    rack.runtime
        .ensure_network(&network, &rack.labels(app))
        .await?;
    // On a swarm every node's router must reach the network before a
    // process on it is routed to.
    rack.agents
        .join_routers(&network)
        .await
        .map_err(crate::error::Error::Unavailable)?;
    // A resource gets only what its image's interface needs, not the app's env.
    let (mut env, command) = match &svc.resource {
        Some(res) => crate::resources::container_env(rack, app, service, res)?,
        None => {
            let mut env = manifest.service_env(service, &env);
            for (k, v) in crate::resources::service_env(rack, app, &manifest, service)? {
                env.entry(k).or_insert(v);
            }
            (env, svc.command.clone())
        }
    };
    env.insert("BERTH_APP".into(), app.to_string());
    env.insert("BERTH_SERVICE".into(), service.to_string());
    env.insert("BERTH_RELEASE".into(), release.to_string());
    env.insert("BERTH_PROCESS".into(), id.to_string());
    if let Some(port) = svc.port {
        env.entry("PORT".into()).or_insert_with(|| port.to_string());
    }
    let spec = ContainerSpec {
        name: rack.container_name(app, id),
        image,
        command,
        env,
        labels,
        network,
        aliases: vec![service.to_string()],
        hostname: Some(id.to_string()),
        memory_mib: memory,
        cpu,
        volumes: svc
            .volumes
            .iter()
            .map(|v| (rack.volume_name(app, &v.volume), v.path.clone()))
            .collect(),
        stop_grace: svc.termination.grace,
        placement: svc.placement.clone(),
        ..Default::default()
    };
    // Labelled volumes, made before the engine would make unlabelled ones.
    let names: Vec<&str> = svc.volumes.iter().map(|v| v.volume.as_str()).collect();
    crate::volumes::ensure(rack, app, &names).await?;
    Ok((spec, svc.listen_port()))
}
