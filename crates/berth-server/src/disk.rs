//! A full disk under the data dir: how to recognise it and how to say it.
//!
//! The server writes to its data dir all the time: uploads and build contexts
//! (`DATA/tmp`), app logs (`DATA/logs`) and the store. When that disk fills, the
//! operation at hand fails with a message naming the directory, the free space
//! left and the fix, instead of the bare `os error 28`.

use std::path::Path;

/// Whether `error` means the disk (or the user's quota) is full, also when the
/// OS error is wrapped in another (the tar crate adds the path that way).
pub fn is_full(error: &std::io::Error) -> bool {
    let os_full = |e: &std::io::Error| {
        e.kind() == std::io::ErrorKind::StorageFull
            || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(os_full) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Bytes available to this user on the filesystem holding `path`.
// The statvfs fields are u64 on 64-bit Linux, narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is a valid
    // out-pointer of the right type; it is read only after statvfs succeeded.
    let stat = unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// `12.3 MiB`, `512 KiB`, `0 B`.
pub fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// "cannot WHAT in the server's data dir (PART): no space left on the disk (N
/// free); free space ..." for a full disk, `None` for any other error. `part`
/// is the dir's name inside the data dir (`tmp`, `logs`): API clients are told
/// where, not the server's absolute paths; `dir` is where free space is measured.
pub fn full_message(what: &str, part: &str, dir: &Path, error: &std::io::Error) -> Option<String> {
    if !is_full(error) {
        return None;
    }
    let free = free_bytes(dir)
        .map(human)
        .unwrap_or_else(|| "unknown".into());
    Some(format!(
        "cannot {what} in the server's data dir ({part}/): no space left on the disk ({free} \
         free); free space on the disk holding the data dir (old uploads, app logs, other files), \
         or move it to a bigger disk with `berth server --data DIR`, and try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_with_its_dir_free_space_and_fix() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_full(&full));
        assert!(is_full(&std::io::Error::from_raw_os_error(libc::EDQUOT)));
        let dir = std::env::temp_dir();
        let message = full_message("write the build context", "tmp", &dir, &full).expect("full");
        assert!(message.contains("data dir (tmp/)"), "{message}");
        assert!(message.contains("no space left"), "{message}");
        assert!(message.contains("free space"), "{message}");
        assert!(message.contains("--data"), "{message}");
        let other = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(!is_full(&other));
        assert_eq!(full_message("x", "tmp", &dir, &other), None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(2048), "2 KiB");
        assert_eq!(human(3 * 1024 * 1024 + 1024 * 512), "3.5 MiB");
        assert!(free_bytes(&std::env::temp_dir()).is_some());
    }
}
