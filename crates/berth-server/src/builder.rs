//! Builds from an uploaded source tar: checked extraction into the server's own
//! temp dir, one engine build per distinct build spec, a release on success.

use crate::deploy::{Progress, step};
use crate::rack::{Rack, RackError, Result};
use berth_api::Event;
use berth_core::{ImageSource, Manifest};
use berth_runtime::{BuildRequest, LABEL_APP, LABEL_RACK};
use berth_store::{BuildRow, ReleaseRow};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use tokio::sync::mpsc;

/// Releases whose images are kept so that a rollback needs no rebuild.
pub const KEEP_RELEASES: usize = 10;

/// A checked relative path inside the source root.
fn safe_relative(path: &Path) -> std::result::Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "{} climbs out of the source with '..'",
                    path.display()
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{} is an absolute path", path.display()));
            }
        }
    }
    Ok(out)
}

/// Extracts `tar_path` into `dest`, refusing anything that could write outside
/// it: `..`, absolute paths, links pointing out, device files.
pub fn extract_source(tar_path: &Path, dest: &Path) -> std::result::Result<u64, String> {
    extract_checked(tar_path, dest).map_err(|e| match e {
        ExtractError::Refused(m) | ExtractError::DiskFull(m) => m,
    })
}

/// Why an upload was not extracted.
#[derive(Debug)]
enum ExtractError {
    /// The upload itself is at fault (a 4xx).
    Refused(String),
    /// The server's disk is (a 507).
    DiskFull(String),
}

impl From<String> for ExtractError {
    fn from(message: String) -> Self {
        ExtractError::Refused(message)
    }
}

fn extract_checked(tar_path: &Path, dest: &Path) -> std::result::Result<u64, ExtractError> {
    let file = std::fs::File::open(tar_path).map_err(|e| e.to_string())?;
    let tar_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let mut files = 0;
    let entries = archive
        .entries()
        .map_err(|e| format!("the upload is not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the upload is not a valid tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad path in the upload: {e}"))?
            .into_owned();
        let rel = safe_relative(&path)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| format!("bad link in the upload: {e}"))?
                    .ok_or_else(|| format!("link {} has no target", rel.display()))?;
                let base = if kind == tar::EntryType::Symlink {
                    rel.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    PathBuf::new()
                };
                let mut depth: i64 = base.components().count() as i64;
                for c in target.components() {
                    match c {
                        Component::Normal(_) => depth += 1,
                        Component::ParentDir => depth -= 1,
                        Component::CurDir => {}
                        _ => depth = -1,
                    }
                    if depth < 0 {
                        return Err(ExtractError::Refused(format!(
                            "link {} points outside the source ({}); replace it with the file itself",
                            rel.display(),
                            target.display()
                        )));
                    }
                }
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => {
                return Err(ExtractError::Refused(format!(
                    "{} is a {other:?} entry; only files, directories and links can be uploaded",
                    rel.display()
                )));
            }
        }
        let size = entry.header().entry_size().unwrap_or(0);
        if entry.raw_file_position().saturating_add(size) > tar_len {
            return Err(ExtractError::Refused(format!(
                "the upload is truncated: it ends inside {}; send the whole tar again",
                rel.display()
            )));
        }
        // The error's text names the server's temp path; the kind is what matters.
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            match crate::disk::full_message("unpack the upload", "tmp", dest, &e) {
                Some(message) => ExtractError::DiskFull(message),
                None => {
                    ExtractError::Refused(format!("cannot unpack {}: {}", rel.display(), e.kind()))
                }
            }
        })?;
        if !unpacked {
            return Err(ExtractError::Refused(format!(
                "{} would be written outside the source dir",
                rel.display()
            )));
        }
        files += 1;
    }
    Ok(files)
}

/// Tars `dir` (already checked) as a build context.
fn pack_context(dir: &Path, out: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

/// Reads and validates the manifest from an extracted source.
pub fn read_manifest(root: &Path, name: &str) -> Result<(Manifest, String)> {
    let rel = safe_relative(Path::new(name)).map_err(RackError::BadRequest)?;
    let path = root.join(&rel);
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| {
            RackError::BadRequest(format!(
                "cannot read {name} from the upload ({e}); add a {name} next to your Dockerfile (see the README)"
            ))
        })?;
    let manifest = berth_core::parse_manifest(name, &text)?;
    Ok((manifest, text))
}

pub struct Source {
    pub dir: tempfile::TempDir,
    pub manifest: Manifest,
    pub manifest_text: String,
}

/// Extracts an uploaded tar and reads its manifest.
pub async fn open_source(rack: &Rack, tar_path: PathBuf, manifest_name: String) -> Result<Source> {
    let tmp = rack.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let dir = tempfile::tempdir_in(&tmp)?;
    let dest = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        extract_checked(&tar_path, &dest)?;
        read_manifest(&dest, &manifest_name).map_err(|e| ExtractError::Refused(e.to_string()))
    })
    .await
    .map_err(|e| RackError::BadRequest(e.to_string()))?
    .map_err(|e| match e {
        ExtractError::Refused(m) => RackError::BadRequest(m),
        ExtractError::DiskFull(m) => RackError::DiskFull(m),
    })
    .map(|(manifest, manifest_text)| Source {
        dir,
        manifest,
        manifest_text,
    })
}

