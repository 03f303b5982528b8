//! The hand-over from the old server to the new one, run by the old server's
//! process once it stopped serving (see `super`). It starts the new binary as a
//! trial child on the same API socket; once the trial is ready it stops it,
//! installs the binary and becomes the new server with `exec`, so the process
//! (the one systemd or a shell started) stays the same. Anything else (the
//! trial exits, is not ready in time, the `exec` fails) puts the store and the
//! binary back and becomes the old server again, also with `exec`.
//!
//! The API's listening socket is passed on as file descriptor 3 all along, so
//! clients are never refused: connections wait in its backlog while no server
//! accepts.

use super::pending::{self, Pending, ROLE_VAR};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that names the API socket's inherited descriptor.
pub const API_FD_VAR: &str = "BERTH_API_FD";
/// The descriptor the API socket gets in the next process.
const API_FD: RawFd = 3;
/// How long a ready trial may take to stop.
const TRIAL_STOP: Duration = Duration::from_secs(30);

/// How a hand-over ended without becoming a server (which it does by `exec`).
#[derive(Debug)]
pub enum Ended {
    /// `stop` was set while the trial ran: the update was rolled back and the
    /// process should exit (the service is being stopped).
    Stopped,
    /// Even the old binary could not be started again.
    Failed(std::io::Error),
}

/// Runs the hand-over of the pending update; it only returns when the update
/// was stopped (`stop`, set on SIGTERM) or nothing could be started.
pub fn switch(
    data_dir: &Path,
    api: &std::net::TcpListener,
    args: &[OsString],
    stop: &AtomicBool,
) -> Ended {
    let pending = match pending::read(data_dir) {
        Ok(Some(pending)) => pending,
        Ok(None) => return Ended::Failed(std::io::Error::other("no update is pending")),
        Err(e) => {
            return Ended::Failed(std::io::Error::other(format!(
                "cannot read the pending update: {e}"
            )));
        }
    };
    let api = api.as_raw_fd();
    let reason = match trial(data_dir, &pending, api, args, stop) {
        Ok(()) if stop.load(Ordering::SeqCst) => STOPPED.to_string(),
        Ok(()) => {
            let (binary, note) = install(&pending);
            if let Some(note) = note {
                tracing::warn!("{note}");
            }
            tracing::info!(to = %pending.to_version, "update: the new server takes over");
            let err = relaunch(&binary, args, api, Some(&format!("final:{}", pending.id)));
            format!("cannot start {}: {err}", binary.display())
        }
        Err(reason) => reason,
    };
    tracing::warn!(%reason, from = %pending.from_version, "update failed; going back");
    let binary = roll_back(data_dir, &pending, &reason);
    if stop.load(Ordering::SeqCst) {
        return Ended::Stopped;
    }
    Ended::Failed(relaunch(&binary, args, api, None))
}

const STOPPED: &str = "the server was told to stop (SIGTERM) during the update";

