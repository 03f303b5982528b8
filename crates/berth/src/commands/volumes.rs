//! `berth volumes`: list an app's volumes, back one up to stdout, restore one from stdin.

use crate::cli::{AppArg, JsonArg, VolumesCommand};
use crate::output::{bytes, print_list};
use crate::resolve;
use anyhow::{Context, Result, bail};
use berth_client::Client;
use futures_util::StreamExt;
use std::io::IsTerminal;
use tokio::io::AsyncWriteExt;

pub async fn run(app: AppArg, json: JsonArg, command: Option<VolumesCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    berth_core::validate_app_name(&app)?;
    match command {
        None => list(&app, json.json).await,
        Some(VolumesCommand::Backup { name }) => backup(&app, &name).await,
        Some(VolumesCommand::Restore { name }) => {
            berth_core::validate_volume_name(&name)?;
            if std::io::stdin().is_terminal() {
                bail!(
                    "restore reads a tar archive from stdin: `berth volumes restore {name} -a {app} < {name}.tar`"
                );
            }
            Client::from_config()?
                .volume_restore(&app, &name, tokio::io::stdin())
                .await?;
            println!("restored volume {name} of app {app}");
            Ok(())
        }
    }
}

async fn list(app: &str, json: bool) -> Result<()> {
    let volumes = Client::from_config()?.volumes(app).await?;
    print_list(&volumes, json, &["NAME", "SIZE", "USED-BY"], |v| {
        vec![
            v.name.clone(),
            v.size.map(bytes).unwrap_or_else(|| "-".into()),
            if v.used_by.is_empty() {
                "-".into()
            } else {
                v.used_by.join(",")
            },
        ]
    })
}

async fn backup(app: &str, name: &str) -> Result<()> {
    berth_core::validate_volume_name(name)?;
    if std::io::stdout().is_terminal() {
        bail!(
            "the backup is a tar archive; redirect it to a file: `berth volumes backup {name} -a {app} > {name}.tar`"
        );
    }
    let mut stream = Client::from_config()?.volume_backup(app, name).await?;
    let mut out = tokio::io::stdout();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .context("cannot write the backup to stdout")?;
    }
    out.flush().await?;
    eprintln!("==> volume {name} of app {app}: {} written", bytes(total));
    Ok(())
}
