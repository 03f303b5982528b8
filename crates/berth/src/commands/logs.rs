//! `berth logs`: an app's log lines, as text or one JSON object a line.

use crate::cli::{AppArg, JsonArg};
use crate::resolve;
use anyhow::Result;
use berth_client::{Client, LogsQuery};
use futures_util::StreamExt;
use std::io::Write;

pub async fn run(app: AppArg, json: JsonArg, query: LogsQuery) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    if let Some(s) = &query.service {
        berth_core::validate_service_name(s)?;
    }
    let mut entries = Client::from_config()?.logs(&app, &query).await?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        let mut out = std::io::stdout().lock();
        let written = if json.json {
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
