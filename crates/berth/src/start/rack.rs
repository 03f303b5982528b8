//! The private rack of one `berth start`: its id and data dir (both fixed by the
//! source directory's path, so a crashed run's leftovers are found again), and the
//! sweep that removes everything carrying its `berth.rack` label.

use anyhow::{Context, Result, bail};
use berth_runtime::{LABEL_RACK, Runtime};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where one source directory's `berth start` keeps its rack.
pub struct Place {
    /// `s` and 11 hex digits of the source path's SHA-256: the `berth.rack` label of
    /// everything this directory's `berth start` creates.
    pub rack_id: String,
    /// The data dir used now.
    pub data_dir: PathBuf,
    /// Both data dirs a run for this directory may have left (temporary and `--keep`).
    pub candidates: [PathBuf; 2],
}

impl Place {
    pub fn new(source: &Path, keep: bool) -> Place {
        let digest = hex::encode(Sha256::digest(source.as_os_str().as_encoded_bytes()));
        let rack_id = format!("s{}", &digest[..11]);
        let temp = std::env::temp_dir().join(format!("berth-start-{}", &digest[..16]));
        let kept = source.join(".berth/start");
        let data_dir = if keep { kept.clone() } else { temp.clone() };
        Place {
            rack_id,
            data_dir,
            candidates: [temp, kept],
        }
    }
}

/// The pid file of a running `berth start` in its data dir.
const PID_FILE: &str = "start.pid";

/// Refuses when another `berth start` for the same directory still runs; else stops
/// the router and removes the data dir a crashed one left.
pub async fn clear_previous(place: &Place, source: &Path) -> Result<()> {
    for dir in &place.candidates {
        if !dir.exists() {
            continue;
        }
        if let Some(pid) = running_start(&dir.join(PID_FILE)) {
            bail!(
                "berth start already runs for {} (pid {pid}); stop it with Ctrl-C (or `kill {pid}`) first",
                source.display()
            );
        }
        // A router left running answers on its control socket until told to stop.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            berth_router::control::stop_router_at(&dir.join("router.sock")),
        )
        .await;
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the old data dir {}", dir.display()))?;
    }
    Ok(())
}

/// Writes this process's pid into the data dir.
pub fn write_pid(data_dir: &Path) -> Result<()> {
    std::fs::write(data_dir.join(PID_FILE), std::process::id().to_string())
        .with_context(|| format!("cannot write into the data dir {}", data_dir.display()))
}

/// The pid in `file` when that process is a live `berth` other than this one.
fn running_start(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    if pid == std::process::id() {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&cmdline);
    (text.contains("berth") && text.contains("start")).then_some(pid)
}

/// What a sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub containers: usize,
    pub volumes: usize,
    pub images: usize,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.containers + self.volumes + self.images == 0
    }
}

/// Removes every container, volume and image labelled with `rack_id`, and the app's
/// network. Nothing without the label is touched.
pub async fn sweep(runtime: &dyn Runtime, rack_id: &str, app: &str) -> Result<Swept> {
    let mut swept = Swept::default();
    let mut containers = runtime.list_containers(LABEL_RACK, rack_id).await?;
    containers.extend(
        runtime
            .list_containers("berth.helper.rack", rack_id)
            .await?,
    );
    for c in containers {
        runtime.remove_container(&c.id).await?;
        swept.containers += 1;
    }
    runtime
        .remove_network(&format!("berth-{rack_id}-{app}"))
        .await?;
    for v in runtime.list_volumes(LABEL_RACK, rack_id).await? {
        runtime.remove_volume(&v.name).await?;
        swept.volumes += 1;
    }
    // Newest first: an image built FROM another of the rack's goes before it.
    let mut images = runtime.list_images(LABEL_RACK, rack_id).await?;
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    for image in images {
        for tag in &image.tags {
            runtime.remove_image(tag).await?;
        }
        runtime.remove_image(&image.id).await?;
        swept.images += 1;
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_place_per_directory() {
        let a = Place::new(Path::new("/home/u/shop"), false);
        let b = Place::new(Path::new("/home/u/shop"), true);
        let c = Place::new(Path::new("/home/u/blog"), false);
        assert_eq!(a.rack_id, b.rack_id);
        assert_ne!(a.rack_id, c.rack_id);
        assert_eq!(a.rack_id.len(), 12);
        assert_eq!(b.data_dir, Path::new("/home/u/shop/.berth/start"));
        assert_eq!(a.candidates, b.candidates);
        assert_ne!(a.data_dir, b.data_dir);
    }
}
