//! `berth rack backup` and `berth rack restore`: the rack's state as one
//! archive, and a fresh data dir made from it.
//!
//! The archive is a tar of:
//! - `manifest.json` (first): berth's version, the store's schema version, the
//!   rack id, whether the master key is inside, the rack's volumes (kept by the
//!   engine, not in the archive) and the size and SHA-256 of every other member;
//! - `berth.db`: a consistent snapshot of the store taken with SQLite's online
//!   backup API while the server runs (apps, builds, releases, sealed env
//!   values, tokens as hashes, certificates with sealed keys, the ACME account,
//!   timers' state, the audit);
//! - `ca/ca.pem`, `ca/ca.key`: the cluster CA, so agents and clients that pin
//!   its fingerprint keep trusting the restored server;
//! - `master.key`, only when asked for (`with_key`); the whole tar is then
//!   sealed with a passphrase: Argon2id derives a key that seals it with
//!   XChaCha20-Poly1305 (`SEALED_MAGIC` ‖ Argon2 costs ‖ salt ‖ nonce ‖
//!   ciphertext, the header as associated data).
//!
//! Restore never writes into the target: it unpacks into a temp dir next to
//! it, checks every member against the manifest, checks the schema, opens the
//! store with the key (which must open its sealed values), then renames the
//! temp dir into place.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_store::{MasterKey, SCHEMA_VERSION, Store};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The archive layout this code writes and reads.
pub const FORMAT: u32 = 1;
/// The first bytes of an archive sealed with a passphrase.
pub const SEALED_MAGIC: &[u8; 16] = b"berth-backup-v1\0";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = SEALED_MAGIC.len() + 12 + SALT_LEN + NONCE_LEN;
/// Argon2id costs: 64 MiB, 3 passes, one lane (OWASP's recommended minimum is
/// 19 MiB with 2 passes).
const ARGON_M_KIB: u32 = 64 * 1024;
const ARGON_T: u32 = 3;
const ARGON_P: u32 = 1;
/// Shortest passphrase accepted when sealing.
pub const MIN_PASSPHRASE: usize = 8;

