//! The CLI commands that talk to a server through `berth-client`.

use crate::cli::{
    AppsCommand, BuildsCommand, Command, EnvCommand, PsCommand, ReleasesCommand, SourceArgs,
};
use crate::output::{age, elapsed, key_values, long_span, or_dash, table};
use crate::progress::{self, Upload};
use crate::resolve;
use anyhow::{Context, Result, anyhow, bail};
use berth_api::{AppInfo, EnvChange, RestartRequest, ScaleRequest};
use berth_client::{Client, LogsQuery, config};
use futures_util::StreamExt;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Server(args) => crate::server::run(args).await,
        Command::Router(args) => crate::router::run(args).await,
        Command::Login { url, token } => login(&url, &token).await,
        Command::Apps { app, json, command } => match command {
            None => apps(json.json).await,
            Some(AppsCommand::Create { name }) => {
                resolve::pick_app(Some(&name), None, Path::new(""))?;
                let created = client()?.create_app(&name).await?;
                println!("created app {}", created.name);
                Ok(())
            }
            Some(AppsCommand::Delete { name, volumes }) => {
                client()?.delete_app_with(&name, volumes).await?;
                println!("deleted app {name}");
                Ok(())
            }
            Some(AppsCommand::Info {
                name,
                json: info_json,
            }) => {
                let name = match name {
                    Some(n) => resolve::pick_app(Some(&n), None, Path::new(""))?,
                    None => resolve::current_app(app.app.as_deref())?,
                };
                app_info(&name, json.json || info_json.json).await
            }
        },
        Command::Build(args) if args.image.is_some() => crate::ops::build_image_refused(),
        Command::Deploy(args) if args.image.is_some() => crate::ops::deploy_image(args).await,
        Command::Build(args) => upload(args, false).await,
        Command::Deploy(args) => upload(args, true).await,
        Command::Builds { app, json, command } => {
            let app = resolve::current_app(app.app.as_deref())?;
            match command {
                None => builds(&app, json.json).await,
                Some(BuildsCommand::Logs { id }) => {
                    let text = client()?.build_logs(&app, &id).await?;
                    print_text(&text)
                }
            }
        }
        Command::Releases { app, json, command } => {
            let app = resolve::current_app(app.app.as_deref())?;
            match command {
                None => releases(&app, json.json).await,
                Some(ReleasesCommand::Promote { id }) => {
                    finish(client()?.promote(&app, &id).await?).await
                }
                Some(ReleasesCommand::Rollback { id }) => {
                    finish(client()?.rollback(&app, &id).await?).await
                }
                Some(ReleasesCommand::Info {
                    id,
                    json: info_json,
                }) => crate::ops::release_info(&app, &id, json.json || info_json.json).await,
            }
        }
        Command::Env { app, json, command } => {
            let app = resolve::current_app(app.app.as_deref())?;
            env(&app, json.json, command).await
        }
        Command::Scale {
            app,
            service,
            count,
            memory,
            cpu,
        } => {
            let app = resolve::current_app(app.app.as_deref())?;
            berth_core::validate_service_name(&service)?;
            let request = ScaleRequest { count, memory, cpu };
            finish(client()?.scale(&app, &service, &request).await?).await
        }
        Command::Ps { app, json, command } => {
            let app = resolve::current_app(app.app.as_deref())?;
            match command {
                None => ps(&app, json.json).await,
                Some(PsCommand::Stop { id }) => {
                    client()?.stop_process(&app, &id).await?;
                    println!("stopped process {id}");
                    Ok(())
                }
            }
        }
        Command::Run(args) => crate::oneoff::run(args).await,
        Command::Exec(args) => crate::oneoff::exec(args).await,
        Command::Timers { app, json } => crate::oneoff::timers(&app, json).await,
        Command::Restart { app, service } => {
            let app = resolve::current_app(app.app.as_deref())?;
            if let Some(s) = &service {
                berth_core::validate_service_name(s)?;
            }
            finish(client()?.restart(&app, &RestartRequest { service }).await?).await
        }
        Command::Logs {
            app,
            json,
            follow,
            since,
            service,
        } => {
            let app = resolve::current_app(app.app.as_deref())?;
            logs(
                &app,
                json.json,
                LogsQuery {
                    since,
                    service,
                    follow,
                },
            )
            .await
        }
        Command::Rack {
            json,
            command: None,
        } => rack(json.json).await,
        Command::Rack {
            json,
            command: Some(crate::ops::RackCommand::Prune { json: prune_json }),
        } => crate::ops::prune(json.json || prune_json.json).await,
        Command::Volumes { app, json, command } => {
            let app = resolve::current_app(app.app.as_deref())?;
            crate::ops::volumes(&app, json.json, command).await
        }
        Command::Services { app, json } => {
            let app = resolve::current_app(app.app.as_deref())?;
            crate::ops::services(&app, json.json).await
        }
        Command::Tokens { json, command } => {
            crate::access::tokens(&client()?, json.json, command).await
        }
        Command::Certs { json, command } => {
            crate::certs::certs(&client()?, json.json, command).await
        }
        Command::Audit { json, limit } => crate::access::audit(&client()?, json.json, limit).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "berth", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// A client for the configured server (env vars, else `berth login`'s config).
