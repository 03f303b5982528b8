//! Rollouts and scale: start new processes, wait until each passes its health
//! check, switch the router in one store transaction, then retire the old ones.
//! Callers hold the app's lock.

use super::domains;
use super::health::wait_healthy;
use super::retire::{Retirement, retire};
use crate::error::{Error, Result};
use crate::progress::{Progress, step};
use crate::rack::Rack;
use crate::rack::metrics::Outcome;
use crate::spec::desired;
use berth_core::{ImageSource, Manifest, ProcessState};
use berth_runtime::ContainerInfo;
use berth_store::{Formation, ProcessRow, ReleaseRow};
use std::collections::BTreeSet;

fn new_row(
    app: &str,
    service: &str,
    release: &str,
    memory: Option<u64>,
    cpu: Option<f64>,
) -> ProcessRow {
    ProcessRow {
        app: app.into(),
        id: berth_core::new_process_id(service),
        service: service.into(),
        release: release.into(),
        state: ProcessState::Starting,
        created: berth_store::now_rfc3339(),
        memory,
        cpu,
        restarts: 0,
        last_exit: None,
        log_cursor: 0,
    }
}

/// Fails early, before anything starts, when the release cannot run; else the
/// images its processes run.
pub async fn preflight(
    rack: &Rack,
    release: &ReleaseRow,
    manifest: &Manifest,
) -> Result<BTreeSet<String>> {
    let mut images = BTreeSet::new();
    let env = rack.store.env(&release.app, release.env_version)?;
    crate::builds::require_env(
        manifest,
        &env,
        &release.app,
        &format!("release {} of app {}", release.id, release.app),
    )?;
    // A release that would change a running resource fails before anything stops.
    let active: Vec<ProcessRow> = rack
        .store
        .processes(Some(&release.app))?
        .into_iter()
        .filter(|p| p.state == ProcessState::Active)
        .collect();
    kept_resources(rack, manifest, &active)?;
    for (name, svc) in &manifest.services {
        let image = match &svc.source {
            ImageSource::Image(image) => image.clone(),
            ImageSource::Build(_) => {
                let build_id = release.build.as_deref().unwrap_or_default();
                let build = rack.store.build(&release.app, build_id)?;
                build.images.get(name).cloned().unwrap_or_default()
            }
        };
        if image.is_empty() || !rack.runtime.image_exists(&image).await? {
            return Err(Error::Invalid(format!(
                "image {image:?} of service {name} (release {}) is not on the engine; build it again with `berth deploy`{}",
                release.id,
                if matches!(svc.source, ImageSource::Image(_)) {
                    " or load the image on the server first (no registry is used)"
                } else {
                    ""
                }
            )));
        }
        images.insert(image);
    }
    Ok(images)
}

/// Makes each of a release's images available wherever its processes may run
/// (on a swarm: sent to every node that lacks it, only the missing layers),
/// saying so in the rollout's progress.
pub async fn distribute_images(
    rack: &Rack,
    images: &BTreeSet<String>,
    progress: &Progress,
) -> Result<()> {
    for image in images {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        let forward = async {
            while let Some(line) = rx.recv().await {
                step(progress, line).await;
            }
        };
        let (distributed, ()) = tokio::join!(rack.runtime.distribute_image(image, tx), forward);
        distributed?;
    }
    Ok(())
}

/// What to say when rolling out the app's promoted release again (a restart)
/// would start and stop nothing: the selected services are scaled to 0.
fn nothing_to_replace(
    rack: &Rack,
    release: &ReleaseRow,
    manifest: &Manifest,
    only: Option<&BTreeSet<String>>,
) -> Result<Option<String>> {
    let app = &release.app;
    if rack.store.app(app)?.release.as_deref() != Some(release.id.as_str()) {
        return Ok(None);
    }
    let selected = |name: &String| only.is_none_or(|s| s.contains(name));
    let formation = rack.store.formation(app)?;
    let wanted: u32 = manifest
        .services
        .iter()
        .filter(|(n, _)| selected(n))
        .map(|(n, svc)| desired(svc, formation.get(n)).0)
        .sum();
    let running = rack
        .store
        .processes(Some(app))?
        .iter()
        .any(|p| p.state == ProcessState::Active && selected(&p.service));
    if wanted > 0 || running {
        return Ok(None);
    }
    let names: Vec<&str> = manifest
        .services
        .keys()
        .filter(|n| selected(n))
        .map(String::as_str)
        .collect();
    let (who, scale) = match names.as_slice() {
        [one] => (one.to_string(), one.to_string()),
        _ => (format!("app {app}"), "SERVICE".to_string()),
    };
    Ok(Some(format!(
        "{who} has no processes to restart (scaled to 0); start some with `berth scale {scale} --count N -a {app}`"
    )))
}

