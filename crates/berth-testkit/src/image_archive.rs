//! `docker save` and `docker load`: one image as a tar with `manifest.json`,
//! its config (`<id hex>.json`) and a `layer.tar` per layer.

use crate::images::{ImageConfig, Layer, sha256_hex};
use crate::state::{Engine, single};
use berth_runtime::{Result, RuntimeError, chain_ids};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder.append_data(&mut header, path, data)
}

/// The v1 id `docker save` names a layer's directory by: stable per chain.
fn layer_directory(chain: &str) -> String {
    sha256_hex(format!("v1 {chain}").as_bytes())
}

fn save(engine: &Engine, name: &str) -> Result<Bytes> {
    engine.check()?;
    let state = engine.lock();
    let image = state.images.resolve(name).ok_or_else(|| {
        RuntimeError::Engine(format!("reference does not exist: {name} (HTTP 404)"))
    })?;
    // Saved by a tag, the archive holds that tag; saved by id, none.
    let tags: Vec<String> = state
        .images
        .tags_of(&image.id)
        .into_iter()
        .filter(|t| *t == crate::images::normalize_tag(name))
        .collect();
    let hex = image.id.trim_start_matches("sha256:");
    let config_name = format!("{hex}.json");
    let mut builder = tar::Builder::new(Vec::new());
    let mut layer_paths = Vec::new();
    let mut parent: Option<String> = None;
    for chain in chain_ids(&image.config.diff_ids) {
        let layer = state.images.layer(&chain).ok_or_else(|| {
            RuntimeError::Engine(format!("layer {chain} of {name} is missing from the store"))
        })?;
        let directory = layer_directory(&chain);
        append(&mut builder, &format!("{directory}/VERSION"), b"1.0")?;
        let v1 = json!({"id": directory, "parent": parent});
        append(
            &mut builder,
            &format!("{directory}/json"),
            v1.to_string().as_bytes(),
        )?;
        append(&mut builder, &format!("{directory}/layer.tar"), &layer.data)?;
        layer_paths.push(format!("{directory}/layer.tar"));
        parent = Some(directory);
    }
    append(&mut builder, &config_name, &image.raw)?;
    let repo_tags = if tags.is_empty() {
        Value::Null
    } else {
        json!(tags)
    };
    let manifest = json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_paths}]);
    append(
        &mut builder,
        "manifest.json",
        manifest.to_string().as_bytes(),
    )?;
    if let (Some(top), false) = (&parent, tags.is_empty()) {
        let mut repositories = serde_json::Map::new();
        for tag in &tags {
            if let Some((repository, tag)) = tag.rsplit_once(':') {
                let mut by_tag = serde_json::Map::new();
                by_tag.insert(tag.to_string(), json!(top));
                repositories.insert(repository.to_string(), Value::Object(by_tag));
            }
        }
        append(
            &mut builder,
            "repositories",
            Value::Object(repositories).to_string().as_bytes(),
        )?;
    }
    Ok(Bytes::from(builder.into_inner()?))
}

pub(crate) fn export(engine: &Engine, name: &str) -> BoxStream<'static, Result<Bytes>> {
    let result = save(engine, name);
    single(result)
}

fn load_error(message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Engine(format!("the engine could not load the image: {message}"))
}

/// Reads a `docker save` tar and registers its images; the references it
/// loaded (`shop:dev`, or `sha256:...` for an untagged image).
pub(crate) async fn load(
    engine: &Engine,
    mut tar: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<Vec<String>> {
    engine.check()?;
    let mut data = BytesMut::new();
    while let Some(chunk) = tar.next().await {
        data.extend_from_slice(&chunk.map_err(load_error)?);
    }
    let mut files: HashMap<String, Bytes> = HashMap::new();
    let mut archive = tar::Archive::new(&data[..]);
    for entry in archive.entries().map_err(load_error)? {
        let mut entry = entry.map_err(load_error)?;
        let path = entry
            .path()
            .map_err(load_error)?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./").to_string();
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(load_error)?;
            files.insert(path, Bytes::from(content));
        }
    }
    let Some(manifest) = files.get("manifest.json") else {
        return Err(RuntimeError::Engine(
            "the upload held no image; send the output of `docker save IMAGE`".into(),
        ));
    };
    let entries: Vec<Value> = serde_json::from_slice(manifest).map_err(load_error)?;
    let mut loaded = Vec::new();
    for entry in entries {
        let config_path = entry["Config"].as_str().unwrap_or_default();
        let raw = files
            .get(config_path)
            .ok_or_else(|| load_error(format!("open {config_path}: no such file or directory")))?
            .clone();
        let config = ImageConfig::from_json(&raw).map_err(load_error)?;
        let layer_paths: Vec<&str> = entry["Layers"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if layer_paths.len() != config.diff_ids.len() {
            return Err(load_error(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                config.diff_ids.len(),
                layer_paths.len()
            )));
        }
        let chains = chain_ids(&config.diff_ids);
        let mut new_layers = Vec::new();
        {
            let state = engine.lock();
            for ((path, diff_id), chain) in layer_paths.iter().zip(&config.diff_ids).zip(&chains) {
                // A layer the engine has is not read: it may be left out.
                if state.images.has_layer(chain) {
                    continue;
                }
                let data = files
                    .get(*path)
                    .ok_or_else(|| load_error(format!("open {path}: no such file or directory")))?;
                let actual = format!("sha256:{}", sha256_hex(data));
                if actual != *diff_id {
                    return Err(load_error(format!(
                        "layer {path}: invalid diffID: expected {diff_id}, got {actual}"
                    )));
                }
                new_layers.push(Layer {
                    diff_id: diff_id.clone(),
                    data: data.clone(),
                });
            }
        }
        let tags: Vec<String> = entry["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut state = engine.lock();
        let id = state.images.insert(raw, config, None, new_layers);
        for tag in &tags {
            state.images.tag(tag, &id);
        }
        if tags.is_empty() {
            loaded.push(id);
        } else {
            loaded.extend(tags);
        }
    }
    if loaded.is_empty() {
        return Err(RuntimeError::Engine(
            "the upload held no image; send the output of `docker save IMAGE`".into(),
        ));
    }
    Ok(loaded)
}