/// The CA files a rack keeps in `DATA/ca/` that the archive carries. The API's
/// own certificate is issued again at start.
const CA_FILES: &[&str] = &["ca.pem", "ca.key"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub berth_version: String,
    pub schema_version: i64,
    pub rack_id: String,
    pub created: String,
    pub with_key: bool,
    /// The rack's volumes on the engine (their data is not in the archive:
    /// back them up with `berth volumes backup`).
    pub volumes: Vec<VolumeEntry>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeEntry {
    pub app: String,
    pub name: String,
    pub engine_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Why a restore (or reading an archive) was refused. Each names the problem
/// and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "the target data dir {0} exists and is not empty; restore into a new or empty directory (a restore never overwrites a rack)"
    )]
    TargetNotEmpty(PathBuf),
    #[error(
        "the archive is empty; pass the file `berth rack backup` wrote on stdin (berth rack restore --data-dir DIR < rack.tar)"
    )]
    Empty,
    #[error(
        "the archive is sealed with a passphrase (it holds the master key); pass it with --passphrase-file FILE or run on a terminal to be asked"
    )]
    PassphraseNeeded,
    #[error(
        "the passphrase does not open the archive, or the archive is damaged or truncated; check the passphrase, and the copy of the file (its size and checksum)"
    )]
    WrongPassphrase,
    #[error(
        "the archive is damaged or truncated ({0}); use an intact copy (compare its size and checksum with the original) or take a new backup"
    )]
    Damaged(String),
    #[error(
        "the archive was written by berth {berth} with store schema {found}; this berth knows schemas up to {known}; restore with berth {berth} or newer"
    )]
    NewerSchema {
        berth: String,
        found: i64,
        known: i64,
    },
    #[error(
        "the archive holds no master key (it was taken without --with-key); pass the old rack's key file with --master-key DATA/master.key, or env values and certificate keys could not be read"
    )]
    KeyNeeded,
    #[error(
        "the master key {0} does not open this store's sealed values; pass the master.key of the rack the backup was taken from"
    )]
    WrongKey(String),
    #[error(
        "master key {path}: {reason}; pass the 32-byte master.key of the rack the backup was taken from"
    )]
    BadKeyFile { path: String, reason: String },
    #[error("{0}")]
    Store(#[from] berth_store::StoreError),
    #[error("cannot write {path}: {source}; check that the directory is writable and has room")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the rack's archive, sealed with `passphrase` when `with_key`.
pub async fn create(
    rack: &Arc<Rack>,
    with_key: bool,
    passphrase: Option<String>,
) -> Result<Vec<u8>> {
    let passphrase = match (with_key, passphrase) {
        (true, Some(p)) if p.chars().count() >= MIN_PASSPHRASE => Some(p),
        (true, Some(_)) => {
            return Err(Error::Invalid(format!(
                "the passphrase is too short; use at least {MIN_PASSPHRASE} characters"
            )));
        }
        (true, None) => {
            return Err(Error::Invalid(
                "a backup with the master key is sealed with a passphrase; give one (--passphrase-file FILE, or on a terminal)".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(Error::Invalid(
                "a passphrase seals only a backup with the master key; add --with-key or leave the passphrase out".into(),
            ));
        }
        (false, None) => None,
    };
    let volumes = rack_volumes(rack).await?;
    let rack2 = rack.clone();
    tokio::task::spawn_blocking(move || {
        let tar = write_tar(&rack2, with_key, volumes)?;
        match passphrase {
            Some(p) => seal(&tar, &p),
            None => Ok(tar),
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("the backup task failed: {e}")))?
}

async fn rack_volumes(rack: &Rack) -> Result<Vec<VolumeEntry>> {
    let found = rack
        .runtime
        .list_volumes(berth_runtime::LABEL_RACK, &rack.rack_id)
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|v| {
            Some(VolumeEntry {
                app: v.labels.get(berth_runtime::LABEL_APP)?.clone(),
                name: v.labels.get(crate::volumes::LABEL_VOLUME)?.clone(),
                engine_name: v.name,
            })
        })
        .collect())
}

fn write_tar(rack: &Rack, with_key: bool, volumes: Vec<VolumeEntry>) -> Result<Vec<u8>> {
    let tmp = rack.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let dir = tempfile::tempdir_in(&tmp)?;
    let db = dir.path().join("berth.db");
    rack.store.backup_to(&db)?;
    let mut files: Vec<(String, Vec<u8>)> = vec![("berth.db".into(), std::fs::read(&db)?)];
    for name in CA_FILES {
        let path = rack.data_dir.join("ca").join(name);
        match std::fs::read(&path) {
            Ok(bytes) => files.push((format!("ca/{name}"), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    if with_key {
        files.push((
            "master.key".into(),
            std::fs::read(rack.data_dir.join("master.key"))?,
        ));
    }
    let manifest = Manifest {
        format: FORMAT,
        berth_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: SCHEMA_VERSION,
        rack_id: rack.rack_id.clone(),
        created: berth_store::now_rfc3339(),
        with_key,
        volumes,
        members: files
            .iter()
            .map(|(path, bytes)| Member {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(bytes)),
            })
            .collect(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("the backup manifest: {e}")))?;
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, "manifest.json", &manifest)?;
    for (path, bytes) in &files {
        append(&mut builder, path, bytes)?;
    }
    Ok(builder.into_inner()?)
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, bytes)?;
    Ok(())
}

fn derive_key(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Option<[u8; 32]> {
    let params = argon2::Params::new(m, t, p, Some(32)).ok()?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .ok()?;
    Some(key)
}

fn seal(plain: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let salt: [u8; SALT_LEN] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
    out.extend_from_slice(SEALED_MAGIC);
    for n in [ARGON_M_KIB, ARGON_T, ARGON_P] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive_key(passphrase, &salt, ARGON_M_KIB, ARGON_T, ARGON_P)
        .ok_or_else(|| Error::Internal("deriving the archive key failed".into()))?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &out[..HEADER_LEN],
            },
        )
        .map_err(|_| Error::Internal("sealing the archive failed".into()))?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Whether `archive` is sealed with a passphrase (and restoring it needs one).
pub fn is_sealed(archive: &[u8]) -> bool {
    archive.starts_with(SEALED_MAGIC)
}

fn unseal(archive: &[u8], passphrase: &str) -> Result<Vec<u8>, RestoreError> {
    if archive.len() < HEADER_LEN + 16 {
        return Err(RestoreError::Damaged(format!(
            "a sealed archive of {} bytes is shorter than its header",
            archive.len()
        )));
    }
    let word = |i: usize| {
        let at = SEALED_MAGIC.len() + 4 * i;
        u32::from_le_bytes([
            archive[at],
            archive[at + 1],
            archive[at + 2],
            archive[at + 3],
        ])
    };
    let (m, t, p) = (word(0), word(1), word(2));
    // Costs far above what this code writes are a damaged header, not work to do.
    if m > 4 * ARGON_M_KIB || t > 16 * ARGON_T || p > 16 {
        return Err(RestoreError::Damaged(
            "the sealed archive's header names impossible key costs".into(),
        ));
    }
    let salt_at = SEALED_MAGIC.len() + 12;
    let salt = &archive[salt_at..salt_at + SALT_LEN];
    let nonce = &archive[salt_at + SALT_LEN..HEADER_LEN];
    let key = derive_key(passphrase, salt, m, t, p).ok_or_else(|| {
        RestoreError::Damaged("the sealed archive's header names invalid key costs".into())
    })?;
    XChaCha20Poly1305::new((&key).into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: &archive[HEADER_LEN..],
                aad: &archive[..HEADER_LEN],
            },
        )
        .map_err(|_| RestoreError::WrongPassphrase)
}

/// What a restore needs besides the archive.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    /// Opens a sealed archive.
    pub passphrase: Option<String>,
    /// The old rack's `master.key`, for an archive taken without the key.
    pub master_key: Option<PathBuf>,
}

/// What was restored.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub apps: u64,
    pub releases: u64,
}

