//! Named app volumes: `berth-<rack>-<app>-<name>` engine volumes, created before
//! the first container that mounts one, shared by every service naming it and
//! kept across releases. Their content is read and written through the
//! engine's archive API on a helper container that is created but never
//! started, so no image needs a shell or `tar` inside it.

use crate::api::{ApiError, check_app};
use crate::rack::{Rack, RackError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::VolumeEntry;
use berth_core::{ImageSource, Manifest};
use berth_runtime::{LABEL_APP, LABEL_RACK};
use futures_util::StreamExt;
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

type ApiResult<T> = Result<T, ApiError>;

/// `DELETE /apps/{app}?volumes=true`
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    pub volumes: bool,
}

pub fn engine_name(rack: &Rack, app: &str, volume: &str) -> String {
    format!("berth-{}-{app}-{volume}", rack.rack_id)
}

/// Creates the engine volumes a container is about to mount, labelled so they
/// are found (and only they are deleted) later. `volumes` holds (engine name,
/// path) as in `ContainerSpec::volumes`.
pub async fn ensure_for(
    rack: &Rack,
    app: &str,
    volumes: &[(String, String)],
) -> Result<(), RackError> {
    let prefix = format!("berth-{}-{app}-", rack.rack_id);
    for (name, _) in volumes {
        let mut labels = rack.labels(app);
        if let Some(short) = name.strip_prefix(&prefix) {
            labels.insert(LABEL_VOLUME.into(), short.to_string());
        }
        rack.runtime.ensure_volume(name, &labels).await?;
    }
    Ok(())
}

/// This rack's volumes of `app`: (short name, engine name).
pub async fn app_volumes(rack: &Rack, app: &str) -> Result<Vec<(String, String)>, RackError> {
    Ok(rack
        .runtime
        .list_volumes(LABEL_APP, app)
        .await?
        .into_iter()
        .filter(|v| v.labels.get(LABEL_RACK) == Some(&rack.rack_id))
        .filter_map(|v| {
            let short = v.labels.get(LABEL_VOLUME)?.clone();
            Some((short, v.name))
        })
        .collect())
}

/// Removes every volume of `app` (the app's containers must be gone).
pub async fn remove_all(rack: &Rack, app: &str) -> Result<usize, RackError> {
    let volumes = app_volumes(rack, app).await?;
    for (_, engine) in &volumes {
        rack.runtime.remove_volume(engine).await?;
    }
    Ok(volumes.len())
}

/// The refusal `berth apps delete` gets while the app has volumes.
pub fn refuse_delete(app: &str, volumes: &[(String, String)]) -> ApiError {
    let names: Vec<&str> = volumes.iter().map(|(s, _)| s.as_str()).collect();
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "app {app} has volumes ({}) whose data would be lost; back them up with `berth volumes backup NAME -a {app} > NAME.tar`, then delete with `berth apps delete {app} --volumes`",
            names.join(", ")
        ),
    )
}

/// The promoted release's manifest, if any.
fn current_manifest(rack: &Rack, app: &str) -> Result<Option<Arc<Manifest>>, RackError> {
    let Some(id) = rack.store.app(app)?.release else {
        return Ok(None);
    };
    let release = rack.store.release(app, &id)?;
    Ok(Some(rack.manifest(&release)?))
}

/// An image on the engine the helper container can be created from: the
/// promoted release's, preferring one of a service that mounts the volume.
fn helper_image(rack: &Rack, app: &str, volume: &str) -> Result<String, RackError> {
    let no_image = || {
        RackError::Conflict(format!(
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
    async fn create(rack: &Arc<Rack>, app: &str, volume: &str) -> Result<Helper, RackError> {
        let image = helper_image(rack, app, volume)?;
        let engine = engine_name(rack, app, volume);
        ensure_for(rack, app, &[(engine.clone(), MOUNT.into())]).await?;
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
            .create_helper(&name, &image, &labels, &[(engine, MOUNT.into())])
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

fn check_volume_name(volume: &str) -> ApiResult<()> {
    berth_core::validate_volume_name(volume)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn existing(rack: &Rack, app: &str, volume: &str) -> ApiResult<()> {
    let known = app_volumes(rack, app).await?;
    if known.iter().any(|(s, _)| s == volume) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("app {app} has no volume {volume}; list them with `berth volumes -a {app}`"),
    ))
}

/// Bytes of a volume's content, read as a tar.
async fn size_of(rack: &Arc<Rack>, app: &str, volume: &str) -> Option<u64> {
    let helper = Helper::create(rack, app, volume).await.ok()?;
    let mut stream = rack
        .runtime
        .download_archive(&helper.id, &format!("{MOUNT}/."));
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk.ok()?.len() as u64;
    }
    Some(total)
}

pub async fn list(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<VolumeEntry>>> {
    check_app(&rack, &app)?;
    let manifest = current_manifest(&rack, &app)?;
    let mut names: BTreeSet<String> = app_volumes(&rack, &app)
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
        let size = size_of(&rack, &app, &name).await;
        out.push(VolumeEntry {
            name,
            size,
            used_by,
        });
    }
    Ok(Json(out))
}

pub async fn backup(
    State(rack): State<Arc<Rack>>,
    Path((app, volume)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    check_volume_name(&volume)?;
    existing(&rack, &app, &volume).await?;
    let helper = Helper::create(&rack, &app, &volume).await?;
    let stream = rack
        .runtime
        .download_archive(&helper.id, &format!("{MOUNT}/."));
    // The helper lives as long as the response body streams.
    let body = stream.map(move |chunk| {
        let _keep = &helper;
        chunk.map_err(std::io::Error::other)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(body),
    )
        .into_response())
}

pub async fn restore(
    State(rack): State<Arc<Rack>>,
    Path((app, volume)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    check_app(&rack, &app)?;
    check_volume_name(&volume)?;
    let named = current_manifest(&rack, &app)?.is_some_and(|m| {
        m.services
            .values()
            .any(|s| s.volumes.iter().any(|v| v.volume == volume))
    });
    if !named {
        existing(&rack, &app, &volume).await?;
    }
    let helper = Helper::create(&rack, &app, &volume).await?;
    let stream = body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other))
        .boxed();
    rack.runtime
        .upload_archive(&helper.id, MOUNT, stream)
        .await
        .map_err(RackError::from)?;
    rack.logs
        .event(&app, &format!("volume {volume} restored from an archive"));
    Ok(StatusCode::NO_CONTENT)
}
