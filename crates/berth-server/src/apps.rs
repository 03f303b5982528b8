//! Apps: listing, creating, describing and deleting them.

use crate::error::{Error, Result};
use crate::lifecycle::{Retirement, retire};
use crate::progress;
use crate::rack::{Rack, Usage};
use crate::spec::desired;
use berth_api::{App, AppInfo, ServiceInfo};
use berth_core::ProcessState;
use berth_runtime::LABEL_APP;
use berth_store::{AppRow, ProcessRow, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// The app's row, once its name is valid and it exists.
pub fn get(rack: &Rack, app: &str) -> Result<AppRow> {
    berth_core::validate_app_name(app)?;
    Ok(rack.store.app(app)?)
}

pub fn view(rack: &Rack, row: &AppRow) -> App {
    let deploying = rack.app_lock(&row.name).try_lock().is_err();
    App {
        name: row.name.clone(),
        created: row.created.clone(),
        release: row.release.clone(),
        status: if deploying {
            "deploying"
        } else if rack.app_images_missing(&row.name) {
            "image missing"
        } else if row.release.is_some() {
            "running"
        } else {
            "new"
        }
        .into(),
    }
}

/// Every app, or with `only` (the app a token is limited to) just that one.
pub fn list(rack: &Rack, only: Option<&str>) -> Result<Vec<App>> {
    Ok(rack
        .store
        .apps()?
        .iter()
        .filter(|a| only.is_none_or(|only| a.name == only))
        .map(|a| view(rack, a))
        .collect())
}

pub fn create(rack: &Rack, name: &str) -> Result<App> {
    berth_core::validate_app_name(name)?;
    let row = rack.store.create_app(name)?;
    rack.logs.created(name);
    rack.logs.event(name, &format!("app {name} created"));
    Ok(view(rack, &row))
}

/// The app with its services: URLs, scale and how many processes are healthy.
pub fn info(rack: &Rack, app: &str) -> Result<AppInfo> {
    let row = get(rack, app)?;
    let processes = rack.store.processes(Some(app))?;
    describe(rack, &row, &processes, &rack.usages())
}

/// `info` of every app (or with `only`, of that one), reading every process
/// row and every usage sample once for all of them rather than once per app
/// (the console's rack page shows every app).
pub fn infos(rack: &Rack, only: Option<&str>) -> Result<Vec<AppInfo>> {
    let rows = rack.store.apps()?;
    let mut by_app: HashMap<String, Vec<ProcessRow>> = HashMap::new();
    for p in rack.store.processes(None)? {
        by_app.entry(p.app.clone()).or_default().push(p);
    }
    let usages = rack.usages();
    let mut infos = Vec::with_capacity(rows.len());
    for row in rows
        .iter()
        .filter(|a| only.is_none_or(|only| a.name == only))
    {
        let processes = by_app.get(&row.name).map_or(&[][..], Vec::as_slice);
        match describe(rack, row, processes, &usages) {
            Ok(info) => infos.push(info),
            // Deleted since it was listed.
            Err(Error::Store(StoreError::NoApp(_) | StoreError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(infos)
}

fn describe(
    rack: &Rack,
    row: &AppRow,
    processes: &[ProcessRow],
    usages: &HashMap<(String, String), Usage>,
) -> Result<AppInfo> {
    let app = row.name.as_str();
    let mut services = Vec::new();
    if let Some(release_id) = &row.release {
        let release = rack.store.release(app, release_id)?;
        let manifest = rack.manifest(&release)?;
        let formation = rack.store.formation(app)?;
        for (name, svc) in &manifest.services {
            let (count, memory, cpu) = desired(svc, formation.get(name));
            let healthy = processes
                .iter()
                .filter(|p| &p.service == name && p.state == ProcessState::Active)
                .filter(|p| {
                    rack.observed(app, &p.id)
                        .is_some_and(|o| o.running && o.healthy)
                })
                .count() as u32;
            services.push(ServiceInfo {
                name: name.clone(),
                urls: rack.service_urls(app, name, &manifest),
                port: svc.port,
                count,
                memory,
                cpu,
                healthy,
            });
        }
    }
    let usages: Vec<&Usage> = usages
        .iter()
        .filter(|((a, _), _)| a == app)
        .map(|(_, u)| u)
        .collect();
    Ok(AppInfo {
        app: view(rack, row),
        services,
        cpu: usages
            .iter()
            .filter_map(|u| u.cpu_percent)
            .reduce(|a, b| a + b),
        memory: usages.iter().map(|u| u.memory_bytes).reduce(|a, b| a + b),
    })
}

/// Deletes an app: its processes retire (drained, stopped within their grace),
/// then its other containers, network, images, volumes (only with
/// `with_volumes`: refused while it has any otherwise, before anything is
/// touched), logs and rows go.
pub async fn delete(rack: &Arc<Rack>, app: &str, with_volumes: bool) -> Result<()> {
    get(rack, app)?;
    let lock = rack.app_lock(app);
    let _guard = lock.lock().await;
    // Volume data outlives releases; deleting it needs its own yes (`--volumes`).
    let volumes = crate::volumes::app_volumes(rack, app).await?;
    if !volumes.is_empty() && !with_volumes {
        return Err(crate::volumes::refuse_delete(app, &volumes));
    }
    let processes = rack.store.processes(Some(app))?;
    retire(
        rack,
        &processes,
        Retirement::Remove,
        &progress::unobserved(),
    )
    .await?;
    // What is left: one-offs, and containers of processes a crash left behind.
    let leftovers = rack.runtime.list_containers(LABEL_APP, app).await?;
    let stops = leftovers
        .into_iter()
        .filter(|c| rack.owns(&c.labels))
        .map(|c| {
            let rack = rack.clone();
            async move {
                let _ = rack.runtime.stop_container(&c.id, LEFTOVER_GRACE).await;
                rack.runtime.remove_container(&c.id).await
            }
        });
    for removed in futures_util::future::join_all(stops).await {
        removed?;
    }
    rack.runtime.remove_network(&rack.network_name(app)).await?;
    for image in rack.runtime.list_images(LABEL_APP, app).await? {
        if !rack.owns(&image.labels) {
            continue;
        }
        for tag in &image.tags {
            let _ = rack.runtime.remove_image(tag).await;
        }
        let _ = rack.runtime.remove_image(&image.id).await;
    }
    crate::volumes::remove_all(rack, app).await?;
    rack.store.delete_app(app)?;
    rack.logs.remove(app);
    crate::drains::app_deleted(rack, app);
    rack.refresh_routes();
    tracing::info!(app, "app deleted");
    Ok(())
}

/// Grace of containers without a process row when their app is deleted.
const LEFTOVER_GRACE: u32 = 10;

/// Fails unless `service` is a service of the app's promoted release (an app
/// without one has no services to check against yet).
pub fn check_service(rack: &Rack, app: &str, service: &str) -> Result<()> {
    berth_core::validate_service_name(service)?;
    let Some(release) = rack.store.app(app)?.release else {
        return Ok(());
    };
    let manifest = rack.manifest(&rack.store.release(app, &release)?)?;
    crate::spec::release_service(&manifest, app, &release, service).map(|_| ())
}
