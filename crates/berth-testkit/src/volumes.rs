//! Named volumes, and reading and writing files in containers through tar
//! archives (how berth backs up and restores a volume).

use crate::fs::{SharedFs, normalize};
use crate::state::{Engine, Volume, no_such_container, single};
use crate::sync::lock;
use berth_runtime::{Result, RuntimeError, VolumeInfo};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};
use std::collections::BTreeMap;

pub(crate) fn ensure(engine: &Engine, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    engine.check()?;
    // An existing volume is kept as it is, labels included, as on the engine.
    engine
        .lock()
        .volumes
        .entry(name.to_string())
        .or_insert_with(|| Volume {
            labels: labels.clone(),
            files: SharedFs::default(),
        });
    Ok(())
}

pub(crate) fn list(engine: &Engine, key: &str, value: &str) -> Result<Vec<VolumeInfo>> {
    engine.check()?;
    // The map is ordered by name already.
    Ok(engine
        .lock()
        .volumes
        .iter()
        .filter(|(_, v)| v.labels.get(key).map(String::as_str) == Some(value))
        .map(|(name, v)| VolumeInfo {
            name: name.clone(),
            labels: v.labels.clone(),
        })
        .collect())
}

/// Refused while any container (running or not) mounts it, as on the engine.
pub(crate) fn remove(engine: &Engine, name: &str) -> Result<()> {
    engine.check()?;
    let mut state = engine.lock();
    if !state.volumes.contains_key(name) {
        return Ok(());
    }
    let users: Vec<&str> = state
        .containers
        .values()
        .filter(|c| c.mounts.iter().any(|(_, v)| v == name))
        .map(|c| c.id.as_str())
        .collect();
    if !users.is_empty() {
        return Err(RuntimeError::Engine(format!(
            "volume {name} is in use (remove {name}: volume is in use - [{}]); stop what uses it first",
            users.join(", ")
        )));
    }
    state.volumes.remove(name);
    Ok(())
}

/// A copy of a volume file's content, for tests.
pub(crate) fn read_file(engine: &Engine, volume: &str, path: &str) -> Option<Bytes> {
    let files = engine.lock().volumes.get(volume)?.files.clone();
    lock(&files).read_file(&normalize(path)?)
}

fn not_found(path: &str, container: &str) -> RuntimeError {
    RuntimeError::Engine(format!(
        "Could not find the file {path} in container {container} (HTTP 404)"
    ))
}

fn archive(engine: &Engine, container: &str, path: &str) -> Result<Bytes> {
    engine.check()?;
    let state = engine.lock();
    let found = state
        .container(container)
        .ok_or_else(|| no_such_container(container))?;
    let files = state.files_of(found);
    drop(state);
    // `/dir/.` is the directory's content without the directory itself.
    let content_only = path == "." || path.ends_with("/.");
    let normalized = normalize(path).ok_or_else(|| not_found(path, container))?;
    let name = if content_only || normalized.is_empty() {
        "."
    } else {
        normalized.rsplit('/').next().unwrap_or(&normalized)
    };
    let (fs, rel) = files.locate(&normalized);
    let fs = lock(&fs);
    if content_only && !fs.is_dir(&rel) {
        return Err(not_found(path, container));
    }
    let tar = fs
        .archive(&rel, name)
        .ok_or_else(|| not_found(path, container))??;
    Ok(Bytes::from(tar))
}

pub(crate) fn download(
    engine: &Engine,
    container: &str,
    path: &str,
) -> BoxStream<'static, Result<Bytes>> {
    let result = archive(engine, container, path);
    single(result)
}

pub(crate) async fn upload(
    engine: &Engine,
    container: &str,
    path: &str,
    mut tar: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<()> {
    engine.check()?;
    let mut data = BytesMut::new();
    while let Some(chunk) = tar.next().await {
        let chunk = chunk
            .map_err(|e| RuntimeError::Engine(format!("reading the archive to upload: {e}")))?;
        data.extend_from_slice(&chunk);
    }
    let files = {
        let state = engine.lock();
        let found = state
            .container(container)
            .ok_or_else(|| no_such_container(container))?;
        state.files_of(found)
    };
    let normalized = normalize(path).ok_or_else(|| not_found(path, container))?;
    let (fs, rel) = files.locate(&normalized);
    let mut fs = lock(&fs);
    if !fs.exists(&rel) {
        return Err(not_found(path, container));
    }
    let refused = |reason: String| {
        RuntimeError::Engine(format!(
            "the engine refused the archive ({reason}); send a tar file (as `berth volumes backup` writes)"
        ))
    };
    if !fs.is_dir(&rel) {
        return Err(refused("extraction point is not a directory".into()));
    }
    fs.extract(&rel, &data).map_err(|e| refused(e.to_string()))
}
