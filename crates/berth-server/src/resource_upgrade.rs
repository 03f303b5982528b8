//! `berth resources upgrade`: a resource moved to another image, a backup
//! taken first. The backup (postgres: `pg_dump --format=custom`; redis: a tar
//! of its volume) is kept under `DATA/resource-backups/<app>/`; then the
//! resource's container is replaced by one of the new image on the same
//! volume and credentials, and must pass its protocol check. If it does not,
//! the old image runs again on the same volume and the error names the
//! backup. Only then is the image recorded in the store
//! (`Store::set_resource_image`), which wins over the releases' manifests from
//! then on (so a server stopped half-way starts the old image again). Callers
//! hold the app's lock.

use crate::error::{Error, Result};
use crate::lifecycle::health::wait_healthy;
use crate::lifecycle::rollout::start_process;
use crate::progress::{Progress, step};
use crate::rack::Rack;
use berth_api::ResourceUpgraded;
use berth_core::ResourceKind;
use berth_store::ProcessRow;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// What an upgrade starts from, checked before anything changes.
pub struct Plan {
    kind: ResourceKind,
    previous: String,
    row: ProcessRow,
}

/// Refuses, before anything changes, an upgrade of an unknown or stopped
/// resource, to the image it runs, or to an image the engine does not have.
pub async fn check(rack: &Rack, app: &str, name: &str, image: &str) -> Result<Plan> {
    if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "{image:?} is not an image name; give one like `--image postgres:16`"
        )));
    }
    let (entry, kind) = crate::resources::get(rack, app, name)?;
    if entry.image == image {
        return Err(Error::Invalid(format!(
            "resource {name} of app {app} already runs image {image}; name the image to upgrade it to"
        )));
    }
    if !rack.runtime.image_exists(image).await? {
        return Err(Error::Invalid(format!(
            "the engine has no image {image}; berth pulls no resource images for an upgrade: load it on the server (`docker load -i image.tar`, or `docker pull`/`docker build -t {image} .` there), then upgrade again"
        )));
    }
    let not_running = || {
        Error::Conflict(format!(
            "resource {name} of app {app} is {}; it must run to be backed up and upgraded (see `berth ps -a {app}` and `berth logs --service {name} -a {app}`)",
            entry.status
        ))
    };
    if entry.status != "running" {
        return Err(not_running());
    }
    let process = entry.process.as_deref().ok_or_else(not_running)?;
    let row = rack
        .store
        .processes(Some(app))?
        .into_iter()
        .find(|p| p.id == process)
        .ok_or_else(not_running)?;
    Ok(Plan {
        kind,
        previous: entry.image,
        row,
    })
}

/// Upgrades resource `name` of `app` to `image`; see the module doc.
pub async fn upgrade(
    rack: &Arc<Rack>,
    app: &str,
    name: &str,
    image: &str,
    progress: &Progress,
) -> Result<ResourceUpgraded> {
    let Plan {
        kind,
        previous,
        row,
    } = check(rack, app, name, image).await?;
    step(
        progress,
        format!("backing up resource {name} ({previous}) first"),
    )
    .await;
    let backup = take_backup(rack, app, name, kind).await?;
    let shown = backup.display().to_string();
    step(progress, format!("backup kept on the server: {shown}")).await;

    let svc = rack.service_of(&row).ok_or_else(|| {
        Error::Internal(format!(
            "the release of process {} has no service {name}",
            row.id
        ))
    })?;
    step(progress, format!("starting {name} on image {image}")).await;
    let outcome = match replace(rack, &row, Some(image)).await {
        Ok(()) => wait_healthy(rack, &row, &svc).await,
        Err(e) => Err(e.to_string()),
    };
    if outcome.is_ok() {
        // Recorded only now: a server stopped half-way starts the old image again.
        rack.store.set_resource_image(app, name, Some(image))?;
        step(progress, format!("{} healthy on image {image}", row.id)).await;
        rack.logs.service_event(
            app,
            name,
            &format!("resource {name} upgraded from {previous} to {image} (backup {shown})"),
        );
        return Ok(ResourceUpgraded {
            name: name.to_string(),
            image: image.to_string(),
            previous,
            backup: shown,
        });
    }
    let reason = outcome.err().unwrap_or_default();
    let logs = rack.last_lines(app, &row.id, 20).await;
    step(
        progress,
        format!("{name} did not become healthy on image {image}; going back to {previous}"),
    )
    .await;
    let back = match replace(rack, &row, None).await {
        Ok(()) => wait_healthy(rack, &row, &svc).await,
        Err(e) => Err(e.to_string()),
    };
    let restore = match kind {
        ResourceKind::Postgres => format!(
            "`berth resources restore NEW -a {app} < {}` into a fresh resource (add one of another name to berth.yml and deploy)",
            file_name(&backup)
        ),
        ResourceKind::Redis => format!(
            "`berth volumes restore NEW -a {app} < {}` into the volume of a fresh resource",
            file_name(&backup)
        ),
    };
    let state = match back {
        Ok(()) => format!("it runs image {previous} again on the same volume"),
        Err(e) => format!(
            "and going back to image {previous} failed too ({e}); the reconciler keeps trying"
        ),
    };
    rack.logs.service_event(
        app,
        name,
        &format!("resource {name}: upgrade to {image} failed, back on {previous}"),
    );
    Err(Error::Failed {
        message: format!(
            "resource {name} of app {app} did not become healthy on image {image} ({reason}); {state}. The backup taken first is {shown} on the server; to restore it: {restore}"
        ),
        logs,
    })
}

