//! Unpacking an uploaded source safely into the server's temp dir, and packing
//! a build context: nothing in an upload can write outside its directory.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_core::Manifest;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A checked relative path inside the source root.
pub(super) fn safe_relative(path: &Path) -> std::result::Result<PathBuf, String> {
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
pub(super) fn pack_context(dir: &Path, out: &Path) -> std::io::Result<()> {
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
    let rel = safe_relative(Path::new(name)).map_err(Error::Invalid)?;
    let path = root.join(&rel);
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| {
            Error::Invalid(format!(
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
    .map_err(|e| Error::Invalid(e.to_string()))?
    .map_err(|e| match e {
        ExtractError::Refused(m) => Error::Invalid(m),
        ExtractError::DiskFull(m) => Error::DiskFull(m),
    })
    .map(|(manifest, manifest_text)| Source {
        dir,
        manifest,
        manifest_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
