//! Directory trees in memory: a volume's content (shared by every container
//! mounting it) and a container's own files, with tar archives in and out as
//! the engine's archive API has them.

use crate::sync::lock;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

pub(crate) type SharedFs = Arc<Mutex<Fs>>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("{0}: Not a directory")]
    NotADirectory(String),
    #[error("{0}: Is a directory")]
    IsADirectory(String),
}

#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32, mtime: u64 },
    File { mode: u32, mtime: u64, data: Bytes },
}

/// Paths are relative to the tree's root, `/`-separated, without `.` or `..`;
/// the root itself is `""` and always a directory.
#[derive(Debug, Default)]
pub(crate) struct Fs {
    nodes: BTreeMap<String, Node>,
}

/// `/a/./b/` → `a/b`; `None` for a path that climbs out (`..`).
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parent_dirs(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

impl Fs {
    pub(crate) fn is_dir(&self, rel: &str) -> bool {
        rel.is_empty() || matches!(self.nodes.get(rel), Some(Node::Dir { .. }))
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        rel.is_empty() || self.nodes.contains_key(rel)
    }

    pub(crate) fn read_file(&self, rel: &str) -> Option<Bytes> {
        match self.nodes.get(rel) {
            Some(Node::File { data, .. }) => Some(data.clone()),
            _ => None,
        }
    }

    /// Creates the missing directories above `rel`.
    fn make_parents(&mut self, rel: &str) -> Result<(), FsError> {
        for dir in parent_dirs(rel) {
            match self.nodes.get(dir) {
                Some(Node::Dir { .. }) => {}
                Some(Node::File { .. }) => return Err(FsError::NotADirectory(dir.to_string())),
                None => {
                    self.nodes.insert(
                        dir.to_string(),
                        Node::Dir {
                            mode: 0o755,
                            mtime: unix_now(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    pub(crate) fn make_dir(&mut self, rel: &str, mode: u32) -> Result<(), FsError> {
        if rel.is_empty() {
            return Ok(());
        }
        self.make_parents(rel)?;
        match self.nodes.get(rel) {
            Some(Node::Dir { .. }) => Ok(()),
            Some(Node::File { .. }) => Err(FsError::NotADirectory(rel.to_string())),
            None => {
                self.nodes.insert(
                    rel.to_string(),
                    Node::Dir {
                        mode,
                        mtime: unix_now(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Writes (or replaces) a file, making the directories above it.
    pub(crate) fn write_file(&mut self, rel: &str, data: Bytes, mode: u32) -> Result<(), FsError> {
        if self.is_dir(rel) {
            return Err(FsError::IsADirectory(rel.to_string()));
        }
        self.make_parents(rel)?;
        self.nodes.insert(
            rel.to_string(),
            Node::File {
                mode,
                mtime: unix_now(),
                data,
            },
        );
        Ok(())
    }

    /// A tar of `rel` and what is below it, the top entry named `name` (`.`
    /// for a directory's content only, as `GET /archive?path=/dir/.` has it).
    /// `None` when `rel` does not exist.
    pub(crate) fn archive(&self, rel: &str, name: &str) -> Option<std::io::Result<Vec<u8>>> {
        let top = if rel.is_empty() {
            Node::Dir {
                mode: 0o755,
                mtime: unix_now(),
            }
        } else {
            self.nodes.get(rel)?.clone()
        };
        Some(self.write_archive(rel, name, &top))
    }

    fn write_archive(&self, rel: &str, name: &str, top: &Node) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, name, top)?;
        if matches!(top, Node::Dir { .. }) {
            let prefix = if rel.is_empty() {
                String::new()
            } else {
                format!("{rel}/")
            };
            for (path, node) in self.nodes.range(prefix.clone()..) {
                let Some(below) = path.strip_prefix(&prefix) else {
                    break;
                };
                append(&mut builder, &format!("{name}/{below}"), node)?;
            }
        }
        builder.into_inner()
    }

    /// Extracts a tar into the directory `rel`; what has the same name is
    /// replaced. Links and devices are skipped, as are names that climb out.
    pub(crate) fn extract(&mut self, rel: &str, tar: &[u8]) -> std::io::Result<()> {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let Some(inner) = normalize(&raw) else {
                continue;
            };
            let path = match (rel.is_empty(), inner.is_empty()) {
                (_, true) => continue,
                (true, false) => inner,
                (false, false) => format!("{rel}/{inner}"),
            };
            let mode = entry.header().mode().unwrap_or(0o644);
            let kind = entry.header().entry_type();
            let result = if kind.is_dir() {
                self.make_dir(&path, mode)
            } else if kind.is_file() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                self.write_file(&path, Bytes::from(data), mode)
            } else {
                Ok(())
            };
            result.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        }
        Ok(())
    }
}

fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, node: &Node) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    let (data, name): (&[u8], String) = match node {
        Node::Dir { mode, mtime } => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode);
            header.set_mtime(*mtime);
            (&[], format!("{name}/"))
        }
        Node::File { mode, mtime, data } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_mtime(*mtime);
            (data, name.to_string())
        }
    };
    header.set_size(data.len() as u64);
    header.set_uid(0);
    header.set_gid(0);
    // The tar crate drops a leading `./` from names; the engine keeps it
    // (`./`, `./x`), so short names go into the header as they are.
    if let Some(gnu) = header.as_gnu_mut()
        && name.len() < gnu.name.len()
    {
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        return builder.append(&header, data);
    }
    builder.append_data(&mut header, name, data)
}

/// A container's view of files: its mounts, and its own files elsewhere.
#[derive(Clone, Default)]
pub(crate) struct Files {
    /// (normalized mount path, the volume's tree), longest path first.
    mounts: Vec<(String, SharedFs)>,
    own: SharedFs,
}

impl Files {
    pub(crate) fn new(mut mounts: Vec<(String, SharedFs)>, own: SharedFs) -> Files {
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        Files { mounts, own }
    }

    /// The tree holding the normalized `path`, and the path inside it.
    pub(crate) fn locate(&self, path: &str) -> (SharedFs, String) {
        for (mount, fs) in &self.mounts {
            if path == mount {
                return (fs.clone(), String::new());
            }
            if let Some(rest) = path.strip_prefix(mount.as_str())
                && let Some(rest) = rest.strip_prefix('/')
            {
                return (fs.clone(), rest.to_string());
            }
        }
        (self.own.clone(), path.to_string())
    }

    pub(crate) fn read(&self, path: &str) -> Option<Bytes> {
        let (fs, rel) = self.locate(&normalize(path)?);
        lock(&fs).read_file(&rel)
    }

    pub(crate) fn write(&self, path: &str, data: Bytes) -> Result<(), FsError> {
        let normalized = normalize(path).ok_or_else(|| FsError::NotADirectory(path.to_string()))?;
        let (fs, rel) = self.locate(&normalized);
        lock(&fs).write_file(&rel, data, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                String::from_utf8_lossy(&e.path_bytes()).into_owned()
            })
            .collect()
    }

    #[test]
    fn archives_name_entries_like_the_engine() {
        let mut fs = Fs::default();
        fs.write_file("sub/y", Bytes::from_static(b"yo"), 0o644)
            .unwrap();
        fs.write_file("x", Bytes::from_static(b"hi"), 0o644)
            .unwrap();
        let content = fs.archive("", ".").unwrap().unwrap();
        assert_eq!(names(&content), vec!["./", "./sub/", "./sub/y", "./x"]);
        let whole = fs.archive("", "data").unwrap().unwrap();
        assert_eq!(
            names(&whole),
            vec!["data/", "data/sub/", "data/sub/y", "data/x"]
        );
        let one = fs.archive("x", "x").unwrap().unwrap();
        assert_eq!(names(&one), vec!["x"]);
        assert!(fs.archive("nope", "nope").is_none());

        let mut copy = Fs::default();
        copy.write_file("x", Bytes::from_static(b"old"), 0o644)
            .unwrap();
        copy.extract("", &content).unwrap();
        assert_eq!(copy.read_file("x").unwrap(), Bytes::from_static(b"hi"));
        assert_eq!(copy.read_file("sub/y").unwrap(), Bytes::from_static(b"yo"));
    }

    #[test]
    fn paths_are_normalized_and_mounts_win() {
        assert_eq!(normalize("/a/./b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("/a/../b"), None);
        let volume = SharedFs::default();
        let files = Files::new(vec![("data".into(), volume.clone())], SharedFs::default());
        files.write("/data/x", Bytes::from_static(b"1")).unwrap();
        files.write("/tmp/x", Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            lock(&volume).read_file("x").unwrap(),
            Bytes::from_static(b"1")
        );
        assert_eq!(files.read("/tmp/x").unwrap(), Bytes::from_static(b"2"));
        assert!(files.write("/data", Bytes::new()).is_err());
    }
}
