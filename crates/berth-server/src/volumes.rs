//! Named app volumes: `berth-<rack>-<app>-<name>` engine volumes, created before
//! the first container that mounts one, shared by every service naming it and
//! kept across releases. Their content is read and written through the
//! engine's archive API on a helper container that is created but never
//! started, so no image needs a shell or `tar` inside it.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::VolumeEntry;
use berth_core::ImageSource;
use berth_runtime::{LABEL_APP, LABEL_RACK};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Label naming the app-level volume name on an engine volume.
pub const LABEL_VOLUME: &str = "berth.volume";
/// Label marking helper containers (never started; removed after use).
pub const LABEL_HELPER: &str = "berth.helper";
/// The rack a helper belongs to. Helpers don't carry `berth.rack`: the
/// reconciler removes every rack container without a process row, which would
/// cut a backup short; `rack prune` removes helpers a crash left behind.
pub const LABEL_HELPER_RACK: &str = "berth.helper.rack";

/// Helpers in use right now, which `rack prune` must leave alone.
static LIVE_HELPERS: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

pub fn helper_in_use(id: &str) -> bool {
    LIVE_HELPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(id)
}

/// Where a helper container mounts the volume.
const MOUNT: &str = "/berth-volume";

/// Creates the engine volumes of `app`'s `volumes` (short names), labelled so
/// they are found (and only they are deleted) later.
pub async fn ensure(rack: &Rack, app: &str, volumes: &[&str]) -> Result<()> {
    for volume in volumes {
        let mut labels = rack.labels(app);
        labels.insert(LABEL_VOLUME.into(), volume.to_string());
        rack.runtime
            .ensure_volume(&rack.volume_name(app, volume), &labels)
            .await?;
    }
    Ok(())
}

/// This rack's volumes of `app`: (short name, engine name).
pub async fn app_volumes(rack: &Rack, app: &str) -> Result<Vec<(String, String)>> {
    Ok(rack
        .runtime
        .list_volumes(LABEL_APP, app)
        .await?
        .into_iter()
        .filter(|v| rack.owns(&v.labels))
        .filter_map(|v| {
            let short = v.labels.get(LABEL_VOLUME)?.clone();
            Some((short, v.name))
        })
        .collect())
}

/// Removes every volume of `app` (the app's containers must be gone).
pub async fn remove_all(rack: &Rack, app: &str) -> Result<usize> {
    let volumes = app_volumes(rack, app).await?;
    for (_, engine) in &volumes {
        rack.runtime.remove_volume(engine).await?;
    }
    Ok(volumes.len())
}

/// The refusal `berth apps delete` gets while the app has volumes.
pub fn refuse_delete(app: &str, volumes: &[(String, String)]) -> Error {
    let names: Vec<&str> = volumes.iter().map(|(s, _)| s.as_str()).collect();
    Error::Conflict(format!(
        "app {app} has volumes ({}) whose data would be lost; back them up with `berth volumes backup NAME -a {app} > NAME.tar`, then delete with `berth apps delete {app} --volumes`",
        names.join(", ")
    ))
}

/// An image on the engine the helper container can be created from: the
/// promoted release's, preferring one of a service that mounts the volume.
fn helper_image(rack: &Rack, app: &str, volume: &str) -> Result<String> {
    let no_image = || {
        Error::Conflict(format!(
            "app {app} has no deployed image to reach volume {volume} through; deploy the app first"
        ))
    };
    let id = rack.store.app(app)?.release.ok_or_else(no_image)?;
    let release = rack.store.release(app, &id)?;
    let manifest = rack.manifest(&release)?;
    let images = match &release.build {
        Some(b) => rack.store.build(app, b)?.images,
        None => BTreeMap::new(),
    };
    let image_of = |name: &str| match &manifest.services.get(name)?.source {
        ImageSource::Image(i) => Some(i.clone()),
        ImageSource::Build(_) => images.get(name).cloned(),
    };
    let mut names: Vec<&String> = manifest.services.keys().collect();
    names.sort_by_key(|n| {
        !manifest.services[*n]
            .volumes
            .iter()
            .any(|v| v.volume == volume)
    });
    names
        .into_iter()
        .find_map(|n| image_of(n))
        .ok_or_else(no_image)
}

/// A helper container mounting `volume`, removed when dropped.
struct Helper {
    rack: Arc<Rack>,
    id: String,
}

