//! `berth resources`: list an app's resources, show one, reveal its URL, back
//! it up to stdout, restore it from stdin, upgrade its image.

use crate::cli::{AppArg, JsonArg, ResourcesCommand};
use crate::output::{bytes, key_values, print_json, print_list, print_text};
use crate::resolve;
use anyhow::{Context, Result, bail};
use berth_client::Client;
use futures_util::StreamExt;
use std::io::IsTerminal;
use tokio::io::AsyncWriteExt;

pub async fn run(app: AppArg, json: JsonArg, command: Option<ResourcesCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    berth_core::validate_app_name(&app)?;
    let client = Client::from_config()?;
    match command {
        None => {
            let resources = client.resources(&app).await?;
            print_list(
                &resources,
                json.json,
                &["NAME", "TYPE", "STATUS", "URL"],
                |r| {
                    vec![
                        r.name.clone(),
                        r.kind.clone(),
                        r.status.clone(),
                        r.url.clone(),
                    ]
                },
            )
        }
        Some(ResourcesCommand::Info { name, json: own }) => {
            let json = json.json || own.json;
            berth_core::validate_service_name(&name)?;
            let r = client.resource(&app, &name).await?;
            if json {
                return print_json(&r);
            }
            let or_dash = |v: &[String]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(", ")
                }
            };
            print_text(&key_values(&[
                ("name", r.name.clone()),
                ("type", r.kind.clone()),
                ("image", r.image.clone()),
                ("status", r.status.clone()),
                ("process", r.process.clone().unwrap_or_else(|| "-".into())),
                ("url", r.url.clone()),
                ("env", or_dash(&r.env)),
                ("used by", or_dash(&r.used_by)),
                ("volume", r.volume.clone()),
            ]))
        }
        Some(ResourcesCommand::Url { name, json: own }) => {
            berth_core::validate_service_name(&name)?;
            let url = client.resource_url(&app, &name).await?;
            if json.json || own.json {
                return print_json(&url);
            }
            println!("{}", url.url);
            Ok(())
        }
        Some(ResourcesCommand::Backup { name }) => backup(&client, &app, &name).await,
        Some(ResourcesCommand::Proxy { name, port }) => proxy(client, &app, &name, port).await,
        Some(ResourcesCommand::Upgrade { name, image }) => {
            berth_core::validate_service_name(&name)?;
            crate::progress::finish(client.resource_upgrade(&app, &name, &image).await?).await
        }
        Some(ResourcesCommand::Restore { name }) => {
            berth_core::validate_service_name(&name)?;
            if std::io::stdin().is_terminal() {
                bail!(
                    "restore reads a dump from stdin: `berth resources restore {name} -a {app} < {name}.dump`"
                );
            }
            client
                .resource_restore(&app, &name, tokio::io::stdin())
                .await?;
            eprintln!("==> restored resource {name} of app {app}");
            Ok(())
        }
    }
}

async fn backup(client: &Client, app: &str, name: &str) -> Result<()> {
    berth_core::validate_service_name(name)?;
    if std::io::stdout().is_terminal() {
        bail!(
            "the backup is a binary dump; redirect it to a file: `berth resources backup {name} -a {app} > {name}.dump`"
        );
    }
    let mut stream = client.resource_backup(app, name).await?;
    let mut out = tokio::io::stdout();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .context("cannot write the dump to stdout")?;
    }
    out.flush().await?;
    eprintln!("==> resource {name} of app {app}: {} written", bytes(total));
    Ok(())
}

/// Serves 127.0.0.1:`port` until interrupted: each connection is a tunnel to
/// the resource over the API.
async fn proxy(client: Client, app: &str, name: &str, port: u16) -> Result<()> {
    berth_core::validate_service_name(name)?;
    // Checked first, so a wrong name or role fails now, not at the first connection.
    let resource = client.resource(app, name).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}; pick another with --port"))?;
    let local = listener.local_addr()?;
    let port_there = berth_core::ResourceKind::parse(&resource.kind).map_or(0, |k| k.port());
    let url = resource.url.replacen(
        &format!("@{name}:{port_there}"),
        &format!("@127.0.0.1:{}", local.port()),
        1,
    );
    eprintln!(
        "==> forwarding {local} to resource {name} of app {app}; connect with {url} (the password: `berth resources url {name} -a {app}`); Ctrl-C ends it"
    );
    let client = std::sync::Arc::new(client);
    loop {
        let (conn, peer) = listener.accept().await?;
        let client = client.clone();
        let (app, name) = (app.to_string(), name.to_string());
        tokio::spawn(async move {
            let (read, write) = conn.into_split();
            let session = match client.open_resource_proxy(&app, &name).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("berth: connection from {peer}: {e}");
                    return;
                }
            };
            let (_keep, resize) = tokio::sync::mpsc::channel(1);
            if let Err(e) = session
                .drive(Some(read), write, tokio::io::sink(), resize)
                .await
            {
                eprintln!("berth: connection from {peer}: {e}");
            }
        });
    }
}
