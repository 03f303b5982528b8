//! Test fixture: a small `docker save` archive.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A saved image of two layers, `a/layer.tar` and `b/layer.tar`.
pub fn saved_image(dir: &Path, link: bool) -> io::Result<PathBuf> {
    let path = dir.join(if link { "linked.tar" } else { "save.tar" });
    let mut b = tar::Builder::new(File::create(&path)?);
    let mut add = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data)
    };
    add(
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["a/layer.tar","b/layer.tar"]}]"#,
    )?;
    add(
        "c.json",
        br#"{"rootfs":{"type":"layers","diff_ids":["sha256:1","sha256:2"]}}"#,
    )?;
    add("a/layer.tar", &[1u8; 1024])?;
    add("b/layer.tar", &[2u8; 1024])?;
    if link {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "c/layer.tar", "../a/layer.tar")?;
    }
    b.finish()?;
    Ok(path)
}