/// "1 process", "2 processes".
fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

/// What a rollout did, once the router switched: a new release was promoted,
/// or (for the release already promoted: a restart, new limits) which
/// processes were replaced.
fn rolled_out(
    release: &ReleaseRow,
    was_promoted: bool,
    started: &[ProcessRow],
    stopped: &[ProcessRow],
) -> String {
    if !was_promoted {
        return format!("release {} promoted; router switched", release.id);
    }
    let mut per_service: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for row in started {
        per_service.entry(&row.service).or_default().0 += 1;
    }
    for row in stopped {
        per_service.entry(&row.service).or_default().1 += 1;
    }
    per_service
        .into_iter()
        .map(|(service, (new, old))| match (new, old) {
            (0, old) => format!("{service}: {} stopped", processes(old)),
            (new, 0) => format!("{service}: {} started", processes(new)),
            (new, _) => format!("{service}: {} replaced", processes(new)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Creates and starts the container of one process row.
pub async fn start_process(rack: &Rack, row: &ProcessRow) -> Result<ContainerInfo> {
    let (spec, port) = crate::spec::container(rack, row.into()).await?;
    let info = rack.runtime.run_container(&spec).await?;
    rack.observe(&row.app, &row.id, &info, port, false);
    Ok(info)
}

/// Starts `rows` (inserted as `starting`) and waits for all to be healthy. On
/// failure every one of them is removed again and the error carries the
/// failing process's last log lines.
async fn start_all(
    rack: &Rack,
    manifest: &Manifest,
    rows: &[ProcessRow],
    progress: &Progress,
) -> Result<()> {
    for row in rows {
        rack.store.insert_process(row)?;
    }
    let mut failure: Option<(String, String)> = None;
    for row in rows {
        step(progress, format!("starting {} ({})", row.id, row.release)).await;
        if let Err(e) = start_process(rack, row).await {
            failure = Some((row.id.clone(), e.to_string()));
            break;
        }
        rack.logs.service_event(
            &row.app,
            &row.service,
            &format!("process {} started for release {}", row.id, row.release),
        );
    }
    if failure.is_none() {
        let checks = rows.iter().map(|row| async move {
            let svc = manifest.services.get(&row.service);
            let result = match svc {
                Some(svc) => wait_healthy(rack, row, svc).await,
                None => Err(format!(
                    "service {} vanished from the manifest",
                    row.service
                )),
            };
            (row, result)
        });
        for (row, result) in futures_util::future::join_all(checks).await {
            match result {
                Ok(()) => step(progress, format!("{} healthy", row.id)).await,
                Err(e) => {
                    if failure.is_none() {
                        failure = Some((row.id.clone(), e));
                    }
                }
            }
        }
    }
    let Some((process, message)) = failure else {
        return Ok(());
    };
    let app = rows.first().map(|r| r.app.clone()).unwrap_or_default();
    let logs = rack.last_lines(&app, &process, 20).await;
    let _ = retire(rack, rows, Retirement::Abandon, progress).await;
    Err(Error::Failed { message, logs })
}

/// Rolls `release` out for `only` services (all when `None`) and promotes it.
pub async fn rollout(
    rack: &Rack,
    release: &ReleaseRow,
    only: Option<&BTreeSet<String>>,
    progress: &Progress,
) -> Result<()> {
    let app = release.app.clone();
    let manifest = rack.manifest(release)?;
    if let Some(nothing) = nothing_to_replace(rack, release, &manifest, only)? {
        step(progress, nothing).await;
        return Ok(());
    }
    let images = preflight(rack, release, &manifest).await?;
    let deployment = domains::claim(rack, release, &manifest, || {
        Ok(rack.store.start_deployment(&app, &release.id)?)
    })?;
    rack.logs
        .event(&app, &format!("deploy of release {} started", release.id));
    let started = std::time::Instant::now();
    let result = match distribute_images(rack, &images, progress).await {
        Ok(()) => rollout_inner(rack, release, &manifest, only, progress).await,
        Err(e) => Err(e),
    };
    rack.metrics.deploy(Outcome::of(&result), started.elapsed());
    match &result {
        Ok(()) => {
            rack.store.finish_deployment(deployment, None)?;
            rack.logs
                .event(&app, &format!("deploy of release {} finished", release.id));
            if let Err(e) = crate::builds::prune_images(rack, &app).await {
                tracing::warn!(app, error = %e, "image cleanup failed");
            }
        }
        Err(e) => {
            rack.store
                .finish_deployment(deployment, Some(&e.to_string()))?;
            let current = rack.store.app(&app)?.release;
            if current.as_deref() != Some(release.id.as_str()) {
                rack.store.fail_release(&app, &release.id, &e.to_string())?;
            }
            rack.logs.event(
                &app,
                &format!("deploy of release {} failed: {e}", release.id),
            );
        }
    }
    result
}

async fn rollout_inner(
    rack: &Rack,
    release: &ReleaseRow,
    manifest: &Manifest,
    only: Option<&BTreeSet<String>>,
    progress: &Progress,
) -> Result<()> {
    let app = &release.app;
    let was_promoted = rack.store.app(app)?.release.as_deref() == Some(release.id.as_str());
    let formation = rack.store.formation(app)?;
    let old: Vec<ProcessRow> = rack
        .store
        .processes(Some(app))?
        .into_iter()
        .filter(|p| p.state == ProcessState::Active)
        .filter(|p| only.is_none_or(|s| s.contains(&p.service)))
        .collect();
    // A release never replaces a running resource: its process, volume and
    // credentials carry over.
    let kept = kept_resources(rack, manifest, &old)?;
    let old: Vec<ProcessRow> = old
        .into_iter()
        .filter(|p| !kept.contains(&p.service))
        .collect();
    let selected = |name: &String| only.is_none_or(|s| s.contains(name)) && !kept.contains(name);

    // Singletons cannot overlap: their old process stops before the new one starts.
    for (name, _) in manifest
        .services
        .iter()
        .filter(|(n, s)| selected(n) && s.singleton)
    {
        for row in old.iter().filter(|p| &p.service == name) {
            step(progress, format!("stopping {} first (singleton service {name}: requests may fail until the new process is healthy)", row.id)).await;
            retire(
                rack,
                std::slice::from_ref(row),
                Retirement::Remove,
                progress,
            )
            .await?;
        }
    }

    // A service whose `deployment` budget cannot hold its old and new processes at
    // once rolls in batches; otherwise everything starts, then switches at once.
    let batched = manifest
        .services
        .iter()
        .filter(|(n, s)| selected(n) && !s.singleton)
        .any(|(name, svc)| {
            let (count, _, _) = desired(svc, formation.get(name));
            batch_size(count, &svc.deployment).0 < count && old.iter().any(|p| &p.service == name)
        });
    if batched {
        return rolling(rack, release, manifest, &formation, old, only, progress).await;
    }

    let mut rows = Vec::new();
    for (name, svc) in manifest.services.iter().filter(|(n, _)| selected(n)) {
        let (count, memory, cpu) = desired(svc, formation.get(name));
        for _ in 0..count {
            rows.push(new_row(app, name, &release.id, memory, cpu));
        }
    }
    // Resources first, so the processes that use them find them answering.
    let (resource_rows, rows): (Vec<ProcessRow>, Vec<ProcessRow>) = rows
        .into_iter()
        .partition(|r| is_resource(manifest, &r.service));
    start_all(rack, manifest, &resource_rows, progress).await?;
    if let Err(e) = start_all(rack, manifest, &rows, progress).await {
        let _ = retire(rack, &resource_rows, Retirement::Abandon, progress).await;
        return Err(e);
    }
    let rows: Vec<ProcessRow> = resource_rows.into_iter().chain(rows).collect();

    let activate: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let retiring: Vec<ProcessRow> = old
        .iter()
        .filter(|p| {
            !(manifest
                .services
                .get(&p.service)
                .is_some_and(|s| s.singleton))
        })
        .cloned()
        .collect();
    let retire_ids: Vec<String> = retiring.iter().map(|r| r.id.clone()).collect();
    rack.store
        .promote(app, &release.id, &activate, &retire_ids)?;
    rack.refresh_routes_and_wait().await;
    step(progress, rolled_out(release, was_promoted, &rows, &old)).await;
    let _ = retire(rack, &retiring, Retirement::Remove, progress).await;
    Ok(())
}

fn is_resource(manifest: &Manifest, service: &str) -> bool {
    manifest
        .services
        .get(service)
        .is_some_and(|s| s.resource.is_some())
}

/// The resources of `manifest` whose process in `old` keeps running through
/// this rollout. A release that changes a running resource's image or type
/// is refused: its data may need converting (a dump and a restore), which a
/// deploy must not do behind the user's back.
fn kept_resources(
    rack: &Rack,
    manifest: &Manifest,
    old: &[ProcessRow],
) -> Result<BTreeSet<String>> {
    let mut kept = BTreeSet::new();
    for row in old {
        let Some(new) = manifest
            .services
            .get(&row.service)
            .and_then(|s| s.resource.as_ref())
        else {
            continue;
        };
        // A service of that name that was not a resource is replaced.
        let Some(running) = rack.service_of(row).and_then(|s| s.resource) else {
            continue;
        };
        if running.kind != new.kind {
            return Err(Error::Conflict(format!(
                "resource {} of app {} is a {} resource; this release makes it {}, which would lose its data; give the new resource another name",
                row.service,
                row.app,
                running.kind.name(),
                new.kind.name()
            )));
        }
        // The image an upgrade recorded wins over the row's release.
        let upgraded = rack.store.resource_image(&row.app, &row.service)?;
        let running_image = upgraded.clone().unwrap_or(running.image);
        if running_image != new.image {
            let fix = if upgraded.is_some() {
                format!(
                    "it was upgraded with `berth resources upgrade`, so berth.yml should say `image: {running_image}` now"
                )
            } else {
                format!(
                    "keep `image: {running_image}` in berth.yml, or upgrade it with `berth resources upgrade {} --image {} -a {}`, which takes a backup first",
                    row.service, new.image, row.app
                )
            };
            return Err(Error::Conflict(format!(
                "resource {} of app {} runs image {running_image}; this release asks for {}, and a deploy never changes a resource; {fix}",
                row.service, row.app, new.image,
            )));
        }
        kept.insert(row.service.clone());
    }
    Ok(kept)
}

/// (processes per batch, old processes stopped before a batch starts) for a service
/// of `count` processes: `minimum`% of `count` stays routed, at most `maximum`% runs.
pub fn batch_size(count: u32, deployment: &berth_core::Deployment) -> (u32, u32) {
    let min_up = (u64::from(count) * u64::from(deployment.minimum)).div_ceil(100) as u32;
    let max_total = (u64::from(count) * u64::from(deployment.maximum) / 100) as u32;
    let surge = max_total.saturating_sub(count);
    let unavailable = count.saturating_sub(min_up.min(count));
    let batch = (surge + unavailable).max(1);
    (batch, batch.saturating_sub(surge))
}

/// A rollout in batches within each service's `deployment` budget. New processes
/// join the router as each batch gets healthy; the release is promoted at the end.
/// If a batch fails, the old release's processes that were already replaced are
/// started again and the new ones retired, so the old release keeps all traffic.
async fn rolling(
    rack: &Rack,
    release: &ReleaseRow,
    manifest: &Manifest,
    formation: &std::collections::BTreeMap<String, Formation>,
    old: Vec<ProcessRow>,
    only: Option<&BTreeSet<String>>,
    progress: &Progress,
) -> Result<()> {
    let app = &release.app;
    let was_promoted = rack.store.app(app)?.release.as_deref() == Some(release.id.as_str());
    let mut started: Vec<ProcessRow> = vec![];
    let mut replaced: Vec<ProcessRow> = vec![];
    let mut result = Ok(());
    'services: for (name, svc) in manifest
        .services
        .iter()
        .filter(|(n, s)| only.is_none_or(|o| o.contains(*n)) && !s.singleton)
    {
        let (count, memory, cpu) = desired(svc, formation.get(name));
        let (batch, stop_first) = batch_size(count, &svc.deployment);
        let mut olds: Vec<ProcessRow> =
            old.iter().filter(|p| &p.service == name).cloned().collect();
        let mut remaining = count;
        while remaining > 0 {
            let n = remaining.min(batch);
            let first: Vec<ProcessRow> = olds
                .drain(..(stop_first.min(n) as usize).min(olds.len()))
                .collect();
            if !first.is_empty() {
                step(
                    progress,
                    format!(
                        "{name}: stopping {} old process(es) first (deployment.minimum allows it)",
                        first.len()
                    ),
                )
                .await;
                retire(rack, &first, Retirement::Remove, progress).await?;
                replaced.extend(first.iter().cloned());
            }
            let rows: Vec<ProcessRow> = (0..n)
                .map(|_| new_row(app, name, &release.id, memory, cpu))
                .collect();
            if let Err(e) = start_all(rack, manifest, &rows, progress).await {
                result = Err(e);
                break 'services;
            }
            for row in &rows {
                rack.store
                    .set_process_state(app, &row.id, ProcessState::Active)?;
            }
            started.extend(rows.iter().cloned());
            let after: Vec<ProcessRow> = olds
                .drain(..((n as usize).saturating_sub(first.len())).min(olds.len()))
                .collect();
            rack.refresh_routes_and_wait().await;
            step(progress, format!("{name}: {n} new process(es) routed",)).await;
            if !after.is_empty() {
                retire(rack, &after, Retirement::Remove, progress).await?;
                replaced.extend(after.iter().cloned());
            }
            remaining -= n;
        }
        // The new count is lower than the old one: the rest go too.
        if !olds.is_empty() {
            retire(rack, &olds, Retirement::Remove, progress).await?;
            replaced.extend(olds);
        }
    }
    if let Err(e) = result {
        step(
            progress,
            "rolling back: restarting the old release's replaced processes",
        )
        .await;
        let mut back = vec![];
        for (release_id, rows) in group_by_release(&replaced) {
            let Ok(old_release) = rack.store.release(app, &release_id) else {
                continue;
            };
            let Ok(old_manifest) = rack.manifest(&old_release) else {
                continue;
            };
            let again: Vec<ProcessRow> = rows
                .iter()
                .map(|r| new_row(app, &r.service, &release_id, r.memory, r.cpu))
                .collect();
            match start_all(rack, &old_manifest, &again, progress).await {
                Ok(()) => back.extend(again),
                Err(e) => {
                    tracing::warn!(app, error = %e, "rollback could not restart old processes")
                }
            }
        }
        for row in &back {
            rack.store
                .set_process_state(app, &row.id, ProcessState::Active)?;
        }
        retire(rack, &started, Retirement::Remove, progress).await?;
        return Err(e);
    }
    // Services the new release dropped, and anything else old, leave now.
    let done: std::collections::HashSet<&str> = replaced.iter().map(|r| r.id.as_str()).collect();
    let rest: Vec<ProcessRow> = old
        .iter()
        .filter(|p| !done.contains(p.id.as_str()))
        .filter(|p| {
            !manifest
                .services
                .get(&p.service)
                .is_some_and(|s| s.singleton)
        })
        .cloned()
        .collect();
    let rest_ids: Vec<String> = rest.iter().map(|r| r.id.clone()).collect();
    rack.store.promote(app, &release.id, &[], &rest_ids)?;
    rack.refresh_routes_and_wait().await;
    step(progress, rolled_out(release, was_promoted, &started, &old)).await;
    let _ = retire(rack, &rest, Retirement::Remove, progress).await;
    Ok(())
}

fn group_by_release(rows: &[ProcessRow]) -> std::collections::BTreeMap<String, Vec<&ProcessRow>> {
    let mut out: std::collections::BTreeMap<String, Vec<&ProcessRow>> = Default::default();
    for r in rows {
        out.entry(r.release.clone()).or_default().push(r);
    }
    out
}

/// Changes a service's scale. Limits changes replace its processes one
/// rollout; count changes start or stop only the difference.
pub async fn scale(
    rack: &Rack,
    app: &str,
    service: &str,
    request: &berth_api::ScaleRequest,
    progress: &Progress,
) -> Result<()> {
    let app_row = rack.store.app(app)?;
    let release_id = app_row.release.ok_or_else(|| {
        Error::Conflict(format!(
            "app {app} has no release yet; deploy it first with `berth deploy -a {app}`"
        ))
    })?;
    let release = rack.store.release(app, &release_id)?;
    let manifest = rack.manifest(&release)?;
    let svc = crate::spec::release_service(&manifest, app, &release.id, service)?;
    if let Some(count) = request.count
        && count > 100
    {
        return Err(Error::Invalid(format!(
            "count {count} is too high; use 0 to 100"
        )));
    }
    if let Some(memory) = request.memory
        && memory < 6
    {
        return Err(Error::Invalid(format!(
            "memory {memory} MiB is too low; the engine needs at least 6 MiB"
        )));
    }
    if let Some(cpu) = request.cpu
        && !(cpu > 0.0 && cpu <= 64.0)
    {
        return Err(Error::Invalid(format!(
            "cpu {cpu} is out of range; use a number of cores above 0 and up to 64, e.g. 0.5"
        )));
    }
    let mut formation = rack.store.formation(app)?;
    let before = formation.get(service).cloned();
    let (_, old_memory, old_cpu) = desired(svc, before.as_ref());
    let f = Formation {
        count: request.count.or(before.as_ref().and_then(|f| f.count)),
        memory: request.memory.or(before.as_ref().and_then(|f| f.memory)),
        cpu: request.cpu.or(before.as_ref().and_then(|f| f.cpu)),
    };
    rack.store.set_formation(app, service, &f)?;
    formation.insert(service.into(), f.clone());
    let (count, memory, cpu) = desired(svc, Some(&f));
    rack.logs.service_event(
        app,
        service,
        &format!("scale {service}: count {count}, memory {memory:?} MiB, cpu {cpu:?}"),
    );
    if memory != old_memory || cpu != old_cpu {
        step(
            progress,
            format!("replacing the processes of {service} with the new limits"),
        )
        .await;
        let only = BTreeSet::from([service.to_string()]);
        return rollout(rack, &release, Some(&only), progress).await;
    }
    let active: Vec<ProcessRow> = rack
        .store
        .processes(Some(app))?
        .into_iter()
        .filter(|p| p.service == service && p.state == ProcessState::Active)
        .collect();
    let have = active.len() as u32;
    if count > have {
        let rows: Vec<ProcessRow> = (have..count)
            .map(|_| new_row(app, service, &release.id, memory, cpu))
            .collect();
        start_all(rack, &manifest, &rows, progress).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        rack.store.promote(app, &release.id, &ids, &[])?;
        rack.refresh_routes_and_wait().await;
    } else if count < have {
        // The newest go first: the oldest have proven themselves.
        let mut victims = active.clone();
        victims.sort_by(|a, b| b.created.cmp(&a.created));
        victims.truncate((have - count) as usize);
        let ids: Vec<String> = victims.iter().map(|r| r.id.clone()).collect();
        rack.store.promote(app, &release.id, &[], &ids)?;
        let _ = retire(rack, &victims, Retirement::Remove, progress).await;
    }
    step(progress, format!("{service} runs {count} process(es)")).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::batch_size;
    use berth_core::Deployment;

    fn budget(count: u32, minimum: u32, maximum: u32) -> (u32, u32) {
        batch_size(count, &Deployment { minimum, maximum })
    }

    #[test]
    fn batches_follow_the_deployment_budget() {
        // The default (100/200): everything new starts before anything old stops.
        assert_eq!(budget(4, 100, 200), (4, 0));
        // One extra process at a time, none taken away early.
        assert_eq!(budget(4, 100, 125), (1, 0));
        // Two may be missing, none extra: two stop, then two start.
        assert_eq!(budget(4, 50, 100), (2, 2));
        // Both: batches of three, one of them stopped first.
        assert_eq!(budget(4, 75, 150), (3, 1));
        // A budget with no room still makes progress, one by one.
        assert_eq!(budget(3, 100, 100), (1, 1));
        assert_eq!(budget(1, 100, 200), (1, 0));
    }
}
