//! The update under way, as a file in the data dir (`DATA/updates/pending.json`):
//! the servers it passes through (old, trial, new) share nothing else, and a
//! server starting while it exists knows an update was interrupted.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub from_version: String,
    pub to_version: String,
    /// The binary the new server runs from until it is installed.
    pub new_binary: PathBuf,
    /// Where the running server's binary is; the new one replaces it there once
    /// healthy (an uploaded binary), or is already there (an update in place).
    pub install_path: PathBuf,
    /// Whether the new binary still has to be put at `install_path`.
    pub uploaded: bool,
    /// The store as it was before the update (a consistent copy).
    pub store_backup: PathBuf,
    /// How long the new server may take to become ready.
    pub timeout_secs: u64,
}

/// `DATA/updates/`: one folder per update, and the pending file.
pub fn updates_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("updates")
}

fn pending_path(data_dir: &Path) -> PathBuf {
    updates_dir(data_dir).join("pending.json")
}

/// The file a trial server writes once it serves (`DATA/updates/<id>/ready`).
pub fn ready_path(data_dir: &Path, id: &str) -> PathBuf {
    updates_dir(data_dir).join(id).join("ready")
}

pub fn read(data_dir: &Path) -> std::io::Result<Option<Pending>> {
    match std::fs::read(pending_path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the pending file whole or not at all.
pub fn write(data_dir: &Path, pending: &Pending) -> std::io::Result<()> {
    let path = pending_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(pending)?)?;
    std::fs::rename(&tmp, &path)
}

pub fn clear(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(pending_path(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What this server process is in an update, from the `BERTH_UPDATE`
/// environment variable its launcher sets (`trial:<id>` or `final:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not part of an update.
    Plain,
    /// The new version's first start: it serves until it is ready, then is
    /// stopped and started again for good (see `switch`).
    Trial(String),
    /// The new version for good: it finishes the update once ready.
    Final(String),
}

pub const ROLE_VAR: &str = "BERTH_UPDATE";

impl Role {
    pub fn from_env(pending: Option<&Pending>) -> Role {
        let (Some(pending), Ok(value)) = (pending, std::env::var(ROLE_VAR)) else {
            return Role::Plain;
        };
        match value.split_once(':') {
            Some(("trial", id)) if id == pending.id => Role::Trial(id.to_string()),
            Some(("final", id)) if id == pending.id => Role::Final(id.to_string()),
            _ => Role::Plain,
        }
    }
}
