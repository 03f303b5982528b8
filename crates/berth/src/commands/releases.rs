//! `berth releases`: list, promote, roll back, and one release's changes.

use crate::cli::{AppArg, JsonArg, ReleasesCommand};
use crate::output::{age, key_values, or_dash, print_json, print_list};
use crate::progress::finish;
use crate::resolve;
use anyhow::Result;
use berth_api::ReleaseInfo;
use berth_client::Client;

pub async fn run(app: AppArg, json: JsonArg, command: Option<ReleasesCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    match command {
        None => list(&app, json.json).await,
        Some(ReleasesCommand::Promote { id, force }) => {
            finish(Client::from_config()?.promote(&app, &id, force).await?).await
        }
        Some(ReleasesCommand::Rollback { id, force }) => {
            finish(Client::from_config()?.rollback(&app, &id, force).await?).await
        }
        Some(ReleasesCommand::Info {
            id,
            json: info_json,
        }) => info(&app, &id, json.json || info_json.json).await,
    }
}

async fn list(app: &str, json: bool) -> Result<()> {
    let releases = Client::from_config()?.releases(app).await?;
    print_list(
        &releases,
        json,
        &[
            "ID",
            "STATUS",
            "BUILD",
            "ENV",
            "CREATED",
            "DESCRIPTION",
            "ERROR",
        ],
        |r| {
            vec![
                r.id.clone(),
                r.status.clone(),
                or_dash(r.build.as_ref()),
                r.env_version.to_string(),
                age(Some(&r.created)),
                r.description.clone(),
                r.error.clone().unwrap_or_default(),
            ]
        },
    )
}

async fn info(app: &str, id: &str, json: bool) -> Result<()> {
    let info = Client::from_config()?.release_info(app, id).await?;
    if json {
        return print_json(&info);
    }
    print!("{}", format_release_info(&info));
    Ok(())
}

fn keys(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

fn format_release_info(info: &ReleaseInfo) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
