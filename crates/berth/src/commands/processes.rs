//! `berth ps`, `berth scale` and `berth restart`: an app's processes.

use crate::cli::{AppArg, JsonArg, PsCommand, TopSort};
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
            cpu_column(p),
            memory_column(p),
            p.restarts.to_string(),
            or_dash(p.last_exit.as_ref()),
        ]);
        row
    })
}

fn cpu_column(p: &Process) -> String {
    p.cpu.map_or_else(|| "-".into(), |c| format!("{c:.1}%"))
}

/// Memory used, and the limit when known: `12.0 MiB / 256.0 MiB`.
fn memory_column(p: &Process) -> String {
    match (p.memory, p.memory_limit) {
        (None, _) => "-".into(),
        (Some(used), None) => bytes(used),
        (Some(used), Some(limit)) => format!("{} / {}", bytes(used), bytes(limit)),
    }
}

/// How often `berth top` redraws on a terminal.
const TOP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `berth top`: every process of every app, busiest first; redrawn every
/// [`TOP_EVERY`] on a terminal, printed once with `--json` or when piped.
pub async fn top(sort: TopSort, json: JsonArg) -> Result<()> {
    use std::io::{IsTerminal, Write};
    let client = Client::from_config()?;
    let refresh = !json.json && std::io::stdout().is_terminal();
    loop {
        let mut processes = rack_processes(&client).await?;
        sort_for_top(&mut processes, sort);
        if refresh {
            // Home and clear, then the table: no scrolling between refreshes.
            print!("\x1b[H\x1b[2J");
        }
        print_list(
            &processes,
            json.json,
            &["APP", "ID", "SERVICE", "STATE", "CPU", "MEM"],
            |p| {
                vec![
                    p.app.clone(),
                    p.id.clone(),
                    service_column(p),
                    p.state.clone(),
                    cpu_column(p),
                    memory_column(p),
                ]
            },
        )?;
        if !refresh {
            return Ok(());
        }
        std::io::stdout().flush()?;
        tokio::time::sleep(TOP_EVERY).await;
    }
}

/// The processes of every app the token sees.
async fn rack_processes(client: &Client) -> Result<Vec<Process>> {
    let apps = client.apps().await?;
    let lists =
        futures_util::future::join_all(apps.iter().map(|a| client.processes(&a.name))).await;
    let mut all = Vec::new();
    for (app, list) in apps.iter().zip(lists) {
        match list {
            Ok(list) => all.extend(list),
            // Deleted since it was listed.
            Err(berth_client::Error::Api { status: 404, .. }) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("app {}", app.name))),
        }
    }
    Ok(all)
}

/// Highest CPU (or memory) first; processes not sampled yet last; then by app
/// and id, so equal rows keep their places between refreshes.
fn sort_for_top(processes: &mut [Process], sort: TopSort) {
    let key = |p: &Process| match sort {
        TopSort::Cpu => p.cpu.unwrap_or(-1.0),
        TopSort::Mem => p.memory.map_or(-1.0, |m| m as f64),
    };
    processes.sort_by(|a, b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| (&a.app, &a.id).cmp(&(&b.app, &b.id)))
    });
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