/// Stops and removes the container of `row` and starts it again under the
/// same process id, on `image` or (`None`) the one the store and release say.
async fn replace(rack: &Rack, row: &ProcessRow, image: Option<&str>) -> Result<()> {
    let container = rack.container_of(&row.app, &row.id);
    rack.runtime
        .stop_container(&container, rack.grace_of(row))
        .await?;
    rack.runtime.remove_container(&container).await?;
    rack.forget(&row.app, &row.id);
    match image {
        None => {
            start_process(rack, row).await?;
        }
        Some(image) => {
            let (mut spec, port) = crate::spec::container(rack, row.into()).await?;
            spec.image = image.to_string();
            let info = rack.runtime.run_container(&spec).await?;
            rack.observe(&row.app, &row.id, &info, port, false);
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes a backup of resource `name` to `DATA/resource-backups/<app>/` (a
/// temp name renamed when complete) and returns its path.
async fn take_backup(
    rack: &Arc<Rack>,
    app: &str,
    name: &str,
    kind: ResourceKind,
) -> Result<PathBuf> {
    let dir = rack.data_dir.join("resource-backups").join(app);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error::Internal(format!("cannot make {}: {e}", dir.display())))?;
    let stream: BoxStream<'static, std::io::Result<bytes::Bytes>> = match kind {
        ResourceKind::Postgres => crate::resources::backup(rack, app, name).await?,
        ResourceKind::Redis => crate::volumes::backup(rack, app, name).await?,
    };
    let extension = match kind {
        ResourceKind::Postgres => "dump",
        ResourceKind::Redis => "tar",
    };
    let stamp = crate::logs::file_stamp(time::OffsetDateTime::now_utc().unix_timestamp());
    let path = dir.join(format!("{name}-{stamp}.{extension}"));
    let partial = dir.join(format!(".{name}-{stamp}.{extension}.partial"));
    let written = write_all(stream, &partial).await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(Error::Failed {
            message: format!(
                "the backup of resource {name} of app {app} failed, so nothing was upgraded: {e}"
            ),
            logs: vec![],
        });
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|e| Error::Internal(format!("cannot name the backup {}: {e}", path.display())))?;
    prune_backups(&dir, name);
    Ok(path)
}

/// Upgrade backups kept per resource: the newest; older ones go once a new one is
/// written, so that upgrades do not fill the disk.
const KEEP_BACKUPS: usize = 3;

/// Removes all but the newest [`KEEP_BACKUPS`] upgrade backups of resource `name` in
/// `dir` (another resource's, whose name merely starts the same, are not its).
fn prune_backups(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut backups: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let stamp = backup_stamp(&file, name)?.to_owned();
            Some((stamp, e.path()))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(KEEP_BACKUPS);
    for (_, path) in backups.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed the old upgrade backup {}", path.display()),
            Err(e) => tracing::warn!(
                "cannot remove the old upgrade backup {}: {e}",
                path.display()
            ),
        }
    }
}

/// The time stamp of `file` if it is an upgrade backup of resource `name`
/// (`<name>-<YYYYMMDDTHHMMSSZ>.dump` or `.tar`).
fn backup_stamp<'a>(file: &'a str, name: &str) -> Option<&'a str> {
    let rest = file.strip_prefix(name)?.strip_prefix('-')?;
    let stamp = rest
        .strip_suffix(".dump")
        .or_else(|| rest.strip_suffix(".tar"))?;
    let is_stamp = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    is_stamp.then_some(stamp)
}

async fn write_all(
    mut stream: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    path: &Path,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk?).await?;
    }
    file.flush().await?;
    file.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_backups_of_the_resource_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = [
            "db-20261201T100000Z.dump",
            "db-20261202T100000Z.dump",
            "db-20261130T100000Z.dump",
            "db-20261203T100000Z.dump",
            "db-20261204T100000Z.dump",
            // Another resource, a half-written backup, and a file of the operator's.
            "db-old-20261101T100000Z.dump",
            ".db-20261205T100000Z.dump.partial",
            "db-notes.txt",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        prune_backups(dir.path(), "db");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".db-20261205T100000Z.dump.partial",
                "db-20261202T100000Z.dump",
                "db-20261203T100000Z.dump",
                "db-20261204T100000Z.dump",
                "db-notes.txt",
                "db-old-20261101T100000Z.dump",
            ]
        );
    }
}
