//! Code sync: watching the source directory and deciding, for each batch of
//! changed files, whether they can be copied into the running containers (files
//! a `COPY`/`ADD` put in the image) or the app must be built and rolled again.

use super::dockerfile;
use anyhow::{Context, Result};
use berth_client::source::Dockerignore;
use berth_core::{ImageSource, Manifest};
use berth_runtime::{ContainerState, LABEL_APP, LABEL_PROCESS, LABEL_RACK, LABEL_SERVICE, Runtime};
use futures_util::StreamExt;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer, notify};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Directories never watched: berth's own (`.berth/start` is the data dir of
/// `--keep`) and version control's.
const UNWATCHED: &[&str] = &[".berth", ".git"];

/// Watches `dir` recursively; each debounced batch of changed paths (relative to
/// `dir`, `/`-separated, sorted) arrives on the receiver.
pub fn watch(
    dir: &Path,
) -> Result<(
    Debouncer<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<Vec<String>>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let root = dir.to_path_buf();
    let mut debouncer = new_debouncer(
        Duration::from_millis(200),
        move |result: DebounceEventResult| {
            let Ok(events) = result else {
                return;
            };
            let mut paths: Vec<String> = events
                .into_iter()
                .filter_map(|e| relative(&root, &e.path))
                .filter(|p| {
                    !UNWATCHED
                        .iter()
                        .any(|u| p == u || p.starts_with(&format!("{u}/")))
                })
                .collect();
            paths.sort();
            paths.dedup();
            if !paths.is_empty() {
                let _ = tx.send(paths);
            }
        },
    )
    .context("cannot watch the source directory for changes (pass --no-sync to do without)")?;
    debouncer
        .watcher()
        .watch(dir, notify::RecursiveMode::Recursive)
        .with_context(|| {
            format!(
                "cannot watch {} for changes; raise fs.inotify.max_user_watches or pass --no-sync",
                dir.display()
            )
        })?;
    Ok((debouncer, rx))
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let text = rel.to_str()?.replace('\\', "/");
    (!text.is_empty()).then_some(text)
}

/// The size and modification time of each file under the source directory, so that
/// events that changed nothing (inotify reports opens and reads too, which packing
/// the source and copying files cause) are dropped.
#[derive(Default)]
pub struct Seen(std::collections::HashMap<String, Option<(std::time::SystemTime, u64)>>);

impl Seen {
    /// Every file under `dir` (outside [`UNWATCHED`]) as it is now.
    pub fn scan(dir: &Path) -> Seen {
        let mut seen = Seen::default();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((abs, rel)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&abs) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if UNWATCHED.contains(&child.as_str()) {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push((entry.path(), child)),
                    Ok(_) => {
                        let stamp = stamp(&entry.path());
                        seen.0.insert(child, stamp);
                    }
                    Err(_) => {}
                }
            }
        }
        seen
    }

    /// The paths of `batch` whose file differs from when it was last seen
    /// (written, created, deleted); directories are left out.
    pub fn changed(&mut self, dir: &Path, batch: Vec<String>) -> Vec<String> {
        batch
            .into_iter()
            .filter(|path| {
                let abs = dir.join(path);
                if abs.is_dir() {
                    return false;
                }
                let now = stamp(&abs);
                let before = self.0.insert(path.clone(), now);
                match before {
                    Some(before) => before != now,
                    None => now.is_some(),
                }
            })
            .collect()
    }
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What to do about one batch of changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Build and roll the app again.
    pub rebuild: bool,
    /// Why (the first path that needs it).
    pub reason: Option<String>,
    /// service → (file in the source, path in its containers).
    pub copies: BTreeMap<String, Vec<(String, String)>>,
}

/// What the watcher needs to know of the app's build.
pub struct Layout {
    /// The manifest's path in the source.
    pub manifest: String,
    pub ignore: Dockerignore,
    /// (service, build context, Dockerfile in the source, its copies).
    pub builds: Vec<(String, String, String, Vec<dockerfile::Copy>)>,
}

impl Layout {
    /// Reads the Dockerfiles `manifest` builds with, from `dir`.
    pub fn read(dir: &Path, manifest_rel: &str, manifest: &Manifest) -> Result<Layout> {
        let ignore = berth_client::source::load_dockerignore(dir)?;
        let mut builds = Vec::new();
        for (name, service) in &manifest.services {
            if let ImageSource::Build(spec) = &service.source {
                let file = spec.dockerfile_in_source();
                let text = std::fs::read_to_string(dir.join(&file))
                    .with_context(|| format!("cannot read {file}"))?;
                builds.push((
                    name.clone(),
                    dockerfile::clean(&spec.path),
                    file,
                    dockerfile::copies(&text),
                ));
            }
        }
        Ok(Layout {
            manifest: manifest_rel.to_string(),
            ignore,
            builds,
        })
    }

