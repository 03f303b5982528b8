//! Day-two CLI commands: volumes, `deploy --image`, services, release info, rack prune.

use crate::cli::SourceArgs;
use crate::commands::{client, finish, print_json};
use crate::output::{bytes, key_values, or_dash, table};
use crate::progress::Upload;
use crate::resolve;
use anyhow::{Context, Result, anyhow, bail};
use berth_api::{ReleaseInfo, ServiceInfo};
use berth_client::Thinning;
use berth_runtime::Runtime;
use clap::Subcommand;
use futures_util::StreamExt;
use std::io::{IsTerminal, Write};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Write a tar of a volume's content to stdout: `berth volumes backup data > data.tar`
    Backup { name: String },
    /// Extract a tar from stdin into a volume: `berth volumes restore data < data.tar`
    /// (files in the tar replace those of the same name; others are kept)
    Restore { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RackCommand {
    /// Remove this rack's stopped containers and the images no kept release uses;
    /// report what was freed (never touches anything without berth's labels)
    Prune {
        #[command(flatten)]
        json: crate::cli::JsonArg,
    },
}

pub fn build_image_refused() -> Result<()> {
    bail!(
        "`berth build` builds from source; release a local image with `berth deploy --image IMAGE`"
    )
}

pub async fn volumes(app: &str, json: bool, command: Option<VolumesCommand>) -> Result<()> {
    berth_core::validate_app_name(app)?;
    match command {
        None => {
            let volumes = client()?.volumes(app).await?;
            if json {
                return print_json(&volumes);
            }
            let rows: Vec<Vec<String>> = volumes
                .iter()
                .map(|v| {
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
                .collect();
            print!("{}", table(&["NAME", "SIZE", "USED-BY"], &rows));
            Ok(())
        }
        Some(VolumesCommand::Backup { name }) => {
            berth_core::validate_volume_name(&name)?;
            if std::io::stdout().is_terminal() {
                bail!(
                    "the backup is a tar archive; redirect it to a file: `berth volumes backup {name} -a {app} > {name}.tar`"
                );
            }
            let mut stream = client()?.volume_backup(app, &name).await?;
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
        Some(VolumesCommand::Restore { name }) => {
            berth_core::validate_volume_name(&name)?;
            if std::io::stdin().is_terminal() {
                bail!(
                    "restore reads a tar archive from stdin: `berth volumes restore {name} -a {app} < {name}.tar`"
                );
            }
            client()?
                .volume_restore(app, &name, tokio::io::stdin())
                .await?;
            println!("restored volume {name} of app {app}");
            Ok(())
        }
    }
}

/// `berth deploy --image IMAGE`: `docker save` from the local engine, upload,
/// and the server loads, releases and rolls it out.
pub async fn deploy_image(args: SourceArgs) -> Result<()> {
    let image = args.image.clone().unwrap_or_default();
    let dir = args.dir;
    let manifest_path = dir.join(&args.manifest);
    let shown = if dir == std::path::Path::new(".") {
        args.manifest.clone()
    } else {
        manifest_path.clone()
    };
    let (manifest_text, manifest) = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => {
            let m = berth_core::parse_manifest(&shown.to_string_lossy(), &text)?;
            (Some(text), Some(m))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", shown.display())),
    };
    let dir_abs = std::fs::canonicalize(&dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?;
    let app = resolve::pick_app(
        args.app.app.as_deref(),
        manifest
            .as_ref()
            .map(|m| (shown.as_path(), m.app.as_deref())),
        &dir_abs,
    )?;
    let client = client()?;
    client.app(&app).await?;

    let engine = berth_runtime::DockerRuntime::connect().await?;
    let details = engine.image_details(&image).await?.ok_or_else(|| {
        anyhow!(
            "image {image} is not on the local Docker engine; build it first (`docker build -t {image} .`) or check `docker images`"
        )
    })?;
    let tar = tempfile::Builder::new()
        .prefix("berth-image-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the image")?;
    eprintln!(
        "==> saving image {image} ({}) from the local engine",
        bytes(details.size)
    );
    {
        let mut out = tokio::fs::File::create(tar.path())
            .await
            .context("cannot write the temporary image file")?;
        let mut stream = engine.export_image(&image);
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
    }
    // Only layers the server lacks travel; on any doubt, the whole image does.
    let thin = tempfile::Builder::new()
        .prefix("berth-image-thin-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the image")?
        .into_temp_path();
    let upload_path: &std::path::Path = match client.thin_image(&app, tar.path(), &thin).await {
        Ok(Thinning::Asked { layers, present }) => {
            eprintln!("==> {present} of {layers} layers already on the server");
            if present > 0 { &thin } else { tar.path() }
        }
        Ok(Thinning::Whole) => tar.path(),
        Err(e) => {
            eprintln!(
                "==> note: cannot tell which layers the server has ({e}); uploading them all"
            );
            tar.path()
        }
    };
    let size = std::fs::metadata(upload_path).map(|m| m.len()).unwrap_or(0);
    let upload = Upload::start(size);
    let sent = client
        .deploy_image(
            &app,
            &image,
            manifest_text.as_deref(),
            upload_path,
            upload.callback(),
        )
        .await;
    let events = match sent {
        Ok(events) => {
            upload.finish();
            events
        }
        Err(e) => {
            upload.abandon();
            return Err(e.into());
        }
    };
    finish(events).await
}

/// The host part of a router URL: `http://web.shop.localhost:8080/` → `web.shop.localhost`.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    host_port
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host_port)
        .to_string()
}

pub fn services_table(services: &[ServiceInfo]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let domains: Vec<String> = s.urls.iter().map(|u| host_of(u)).collect();
            vec![
                s.name.clone(),
                if domains.is_empty() {
                    "-".into()
                } else {
                    domains.join(",")
                },
                or_dash(s.port),
                s.count.to_string(),
                s.healthy.to_string(),
            ]
        })
        .collect();
    table(&["SERVICE", "DOMAIN", "PORT", "COUNT", "HEALTHY"], &rows)
}

pub async fn services(app: &str, json: bool) -> Result<()> {
    let info = client()?.app(app).await?;
    if json {
        return print_json(&info.services);
    }
    print!("{}", services_table(&info.services));
    Ok(())
}

fn keys(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

pub fn format_release_info(info: &ReleaseInfo) -> String {
    let r = &info.release;
    let mut out = key_values(&[
        ("Release", r.id.clone()),
        ("Status", r.status.clone()),
        ("Build", or_dash(r.build.as_ref())),
        ("Env version", r.env_version.to_string()),
        ("Created", r.created.clone()),
        ("Description", r.description.clone()),
        ("Previous", or_dash(info.previous.as_ref())),
        ("Env added", keys(&info.env_added)),
        ("Env removed", keys(&info.env_removed)),
        ("Env changed", keys(&info.env_changed)),
    ]);
    if info.manifest_diff.is_empty() {
        out.push_str("\nManifest: unchanged\n");
    } else {
        out.push_str("\nManifest changes:\n");
        for line in &info.manifest_diff {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

pub async fn release_info(app: &str, id: &str, json: bool) -> Result<()> {
    let info = client()?.release_info(app, id).await?;
    if json {
        return print_json(&info);
    }
    print!("{}", format_release_info(&info));
    Ok(())
}

pub async fn prune(json: bool) -> Result<()> {
    let report = client()?.prune().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{AppsCommand, Cli, Command, ReleasesCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Command {
        match Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied())) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn day_two_command_lines() {
        match parse(&["volumes", "backup", "data", "-a", "shop"]) {
            Command::Volumes {
                app,
                command: Some(VolumesCommand::Backup { name }),
                ..
            } => assert_eq!((app.app.as_deref(), name.as_str()), (Some("shop"), "data")),
            other => panic!("{other:?}"),
        }
        match parse(&["rack", "prune", "--json"]) {
            Command::Rack {
                command: Some(RackCommand::Prune { json }),
                ..
            } => assert!(json.json),
            other => panic!("{other:?}"),
        }
        match parse(&["deploy", "--image", "shop:dev", "-a", "shop"]) {
            Command::Deploy(s) => assert_eq!(s.image.as_deref(), Some("shop:dev")),
            other => panic!("{other:?}"),
        }
        match parse(&["apps", "delete", "shop", "--volumes"]) {
            Command::Apps {
                command: Some(AppsCommand::Delete { name, volumes }),
                ..
            } => assert!(name == "shop" && volumes),
            other => panic!("{other:?}"),
        }
        match parse(&["releases", "info", "R2", "--json"]) {
            Command::Releases {
                command: Some(ReleasesCommand::Info { id, json }),
                ..
            } => assert!(id == "R2" && json.json),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["services", "--json"]),
            Command::Services { json, .. } if json.json
        ));
    }

    #[test]
    fn release_info_shows_keys_and_diff() {
        let info = ReleaseInfo {
            release: berth_api::Release {
                id: "R2".into(),
                app: "shop".into(),
                build: Some("B1".into()),
                env_version: 2,
                created: "2026-01-01T00:00:00Z".into(),
                status: "active".into(),
                description: "env set A".into(),
                error: None,
            },
            previous: Some("R1".into()),
            env_added: vec!["A".into()],
            env_removed: vec![],
            env_changed: vec!["B".into(), "C".into()],
            manifest_diff: vec![
                "  services:".into(),
                "-     port: 80".into(),
                "+     port: 8080".into(),
            ],
        };
        let text = format_release_info(&info);
        assert!(
            text.contains("Env added") && text.contains("B, C"),
            "{text}"
        );
        assert!(
            text.contains("Manifest changes:\n  services:\n-     port: 80\n+     port: 8080\n"),
            "{text}"
        );
    }

    /// The CLI names layers by chain id and the server's engine answers by its own
    /// computation of them: the two must agree.
    #[test]
    fn client_and_runtime_chain_ids_agree() {
        let diffs: Vec<String> = ["sha256:1", "sha256:2", "sha256:3"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            berth_client::saved_image::chain_ids(&diffs),
            berth_runtime::chain_ids(&diffs)
        );
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("http://web.a.localhost:8080/"), "web.a.localhost");
        assert_eq!(host_of("http://shop.example.com/"), "shop.example.com");
    }
}
