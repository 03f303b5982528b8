//! `berth apps` and `berth services`.

use crate::cli::{AppArg, AppsCommand, JsonArg};
use crate::output::{age, bytes, key_values, or_dash, print_json, print_list, table};
use crate::resolve;
use anyhow::{Context, Result, anyhow, bail};
use berth_api::AppInfo;
use berth_client::Client;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

pub async fn run(app: AppArg, json: JsonArg, command: Option<AppsCommand>) -> Result<()> {
    match command {
        None => list(json.json).await,
        Some(AppsCommand::Create { name }) => {
            resolve::pick_app(Some(&name), None, Path::new(""))?;
            let created = Client::from_config()?.create_app(&name).await?;
            println!("created app {}", created.name);
            Ok(())
        }
        Some(AppsCommand::Delete { name, volumes, yes }) => delete(&name, volumes, yes).await,
        Some(AppsCommand::Info {
            name,
            json: info_json,
        }) => {
            let name = match name {
                Some(n) => resolve::pick_app(Some(&n), None, Path::new(""))?,
                None => resolve::current_app(app.app.as_deref())?,
            };
            info(&name, json.json || info_json.json).await
        }
    }
}

/// `berth apps delete`: asks on a terminal (unless `yes`); without one it deletes
/// at once, as scripts expect. Says so when it has to wait for a change in progress.
async fn delete(name: &str, volumes: bool, yes: bool) -> Result<()> {
    resolve::pick_app(Some(name), None, Path::new(""))?;
    let client = Client::from_config()?;
    // Looked up first, so an unknown app fails before anything is asked.
    let mut found = client.app(name).await.map_err(|e| unknown_app(name, e))?;
    if !yes && std::io::stdin().is_terminal() {
        let question = confirmation_question(name, volumes);
        let answer = tokio::task::spawn_blocking(move || {
            let mut stderr = std::io::stderr();
            stderr.write_all(question.as_bytes())?;
            stderr.flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok::<_, std::io::Error>(line)
        })
        .await
        .context("the confirmation prompt failed")?
        .context("cannot read the confirmation from the terminal")?;
        if answer.trim() != name {
            bail!(
                "app {name} was not deleted: the name typed did not match; type `{name}` when asked, or pass --yes to delete without asking"
            );
        }
        found = client.app(name).await.map_err(|e| unknown_app(name, e))?;
    }
    // The server deletes once the app's lock is free, which a deploy, promote, scale or
    // restart holds until it ends.
    if found.app.status == "deploying" {
        eprintln!(
            "==> waiting for another change to app {name} (a deploy, promote, scale or restart) to finish, then deleting it"
        );
    }
    client.delete_app_with(name, volumes).await?;
    println!("deleted app {name}");
    Ok(())
}

/// What is asked on a terminal before an app is deleted.
fn confirmation_question(name: &str, volumes: bool) -> String {
    let what = if volumes {
        "its processes, builds, releases, environment, logs and volumes with their data"
    } else {
        "its processes, builds, releases, environment and logs"
    };
    format!(
        "Delete app {name} with {what}? This cannot be undone.\nType the app's name to confirm (or --yes to skip this): "
    )
}

/// An unknown app is named with the command that lists the real ones.
fn unknown_app(name: &str, error: berth_client::Error) -> anyhow::Error {
    if error.status() == Some(404) {
        anyhow!("app {name} does not exist; list the apps with `berth apps`")
    } else {
        error.into()
    }
}

async fn list(json: bool) -> Result<()> {
    let apps = Client::from_config()?.apps().await?;
    print_list(
        &apps,
        json,
        &["NAME", "STATUS", "RELEASE", "CREATED"],
        |a| {
            vec![
                a.name.clone(),
                a.status.clone(),
                or_dash(a.release.as_ref()),
                age(Some(&a.created)),
            ]
        },
    )
}

async fn info(name: &str, json: bool) -> Result<()> {
    let info = Client::from_config()?.app(name).await?;
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
        (
            "CPU",
            info.cpu.map_or_else(|| "-".into(), |c| format!("{c:.1}%")),
        ),
        ("Memory", info.memory.map_or_else(|| "-".into(), bytes)),
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

/// `berth services`: the services part of the app's info.
pub async fn services(app: AppArg, json: JsonArg) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    let info = Client::from_config()?.app(&app).await?;
    print_list(
        &info.services,
        json.json,
        &["SERVICE", "DOMAIN", "PORT", "COUNT", "HEALTHY"],
        |s| {
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
        },
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::{App, ServiceInfo};

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
            cpu: Some(12.5),
            memory: Some(3 * 1024 * 1024),
        };
        let want = "\
Name     shop
Status   running
Release  R3
Created  2025-01-01T00:00:00Z
CPU      12.5%
Memory   3.0 MiB

SERVICE  HEALTHY  PORT  MEMORY   CPU  URLS
web      2/2      8080  256 MiB  -    http://web.shop.localhost:8080
";
        assert_eq!(format_app_info(&info), want);
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("http://web.a.localhost:8080/"), "web.a.localhost");
        assert_eq!(host_of("http://shop.example.com/"), "shop.example.com");
    }
}