/// Starts the trial and waits until it is ready; `Err` says why it is not.
fn trial(
    data_dir: &Path,
    pending: &Pending,
    api: RawFd,
    args: &[OsString],
    stop: &AtomicBool,
) -> Result<(), String> {
    let ready = pending::ready_path(data_dir, &pending.id);
    let mut command = Command::new(&pending.new_binary);
    command
        .args(args)
        .env(ROLE_VAR, format!("trial:{}", pending.id))
        .env(API_FD_VAR, API_FD.to_string())
        .stdin(Stdio::null());
    // SAFETY: the closure only calls async-signal-safe functions (dup2, fcntl).
    unsafe {
        command.pre_exec(move || pass_api_socket(api));
    }
    let mut child = command.spawn().map_err(|e| {
        format!(
            "the new binary {} did not start: {e}",
            pending.new_binary.display()
        )
    })?;
    let deadline = Instant::now() + Duration::from_secs(pending.timeout_secs);
    loop {
        if ready.exists() {
            terminate(&mut child);
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(format!(
                    "the new server exited ({status}) before it was ready; its log is in the server's log"
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("cannot watch the new server: {e}")),
        }
        let given_up = if stop.load(Ordering::SeqCst) {
            Some(STOPPED.to_string())
        } else if Instant::now() >= deadline {
            Some(format!(
                "the new server was not ready within {} s",
                pending.timeout_secs
            ))
        } else {
            None
        };
        if let Some(reason) = given_up {
            let _ = child.kill();
            let _ = child.wait();
            return Err(reason);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then SIGKILL if it is still there after [`TRIAL_STOP`].
fn terminate(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's,
        // not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + TRIAL_STOP;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Puts an uploaded binary at the install path (through a rename, so the path
/// always holds a whole binary); the binary to start, and a note when it could
/// not be installed.
fn install(pending: &Pending) -> (PathBuf, Option<String>) {
    if !pending.uploaded {
        return (pending.install_path.clone(), None);
    }
    match replace_file(&pending.new_binary, &pending.install_path) {
        Ok(()) => (pending.install_path.clone(), None),
        Err(e) => (
            pending.new_binary.clone(),
            Some(format!(
                "update: cannot put the new binary at {}: {e}; it runs from {}, and a restart would start the old one",
                pending.install_path.display(),
                pending.new_binary.display()
            )),
        ),
    }
}

/// Copies `from` next to `to`, executable, then renames it over `to`.
fn replace_file(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = to.with_extension("berth-update.tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, to).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Puts the store from before the update back, records the rollback, and
/// returns the old binary to start (put back at the install path if the new
/// one is there).
fn roll_back(data_dir: &Path, pending: &Pending, reason: &str) -> PathBuf {
    let mut message = reason.to_string();
    if let Err(e) = super::restore_store(data_dir, &pending.store_backup) {
        message.push_str(&format!("; and the store could not be put back: {e}"));
    }
    let previous = super::previous_binary(data_dir, &pending.id);
    let binary = match replace_file(&previous, &pending.install_path) {
        Ok(()) => pending.install_path.clone(),
        Err(e) => {
            message.push_str(&format!(
                "; berth {} could not be put back at {}: {e}",
                pending.from_version,
                pending.install_path.display()
            ));
            previous
        }
    };
    super::finish(data_dir, pending, "rolled back", &message);
    binary
}

/// Becomes `binary` with the server's arguments, handing it the API socket;
/// returns only if that fails.
fn relaunch(binary: &Path, args: &[OsString], api: RawFd, role: Option<&str>) -> std::io::Error {
    let mut command = Command::new(binary);
    command.args(args).env(API_FD_VAR, API_FD.to_string());
    match role {
        Some(role) => command.env(ROLE_VAR, role),
        None => command.env_remove(ROLE_VAR),
    };
    // SAFETY: as in `trial`.
    unsafe {
        command.pre_exec(move || pass_api_socket(api));
    }
    command.exec()
}

/// Makes the API socket descriptor [`API_FD`] of the next program, open across
/// `exec` (dup2 clears close-on-exec; a descriptor already there needs it done).
fn pass_api_socket(api: RawFd) -> std::io::Result<()> {
    // SAFETY: plain descriptor calls on descriptors this process owns.
    let result = unsafe {
        if api == API_FD {
            libc::fcntl(API_FD, libc::F_SETFD, 0)
        } else {
            libc::dup2(api, API_FD)
        }
    };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The API socket a launcher passed (see [`API_FD_VAR`]), if it is a listening
/// TCP socket on `addr`; it is made close-on-exec again so that nothing this
/// server starts (the router) keeps it open.
pub fn inherited_api_socket(addr: std::net::SocketAddr) -> Option<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    let fd: RawFd = std::env::var(API_FD_VAR).ok()?.parse().ok()?;
    // SAFETY: fcntl on a number: fails harmlessly if it is not an open descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open and nothing else in this process owns it: the
    // launcher passed it for the API alone.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    match listener.local_addr() {
        Ok(local) if local == addr || (addr.port() == 0 && local.ip() == addr.ip()) => {
            Some(listener)
        }
        _ => {
            // Not the API's socket (a different --api now): leave it alone.
            std::mem::forget(listener);
            None
        }
    }
}
