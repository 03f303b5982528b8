//! `berth login`, `berth rack` and `berth rack prune`: the server as a whole.

use crate::cli::{JsonArg, RackCommand};
use crate::output::{bytes, key_values, long_span, print_json};
use anyhow::{Result, bail};
use berth_client::{Client, config};
use std::io::Write;

/// Checks the URL and token against the server, then saves them.
pub async fn login(url: &str, token: &str) -> Result<()> {
    let client = Client::new(url, token)?;
    let rack = match client.rack().await {
        Ok(rack) => rack,
        Err(berth_client::Error::Unauthorized) => bail!(
            "the server at {} refused the token; use the admin token the server printed on its first start (also in DATA_DIR/admin.token)",
            client.base_url()
        ),
        Err(e) => return Err(e.into()),
    };
    let host = client.base_url();
    let path = config::save(&host, token)?;
    println!(
        "logged in to {host} (berth {}, {} apps); saved to {}",
        rack.version,
        rack.apps,
        path.display()
    );
    Ok(())
}

pub async fn run(json: JsonArg, command: Option<RackCommand>) -> Result<()> {
    match command {
        None => info(json.json).await,
        Some(RackCommand::Prune { json: prune_json }) => prune(json.json || prune_json.json).await,
    }
}

async fn info(json: bool) -> Result<()> {
    let rack = Client::from_config()?.rack().await?;
    if json {
        return print_json(&rack);
    }
    print!(
        "{}",
        key_values(&[
            ("Version", rack.version.clone()),
            ("Uptime", long_span(rack.uptime_secs)),
            ("Engine", rack.engine.clone()),
            ("Domain", rack.domain.clone()),
            ("Router", rack.router.clone()),
            ("Apps", rack.apps.to_string()),
            ("Processes", rack.processes.to_string()),
            ("Builds", rack.builds.to_string()),
            ("Releases", rack.releases.to_string()),
        ])
    );
    Ok(())
}

async fn prune(json: bool) -> Result<()> {
    let report = Client::from_config()?.prune().await?;
    if json {
        return print_json(&report);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "removed {} stopped containers and {} images; freed {}",
        report.containers,
        report.images,
        bytes(report.bytes)
    )?;
    Ok(())
}
