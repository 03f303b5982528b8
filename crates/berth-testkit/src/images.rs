//! Images as an engine keeps them: a config (whose sha256 is the image id),
//! tags pointing at ids, and layers stored once by chain id, as `docker load`
//! and `docker save` exchange them.

use berth_runtime::{ImageDetails, ImageInfo, chain_ids};
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a container runs and carries when made from an image.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImageConfig {
    pub labels: BTreeMap<String, String>,
    /// `KEY=value`, as in the engine's config.
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `8080/tcp`, `53/udp`.
    pub exposed: BTreeSet<String>,
    /// Unix seconds.
    pub created: i64,
    pub diff_ids: Vec<String>,
}

pub(crate) struct Image {
    pub id: String,
    /// The config as stored, byte for byte: `docker save` writes it and its
    /// sha256 is the id.
    pub raw: Bytes,
    pub config: ImageConfig,
    /// The image it was built `FROM`.
    pub parent: Option<String>,
}

/// A layer's data: a tar whose sha256 is its diff id.
#[derive(Clone)]
pub(crate) struct Layer {
    pub diff_id: String,
    pub data: Bytes,
}

/// Images found by a reference: tag (`shop` means `shop:latest`), id or id prefix.
#[derive(Default)]
pub(crate) struct ImageStore {
    images: BTreeMap<String, Image>,
    tags: BTreeMap<String, String>,
    layers: HashMap<String, Layer>,
}

/// What keeps an image from being removed: a container made from it.
pub(crate) struct User {
    pub container: String,
    pub running: bool,
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The 12 hex digits the engine shows for an id.
pub(crate) fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// `shop` → `shop:latest`; `docker.io/library/shop:1` → `shop:1`.
pub(crate) fn normalize_tag(reference: &str) -> String {
    let name = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect()
    })
}

impl ImageConfig {
    /// The config JSON as the engine writes it (keys sorted, so equal configs
    /// are equal bytes and get one id).
    pub(crate) fn to_json(&self) -> Bytes {
        let exposed: serde_json::Map<String, Value> = self
            .exposed
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": rfc3339(self.created),
            "config": {
                "Env": self.env,
                "Cmd": self.cmd,
                "Entrypoint": self.entrypoint,
                "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
                "Labels": self.labels,
            },
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
        });
        Bytes::from(config.to_string())
    }

    /// Reads a config as `docker save` writes it.
    pub(crate) fn from_json(raw: &[u8]) -> Result<ImageConfig, String> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| format!("invalid image config: {e}"))?;
        let config = &value["config"];
        let labels = config["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let exposed = config["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let created = value["created"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp())
            .unwrap_or(0);
        Ok(ImageConfig {
            labels,
            env: strings(&config["Env"]).unwrap_or_default(),
            cmd: strings(&config["Cmd"]),
            entrypoint: strings(&config["Entrypoint"]),
            exposed,
            created,
            diff_ids: strings(&value["rootfs"]["diff_ids"]).unwrap_or_default(),
        })
    }

    pub(crate) fn exposed_tcp(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .exposed
            .iter()
            .filter_map(|p| match p.split_once('/') {
                Some((n, "tcp")) => n.parse().ok(),
                Some(_) => None,
                None => p.parse().ok(),
            })
            .collect();
        ports.sort_unstable();
        ports
    }
}

/// A small, deterministic layer describing what made it: the same step on
/// the same parent gives the same layer, as the engine's build cache does.
pub(crate) fn describe_layer(description: &str) -> std::io::Result<Layer> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(description.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, ".berth-testkit-layer", description.as_bytes())?;
    let data = Bytes::from(builder.into_inner()?);
    Ok(Layer {
        diff_id: format!("sha256:{}", sha256_hex(&data)),
        data,
    })
}

