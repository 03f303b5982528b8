//! `berth login`, `berth switch`, `berth rack` and `berth rack prune`: the server as a
//! whole, and which one the CLI talks to.

use crate::cli::{InstancesCommand, JsonArg, RackCommand};
use crate::output::{bytes, key_values, long_span, print_json, print_list};
use anyhow::{Context, Result, bail};
use berth_client::{Client, config};
use serde::Serialize;
use std::io::Write;

/// Which CA `berth login` trusts for an HTTPS server.
pub enum LoginTrust {
    /// BERTH_CA_CERT if set (not saved), else the system's roots.
    Default,
    /// `--ca-cert FILE`, saved with the entry.
    CaFile(std::path::PathBuf),
    /// `--ca-sha256 FP`: `URL/ca.pem` checked against FP, saved with the entry.
    Fingerprint(String),
}

/// Checks the URL and token against the server, then saves them (and the CA to
/// trust, if given) as the current server.
pub async fn login(url: &str, token: &str, name: Option<&str>, trust: LoginTrust) -> Result<()> {
    if let Some(name) = name {
        config::check_name(name)?;
    }
    // A server whose CA is given is an HTTPS one.
    let url = if !matches!(trust, LoginTrust::Default) && !url.contains("://") {
        format!("https://{}", url.trim())
    } else {
        url.to_string()
    };
    let url = url.as_str();
    let saved_ca = match trust {
        LoginTrust::Default => None,
        LoginTrust::CaFile(file) => Some(std::fs::read_to_string(&file).with_context(|| {
            format!(
                "cannot read the CA certificate {}; give the server's DATA/ca/ca.pem (copied here) or use --ca-sha256 FP",
                file.display()
            )
        })?),
        LoginTrust::Fingerprint(fp) => Some(berth_client::fetch_pinned_ca(url, &fp).await?),
    };
    let check_ca = match &saved_ca {
        Some(pem) => Some(pem.clone()),
        None => config::env_ca_pem()?,
    };
    let client = Client::with_ca(url, token, check_ca.as_deref())?;
    // Unauthenticated first: berth's router or another server is named as such
    // before the token is sent to it.
    client.check_berth().await?;
    let rack = match client.rack().await {
        Ok(rack) => rack,
        Err(berth_client::Error::Unauthorized) => bail!(
            "the server at {} refused the token; use the admin token the server printed on its first start (also in DATA_DIR/admin.token)",
            client.base_url()
        ),
        Err(e) => return Err(e.into()),
    };
    let host = client.base_url();
    let saved = config::login(&host, token, name, saved_ca)?;
    println!(
        "logged in to {host} (berth {}, {} apps) as server {}, now the current one; saved to {}",
        rack.version,
        rack.apps,
        saved.name,
        saved.path.display()
    );
    warn_if_env_overrides();
    Ok(())
}

/// A saved server as `berth switch --json` lists it (never its token).
#[derive(Debug, Serialize)]
struct SavedServer {
    name: String,
    host: String,
    current: bool,
}

/// `berth switch`: lists the saved servers; `berth switch NAME` makes one current.
pub fn switch(name: Option<&str>, json: bool) -> Result<()> {
    let Some(name) = name else {
        let (path, servers) = config::servers()?;
        if servers.servers.is_empty() && !json {
            println!(
                "no servers saved in {}; add one with `berth login URL --token T`",
                path.display()
            );
            return Ok(());
        }
        let current = servers.current_server().map(|(n, _)| n.to_string());
        let list: Vec<SavedServer> = servers
            .servers
            .iter()
            .map(|(n, c)| SavedServer {
                name: n.clone(),
                host: c.host.clone(),
                current: current.as_deref() == Some(n.as_str()),
            })
            .collect();
        print_list(&list, json, &["", "name", "host"], |s| {
            vec![
                if s.current { "*" } else { "" }.to_string(),
                s.name.clone(),
                s.host.clone(),
            ]
        })?;
        warn_if_env_overrides();
        return Ok(());
    };
    let (_, server) = config::switch(name)?;
    println!("the current server is now {name} ({})", server.host);
    warn_if_env_overrides();
    Ok(())
}

/// The config's current server is not used while BERTH_HOST is set; say so where
/// the user chose one.
fn warn_if_env_overrides() {
    if let Some(host) = std::env::var("BERTH_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        eprintln!("note: BERTH_HOST is set, so commands go to {host} until you unset it");
    }
}

pub async fn run(json: JsonArg, command: Option<RackCommand>) -> Result<()> {
    match command {
        None => info(json.json).await,
        Some(RackCommand::Prune { json: prune_json }) => prune(json.json || prune_json.json).await,
        Some(
            RackCommand::Backup { .. } | RackCommand::Restore { .. } | RackCommand::Logs { .. },
        ) => {
            bail!("berth rack backup, restore and logs are run by the backup and logs commands")
        }
        Some(RackCommand::Settings {
            json: settings_json,
        }) => settings(json.json || settings_json.json).await,
        Some(RackCommand::Set { pairs }) => set(&pairs).await,
        Some(RackCommand::Update { binary, timeout }) => update(binary.as_deref(), timeout).await,
        Some(RackCommand::Releases {
            json: releases_json,
        }) => releases(json.json || releases_json.json).await,
    }
}