impl Helper {
    async fn create(rack: &Arc<Rack>, app: &str, volume: &str) -> Result<Helper> {
        let image = helper_image(rack, app, volume)?;
        ensure(rack, app, &[volume]).await?;
        let labels = BTreeMap::from([
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_HELPER.to_string(), "volume".to_string()),
            (LABEL_HELPER_RACK.to_string(), rack.rack_id.clone()),
            // Containers inherit their image's labels, and berth's images carry
            // `berth.rack`: blanked, so the reconciler doesn't take the helper
            // for a stray process container.
            (LABEL_RACK.to_string(), String::new()),
        ]);
        let name = format!(
            "berth-{}-{app}-volume-{volume}-{}",
            rack.rack_id,
            hex::encode(rand::random::<[u8; 3]>())
        );
        let id = rack
            .runtime
            .create_helper(
                &name,
                &image,
                &labels,
                &[(rack.volume_name(app, volume), MOUNT.into())],
            )
            .await?;
        LIVE_HELPERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        Ok(Helper {
            rack: rack.clone(),
            id,
        })
    }

    fn content(&self) -> BoxStream<'static, berth_runtime::Result<Bytes>> {
        self.rack
            .runtime
            .download_archive(&self.id, &format!("{MOUNT}/."))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let rack = self.rack.clone();
        let id = std::mem::take(&mut self.id);
        tokio::spawn(async move {
            let _ = rack.runtime.remove_container(&id).await;
            LIVE_HELPERS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }
}

async fn existing(rack: &Rack, app: &str, volume: &str) -> Result<()> {
    let known = app_volumes(rack, app).await?;
    if known.iter().any(|(s, _)| s == volume) {
        return Ok(());
    }
    Err(Error::NotFound(format!(
        "app {app} has no volume {volume}; list them with `berth volumes -a {app}`"
    )))
}

/// Bytes of a volume's content, read as a tar.
async fn size_of(rack: &Arc<Rack>, app: &str, volume: &str) -> Option<u64> {
    let helper = Helper::create(rack, app, volume).await.ok()?;
    let mut stream = helper.content();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk.ok()?.len() as u64;
    }
    Some(total)
}

/// The app's volumes (those on the engine and those its release names), their
/// size and the services using them.
pub async fn list(rack: &Arc<Rack>, app: &str) -> Result<Vec<VolumeEntry>> {
    let manifest = rack.current_manifest(app)?;
    let mut names: BTreeSet<String> = app_volumes(rack, app)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    if let Some(m) = &manifest {
        for svc in m.services.values() {
            names.extend(svc.volumes.iter().map(|v| v.volume.clone()));
        }
    }
    let mut out = Vec::new();
    for name in names {
        let used_by = manifest
            .iter()
            .flat_map(|m| m.services.iter())
            .filter(|(_, s)| s.volumes.iter().any(|v| v.volume == name))
            .map(|(n, _)| n.clone())
            .collect();
        let size = size_of(rack, app, &name).await;
        out.push(VolumeEntry {
            name,
            size,
            used_by,
        });
    }
    Ok(out)
}

/// A tar of the volume's content, streamed; the helper lives as long as the stream.
pub async fn backup(
    rack: &Arc<Rack>,
    app: &str,
    volume: &str,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
    berth_core::validate_volume_name(volume).map_err(|e| Error::Invalid(e.to_string()))?;
    existing(rack, app, volume).await?;
    let helper = Helper::create(rack, app, volume).await?;
    let stream = helper.content();
    Ok(stream
        .map(move |chunk| {
            let _keep = &helper;
            chunk.map_err(std::io::Error::other)
        })
        .boxed())
}

/// Extracts a tar into the volume (same names replaced, others kept).
pub async fn restore(
    rack: &Arc<Rack>,
    app: &str,
    volume: &str,
    tar: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<()> {
    berth_core::validate_volume_name(volume).map_err(|e| Error::Invalid(e.to_string()))?;
    let named = rack.current_manifest(app)?.is_some_and(|m| {
        m.services
            .values()
            .any(|s| s.volumes.iter().any(|v| v.volume == volume))
    });
    if !named {
        existing(rack, app, volume).await?;
    }
    let helper = Helper::create(rack, app, volume).await?;
    rack.runtime.upload_archive(&helper.id, MOUNT, tar).await?;
    rack.logs
        .event(app, &format!("volume {volume} restored from an archive"));
    Ok(())
}
