//! Checks made on a spooled upload before any streamed answer starts, so a bad
//! upload is a real 4xx status, not an error event after a 200.

use super::extract::{Source, open_source};
use crate::error::{Error, Result};
use crate::rack::Rack;
use std::io::Read;
use std::path::Path;

/// Largest upload accepted unless `berth server --max-upload` says otherwise.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;

/// Refuses compressed and obviously-not-tar bodies by their first bytes, with a
/// message naming what was sent. The server takes plain tar only: a compressed
/// upload could expand far past the size limit (a gzip bomb) before any check.
pub fn sniff(head: &[u8]) -> Result<(), String> {
    const COMPRESSED: &[(&[u8], &str)] = &[
        (&[0x1f, 0x8b], "gzip"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"PK\x03\x04", "zip"),
    ];
    for (magic, name) in COMPRESSED {
        if head.starts_with(magic) {
            return Err(format!(
                "the upload is {name}-compressed; send a plain (uncompressed) tar of the source directory, as `berth deploy` does"
            ));
        }
    }
    if head.len() < 512 {
        return Err(format!(
            "the upload is not a tar archive ({} bytes, shorter than one tar header); send a tar of the source directory",
            head.len()
        ));
    }
    let ustar = &head[257..262] == b"ustar";
    let checksum_ok = tar_checksum_ok(&head[..512]);
    if !ustar && !checksum_ok {
        return Err(
            "the upload is not a tar archive (no tar header at its start); send a tar of the source directory"
                .into(),
        );
    }
    Ok(())
}

fn tar_checksum_ok(header: &[u8]) -> bool {
    let field = &header[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

fn head_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)?
        .take(512)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Checks and unpacks a spooled upload into the server's temp dir and reads its
/// manifest; every failure names the problem.
pub async fn open_checked(
    rack: &Rack,
    tar: tempfile::TempPath,
    manifest: String,
) -> Result<Source> {
    let head = head_of(&tar)?;
    sniff(&head).map_err(Error::Invalid)?;
    let source = open_source(rack, tar.to_path_buf(), manifest).await?;
    drop(tar);
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, name, &b"hi"[..]).expect("append");
        b.into_inner().expect("tar")
    }

    #[test]
    fn sniff_names_what_was_sent() {
        assert!(sniff(&tar_with("a.txt")).is_ok());
        let gz = [0x1f, 0x8b, 8, 0, 0, 0];
        assert!(sniff(&gz).expect_err("gzip").contains("gzip-compressed"));
        assert!(sniff(b"BZh91AY").expect_err("bz").contains("bzip2"));
        assert!(sniff(b"PK\x03\x04rest").expect_err("zip").contains("zip"));
        assert!(sniff(b"hello").expect_err("short").contains("not a tar"));
        assert!(sniff(&[b'x'; 600]).expect_err("text").contains("not a tar"));
        assert!(sniff(&[]).expect_err("empty").contains("not a tar"));
    }
}