/// Starts an update, then follows it to its end: the server answers on the
/// same socket all along (connections wait while no server accepts), so only
/// a connection cut as the old server stops is tried again.
async fn update(binary: Option<&std::path::Path>, timeout: u64) -> Result<()> {
    let client = Client::from_config()?;
    let started = client.start_rack_update(binary, timeout).await?;
    eprintln!(
        "updating berth {} to {} ({}); apps and the router keep serving",
        started.from_version, started.to_version, started.id
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout + 60);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let update = match client.rack_update(&started.id).await {
            Ok(update) => update,
            Err(berth_client::Error::Connect { .. } | berth_client::Error::Request { .. })
                if std::time::Instant::now() < deadline =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let message = update.message.unwrap_or_default();
        match update.state.as_str() {
            "done" => {
                println!("berth {} is running: {message}", update.to_version);
                return Ok(());
            }
            "rolled back" => bail!(
                "the update to berth {} was rolled back, and berth {} serves as before: {message}",
                update.to_version,
                update.from_version
            ),
            _ if std::time::Instant::now() >= deadline => bail!(
                "update {} is still under way after {} s; follow it with `berth rack releases`",
                update.id,
                timeout + 60
            ),
            _ => {}
        }
    }
}

async fn releases(json: bool) -> Result<()> {
    let updates = Client::from_config()?.rack_updates().await?;
    if json {
        return print_json(&updates);
    }
    let rows: Vec<Vec<String>> = updates
        .into_iter()
        .map(|u| {
            vec![
                u.id,
                u.from_version,
                u.to_version,
                u.state,
                u.started,
                u.finished.unwrap_or_default(),
                u.message.unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::output::table(
            &[
                "ID", "FROM", "TO", "STATE", "STARTED", "FINISHED", "MESSAGE"
            ],
            &rows
        )
    );
    Ok(())
}

async fn settings(json: bool) -> Result<()> {
    let settings = Client::from_config()?.rack_settings().await?;
    print_settings(&settings, json)
}

fn print_settings(settings: &berth_api::RackSettings, json: bool) -> Result<()> {
    if json {
        return print_json(settings);
    }
    print!(
        "{}",
        key_values(&[
            ("log-retention", long_span(settings.log_retention_secs)),
            ("log-max-size", bytes(settings.log_max_size_bytes)),
        ])
    );
    Ok(())
}

/// The change `KEY=VALUE` pairs ask for; every pair is checked before any is sent.
fn settings_change(pairs: &[String]) -> Result<berth_api::RackSettingsChange> {
    let mut change = berth_api::RackSettingsChange::default();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("{pair:?} is not KEY=VALUE; use e.g. log-retention=3d or log-max-size=500MiB");
        };
        match key.trim() {
            "log-retention" => {
                change.log_retention_secs =
                    Some(crate::resolve::parse_duration(value).map_err(anyhow::Error::msg)?);
            }
            "log-max-size" => {
                change.log_max_size_bytes =
                    Some(crate::resolve::parse_size(value).map_err(anyhow::Error::msg)?);
            }
            other => bail!(
                "unknown setting {other:?}; the settings are log-retention and log-max-size (see `berth rack settings`)"
            ),
        }
    }
    Ok(change)
}

async fn set(pairs: &[String]) -> Result<()> {
    let change = settings_change(pairs)?;
    let settings = Client::from_config()?.change_rack_settings(&change).await?;
    print_settings(&settings, false)
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
            (
                "Router version",
                rack.router_version
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
            ),
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

/// `berth instances`: the rack's machines; `join`, `drain ID`, `activate ID`.
pub async fn instances(json: JsonArg, command: Option<InstancesCommand>) -> Result<()> {
    let client = Client::from_config()?;
    match command {
        None => {
            let instances = client.instances().await?;
            print_list(
                &instances,
                json.json,
                &[
                    "ID",
                    "HOSTNAME",
                    "ROLE",
                    "STATUS",
                    "AVAILABILITY",
                    "AGENT",
                    "PROCESSES",
                    "CPU",
                    "MEM",
                ],
                |i| {
                    vec![
                        i.id.chars().take(12).collect(),
                        i.hostname.clone(),
                        i.role.clone(),
                        i.status.clone(),
                        i.availability.clone(),
                        i.agent.clone().unwrap_or_else(|| "-".into()),
                        i.processes.to_string(),
                        format!("{}", i.cpus),
                        bytes(i.memory),
                    ]
                },
            )
        }
        Some(InstancesCommand::Join) => {
            let join = client.join_instance().await?;
            eprintln!(
                "on the new node, after `docker swarm join`, run (node token {}; revoke it with `berth tokens revoke {}`):",
                join.token_id, join.token_id
            );
            println!("{}", join.command);
            if let Some(flags) = join.command.strip_prefix("berth agent ") {
                eprintln!(
                    "or, to run it as a systemd service there: berth install --agent -- {flags}"
                );
            }
            Ok(())
        }
        Some(InstancesCommand::Drain { id, force }) => {
            client.set_instance_availability(&id, true, force).await?;
            println!("instance {id} drained: its processes run on the other nodes now");
            Ok(())
        }
        Some(InstancesCommand::Activate { id }) => {
            client.set_instance_availability(&id, false, false).await?;
            println!("instance {id} is active: processes may run on it again");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reads_pairs_and_refuses_unknown_ones() {
        let change =
            settings_change(&["log-retention=3d".into(), "log-max-size=500MiB".into()]).unwrap();
        assert_eq!(change.log_retention_secs, Some(3 * 86_400));
        assert_eq!(change.log_max_size_bytes, Some(500 << 20));
        let e = settings_change(&["retention=3d".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("log-retention and log-max-size"), "{e}");
        assert!(settings_change(&["log-retention".into()]).is_err());
        assert!(settings_change(&["log-max-size=lots".into()]).is_err());
    }
}
