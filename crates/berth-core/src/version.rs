//! berth's version: the crate version, plus the tag a build may carry
//! (`0.1.0+next`). The tag lives in a fixed area of the binary after a marker, so
//! release tooling and tests can give a copy of one build its own version (what
//! `berth rack update` compares and records) without compiling again; an
//! untagged build is just the crate version.

use std::sync::OnceLock;

/// What precedes the tag area in the binary; it must occur there exactly once.
pub const TAG_MARKER: &[u8] = b"@berth-build-tag@";
/// Bytes after the marker that hold the tag, NUL-padded.
pub const TAG_SPACE: usize = 48;

const AREA: usize = TAG_MARKER.len() + TAG_SPACE;

const fn tag_area() -> [u8; AREA] {
    let mut area = [0u8; AREA];
    let mut i = 0;
    while i < TAG_MARKER.len() {
        area[i] = TAG_MARKER[i];
        i += 1;
    }
    area
}

#[used]
static TAG_AREA: [u8; AREA] = tag_area();

/// The version of this build: `CARGO_PKG_VERSION`, then `+TAG` when the binary
/// was tagged (see [`tag_binary`]).
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // A volatile read: the compiler must not fold the area's initial (empty)
        // value into the code, since the bytes may differ in the file.
        // SAFETY: TAG_AREA is a valid, aligned static array that nothing mutates.
        let area: [u8; AREA] = unsafe { std::ptr::read_volatile(&TAG_AREA) };
        let tag = &area[TAG_MARKER.len()..];
        let tag = &tag[..tag.iter().position(|b| *b == 0).unwrap_or(tag.len())];
        match std::str::from_utf8(tag) {
            Ok(tag) if !tag.is_empty() => format!("{}+{tag}", env!("CARGO_PKG_VERSION")),
            _ => env!("CARGO_PKG_VERSION").to_string(),
        }
    })
}

/// Why a binary cannot be tagged.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("the tag {0:?} must be 1 to {TAG_SPACE} characters of [A-Za-z0-9.-]")]
    BadTag(String),
    #[error("the file is not a berth binary with a tag area (found {0} tag areas, not one)")]
    NoArea(usize),
}

/// `binary` (the bytes of a berth executable) with its tag set to `tag`.
pub fn tag_binary(mut binary: Vec<u8>, tag: &str) -> Result<Vec<u8>, TagError> {
    let valid = !tag.is_empty()
        && tag.len() <= TAG_SPACE
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !valid {
        return Err(TagError::BadTag(tag.to_string()));
    }
    // The marker's own bytes may appear elsewhere too (where code uses them); the
    // area is the occurrence followed by a tag or NULs only.
    let found: Vec<usize> = memchr::memmem::find_iter(&binary, TAG_MARKER)
        .filter(|at| is_tag_area(binary.get(at + TAG_MARKER.len()..at + AREA)))
        .collect();
    let [at] = found[..] else {
        return Err(TagError::NoArea(found.len()));
    };
    let area = &mut binary[at + TAG_MARKER.len()..at + AREA];
    area.fill(0);
    area[..tag.len()].copy_from_slice(tag.as_bytes());
    Ok(binary)
}

fn is_tag_area(space: Option<&[u8]>) -> bool {
    let Some(space) = space else { return false };
    let end = space.iter().position(|b| *b == 0).unwrap_or(space.len());
    space[..end]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        && space[end..].iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untagged_build_is_the_crate_version() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn a_tag_is_written_after_the_only_marker() {
        let mut file = b"head".to_vec();
        file.extend_from_slice(&tag_area());
        file.extend_from_slice(b"tail");
        let tagged = tag_binary(file, "next-2").expect("tag");
        let at = memchr::memmem::find(&tagged, TAG_MARKER).expect("marker") + TAG_MARKER.len();
        assert_eq!(&tagged[at..at + 7], b"next-2\0");
        assert!(tagged.ends_with(b"tail"));
        assert!(matches!(
            tag_binary(b"no area".to_vec(), "x"),
            Err(TagError::NoArea(0))
        ));
        assert!(matches!(
            tag_binary(tagged.clone(), "bad tag"),
            Err(TagError::BadTag(_))
        ));
    }
}
