//! `berth ps`, `berth scale` and `berth restart`: an app's processes.

use crate::cli::{AppArg, JsonArg, PsCommand};
use crate::output::{age, bytes, or_dash, print_list};
use crate::progress::finish;
use crate::resolve;
use anyhow::Result;
use berth_api::{Process, ProcessKind, RestartRequest, ScaleRequest};
use berth_client::Client;

pub async fn ps(app: AppArg, json: JsonArg, command: Option<PsCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    match command {
        None => list(&app, json.json).await,
        Some(PsCommand::Stop { id }) => {
            Client::from_config()?.stop_process(&app, &id).await?;
            println!("stopped process {id}");
            Ok(())
        }
    }
}

async fn list(app: &str, json: bool) -> Result<()> {
    let processes = Client::from_config()?.processes(app).await?;
    // On a single engine every process is on the one node: no column for it.
    let nodes = processes.iter().any(|p| p.node.is_some());
    let mut headers = vec!["ID", "SERVICE", "RELEASE", "STATE"];
    if nodes {
        headers.push("NODE");
    }
    headers.extend(["STARTED", "ADDRESS", "CPU", "MEM", "RESTARTS", "LAST-EXIT"]);
    print_list(&processes, json, &headers, |p| {
        let mut row = vec![
            p.id.clone(),
            service_column(p),
            p.release.clone(),
            p.state.clone(),
        ];
        if nodes {
            row.push(or_dash(p.node.as_ref()));
        }
        row.extend([
            age(p.started.as_deref()),
            or_dash(p.address.as_ref()),
            p.cpu.map_or_else(|| "-".into(), |c| format!("{c:.1}%")),
            p.memory.map_or_else(|| "-".into(), bytes),
            p.restarts.to_string(),
            or_dash(p.last_exit.as_ref()),
        ]);
        row
    })
}

/// One-offs show under their service: `web (run)`, `web (timer cleanup)`.
fn service_column(p: &Process) -> String {
    match (p.kind, &p.timer) {
        (ProcessKind::Service, _) => p.service.clone(),
        (ProcessKind::Run, _) => format!("{} (run)", p.service),
        (ProcessKind::Timer, Some(timer)) => format!("{} (timer {timer})", p.service),
        (ProcessKind::Timer, None) => format!("{} (timer)", p.service),
    }
}

pub async fn scale(app: AppArg, service: String, request: ScaleRequest) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    berth_core::validate_service_name(&service)?;
    finish(
        Client::from_config()?
            .scale(&app, &service, &request)
            .await?,
    )
    .await
}

pub async fn restart(app: AppArg, service: Option<String>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    if let Some(s) = &service {
        berth_core::validate_service_name(s)?;
    }
    finish(
        Client::from_config()?
            .restart(&app, &RestartRequest { service })
            .await?,
    )
    .await
}