impl ImageStore {
    /// The image a reference names: a tag first, then a full id, then an id prefix.
    pub(crate) fn resolve(&self, reference: &str) -> Option<&Image> {
        if reference.is_empty() || reference.contains('@') {
            return None;
        }
        if let Some(id) = self.tags.get(&normalize_tag(reference)) {
            return self.images.get(id);
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut matches = self
            .images
            .values()
            .filter(|i| i.id["sha256:".len()..].starts_with(hex));
        match (matches.next(), matches.next()) {
            (Some(image), None) => Some(image),
            _ => None,
        }
    }

    pub(crate) fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, target)| *target == id)
            .map(|(tag, _)| tag.clone())
            .collect()
    }

    pub(crate) fn has_layer(&self, chain: &str) -> bool {
        self.layers.contains_key(chain)
    }

    pub(crate) fn layer(&self, chain: &str) -> Option<&Layer> {
        self.layers.get(chain)
    }

    /// Stores an image with its config and the layers it adds (those present
    /// already are kept as they are); returns its id.
    pub(crate) fn insert(
        &mut self,
        raw: Bytes,
        config: ImageConfig,
        parent: Option<String>,
        new_layers: Vec<Layer>,
    ) -> String {
        let id = format!("sha256:{}", sha256_hex(&raw));
        let chains = chain_ids(&config.diff_ids);
        for layer in new_layers {
            let position = config.diff_ids.iter().position(|d| *d == layer.diff_id);
            if let Some(chain) = position.and_then(|i| chains.get(i)) {
                self.layers.entry(chain.clone()).or_insert(layer);
            }
        }
        self.images.entry(id.clone()).or_insert(Image {
            id: id.clone(),
            raw,
            config,
            parent,
        });
        id
    }

    /// Points `tag` at `id`; the image it named before keeps its other tags,
    /// or none (dangling), as on the engine.
    pub(crate) fn tag(&mut self, tag: &str, id: &str) {
        self.tags.insert(normalize_tag(tag), id.to_string());
    }

    pub(crate) fn list(&self, key: &str, value: &str) -> Vec<ImageInfo> {
        self.images
            .values()
            .filter(|i| i.config.labels.get(key).map(String::as_str) == Some(value))
            .map(|i| ImageInfo {
                id: i.id.clone(),
                tags: self.tags_of(&i.id),
                labels: i.config.labels.clone(),
                created: i.config.created,
            })
            .collect()
    }

    pub(crate) fn size(&self, image: &Image) -> u64 {
        chain_ids(&image.config.diff_ids)
            .iter()
            .filter_map(|c| self.layers.get(c))
            .map(|l| l.data.len() as u64)
            .sum()
    }

    pub(crate) fn details(&self, reference: &str) -> Option<ImageDetails> {
        let image = self.resolve(reference)?;
        Some(ImageDetails {
            id: image.id.clone(),
            size: self.size(image),
            exposed_tcp: image.config.exposed_tcp(),
            labels: image.config.labels.clone(),
            diff_ids: image.config.diff_ids.clone(),
        })
    }

    pub(crate) fn chains(&self) -> BTreeSet<String> {
        self.images
            .values()
            .flat_map(|i| chain_ids(&i.config.diff_ids))
            .collect()
    }

    fn has_children(&self, id: &str) -> bool {
        self.images
            .values()
            .any(|i| i.parent.as_deref() == Some(id))
    }

    /// Removes what `reference` names as `docker rmi` (not forced) does: a tag
    /// is untagged, and the image goes with its last tag unless a child image
    /// needs it; an id removes the image. `Err` is the engine's conflict message.
    pub(crate) fn remove(
        &mut self,
        reference: &str,
        user_of: &dyn Fn(&str) -> Option<User>,
    ) -> Result<(), String> {
        let Some(image) = self.resolve(reference) else {
            return Ok(());
        };
        let id = image.id.clone();
        let tag = normalize_tag(reference);
        let by_tag = self.tags.get(&tag) == Some(&id);
        let tags = self.tags_of(&id);
        if by_tag {
            if tags.len() == 1
                && let Some(user) = user_of(&id)
            {
                return Err(format!(
                    "conflict: unable to remove repository reference \"{reference}\" (must force) - container {} is using its referenced image {}",
                    short(&user.container),
                    short(&id)
                ));
            }
            self.tags.remove(&tag);
            if tags.len() > 1 || self.has_children(&id) {
                return Ok(());
            }
        } else {
            if let Some(user) = user_of(&id) {
                let (force, state) = if user.running {
                    ("cannot be forced", "running")
                } else {
                    ("must be forced", "stopped")
                };
                return Err(format!(
                    "conflict: unable to delete {} ({force}) - image is being used by {state} container {}",
                    short(&id),
                    short(&user.container)
                ));
            }
            if tags.len() > 1 {
                return Err(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&id)
                ));
            }
            if self.has_children(&id) {
                return Err(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    short(&id)
                ));
            }
            self.tags.retain(|_, target| *target != id);
        }
        self.delete_with_dangling_parents(id, user_of);
        Ok(())
    }

    /// Deletes the image, then its parent while that is untagged, unused and
    /// childless (the engine prunes parents unless told not to).
    fn delete_with_dangling_parents(&mut self, id: String, user_of: &dyn Fn(&str) -> Option<User>) {
        let mut next = Some(id);
        while let Some(id) = next.take() {
            let Some(image) = self.images.remove(&id) else {
                break;
            };
            next = image.parent.filter(|parent| {
                self.tags_of(parent).is_empty()
                    && !self.has_children(parent)
                    && user_of(parent).is_none()
            });
        }
        let kept = self.chains();
        self.layers.retain(|chain, _| kept.contains(chain));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(tags: &[&str]) -> (ImageStore, String) {
        let mut store = ImageStore::default();
        let layer = describe_layer("base").unwrap();
        let config = ImageConfig {
            diff_ids: vec![layer.diff_id.clone()],
            ..Default::default()
        };
        let id = store.insert(config.to_json(), config, None, vec![layer]);
        for tag in tags {
            store.tag(tag, &id);
        }
        (store, id)
    }

    #[test]
    fn references_resolve_like_the_engine() {
        let (store, id) = store_with(&["shop"]);
        assert_eq!(store.resolve("shop:latest").unwrap().id, id);
        assert_eq!(store.resolve("docker.io/library/shop").unwrap().id, id);
        assert_eq!(store.resolve(&id).unwrap().id, id);
        assert_eq!(store.resolve(short(&id)).unwrap().id, id);
        assert!(store.resolve("shop:other").is_none());
        assert_eq!(store.chains().len(), 1);
    }

    #[test]
    fn removal_untags_first_and_refuses_what_is_in_use() {
        let nobody = |_: &str| None;
        let (mut store, id) = store_with(&["a:1", "b:1"]);
        assert!(
            store
                .remove(&id, &nobody)
                .unwrap_err()
                .contains("multiple repositories")
        );
        store.remove("a:1", &nobody).unwrap();
        assert!(store.resolve(&id).is_some());
        let used = |_: &str| {
            Some(User {
                container: "c0ffee".repeat(8),
                running: true,
            })
        };
        assert!(store.remove(&id, &used).unwrap_err().contains("conflict"));
        assert!(
            store
                .remove("b:1", &used)
                .unwrap_err()
                .contains("must force")
        );
        store.remove("b:1", &nobody).unwrap();
        assert!(store.resolve(&id).is_none());
        assert!(store.chains().is_empty() && store.layers.is_empty());
        store.remove("b:1", &nobody).unwrap();
    }

    #[test]
    fn configs_round_trip_through_json() {
        let config = ImageConfig {
            labels: BTreeMap::from([("k".into(), "v".into())]),
            env: vec!["PATH=/bin".into()],
            cmd: Some(vec!["serve".into()]),
            entrypoint: None,
            exposed: BTreeSet::from(["8080/tcp".to_string(), "53/udp".to_string()]),
            created: 1_700_000_000,
            diff_ids: vec!["sha256:ab".into()],
        };
        let back = ImageConfig::from_json(&config.to_json()).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.exposed_tcp(), vec![8080]);
    }
}