/// Builds every service image of `source` and creates a release with the
/// app's current environment.
pub async fn build(
    rack: &Rack,
    app: &str,
    source: &Source,
    progress: &Progress,
) -> Result<(BuildRow, ReleaseRow)> {
    let build = rack.store.create_build(app, &source.manifest_text)?;
    step(progress, format!("build {} started", build.id)).await;
    rack.logs.event(app, &format!("build {} started", build.id));
    let result = build_images(rack, app, &build, source, progress).await;
    match result {
        Ok(images) => {
            rack.store.finish_build(app, &build.id, &images, None)?;
            rack.logs
                .event(app, &format!("build {} succeeded", build.id));
            let env_version = rack.store.app(app)?.env_version;
            let release = rack.store.create_release(
                app,
                Some(&build.id),
                env_version,
                &source.manifest_text,
                &format!("build {}", build.id),
            )?;
            step(progress, format!("release {} created", release.id)).await;
            let build = rack.store.build(app, &build.id)?;
            Ok((build, release))
        }
        Err(e) => {
            rack.store
                .finish_build(app, &build.id, &BTreeMap::new(), Some(&e.to_string()))?;
            rack.logs
                .event(app, &format!("build {} failed: {e}", build.id));
            Err(e)
        }
    }
}

async fn build_images(
    rack: &Rack,
    app: &str,
    build: &BuildRow,
    source: &Source,
    progress: &Progress,
) -> Result<BTreeMap<String, String>> {
    // Services sharing one build spec share one image.
    let mut specs: Vec<(berth_core::BuildSpec, Vec<String>)> = Vec::new();
    let mut images = BTreeMap::new();
    for (name, svc) in &source.manifest.services {
        match &svc.source {
            ImageSource::Image(image) => {
                images.insert(name.clone(), image.clone());
            }
            ImageSource::Build(spec) => match specs.iter_mut().find(|(s, _)| s == spec) {
                Some((_, names)) => names.push(name.clone()),
                None => specs.push((spec.clone(), vec![name.clone()])),
            },
        }
    }
    let single = specs.len() == 1;
    for (spec, services) in specs {
        let tag = if single {
            format!("berth/{app}:{}", build.id)
        } else {
            format!("berth/{app}:{}-{}", build.id, services[0])
        };
        let context_dir = source
            .dir
            .path()
            .join(safe_relative(Path::new(&spec.path)).map_err(RackError::BadRequest)?);
        if !context_dir.is_dir() {
            return Err(RackError::BadRequest(format!(
                "build path {:?} of service {} is not a directory in the upload",
                spec.path, services[0]
            )));
        }
        if !context_dir.join(&spec.dockerfile).is_file() {
            return Err(RackError::BadRequest(format!(
                "{}/{} is missing from the upload; add a Dockerfile or set build.dockerfile in berth.yml",
                spec.path, spec.dockerfile
            )));
        }
        let context_tar = source
            .dir
            .path()
            .with_extension(format!("ctx-{}.tar", services[0]));
        let dir = context_dir.clone();
        let out = context_tar.clone();
        let packed = tokio::task::spawn_blocking(move || pack_context(&dir, &out))
            .await
            .map_err(|e| RackError::BadRequest(e.to_string()))?;
        if let Err(e) = packed {
            let _ = std::fs::remove_file(&context_tar);
            let what = format!("write the build context of service {}", services[0]);
            return Err(
                match crate::disk::full_message(&what, "tmp", &rack.data_dir.join("tmp"), &e) {
                    Some(message) => RackError::DiskFull(message),
                    None => RackError::Io(e),
                },
            );
        }
        // Only labels that stay the same from build to build: each label is a
        // build step, and one that changes every build (the build id) would miss
        // the cache and cost an intermediate container. The build is in the tag.
        let labels = rack.labels(app);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let (tx, mut rx) = mpsc::channel::<String>(256);
            let forward = {
                let progress = progress.clone();
                let source = format!("build/{}", build.id);
                async move {
                    let mut lines = Vec::new();
                    while let Some(line) = rx.recv().await {
                        let line = line.trim_end().to_string();
                        if line.is_empty() {
                            continue;
                        }
                        lines.push((crate::logs::now_nanos(), line.clone()));
                        let _ = progress.send(Event::Build { text: line }).await;
                    }
                    (source, lines)
                }
            };
            let request = BuildRequest {
                context_tar: &context_tar,
                dockerfile: spec.dockerfile.clone(),
                tag: tag.clone(),
                args: spec.args.clone(),
                labels: labels.clone(),
            };
            let (result, (log_source, lines)) =
                tokio::join!(rack.runtime.build_image(request, tx), forward);
            for (ts, line) in lines {
                rack.logs.append_at(app, ts, &log_source, &line);
            }
            match result {
                Err(e) if attempt == 1 && lost_cached_layer(&e) => {
                    step(
                        progress,
                        "a cached layer went away mid-build (another app's images were deleted); building again",
                    )
                    .await;
                }
                other => break other,
            }
        };
        let _ = std::fs::remove_file(&context_tar);
        result?;
        for name in services {
            images.insert(name, tag.clone());
        }
    }
    Ok(images)
}

