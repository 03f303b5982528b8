//! `berth start`: the app of a source directory on this machine's Docker engine,
//! run by berth's own server code in this process.
//!
//! It starts `berth_server::run` on a private data dir (`rack`: a rack id and a
//! data dir fixed by the source path) with the API and the router on free loopback
//! ports, then drives it through the same client the CLI uses (`berth_client`,
//! with the admin token the server's `init` made): create the app, set required
//! variables from `.env` or the terminal, deploy (`commands::source::send`), follow
//! the logs. `sync` watches the directory: files a `COPY`/`ADD` put in the image
//! are copied into the running containers through the `Runtime`, anything else
//! deploys again. Ctrl-C deletes the app, stops the server and its router, sweeps
//! the engine for the rack's label and removes the data dir.

mod dockerfile;
mod rack;
mod sync;

use crate::cli::{SourceArgs, StartArgs};
use crate::commands::source;
use crate::resolve;
use anyhow::{Context, Result, anyhow, bail};
use berth_api::Event;
use berth_client::{Client, LogsQuery};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

pub async fn run(args: StartArgs) -> Result<()> {
    init_logging();
    let dir = std::fs::canonicalize(&args.dir).with_context(|| {
        format!(
            "the source directory {} does not exist or cannot be read",
            args.dir.display()
        )
    })?;
    let located = resolve::locate_manifest(&dir, &args.manifest)?;
    let manifest_rel = located.in_source.clone().ok_or_else(|| {
        anyhow!(
            "berth start needs the manifest inside the source directory {}; move {} there",
            dir.display(),
            located.shown.display()
        )
    })?;
    let manifest =
        resolve::read_manifest_if_present(&located.path, &located.shown)?.ok_or_else(|| {
            anyhow!(
                "{} does not exist; write a berth.yml in {} or name the manifest with -f FILE",
                located.shown.display(),
                dir.display()
            )
        })?;
    let app = resolve::pick_app(
        args.app.app.as_deref(),
        Some((&located.shown, manifest.app.as_deref())),
        &dir,
    )?;
    if let Some(s) = &args.service {
        berth_core::validate_service_name(s)?;
        if !manifest.services.contains_key(s) {
            bail!(
                "{} has no service {s}; --service takes one of: {}",
                located.shown.display(),
                manifest
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    // Asked before anything starts, so a missing value leaves nothing behind.
    let env = required_env(&dir, &manifest)?;

    let place = rack::Place::new(&dir, args.keep);
    rack::clear_previous(&place, &dir).await?;
    let runtime: Arc<dyn berth_runtime::Runtime> =
        Arc::new(berth_runtime::DockerRuntime::connect().await?);
    let swept = rack::sweep(runtime.as_ref(), &place.rack_id, &app).await?;
    if !swept.is_empty() {
        say(&format!(
            "removed what an earlier berth start left: {} containers, {} volumes, {} images",
            swept.containers, swept.volumes, swept.images
        ));
    }

    let data_dir = place.data_dir.clone();
    let init = {
        let (dir, rack_id) = (data_dir.clone(), place.rack_id.clone());
        tokio::task::spawn_blocking(move || {
            let outcome = berth_server::init(&dir)?;
            berth_server::pin_rack_id(&dir, &rack_id)?;
            Ok::<_, berth_server::ServerError>(outcome)
        })
        .await
        .context("the data dir's initialisation panicked")?
        .with_context(|| format!("cannot initialise the data dir {}", data_dir.display()))?
    };
    rack::write_pid(&data_dir)?;
    let token = match init.new_admin_token {
        Some(token) => token,
        None => bail!("the data dir {} was not fresh", data_dir.display()),
    };

    let api = free_addr()?;
    let http = free_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = server_config(&data_dir, api, http)?;
    let mut server = tokio::spawn(berth_server::run(config, async move {
        let _ = stop_rx.await;
    }));
    let client = Client::new(&format!("http://{api}"), &token)?;
    let mut running = Running {
        client,
        runtime,
        app: app.clone(),
        rack_id: place.rack_id.clone(),
        data_dir: data_dir.clone(),
        keep: args.keep,
        stop: Some(stop_tx),
    };

    // From here on, whatever happens is cleaned up.
    let outcome = tokio::select! {
        result = serve(&mut running, &args, &dir, &manifest_rel, &manifest, env, &mut server) => result,
        () = interrupted() => Ok(()),
    };
    // A second Ctrl-C ends the process at once.
    tokio::spawn(async {
        interrupted().await;
        eprintln!(
            "berth start: interrupted again; exiting without cleaning up (the next berth start in this directory does)"
        );
        std::process::exit(130);
    });
    say("stopping: removing the app's containers, network, volumes and images");
    running.shut_down(server).await;
    outcome
}

/// What must be undone at the end.
struct Running {
    client: Client,
    runtime: Arc<dyn berth_runtime::Runtime>,
    app: String,
    rack_id: String,
    data_dir: PathBuf,
    keep: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    async fn shut_down(
        mut self,
        server: tokio::task::JoinHandle<Result<berth_server::Exit, berth_server::ServerError>>,
    ) {
        // The server retires the processes (drain, SIGTERM) as on `apps delete`.
        let deleted = tokio::time::timeout(
            Duration::from_secs(30),
            self.client.delete_app_with(&self.app, true),
        )
        .await;
        if let Ok(Err(e)) = &deleted
            && e.status() != Some(404)
        {
            tracing::debug!(error = %e, "deleting the app failed; the sweep removes it");
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The server stops its router on the way out (`stop_router`); should it
        // not get there, the router is asked directly.
        if tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .is_err()
        {
            let _ = tokio::time::timeout(
                Duration::from_secs(15),
                berth_router::control::stop_router_at(&self.data_dir.join("router.sock")),
            )
            .await;
        }
        if let Err(e) = rack::sweep(self.runtime.as_ref(), &self.rack_id, &self.app).await {
            eprintln!(
                "berth start: could not remove everything from the engine ({e:#}); the next berth start in this directory tries again"
            );
        }
        if self.keep {
            let _ = std::fs::remove_file(self.data_dir.join("start.pid"));
            say(&format!("kept the data dir {}", self.data_dir.display()));
        } else if let Err(e) = std::fs::remove_dir_all(&self.data_dir) {
            eprintln!(
                "berth start: cannot remove the data dir {}: {e}",
                self.data_dir.display()
            );
        }
        say("stopped");
    }
}

/// Runs until the server fails; the caller's select ends it on Ctrl-C.
async fn serve(
    running: &mut Running,
    args: &StartArgs,
    dir: &Path,
    manifest_rel: &str,
    manifest: &berth_core::Manifest,
    env: BTreeMap<String, String>,
    server: &mut tokio::task::JoinHandle<Result<berth_server::Exit, berth_server::ServerError>>,
) -> Result<()> {
    let client = running.client.clone();
    let app = running.app.clone();
    tokio::select! {
        ready = wait_ready(&client) => ready?,
        ended = &mut *server => return Err(server_ended(ended)),
    }
    client.create_app(&app).await?;
    if !env.is_empty() {
        let change = berth_api::EnvChange {
            set: env,
            unset: Vec::new(),
            promote: false,
        };
        follow(client.change_env(&app, &change).await?, false).await?;
    }
    let mut names: Vec<String> = manifest.services.keys().cloned().collect();
    names.extend(["build", "berth", "router"].map(String::from));
    let logs = tokio::spawn(print_logs(
        client.clone(),
        app.clone(),
        args.service.clone(),
        names,
    ));

    let source_args = || SourceArgs {
        app: crate::cli::AppArg {
            app: Some(app.clone()),
        },
        dir: dir.to_path_buf(),
        manifest: PathBuf::from(manifest_rel),
        image: None,
    };
    let deploy = async {
        match source::send(source_args(), true, Some(&client)).await {
            Ok(events) => follow(events, true).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = deploy.await {
        eprintln!("berth start: the deploy failed: {e:#}");
        say("fix it and save: berth start builds again");
    }

    let watcher = if args.no_sync {
        None
    } else {
        Some(sync::watch(dir)?)
    };
    let result = match watcher {
        None => (&mut *server)
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| {
                r.map_err(anyhow::Error::from)
                    .and_then(|_| Err(anyhow!("the server stopped")))
            }),
        Some((_debouncer, mut changes)) => {
            let mut seen = sync::Seen::scan(dir);
            loop {
                let batch = tokio::select! {
                    batch = changes.recv() => batch,
                    ended = &mut *server => break Err(server_ended(ended)),
                };
                let Some(batch) = batch else {
                    break Err(anyhow!("the file watcher stopped"));
                };
                let batch = seen.changed(dir, batch);
                if batch.is_empty() {
                    continue;
                }
                if batch.iter().any(|p| p == ".env") {
                    say(
                        ".env changed: it is read when berth start starts; restart it to use the new values",
                    );
                }
                // Everything read afresh: berth.yml, the Dockerfiles or .dockerignore
                // may be what changed. A manifest that does not parse leaves the one
                // read at start (the deploy it causes names the error).
                let current = std::fs::read_to_string(dir.join(manifest_rel))
                    .ok()
                    .and_then(|text| berth_core::parse_manifest(manifest_rel, &text).ok());
                let manifest = current.as_ref().unwrap_or(manifest);
                let layout = match sync::Layout::read(dir, manifest_rel, manifest) {
                    Ok(layout) => layout,
                    Err(e) => {
                        eprintln!("berth start: {e:#}");
                        continue;
                    }
                };
                let plan = layout.plan(&batch, |p| {
                    std::fs::metadata(dir.join(p)).ok().map(|m| m.is_file())
                });
                if plan.rebuild {
                    say(&format!(
                        "{} changed: building and rolling the app again",
                        plan.reason.as_deref().unwrap_or("a file")
                    ));
                    let result = match source::send(source_args(), true, Some(&client)).await {
                        Ok(events) => follow(events, true).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        eprintln!("berth start: the deploy failed: {e:#}");
                    }
                    continue;
                }
                for (service, files) in &plan.copies {
                    match sync::copy_into(
                        running.runtime.as_ref(),
                        &running.rack_id,
                        &app,
                        service,
                        dir,
                        files,
                    )
                    .await
                    {
                        Ok(n) => say(&format!(
                            "synced {} into {service} ({n} container{})",
                            files
                                .iter()
                                .map(|(src, _)| src.as_str())
                                .collect::<std::collections::BTreeSet<_>>()
                                .into_iter()
                                .collect::<Vec<_>>()
                                .join(", "),
                            if n == 1 { "" } else { "s" }
                        )),
                        Err(e) => eprintln!("berth start: {e:#}"),
                    }
                }
            }
        }
    };
    logs.abort();
    result
}

fn server_ended(
    ended: std::result::Result<
        Result<berth_server::Exit, berth_server::ServerError>,
        tokio::task::JoinError,
    >,
) -> anyhow::Error {
    match ended {
        Ok(Ok(berth_server::Exit::Stopped)) => anyhow!("the in-process server stopped"),
        Ok(Ok(berth_server::Exit::Update(_))) => anyhow!(
            "the in-process server stopped for `berth rack update`, which `berth start` does not do; update the berth binary and start again"
        ),
        Ok(Err(e)) => anyhow!(e).context("the in-process server failed"),
        Err(e) => anyhow!("the in-process server panicked: {e}"),
    }
}

/// The server configuration of `berth server`, on loopback, for `*.localhost`.
fn server_config(
    data_dir: &Path,
    api: SocketAddr,
    http: SocketAddr,
) -> Result<berth_server::ServerConfig> {
    Ok(berth_server::ServerConfig {
        data_dir: data_dir.to_path_buf(),
        api_addr: api,
        http_addr: http,
        domain: "localhost".into(),
        router: berth_server::RouterConfig {
            exe: std::env::current_exe()
                .context("cannot find the berth binary to start the router")?,
            threads: Some(2),
            limits: berth_router::Limits {
                max_body: Some(100 * 1024 * 1024),
                ..berth_router::Limits::default()
            },
            https: None,
        },
        acme: None,
        network_pool: None,
        max_upload: 1024 * 1024 * 1024,
        api_tls: berth_server::ApiTls::default(),
        swarm: false,
        metrics_addr: None,
        log_retention: berth_server::logs::Retention::default(),
        stop_router: true,
        api_listener: None,
    })
}

/// A free port on 127.0.0.1.
fn free_addr() -> Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free port on 127.0.0.1")
}

async fn wait_ready(client: &Client) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if client.health().await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the in-process server did not answer in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resolves at SIGINT or SIGTERM.
async fn interrupted() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Server logs only when they matter (warnings), on stderr; RUST_LOG overrides.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A line of berth start's own, in the log stream's shape.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{} {text}", paint("berth start", "berth", 0));
    let _ = out.flush();
}

/// Follows long work: steps and the outcome are printed (build output comes
/// through the log stream); an error event fails it.
async fn follow(mut events: berth_client::EventStream, urls: bool) -> Result<()> {
    while let Some(event) = events.next().await {
        match event? {
            Event::Build { .. } => {}
            Event::Step { text } => say(&format!("==> {text}")),
            Event::Error { error, logs } => {
                let mut text = error;
                for line in logs {
                    text.push_str("\n    ");
                    text.push_str(&line);
                }
                bail!("{text}");
            }
            Event::Result { value } => {
                if let Ok(r) = serde_json::from_value::<berth_api::DeployResult>(value) {
                    say(&format!("release {} is {}", r.release.id, r.release.status));
                    if urls {
                        for url in &r.urls {
                            say(&format!("serving {url}"));
                        }
                    }
                }
                return Ok(());
            }
        }
    }
    bail!("the server ended the response before the work finished")
}

/// The app's log stream, each line after its service's name (coloured on a
/// terminal); `service` keeps only that service's lines.
async fn print_logs(client: Client, app: String, service: Option<String>, names: Vec<String>) {
    let width = names.iter().map(String::len).max().unwrap_or(5);
    let query = LogsQuery {
        service,
        follow: true,
        ..Default::default()
    };
    loop {
        match client.logs(&app, &query).await {
            Ok(mut lines) => {
                while let Some(Ok(entry)) = lines.next().await {
                    let name = entry.service.clone().unwrap_or_else(|| {
                        entry
                            .source
                            .split('/')
                            .next()
                            .unwrap_or(&entry.source)
                            .to_string()
                    });
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{} {}", paint(&name, &name, width), entry.text);
                    let _ = out.flush();
                }
            }
            Err(e) => tracing::debug!(error = %e, "log stream"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `name` padded to `width` with ` |`, in `key`'s colour on a terminal.
fn paint(name: &str, key: &str, width: usize) -> String {
    let label = format!("{name:<width$} |");
    if !std::io::stdout().is_terminal() {
        return label;
    }
    const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];
    let hash = key.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    let colour = if key == "berth" {
        90
    } else {
        COLOURS[hash % COLOURS.len()]
    };
    format!("\x1b[{colour}m{label}\x1b[0m")
}

/// Values for the variables berth.yml requires without a default: from `.env` in
/// `dir`, else asked for on a terminal; without one, a missing value is an error.
fn required_env(dir: &Path, manifest: &berth_core::Manifest) -> Result<BTreeMap<String, String>> {
    let required = manifest.missing_env(&BTreeMap::new());
    if required.is_empty() {
        return Ok(BTreeMap::new());
    }
    let env_file = dir.join(".env");
    let from_file = match std::fs::read_to_string(&env_file) {
        Ok(text) => parse_dotenv(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", env_file.display())),
    };
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for key in required {
        match from_file.get(&key) {
            Some(v) => {
                values.insert(key, v.clone());
            }
            None => missing.push(key),
        }
    }
    if missing.is_empty() {
        return Ok(values);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "berth.yml requires {} without a default; put {} in {} (KEY=value lines; it stays out of the image), or run berth start on a terminal to be asked",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            env_file.display()
        );
    }
    for key in missing {
        eprint!("{key} (required by berth.yml; add it to .env to skip this): ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .with_context(|| format!("cannot read a value for {key}"))?;
        values.insert(key, line.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(values)
}

/// `KEY=value` lines (`export ` allowed, `#` comments, values optionally in
/// single or double quotes).
fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(key.trim().to_string(), value.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let env = parse_dotenv(
            "# local secrets\nA=1\nexport B = two words \nC=\"quoted # not a comment\"\nD='x'\nnot a pair\n\nE=\n",
        );
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "quoted # not a comment");
        assert_eq!(env["D"], "x");
        assert_eq!(env["E"], "");
        assert_eq!(env.len(), 5);
    }
}
