//! `berth rack backup` (through the API) and `berth rack restore` (offline, into
//! a new data dir; the archive format is `berth_server::backup`'s).

use anyhow::{Context, Result, bail};
use berth_api::BackupRequest;
use berth_client::Client;
use berth_server::backup::{self, RestoreOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// `berth rack backup [--with-key [--passphrase-file FILE]] > rack.tar`
pub async fn backup(with_key: bool, passphrase_file: Option<PathBuf>) -> Result<()> {
    if std::io::stdout().is_terminal() {
        bail!(
            "the archive is binary and goes to stdout; redirect it: berth rack backup > rack.tar"
        );
    }
    let passphrase = if with_key {
        Some(match passphrase_file {
            Some(file) => read_passphrase_file(&file)?,
            None => ask_new_passphrase()?,
        })
    } else {
        None
    };
    let archive = Client::from_config()?
        .backup(&BackupRequest {
            with_key,
            passphrase,
        })
        .await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&archive)
        .and_then(|()| out.flush())
        .context("cannot write the archive to stdout")?;
    eprintln!(
        "wrote a backup of {} bytes{}",
        archive.len(),
        if with_key {
            " with the master key, sealed with the passphrase"
        } else {
            "; it has no master key: keep the rack's master.key safe, a restore needs it (--master-key)"
        }
    );
    Ok(())
}

/// `berth rack restore --data-dir DIR [--passphrase-file FILE] [--master-key FILE] < rack.tar`
pub async fn restore(
    data_dir: PathBuf,
    passphrase_file: Option<PathBuf>,
    master_key: Option<PathBuf>,
) -> Result<()> {
    if std::io::stdin().is_terminal() {
        bail!(
            "the archive is read from stdin; redirect it: berth rack restore --data-dir DIR < rack.tar"
        );
    }
    let mut archive = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut archive)
        .context("cannot read the archive from stdin")?;
    let passphrase = if backup::is_sealed(&archive) {
        Some(match passphrase_file {
            Some(file) => read_passphrase_file(&file)?,
            None => ask("passphrase of the archive: ")?,
        })
    } else {
        None
    };
    let opts = RestoreOptions {
        passphrase,
        master_key,
    };
    let dir = data_dir.clone();
    let restored = tokio::task::spawn_blocking(move || backup::restore(&archive, &dir, &opts))
        .await
        .context("the restore panicked")??;
    let m = &restored.manifest;
    println!(
        "restored rack {} (berth {}, taken {}) into {}: {} apps, {} releases",
        m.rack_id,
        m.berth_version,
        m.created,
        data_dir.display(),
        restored.apps,
        restored.releases
    );
    if !m.volumes.is_empty() {
        println!(
            "volumes the rack had (their data is on the engine, not in the archive): {}",
            m.volumes
                .iter()
                .map(|v| format!("{}/{}", v.app, v.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "start it with: berth server --data {}; stop the old rack's server first, since both share the rack id {}",
        data_dir.display(),
        m.rack_id
    );
    Ok(())
}

fn read_passphrase_file(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the passphrase file {}", file.display()))?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        bail!(
            "the passphrase file {} is empty; put the passphrase on its first line",
            file.display()
        );
    }
    Ok(line)
}

fn ask(prompt: &str) -> Result<String> {
    rpassword::prompt_password(prompt)
        .context("cannot ask for the passphrase (no terminal); pass it with --passphrase-file FILE")
}

fn ask_new_passphrase() -> Result<String> {
    let first = ask("passphrase to seal the archive: ")?;
    let again = ask("the same passphrase again: ")?;
    if first != again {
        bail!("the two passphrases differ; run the command again");
    }
    Ok(first)
}
