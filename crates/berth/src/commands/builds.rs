//! `berth builds`: an app's builds, and one build's output.

use crate::cli::{AppArg, BuildsCommand, JsonArg};
use crate::output::{age, elapsed, print_json, print_list, print_text};
use crate::resolve;
use anyhow::Result;
use berth_client::Client;

pub async fn run(app: AppArg, json: JsonArg, command: Option<BuildsCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    match command {
        None => list(&app, json.json).await,
        Some(BuildsCommand::Logs {
            id,
            json: logs_json,
        }) => {
            let text = Client::from_config()?.build_logs(&app, &id).await?;
            if json.json || logs_json.json {
                return print_json(&text.lines().collect::<Vec<_>>());
            }
            print_text(&text)
        }
    }
}

async fn list(app: &str, json: bool) -> Result<()> {
    let builds = Client::from_config()?.builds(app).await?;
    print_list(
        &builds,
        json,
        &["ID", "STATUS", "CREATED", "ELAPSED", "ERROR"],
        |b| {
            vec![
                b.id.clone(),
                b.status.clone(),
                age(Some(&b.created)),
                elapsed(&b.created, b.finished.as_deref()),
                b.error.clone().unwrap_or_default(),
            ]
        },
    )
}
