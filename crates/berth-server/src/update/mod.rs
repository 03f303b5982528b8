//! `berth rack update`: the server moves to a new binary while apps and the
//! router keep serving. The old server checks the new binary runs, records
//! the update, keeps a copy of the store and of itself, and stops serving; its
//! process then runs the hand-over (`switch`): the new binary first starts as
//! a trial (which migrates the store and must get ready in time), then for
//! good in the same process. Once ready for good, the new server hands the
//! router's sockets to a router of its own version and records the update as
//! done. A failed update puts the store and the binary back (see `switch`).

mod pending;
mod switch;

pub use pending::Role;
pub use switch::{API_FD_VAR, Ended, inherited_api_socket, switch};

use crate::error::{Error, Result};
use crate::rack::Rack;
use pending::Pending;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `--version` of a new binary may take.
const VERSION_CHECK: Duration = Duration::from_secs(10);
/// Update folders kept (with the binary before each update and its store).
const KEEP_UPDATES: usize = 3;

/// Where the new binary comes from.
pub enum NewBinary {
    /// Uploaded through the API, with the SHA-256 the client computed.
    Uploaded {
        path: tempfile::TempPath,
        sha256: String,
    },
    /// Already put at the running binary's path (by a package upgrade, or by hand).
    InPlace,
}