    /// The plan for `changed` (relative paths); `exists` says whether a path is
    /// a file now (deleted paths are left in the containers until the next build).
    pub fn plan(&self, changed: &[String], is_file: impl Fn(&str) -> Option<bool>) -> Plan {
        let mut plan = Plan::default();
        for path in changed {
            let state = is_file(path);
            if state == Some(false) {
                continue; // a directory: its files come as changes of their own
            }
            let build_input = path == &self.manifest
                || path == ".dockerignore"
                || self.builds.iter().any(|(_, _, file, _)| file == path);
            if !build_input && self.ignore.is_excluded(path) {
                continue;
            }
            let mut synced = false;
            if !build_input {
                for (service, context, _, copies) in &self.builds {
                    let rel = if context.is_empty() {
                        Some(path.as_str())
                    } else {
                        path.strip_prefix(context.as_str())
                            .and_then(|r| r.strip_prefix('/'))
                    };
                    let targets = rel
                        .map(|r| dockerfile::targets(copies, r))
                        .unwrap_or_default();
                    for target in targets {
                        synced = true;
                        if state.is_some() {
                            plan.copies
                                .entry(service.clone())
                                .or_default()
                                .push((path.clone(), target));
                        }
                    }
                }
            }
            if !synced && !plan.rebuild {
                plan.rebuild = true;
                plan.reason = Some(path.clone());
            }
        }
        plan
    }
}

/// Copies `files` ((file in `dir`, path in the container)) into every running
/// process container of `service`; returns how many containers got them.
pub async fn copy_into(
    runtime: &dyn Runtime,
    rack_id: &str,
    app: &str,
    service: &str,
    dir: &Path,
    files: &[(String, String)],
) -> Result<usize> {
    let tar = pack(dir, files)?;
    let containers: Vec<_> = runtime
        .list_containers(LABEL_APP, app)
        .await?
        .into_iter()
        .filter(|c| {
            c.labels.get(LABEL_RACK).map(String::as_str) == Some(rack_id)
                && c.labels.get(LABEL_SERVICE).map(String::as_str) == Some(service)
                && c.labels.contains_key(LABEL_PROCESS)
                && c.state == ContainerState::Running
        })
        .collect();
    for c in &containers {
        let body = bytes::Bytes::from(tar.clone());
        let stream = futures_util::stream::once(async move { Ok(body) }).boxed();
        runtime
            .upload_archive(&c.id, "/", stream)
            .await
            .with_context(|| format!("cannot copy changed files into {}", c.name))?;
    }
    Ok(containers.len())
}

/// A tar of `files`, each under its container path (relative to `/`), owned by root
/// as `COPY` makes them, with the file's mode and time.
fn pack(dir: &Path, files: &[(String, String)]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (src, dest) in files {
        let path: PathBuf = dir.join(src);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            // Gone again since the change was seen: nothing to copy.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let meta = std::fs::metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&meta);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, dest.trim_start_matches('/'), data.as_slice())
            .with_context(|| format!("cannot pack {}", path.display()))?;
    }
    Ok(builder.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            manifest: "berth.yml".into(),
            ignore: Dockerignore::parse("*.md\n").unwrap_or_default(),
            builds: vec![
                (
                    "web".into(),
                    String::new(),
                    "Dockerfile".into(),
                    dockerfile::copies("FROM scratch\nCOPY www /www\n"),
                ),
                (
                    "api".into(),
                    "api".into(),
                    "api/Dockerfile".into(),
                    dockerfile::copies("FROM scratch\nCOPY src /app/src\n"),
                ),
            ],
        }
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_real_changes_count() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("www/.git")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("www/a.html"), "a").unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Seen::scan(root);
        // Read, not written: no change.
        assert!(seen.changed(root, paths(&["www/a.html"])).is_empty());
        std::fs::write(root.join("www/a.html"), "longer").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("www/b.html"), "b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen.changed(root, paths(&["www", "www/a.html", "www/b.html"])),
            paths(&["www/a.html", "www/b.html"])
        );
        std::fs::remove_file(root.join("www/b.html")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen.changed(root, paths(&["www/b.html"])),
            paths(&["www/b.html"])
        );
        assert!(
            seen.changed(root, paths(&["www/b.html", "gone"]))
                .is_empty()
        );
    }

    #[test]
    fn copied_files_sync_and_the_rest_rebuilds() {
        let l = layout();
        let file = |_: &str| Some(true);
        let plan = l.plan(
            &paths(&["api/src/x.py", "www/index.html", "README.md"]),
            file,
        );
        assert!(!plan.rebuild, "{plan:?}");
        assert_eq!(
            plan.copies["web"],
            [("www/index.html".to_string(), "/www/index.html".to_string())]
        );
        assert_eq!(
            plan.copies["api"],
            [("api/src/x.py".to_string(), "/app/src/x.py".to_string())]
        );
        for rebuilds in [
            "Dockerfile",
            "api/Dockerfile",
            "berth.yml",
            "main.go",
            ".dockerignore",
        ] {
            let plan = l.plan(&paths(&["www/a.css", rebuilds]), file);
            assert!(plan.rebuild, "{rebuilds}");
            assert_eq!(plan.reason.as_deref(), Some(rebuilds));
        }
        // A deleted copied file stays until the next build; a deleted other file rebuilds.
        assert_eq!(l.plan(&paths(&["www/old.html"]), |_| None), Plan::default());
        assert!(l.plan(&paths(&["main.go"]), |_| None).rebuild);
        assert_eq!(l.plan(&paths(&["www"]), |_| Some(false)), Plan::default());
    }
}