/// Builds of different apps share cached layers (the same Dockerfile steps);
/// deleting one app's images prunes untagged parents that a concurrent build
/// just reused, and the engine then fails that build with a missing digest or
/// image. Building again makes the layers anew.
fn lost_cached_layer(error: &berth_runtime::RuntimeError) -> bool {
    let message = error.to_string();
    message.contains("failed to get digest") || message.contains("No such image")
}

/// Removes this app's build images that none of the last `KEEP_RELEASES`
/// releases (nor the promoted one, nor a running process) uses.
pub async fn prune_images(rack: &Rack, app: &str) -> Result<()> {
    let releases = rack.store.releases(app)?;
    let current = rack.store.app(app)?.release;
    let processes = rack.store.processes(Some(app))?;
    let mut keep_builds: std::collections::BTreeSet<String> = releases
        .iter()
        .take(KEEP_RELEASES)
        .chain(releases.iter().filter(|r| {
            Some(&r.id) == current.as_ref() || processes.iter().any(|p| p.release == r.id)
        }))
        .filter_map(|r| r.build.clone())
        .collect();
    // A build without a release yet (just made by `berth build`) is kept too.
    for b in rack.store.builds(app)?.iter().take(2) {
        keep_builds.insert(b.id.clone());
    }
    for image in rack.runtime.list_images(LABEL_APP, app).await? {
        if image.labels.get(LABEL_RACK) != Some(&rack.rack_id) {
            continue;
        }
        // Identical builds share one image under several tags: untagging the
        // unwanted ones removes the image only when no kept tag remains.
        let prefix = format!("berth/{app}:");
        for tag in &image.tags {
            let Some(build) = tag.strip_prefix(&prefix) else {
                continue;
            };
            let build = build.split('-').next().unwrap_or(build);
            if !keep_builds.contains(build) {
                rack.runtime.remove_image(tag).await?;
            }
        }
        if image.tags.is_empty() {
            rack.runtime.remove_image(&image.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_deleted_under_a_build_is_told_from_a_failing_build() {
        use berth_runtime::RuntimeError;
        let lost = RuntimeError::Build(
            "failed to get digest sha256:53ee: open /var/lib/docker/image/overlay2/imagedb/content/sha256/53ee: no such file or directory".into(),
        );
        assert!(lost_cached_layer(&lost));
        let failing =
            RuntimeError::Build("The command '/bin/sh -c make' returned a non-zero code: 2".into());
        assert!(!lost_cached_layer(&failing));
    }

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        f
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    #[test]
    fn plain_files_extract() {
        let f = tar_with(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "dir/a.txt", &b"hi"[..]).unwrap();
        });
        let dest = tempfile::tempdir().unwrap();
        assert_eq!(extract_source(f.path(), dest.path()), Ok(1));
        assert_eq!(std::fs::read(dest.path().join("dir/a.txt")).unwrap(), b"hi");
    }

    #[test]
    fn escaping_links_are_refused() {
        for target in ["/etc/passwd", "../../outside", "a/../../../x"] {
            let f = tar_with(|b| {
                let mut h = header(tar::EntryType::Symlink, 0);
                b.append_link(&mut h, "sub/link", target).unwrap();
            });
            let dest = tempfile::tempdir().unwrap();
            let err = extract_source(f.path(), dest.path()).unwrap_err();
            assert!(err.contains("outside"), "{target}: {err}");
        }
        let f = tar_with(|b| {
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "sub/link", "../sibling").unwrap();
        });
        let dest = tempfile::tempdir().unwrap();
        assert!(extract_source(f.path(), dest.path()).is_ok());
    }

    #[test]
    fn devices_and_garbage_are_refused() {
        let f = tar_with(|b| {
            let mut h = header(tar::EntryType::Char, 0);
            b.append_data(&mut h, "dev", &b""[..]).unwrap();
        });
        let dest = tempfile::tempdir().unwrap();
        assert!(
            extract_source(f.path(), dest.path())
                .unwrap_err()
                .contains("Char")
        );
        let mut junk = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut junk, &[7u8; 1500]).unwrap();
        assert!(extract_source(junk.path(), dest.path()).is_err());
    }

    #[test]
    fn relative_paths_are_checked() {
        assert!(safe_relative(Path::new("../x")).is_err());
        assert!(safe_relative(Path::new("/x")).is_err());
        assert_eq!(
            safe_relative(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
    }
}
