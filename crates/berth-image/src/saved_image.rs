//! `docker save` archives: which entry holds which layer, and a copy without some
//! layers' data.
//!
//! An archive holds `manifest.json` (per image: its config file and its layers'
//! paths, base first), each config (whose `rootfs.diff_ids` name the layers in the
//! same order) and each layer's data. An engine knows a layer by its chain id, which
//! folds the layer's diff id over its parents', so a layer is "on the server" only
//! when the same stack of layers is.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SavedImageError {
    #[error("cannot read or write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot copy {} to {}: {source}", src.display(), dst.display())]
    Copy {
        src: PathBuf,
        dst: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} is not a `docker save` archive: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

/// One layer of a saved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The path of its data in the archive, e.g. `blobs/sha256/…` or `…/layer.tar`.
    pub path: String,
    pub chain_id: String,
}

/// What a saved image's archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedImage {
    /// Every image's layers, base first.
    pub layers: Vec<Layer>,
    /// Whether entries are links (to data stored once for several paths); leaving a
    /// layer's data out could then cut the data of a link to it.
    pub has_links: bool,
}

/// Reads the layers of the archive at `path` (blocking: one pass over the file).
pub fn read(path: &Path) -> Result<SavedImage, SavedImageError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        diff_ids: Vec<String>,
    }
    let io_err = io_error(path);
    let format_err = |reason: String| SavedImageError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(File::open(path).map_err(io_err)?);
    // The JSON files are small; a layer's data is never read.
    let mut jsons = HashMap::new();
    let mut has_links = false;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let name = entry.path().map_err(io_err)?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        has_links |= kind.is_symlink() || kind.is_hard_link();
        if name.ends_with(".json") && entry.size() < 64 << 20 {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(io_err)?;
            jsons.insert(name, buf);
        }
    }
    let manifest = jsons
        .get("manifest.json")
        .ok_or_else(|| format_err("it has no manifest.json".into()))?;
    let manifest: Vec<Entry> = serde_json::from_slice(manifest)
        .map_err(|e| format_err(format!("bad manifest.json: {e}")))?;
    let mut layers = Vec::new();
    for entry in manifest {
        let config = jsons
            .get(&entry.config)
            .ok_or_else(|| format_err(format!("it lacks the image config {}", entry.config)))?;
        let config: Config = serde_json::from_slice(config)
            .map_err(|e| format_err(format!("bad image config {}: {e}", entry.config)))?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(format_err(format!(
                "manifest.json lists {} layers, the config {} names {}",
                entry.layers.len(),
                entry.config,
                config.rootfs.diff_ids.len()
            )));
        }
        let chains = berth_core::layers::chain_ids(&config.rootfs.diff_ids);
        layers.extend(
            entry
                .layers
                .into_iter()
                .zip(chains)
                .map(|(path, chain_id)| Layer { path, chain_id }),
        );
    }
    Ok(SavedImage { layers, has_links })
}

/// Copies the archive at `src` to `dst` without the entries named in `skip` (blocking).
/// The engine loading it takes the layers it already has from its own store.
pub fn copy_without(
    src: &Path,
    dst: &Path,
    skip: &BTreeSet<String>,
) -> Result<(), SavedImageError> {
    let (src_err, dst_err) = (io_error(src), io_error(dst));
    let mut archive = tar::Archive::new(File::open(src).map_err(src_err)?);
    let out = File::create(dst).map_err(dst_err)?;
    let mut builder = tar::Builder::new(io::BufWriter::new(out));
    for entry in archive.entries().map_err(src_err)? {
        let mut entry = entry.map_err(src_err)?;
        let name = entry
            .path()
            .map_err(src_err)?
            .to_string_lossy()
            .into_owned();
        if skip.contains(&name) {
            continue;
        }
        let mut header = entry.header().clone();
        // Reading `entry` and writing the copy fail alike here; the error names both.
        builder
            .append_data(&mut header, &name, &mut entry)
            .map_err(|source| SavedImageError::Copy {
                src: src.to_path_buf(),
                dst: dst.to_path_buf(),
                source,
            })?;
    }
    builder
        .into_inner()
        .map_err(dst_err)?
        .into_inner()
        .map_err(|e| dst_err(e.into_error()))?
        .sync_all()
        .map_err(dst_err)
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> SavedImageError + Copy + '_ {
    move |source| SavedImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::saved_image;

    #[test]
    fn thinning_drops_only_named_layers() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = saved_image(dir.path(), false)?;
        let image = read(&src)?;
        assert!(!image.has_links);
        let chains = berth_core::layers::chain_ids(&["sha256:1".into(), "sha256:2".into()]);
        assert_eq!(
            image.layers,
            [
                Layer {
                    path: "a/layer.tar".into(),
                    chain_id: chains[0].clone()
                },
                Layer {
                    path: "b/layer.tar".into(),
                    chain_id: chains[1].clone()
                },
            ]
        );
        let dst = dir.path().join("thin.tar");
        copy_without(&src, &dst, &["a/layer.tar".to_string()].into())?;
        let mut names = Vec::new();
        for e in tar::Archive::new(File::open(&dst)?).entries()? {
            names.push(e?.path()?.display().to_string());
        }
        assert_eq!(names, ["manifest.json", "c.json", "b/layer.tar"]);
        Ok(())
    }

    #[test]
    fn links_are_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert!(read(&saved_image(dir.path(), true)?)?.has_links);
        Ok(())
    }

    #[test]
    fn what_is_not_a_save_is_named() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("empty.tar");
        tar::Builder::new(File::create(&path)?).finish()?;
        let e = read(&path).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("empty.tar") && e.contains("no manifest.json")),
            "{e:?}"
        );
        let missing = read(&dir.path().join("nope.tar")).err();
        assert!(
            matches!(missing, Some(SavedImageError::Io { .. })),
            "{missing:?}"
        );
        Ok(())
    }
}