pub(crate) fn client() -> Result<Client> {
    Ok(Client::from_config()?)
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.is_empty() && !text.ends_with('\n') {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// Follows a stream of long work to its end and prints the outcome.
pub(crate) async fn finish(events: berth_client::EventStream) -> Result<()> {
    let value = progress::follow(events).await?;
    progress::print_result(&value);
    Ok(())
}

async fn login(url: &str, token: &str) -> Result<()> {
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

async fn apps(json: bool) -> Result<()> {
    let apps = client()?.apps().await?;
    if json {
        return print_json(&apps);
    }
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.status.clone(),
                or_dash(a.release.as_ref()),
                age(Some(&a.created)),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["NAME", "STATUS", "RELEASE", "CREATED"], &rows)
    );
    Ok(())
}

async fn app_info(name: &str, json: bool) -> Result<()> {
    let info = client()?.app(name).await?;
    if json {
        return print_json(&info);
    }
    print!("{}", format_app_info(&info));
    Ok(())
}

fn format_app_info(info: &AppInfo) -> String {
    let mut out = key_values(&[
        ("Name", info.app.name.clone()),
        ("Status", info.app.status.clone()),
        ("Release", or_dash(info.app.release.as_ref())),
        ("Created", info.app.created.clone()),
    ]);
    if !info.services.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = info
            .services
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    format!("{}/{}", s.healthy, s.count),
                    or_dash(s.port),
                    s.memory
                        .map(|m| format!("{m} MiB"))
                        .unwrap_or_else(|| "-".into()),
                    or_dash(s.cpu),
                    s.urls.join(" "),
                ]
            })
            .collect();
        out.push_str(&table(
            &["SERVICE", "HEALTHY", "PORT", "MEMORY", "CPU", "URLS"],
            &rows,
        ));
    }
    out
}

async fn builds(app: &str, json: bool) -> Result<()> {
    let builds = client()?.builds(app).await?;
    if json {
        return print_json(&builds);
    }
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|b| {
            vec![
                b.id.clone(),
                b.status.clone(),
                age(Some(&b.created)),
                elapsed(&b.created, b.finished.as_deref()),
                b.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["ID", "STATUS", "CREATED", "ELAPSED", "ERROR"], &rows)
    );
    Ok(())
}

async fn releases(app: &str, json: bool) -> Result<()> {
    let releases = client()?.releases(app).await?;
    if json {
        return print_json(&releases);
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.status.clone(),
                or_dash(r.build.as_ref()),
                r.env_version.to_string(),
                age(Some(&r.created)),
                r.description.clone(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "STATUS",
        "BUILD",
        "ENV",
        "CREATED",
        "DESCRIPTION",
        "ERROR",
    ];
    print!("{}", table(&headers, &rows));
    Ok(())
}

async fn env(app: &str, json: bool, command: Option<EnvCommand>) -> Result<()> {
    match command {
        None => {
            let env = client()?.env(app).await?;
            if json {
                return print_json(&env);
            }
            let mut out = std::io::stdout().lock();
            for (k, v) in &env {
                writeln!(out, "{k}={v}")?;
            }
            Ok(())
        }
        Some(EnvCommand::Get { key }) => {
            resolve::check_env_key(&key)?;
            let env = client()?.env(app).await?;
            match env.get(&key) {
                Some(v) => {
                    println!("{v}");
                    Ok(())
                }
                None => bail!("{key} is not set in the environment of app {app}"),
            }
        }
        Some(EnvCommand::Set { pairs, promote }) => {
            let mut change = EnvChange {
                promote,
                ..EnvChange::default()
            };
            for pair in &pairs {
                let (k, v) = resolve::parse_env_pair(pair)?;
                change.set.insert(k, v);
            }
            finish(client()?.change_env(app, &change).await?).await
        }
        Some(EnvCommand::Unset { keys, promote }) => {
            for key in &keys {
                resolve::check_env_key(key)?;
            }
            let mut unset = keys;
            unset.sort();
            unset.dedup();
            let change = EnvChange {
                unset,
                promote,
                ..EnvChange::default()
            };
            finish(client()?.change_env(app, &change).await?).await
        }
    }
}

async fn ps(app: &str, json: bool) -> Result<()> {
    let processes = client()?.processes(app).await?;
    if json {
        return print_json(&processes);
    }
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.service.clone(),
                p.release.clone(),
                p.state.clone(),
                age(p.started.as_deref()),
                or_dash(p.address.as_ref()),
                p.restarts.to_string(),
                or_dash(p.last_exit.as_ref()),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "SERVICE",
        "RELEASE",
        "STATE",
        "STARTED",
        "ADDRESS",
        "RESTARTS",
        "LAST-EXIT",
    ];
    print!("{}", table(&headers, &rows));
    Ok(())
}

