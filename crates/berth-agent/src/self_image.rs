//! berth's own image on a node, made from the running binary without a
//! registry: the binary and the shared libraries it has loaded (read from
//! `/proc/self/maps`, so nothing like `ldd` is needed) on an empty base. The
//! node's router runs from it.

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SelfImageError {
    #[error("cannot read {path} to make berth's image: {source}")]
    Read { path: String, source: io::Error },
    #[error("the engine refused to build berth's image {tag}: {reason}")]
    Build { tag: String, reason: String },
}

/// The libraries this process has mapped (absolute paths of `.so` files).
fn loaded_libraries() -> BTreeSet<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/') && path.contains(".so"))
        .map(PathBuf::from)
        .collect()
}

/// The program interpreter an ELF binary names (`PT_INTERP`, e.g.
/// `/lib64/ld-linux-x86-64.so.2`): the kernel looks for it by this path,
/// which is often a link to the file `/proc/self/maps` shows.
fn interpreter(elf: &[u8]) -> Option<String> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let n = u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?);
        usize::try_from(n).ok()
    };
    // 64-bit little-endian ELF only (what berth is built as).
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (offset, size, count) = (
        u64_at(0x20)?,
        usize::from(u16_at(0x36)?),
        usize::from(u16_at(0x38)?),
    );
    (0..count).find_map(|i| {
        let header = offset + i * size;
        if u32_at(header)? != 3 {
            return None;
        }
        let (start, len) = (u64_at(header + 0x08)?, u64_at(header + 0x20)?);
        let text = elf.get(start..start + len)?;
        let text = text.split(|b| *b == 0).next()?;
        String::from_utf8(text.to_vec()).ok()
    })
}

/// The image tag for this binary: its version and a digest of its bytes, so
/// a replaced binary of the same version gets a new image.
fn tag_for(binary: &[u8]) -> String {
    // The recipe's own version goes in too: a new way of making the image
    // must not find an image made the old way.
    let digest = Sha256::new()
        .chain_update(b"recipe 2\n")
        .chain_update(binary)
        .finalize();
    let digest = hex::encode(&digest[..6]);
    format!("berth-self:{}-{digest}", env!("CARGO_PKG_VERSION"))
}

/// Makes sure the engine has berth's image of this binary; returns its tag.
pub async fn ensure(docker: &Docker, exe: &Path) -> Result<String, SelfImageError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| SelfImageError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let binary = read(exe)?;
    let tag = tag_for(&binary);
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let mut context = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        context.append_data(&mut header, path, bytes)
    };
    let io_err = |source| SelfImageError::Read {
        path: "the build context".into(),
        source,
    };
    add("Dockerfile", DOCKERFILE.as_bytes(), 0o644).map_err(io_err)?;
    add("root/berth", &binary, 0o755).map_err(io_err)?;
    let mut libraries = loaded_libraries();
    libraries.extend(interpreter(&binary).map(PathBuf::from));
    for library in libraries {
        // Resolve links so the file itself goes in, under the name it was loaded by.
        let bytes = read(&library)?;
        let inside = format!("root{}", library.display());
        add(&inside, &bytes, 0o755).map_err(io_err)?;
    }
    let context = context.into_inner().map_err(io_err)?;
    let options = BuildImageOptions {
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some([("berth.role".to_string(), "self".to_string())].into()),
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let failed = match step {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = failed {
            return Err(SelfImageError::Build { tag, reason });
        }
    }
    Ok(tag)
}

const DOCKERFILE: &str = "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/berth\"]\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_its_c_library_loaded() {
        let libraries = loaded_libraries();
        assert!(
            libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("libc.so")),
            "{libraries:?}"
        );
    }

    #[test]
    fn this_binary_names_its_interpreter() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let interp = interpreter(&exe).expect("a dynamically linked test binary");
        assert!(
            interp.starts_with('/') && interp.contains("ld-"),
            "{interp}"
        );
        assert_eq!(interpreter(b"not an elf"), None);
    }

    #[test]
    fn tags_follow_the_bytes() {
        assert_eq!(tag_for(b"a"), tag_for(b"a"));
        assert_ne!(tag_for(b"a"), tag_for(b"b"));
        assert!(tag_for(b"a").starts_with("berth-self:"));
    }
}