/// Whether `path` may name a member: `manifest.json`, `berth.db`,
/// `master.key` or one of `ca/`'s files.
fn allowed_member(path: &str) -> bool {
    matches!(path, "manifest.json" | "berth.db" | "master.key")
        || path
            .strip_prefix("ca/")
            .is_some_and(|name| CA_FILES.contains(&name))
}

/// Reads and checks the archive's members against its manifest.
fn read_members(tar_bytes: &[u8]) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), RestoreError> {
    use std::io::Read;
    if tar_bytes.is_empty() {
        return Err(RestoreError::Empty);
    }
    let damaged = |what: String| RestoreError::Damaged(what);
    let mut archive = tar::Archive::new(tar_bytes);
    let mut members = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| damaged(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(format!("a tar header: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| damaged(format!("a member's name: {e}")))?
            .to_string_lossy()
            .into_owned();
        if !allowed_member(&path) || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!(
                "unexpected member {path}: not something `berth rack backup` writes"
            )));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| damaged(format!("member {path} is cut short: {e}")))?;
        if members.insert(path.clone(), bytes).is_some() {
            return Err(damaged(format!("member {path} appears twice")));
        }
    }
    let manifest = members
        .remove("manifest.json")
        .ok_or_else(|| damaged("it has no manifest.json".into()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| damaged(format!("its manifest.json does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(damaged(format!(
            "archive format {} is not the format {FORMAT} this berth {} reads",
            manifest.format,
            env!("CARGO_PKG_VERSION")
        )));
    }
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(RestoreError::NewerSchema {
            berth: manifest.berth_version.clone(),
            found: manifest.schema_version,
            known: SCHEMA_VERSION,
        });
    }
    for member in &manifest.members {
        let bytes = members.get(&member.path).ok_or_else(|| {
            damaged(format!(
                "member {} named in the manifest is missing",
                member.path
            ))
        })?;
        if bytes.len() as u64 != member.size {
            return Err(damaged(format!(
                "member {} has {} bytes, the manifest says {}",
                member.path,
                bytes.len(),
                member.size
            )));
        }
        if hex::encode(Sha256::digest(bytes)) != member.sha256 {
            return Err(damaged(format!(
                "member {}'s SHA-256 differs from the manifest's",
                member.path
            )));
        }
    }
    if let Some(extra) = members
        .keys()
        .find(|k| !manifest.members.iter().any(|m| &m.path == *k))
    {
        return Err(damaged(format!("member {extra} is not in the manifest")));
    }
    if !members.contains_key("berth.db") {
        return Err(damaged("it holds no berth.db".into()));
    }
    if manifest.with_key != members.contains_key("master.key") {
        return Err(damaged(
            "the manifest and the members disagree on the master key".into(),
        ));
    }
    Ok((manifest, members))
}

fn key_from(bytes: &[u8], path: &str) -> Result<MasterKey, RestoreError> {
    let key: [u8; 32] = bytes.try_into().map_err(|_| RestoreError::BadKeyFile {
        path: path.into(),
        reason: format!("expected 32 bytes, found {}", bytes.len()),
    })?;
    Ok(MasterKey::from_bytes(key))
}

/// Whether `target` may receive a restore: absent, or an empty directory.
fn check_target(target: &Path) -> Result<(), RestoreError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(RestoreError::TargetNotEmpty(target.to_path_buf()))
        }
        Err(e) => Err(RestoreError::Io {
            path: target.to_path_buf(),
            source: e,
        }),
    }
}