/// Starts an update to `binary`: checks it, records the update, copies the
/// store and the running binary, and asks the server to stop serving so that
/// its process can hand over (see [`switch`]).
pub async fn start(
    rack: &Rack,
    binary: NewBinary,
    timeout: Duration,
) -> Result<berth_store::updates::UpdateRow> {
    let data_dir = rack.data_dir.clone();
    if rack.restart.is_requested() || pending::read(&data_dir)?.is_some() {
        return Err(Error::Conflict(
            "an update is already under way; wait for it (`berth rack releases`)".into(),
        ));
    }
    let install_path = running_binary_path()?;
    let running = sha256_of(Path::new("/proc/self/exe")).await?;
    let id = format!("u-{}", hex::encode(rand::random::<[u8; 4]>()));
    let dir = pending::updates_dir(&data_dir).join(&id);
    std::fs::create_dir_all(&dir)?;
    let checked = async {
        let (new_binary, uploaded) = stage(binary, &install_path, &running, &dir).await?;
        let to_version = version_of(&new_binary).await?;
        Ok::<_, Error>((new_binary, uploaded, to_version))
    };
    let (new_binary, uploaded, to_version) = match checked.await {
        Ok(checked) => checked,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let from_version = berth_core::version::version().to_string();
    let previous = previous_binary(&data_dir, &id);
    tokio::fs::copy("/proc/self/exe", &previous).await?;
    rack.store.insert_update(&id, &from_version, &to_version)?;
    let store_backup = dir.join("store.db");
    {
        let backup = store_backup.clone();
        let store = &rack.store;
        tokio::task::block_in_place(|| store.backup_to(&backup))?;
    }
    pending::write(
        &data_dir,
        &Pending {
            id: id.clone(),
            from_version,
            to_version,
            new_binary,
            install_path,
            uploaded,
            store_backup,
            timeout_secs: timeout.as_secs().max(1),
        },
    )?;
    tracing::info!(update = %id, "update: the server stops serving and hands over");
    rack.restart.request(&id);
    rack.store
        .update(&id)?
        .ok_or_else(|| Error::Internal(format!("update {id} was not recorded")))
}

/// The path the running binary was started from (what `/proc/self/exe` names,
/// also when a package upgrade has replaced the file since).
fn running_binary_path() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot find the running binary: {e}")))?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// Puts the new binary in the update's folder (an upload) or finds it at the
/// install path; refuses a damaged upload and the running binary itself.
async fn stage(
    binary: NewBinary,
    install_path: &Path,
    running: &str,
    dir: &Path,
) -> Result<(PathBuf, bool)> {
    let (path, uploaded) = match binary {
        NewBinary::Uploaded { path, sha256 } => {
            let staged = dir.join("berth");
            path.persist(&staged).map_err(|e| Error::Io(e.error))?;
            let got = sha256_of(&staged).await?;
            if !got.eq_ignore_ascii_case(sha256.trim()) {
                return Err(Error::Invalid(format!(
                    "the uploaded binary's SHA-256 is {got}, not {sha256} as sent: it was damaged on the way; send it again"
                )));
            }
            if got == running {
                return Err(Error::Invalid(
                    "the uploaded binary is the one running; build or download the new version and pass it with --binary".into(),
                ));
            }
            (staged, true)
        }
        NewBinary::InPlace => {
            if sha256_of(install_path).await? == running {
                return Err(Error::Invalid(format!(
                    "the binary at {} is the one running (berth {}); put the new version there first, or send it with `berth rack update --binary FILE`",
                    install_path.display(),
                    berth_core::version::version()
                )));
            }
            (install_path.to_path_buf(), false)
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok((path, uploaded))
}

async fn sha256_of(path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing a binary: {e}")))?
    .map_err(Error::Io)
}

/// The version a berth binary says it is (`berth --version`), which also shows
/// that it runs on this machine.
async fn version_of(binary: &Path) -> Result<String> {
    let run = tokio::process::Command::new(binary)
        .arg("--version")
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(VERSION_CHECK, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(Error::Invalid(format!(
                "the new binary does not run here ({e}); is it a berth binary for this machine's architecture?"
            )));
        }
        Err(_) => {
            return Err(Error::Invalid(format!(
                "the new binary's `--version` did not answer within {} s; is it a berth binary?",
                VERSION_CHECK.as_secs()
            )));
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().strip_prefix("berth ") {
        Some(version) if output.status.success() && !version.is_empty() => Ok(version.to_string()),
        _ => Err(Error::Invalid(format!(
            "the new binary is not berth: `--version` said {:?} ({})",
            text.trim(),
            output.status
        ))),
    }
}

/// The running binary as it was before update `id`.
fn previous_binary(data_dir: &Path, id: &str) -> PathBuf {
    pending::updates_dir(data_dir).join(id).join("previous")
}

/// Puts `backup` in place of the store. A killed trial may have left a
/// write-ahead log of the migrated store: it would be replayed onto the copy,
/// so it goes too.
fn restore_store(data_dir: &Path, backup: &Path) -> std::io::Result<()> {
    let db = data_dir.join("berth.db");
    let tmp = data_dir.join("berth.db.restore");
    std::fs::copy(backup, &tmp)?;
    std::fs::rename(&tmp, &db)?;
    for suffix in ["berth.db-wal", "berth.db-shm"] {
        match std::fs::remove_file(data_dir.join(suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Ends the pending update in `state`, saying `message`, and forgets it.
fn finish(data_dir: &Path, pending: &Pending, state: &str, message: &str) {
    match crate::open_store(data_dir) {
        Ok(store) => {
            if let Err(e) = store.finish_update(&pending.id, state, message) {
                tracing::warn!(update = %pending.id, "cannot record the update's end: {e}");
            }
        }
        Err(e) => tracing::warn!(update = %pending.id, "cannot record the update's end: {e}"),
    }
    if let Err(e) = pending::clear(data_dir) {
        tracing::warn!(update = %pending.id, "cannot clear the pending update: {e}");
    }
}

/// Settles an update that was under way when a server stopped without handing
/// over (killed, or the machine restarted): a server of the new version counts
/// it as done; any other puts the store from before it back (the new version
/// may have migrated it). Called before the store is opened.
pub fn recover_interrupted(data_dir: &Path) {
    let pending = match pending::read(data_dir) {
        Ok(Some(pending)) => pending,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot read the pending update: {e}; leaving it");
            return;
        }
    };
    if Role::from_env(Some(&pending)) != Role::Plain {
        return;
    }
    if berth_core::version::version() == pending.to_version {
        finish(
            data_dir,
            &pending,
            "done",
            "the server stopped during the update and started again with the new version",
        );
        return;
    }
    let message = match restore_store(data_dir, &pending.store_backup) {
        Ok(()) => format!(
            "interrupted: the server stopped during the update and berth {} started; the store from before the update is back",
            berth_core::version::version()
        ),
        Err(e) => format!("interrupted, and the store from before it could not be put back: {e}"),
    };
    tracing::warn!(update = %pending.id, "{message}");
    finish(data_dir, &pending, "rolled back", &message);
}

/// What this server is in an update.
pub fn role(data_dir: &Path) -> Role {
    Role::from_env(pending::read(data_dir).ok().flatten().as_ref())
}

/// Called once the server serves: a trial says it is ready; the new server for
/// good hands the router over and ends the update; any other server hands
/// over a router of another version.
pub async fn on_ready(rack: &Rack, role: &Role) {
    match role {
        // A server started on a new binary another way (a package upgrade
        // restarting the unit) moves the router along too.
        Role::Plain => {
            let own = berth_core::version::version();
            if let Some(running) = rack.router.version().await
                && running != own
            {
                let message = hand_over_router(rack).await;
                tracing::info!("{message}");
            }
        }
        Role::Trial(id) => {
            if let Err(e) = std::fs::write(pending::ready_path(&rack.data_dir, id), b"") {
                tracing::error!(update = %id, "cannot say the trial is ready: {e}");
            }
        }
        Role::Final(id) => {
            let Ok(Some(pending)) = pending::read(&rack.data_dir) else {
                return;
            };
            let message = hand_over_router(rack).await;
            tracing::info!(update = %id, "update done: {message}");
            finish(&rack.data_dir, &pending, "done", &message);
            prune(&rack.data_dir, id);
        }
    }
}

/// Moves the router to this server's version by a socket hand-over (no
/// connection is closed or refused); says what happened.
async fn hand_over_router(rack: &Rack) -> String {
    let own = berth_core::version::version();
    let before = rack.router.version().await;
    if before.as_deref() == Some(own) {
        return format!("the router already runs berth {own}");
    }
    let before = before.unwrap_or_else(|| "of unknown version".into());
    match rack.router.upgrade().await {
        Ok(()) => {
            format!("the router moved from berth {before} to {own}, handing over its sockets")
        }
        Err(e) => {
            tracing::warn!("the router was not replaced: {e}");
            format!("the router keeps running berth {before}: {e}")
        }
    }
}

/// Removes all but the newest [`KEEP_UPDATES`] update folders (and the new
/// binary of `current`, now installed).
fn prune(data_dir: &Path, current: &str) {
    let dir = pending::updates_dir(data_dir);
    let staged = dir.join(current).join("berth");
    // Unless the binary could not be installed and runs from there.
    if running_binary_path().is_ok_and(|running| running != staged) {
        let _ = std::fs::remove_file(staged);
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut folders: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    folders.sort();
    let excess = folders.len().saturating_sub(KEEP_UPDATES);
    for (_, path) in folders.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(path);
    }
}