async fn logs(app: &str, json: bool, query: LogsQuery) -> Result<()> {
    if let Some(s) = &query.service {
        berth_core::validate_service_name(s)?;
    }
    let mut entries = client()?.logs(app, &query).await?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        let mut out = std::io::stdout().lock();
        let written = if json {
            serde_json::to_writer(&mut out, &entry)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            writeln!(out, "{} {} {}", entry.ts, entry.source, entry.text)
        };
        match written {
            Ok(()) => {}
            // `berth logs | head`: the reader went away; that is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn rack(json: bool) -> Result<()> {
    let rack = client()?.rack().await?;
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

/// `berth build` and `berth deploy`: check the manifest, pack, upload, follow the work.
async fn upload(args: SourceArgs, deploy: bool) -> Result<()> {
    let dir = args.dir;
    if !dir.is_dir() {
        bail!(
            "the source directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    let manifest_rel = resolve::manifest_in_source(&dir, &args.manifest)?;
    let manifest_path = dir.join(&manifest_rel);
    let shown: PathBuf = if dir == Path::new(".") {
        PathBuf::from(&manifest_rel)
    } else {
        manifest_path.clone()
    };
    let manifest = resolve::read_manifest_if_present(&manifest_path, &shown)?.ok_or_else(|| {
        anyhow!(
            "{} does not exist; write a berth.yml in the source directory or name the manifest with -f FILE",
            shown.display()
        )
    })?;
    let dir_abs = std::fs::canonicalize(&dir)
        .with_context(|| format!("cannot read the source directory {}", dir.display()))?;
    let app = resolve::pick_app(
        args.app.app.as_deref(),
        Some((&shown, manifest.app.as_deref())),
        &dir_abs,
    )?;

    let client = Client::from_config()?;
    // Fails early, before packing, when the app is missing or the token is wrong.
    client.app(&app).await?;

    let tar = tempfile::Builder::new()
        .prefix("berth-source-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the source archive")?;
    // The manifest and the Dockerfiles it names go up even if .dockerignore lists them.
    let keep = files_to_keep(&manifest_rel, &manifest);
    let (files, size) = {
        let src = dir.clone();
        let mut out = tar
            .reopen()
            .context("cannot open the temporary source archive")?;
        tokio::task::spawn_blocking(move || {
            let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
            berth_client::source::pack_source_keeping(&src, &keep, &mut out)
        })
        .await
        .context("packing the source panicked")??
    };
    eprintln!(
        "==> packed {files} files ({}) from {} for app {app}",
        crate::output::bytes(size),
        dir.display()
    );

    let size_on_disk = tar.as_file().metadata().map(|m| m.len()).unwrap_or(size);
    let upload = Upload::start(size_on_disk);
    let sent = if deploy {
        client
            .deploy(&app, tar.path(), &manifest_rel, upload.callback())
            .await
    } else {
        client
            .build(&app, tar.path(), &manifest_rel, upload.callback())
            .await
    };
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

/// Paths (relative to the source root, `/`-separated) the server needs from the upload:
/// the manifest and each Dockerfile it builds with.
fn files_to_keep(manifest_rel: &str, manifest: &berth_core::Manifest) -> Vec<String> {
    let mut keep = vec![manifest_rel.to_string()];
    for service in manifest.services.values() {
        if let berth_core::ImageSource::Build(spec) = &service.source {
            let path = match spec.path.trim_end_matches('/') {
                "" | "." => spec.dockerfile.clone(),
                context => format!("{context}/{}", spec.dockerfile),
            };
            keep.push(path);
        }
    }
    keep.sort();
    keep.dedup();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::{App, ServiceInfo};

    #[test]
    fn keeps_manifest_and_dockerfiles() -> Result<(), berth_core::ManifestError> {
        let yaml = "services:\n  web:\n    build: .\n    port: 8080\n  api:\n    build: {path: api, dockerfile: docker/Dockerfile.api}\n  db:\n    image: postgres\n";
        let m = berth_core::parse_manifest("pod.yml", yaml)?;
        assert_eq!(
            files_to_keep("k8s/pod.yml", &m),
            ["Dockerfile", "api/docker/Dockerfile.api", "k8s/pod.yml"]
        );
        Ok(())
    }

    #[test]
    fn app_info_layout() {
        let info = AppInfo {
            app: App {
                name: "shop".into(),
                created: "2025-01-01T00:00:00Z".into(),
                release: Some("R3".into()),
                status: "running".into(),
            },
            services: vec![ServiceInfo {
                name: "web".into(),
                urls: vec!["http://web.shop.localhost:8080".into()],
                port: Some(8080),
                count: 2,
                memory: Some(256),
                cpu: None,
                healthy: 2,
            }],
        };
        let want = "\
Name     shop
Status   running
Release  R3
Created  2025-01-01T00:00:00Z

SERVICE  HEALTHY  PORT  MEMORY   CPU  URLS
web      2/2      8080  256 MiB  -    http://web.shop.localhost:8080
";
        assert_eq!(format_app_info(&info), want);
    }
}