/// Restores `archive` into the data dir `target` (absent or empty), all or
/// nothing.
pub fn restore(
    archive: &[u8],
    target: &Path,
    opts: &RestoreOptions,
) -> Result<Restored, RestoreError> {
    check_target(target)?;
    let plain;
    let tar_bytes = if is_sealed(archive) {
        let passphrase = opts
            .passphrase
            .as_deref()
            .ok_or(RestoreError::PassphraseNeeded)?;
        plain = unseal(archive, passphrase)?;
        &plain[..]
    } else {
        archive
    };
    let (manifest, members) = read_members(tar_bytes)?;
    let key = match (members.get("master.key"), &opts.master_key) {
        (Some(bytes), _) => key_from(bytes, "master.key in the archive")?,
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| RestoreError::BadKeyFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            key_from(&bytes, &shown)?
        }
        (None, None) => return Err(RestoreError::KeyNeeded),
    };

    // Stage next to the target, so the final rename stays on one filesystem.
    let target = std::path::absolute(target).map_err(io_at(target))?;
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "berth".into());
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.restore-"))
        .tempdir_in(parent)
        .map_err(io_at(parent))?;
    let root = stage.path();
    set_mode(root, 0o700)?;
    for (path, bytes) in &members {
        let dest = root.join(path);
        if let Some(dir) = dest.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            set_mode(dir, 0o700)?;
        }
        berth_store::seal::write_private(&dest, bytes).map_err(io_at(&dest))?;
    }
    let key_path = root.join("master.key");
    if !key_path.exists() {
        berth_store::seal::write_private(&key_path, key.as_bytes()).map_err(io_at(&key_path))?;
    }
    let db = root.join("berth.db");
    let found = berth_store::schema_version_of(&db)
        .map_err(|e| RestoreError::Damaged(format!("its berth.db cannot be read: {e}")))?;
    if found > SCHEMA_VERSION {
        return Err(RestoreError::NewerSchema {
            berth: manifest.berth_version.clone(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let (apps, releases) = {
        let store = Store::open(&db, key)?;
        store.check_key().map_err(|e| match e {
            berth_store::StoreError::Seal(_) => RestoreError::WrongKey(
                opts.master_key
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "in the archive".into()),
            ),
            e => RestoreError::Store(e),
        })?;
        let (apps, _, _, releases) = store.counts()?;
        (apps, releases)
    };

    // An empty target directory is replaced; rename(2) moves a directory over
    // an empty one atomically.
    let staged = stage.keep();
    if let Err(e) = std::fs::rename(&staged, &target) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(RestoreError::Io {
            path: target,
            source: e,
        });
    }
    Ok(Restored {
        manifest,
        apps,
        releases,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RestoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in members {
            append(&mut b, path, bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn sealing_round_trips_and_refuses_a_wrong_passphrase() {
        let sealed = seal(b"hello tar", "correct horse").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(unseal(&sealed, "correct horse").unwrap(), b"hello tar");
        assert!(matches!(
            unseal(&sealed, "wrong horse"),
            Err(RestoreError::WrongPassphrase)
        ));
        assert!(matches!(
            unseal(&sealed[..HEADER_LEN - 3], "correct horse"),
            Err(RestoreError::Damaged(_))
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(unseal(&flipped, "correct horse").is_err());
    }

    #[test]
    fn members_are_checked_against_the_manifest() {
        let db = b"not really a db";
        let manifest = |sha: String, schema: i64| Manifest {
            format: FORMAT,
            berth_version: "9.9.9".into(),
            schema_version: schema,
            rack_id: "r".into(),
            created: String::new(),
            with_key: false,
            volumes: vec![],
            members: vec![Member {
                path: "berth.db".into(),
                size: db.len() as u64,
                sha256: sha,
            }],
        };
        let good = hex::encode(Sha256::digest(db));
        let m = serde_json::to_vec(&manifest(good.clone(), SCHEMA_VERSION)).unwrap();
        assert!(read_members(&tar_of(&[("manifest.json", &m), ("berth.db", db)])).is_ok());

        let bad = serde_json::to_vec(&manifest("00".into(), SCHEMA_VERSION)).unwrap();
        let err = read_members(&tar_of(&[("manifest.json", &bad), ("berth.db", db)]));
        assert!(matches!(err, Err(RestoreError::Damaged(m)) if m.contains("SHA-256")));

        let newer = serde_json::to_vec(&manifest(good, SCHEMA_VERSION + 1)).unwrap();
        let err = read_members(&tar_of(&[("manifest.json", &newer), ("berth.db", db)]));
        assert!(matches!(err, Err(RestoreError::NewerSchema { .. })));

        let err = read_members(&tar_of(&[("manifest.json", &m)]));
        assert!(matches!(err, Err(RestoreError::Damaged(m)) if m.contains("missing")));

        let err = read_members(&tar_of(&[
            ("manifest.json", &m),
            ("berth.db", db),
            ("ca/other.key", b"x"),
        ]));
        assert!(matches!(err, Err(RestoreError::Damaged(m)) if m.contains("unexpected")));
        assert!(matches!(read_members(&[]), Err(RestoreError::Empty)));
    }

    #[test]
    fn a_non_empty_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("berth.db"), b"x").unwrap();
        let err = restore(b"anything", dir.path(), &RestoreOptions::default());
        assert!(matches!(err, Err(RestoreError::TargetNotEmpty(_))));
    }
}
