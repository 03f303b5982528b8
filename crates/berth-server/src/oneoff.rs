//! One-off processes (`berth run`, timer runs) and `berth exec`.
//!
//! A one-off is a container of a release's service with the app's env and
//! volumes, like a process, but without a process row: it is labelled
//! `berth.oneoff=<id>` instead of `berth.process`, so the reconciler neither
//! replaces it nor removes it as a stray while it runs. Whoever is attached to
//! it (a CLI session, the timer scheduler) waits for its exit code and removes
//! it; the reconciler removes the exited ones nobody waits for (detached runs,
//! sessions cut by a server restart), stops those past their `--timeout`, and
//! removes all of them with their app.
//!
//! Attached runs and execs speak one WebSocket protocol (see
//! [`berth_api::SessionMessage`]): binary frames carry stdin one way and
//! `[stream, bytes...]` the other; text frames carry control messages.

use crate::rack::{Rack, RackError};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Json, http::StatusCode};
use berth_api::{ExecRequest, Process, RunRequest, RunStarted, SessionMessage};
use berth_runtime::{
    ContainerInfo, ContainerState, LABEL_APP, LABEL_DEADLINE, LABEL_DETACHED, LABEL_ONEOFF,
    LABEL_PROCESS, LABEL_SERVICE, LABEL_TIMER, Session, SessionOutput,
};
use berth_store::ProcessRow;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Grace between SIGTERM and SIGKILL when a one-off is stopped (timeout, cut session).
const STOP_GRACE: u32 = 3;

/// One-offs someone is waiting on, as `app/id`: the reconciler leaves them be
/// even after they exit, so the waiter still gets their exit code.
fn waited() -> &'static Mutex<HashSet<String>> {
    static WAITED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    WAITED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Marks `app/id` as waited on until the guard drops.
pub struct WaitGuard(String);

impl WaitGuard {
    pub fn new(app: &str, id: &str) -> WaitGuard {
        let key = format!("{app}/{id}");
        waited()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        WaitGuard(key)
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        waited()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

fn is_waited(app: &str, id: &str) -> bool {
    waited()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&format!("{app}/{id}"))
}

/// A one-off container that exists (created, not necessarily started).
pub struct Launch {
    pub id: String,
    pub container: String,
    pub release: String,
    pub service: String,
}

pub struct LaunchOptions<'a> {
    /// From [`new_id`]; take a [`WaitGuard`] on it first when you will wait.
    pub id: String,
    pub detached: bool,
    pub timer: Option<&'a str>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new one-off id, e.g. `web-run-3f9a2c`.
pub fn new_id(service: &str) -> String {
    format!("{service}-run-{}", hex::encode(rand::random::<[u8; 3]>()))
}

/// Starts a created one-off. `berth ps` lists one-offs from a cached view, which
/// engine events also refresh, but only after this call has returned.
pub async fn start(
    rack: &Rack,
    launch: &Launch,
) -> std::result::Result<(), berth_runtime::RuntimeError> {
    let started = rack.runtime.start_container(&launch.container).await;
    rack.forget_oneoffs(None);
    started
}

/// Creates (does not start) a one-off container for `req`.
pub async fn create(
    rack: &Rack,
    app: &str,
    req: &RunRequest,
    options: LaunchOptions<'_>,
) -> Result<Launch, RackError> {
    berth_core::validate_app_name(app)?;
    let row = rack.store.app(app)?;
    let release = match &req.release {
        Some(r) => r.clone(),
        None => row.release.clone().ok_or_else(|| {
            RackError::Conflict(format!(
                "app {app} has no release yet; deploy it first (berth deploy -a {app}) or pass --release"
            ))
        })?,
    };
    let release_row = rack.store.release(app, &release)?;
    let manifest = rack.manifest(&release_row)?;
    let Some(svc) = manifest.services.get(&req.service) else {
        return Err(RackError::NotFound(format!(
            "release {release} of app {app} has no service {}; the services are {}",
            req.service,
            manifest
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let formation = rack.store.formation(app)?;
    let (_, memory, cpu) = crate::deploy::desired(svc, formation.get(&req.service));
    let id = options.id.clone();
    let process = ProcessRow {
        app: app.to_string(),
        id: id.clone(),
        service: req.service.clone(),
        release: release.clone(),
        state: "oneoff".into(),
        created: berth_store::now_rfc3339(),
        memory,
        cpu,
        restarts: 0,
        last_exit: None,
        log_cursor: 0,
    };
    let (mut spec, _) = rack.process_spec(&process).await?;
    // Not a member of the service: the router and the service's DNS alias skip it.
    spec.aliases.clear();
    spec.labels.remove(LABEL_PROCESS);
    spec.labels.insert(LABEL_ONEOFF.into(), id.clone());
    if let Some(t) = req.timeout {
        spec.labels.insert(
            LABEL_DEADLINE.into(),
            (unix_now() + i64::try_from(t).unwrap_or(i64::MAX / 2)).to_string(),
        );
    }
    if options.detached {
        spec.labels.insert(LABEL_DETACHED.into(), "true".into());
    }
    if let Some(timer) = options.timer {
        spec.labels.insert(LABEL_TIMER.into(), timer.to_string());
    }
    if !req.command.is_empty() {
        spec.command = Some(req.command.clone());
    }
    spec.tty = req.tty;
    spec.stdin = req.stdin;
    let container = rack.runtime.create_container(&spec).await?;
    rack.forget_oneoffs(None);
    Ok(Launch {
        id,
        container,
        release,
        service: req.service.clone(),
    })
}

fn describe(req: &RunRequest) -> String {
    if req.command.is_empty() {
        "its default command".into()
    } else {
        format!("`{}`", req.command.join(" "))
    }
}

/// `POST /apps/{app}/run`: a detached one-off; its output goes to the app log.
pub async fn run_detached(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<RunRequest>,
) -> Result<(StatusCode, Json<RunStarted>), crate::api::ApiError> {
    let req = RunRequest {
        tty: false,
        stdin: false,
        ..req
    };
    let launch = create(
        &rack,
        &app,
        &req,
        LaunchOptions {
            id: new_id(&req.service),
            detached: true,
            timer: None,
        },
    )
    .await?;
    if let Err(e) = start(&rack, &launch).await {
        let _ = rack.runtime.remove_container(&launch.container).await;
        return Err(RackError::from(e).into());
    }
    rack.logs.event(
        &app,
        &format!(
            "one-off {} started (detached) from release {}: {}",
            launch.id,
            launch.release,
            describe(&req)
        ),
    );
    collect(
        &rack,
        &app,
        &launch,
        format!("{}/{}", launch.service, launch.id),
    );
    Ok((
        StatusCode::CREATED,
        Json(RunStarted {
            id: launch.id,
            release: launch.release,
        }),
    ))
}

/// Follows a one-off's output into the app log under `source`.
pub fn collect(rack: &Arc<Rack>, app: &str, launch: &Launch, source: String) {
    let rack = rack.clone();
    let app = app.to_string();
    let container = launch.container.clone();
    tokio::spawn(async move {
        let mut lines = rack.runtime.logs(&container, 0);
        while let Some(Ok(line)) = lines.next().await {
            rack.logs
                .append_at(&app, line.ts_nanos, &source, &line.text);
        }
    });
}

/// `GET /apps/{app}/run`: an attached one-off over a WebSocket.
pub async fn run_ws(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let mut socket = socket;
        let req: RunRequest = match first_message(&mut socket).await {
            Some(r) => r,
            None => return,
        };
        let id = new_id(&req.service);
        let _guard = WaitGuard::new(&app, &id);
        let launch = match create(
            &rack,
            &app,
            &req,
            LaunchOptions {
                id,
                detached: false,
                timer: None,
            },
        )
        .await
        {
            Ok(l) => l,
            Err(e) => {
                finish(
                    &mut socket,
                    SessionMessage::Error {
                        error: e.to_string(),
                    },
                )
                .await;
                return;
            }
        };
        let outcome = attach_and_run(&rack, &launch, &req, &mut socket).await;
        let _ = rack.runtime.remove_container(&launch.container).await;
        rack.forget_oneoffs(None);
        let text = match &outcome {
            SessionMessage::Exit {
                code,
                timed_out: true,
            } => format!(
                "one-off {} timed out after {} s and was stopped (exit code {})",
                launch.id,
                req.timeout.unwrap_or(0),
                code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
            ),
            SessionMessage::Exit { code, .. } => format!(
                "one-off {} exited with code {}",
                launch.id,
                code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
            ),
            SessionMessage::Error { error } => format!("one-off {} failed: {error}", launch.id),
            _ => String::new(),
        };
        rack.logs.event(&app, &text);
        finish(&mut socket, outcome).await;
    })
}

async fn attach_and_run(
    rack: &Arc<Rack>,
    launch: &Launch,
    req: &RunRequest,
    socket: &mut WebSocket,
) -> SessionMessage {
    let error = |e: berth_runtime::RuntimeError| SessionMessage::Error {
        error: e.to_string(),
    };
    // Attached before the start, so not a byte of output is missed.
    let session = match rack
        .runtime
        .attach_container(&launch.container, req.stdin)
        .await
    {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    if let Err(e) = start(rack, launch).await {
        return error(e);
    }
    rack.logs.event(
        &launch_app(rack, launch),
        &format!(
            "one-off {} started from release {}: {}",
            launch.id,
            launch.release,
            describe(req)
        ),
    );
    if req.tty
        && let (Some(rows), Some(cols)) = (req.rows, req.cols)
    {
        let _ = rack
            .runtime
            .resize_container(&launch.container, rows, cols)
            .await;
    }
    if send(
        socket,
        &SessionMessage::Started {
            id: launch.id.clone(),
        },
    )
    .await
    .is_err()
    {
        let _ = rack
            .runtime
            .stop_container(&launch.container, STOP_GRACE)
            .await;
        return SessionMessage::Exit {
            code: None,
            timed_out: false,
        };
    }
    let runtime = rack.runtime.clone();
    let container = launch.container.clone();
    let resize = move |rows, cols| {
        let runtime = runtime.clone();
        let container = container.clone();
        async move {
            let _ = runtime.resize_container(&container, rows, cols).await;
        }
    };
    let timeout = req.timeout.map(Duration::from_secs);
    let pumped = pump(socket, session, timeout, req.tty, resize).await;
    if pumped.cut || pumped.timed_out {
        let _ = rack
            .runtime
            .stop_container(&launch.container, STOP_GRACE)
            .await;
    }
    let code = rack.runtime.wait_container(&launch.container).await.ok();
    SessionMessage::Exit {
        code,
        timed_out: pumped.timed_out,
    }
}

fn launch_app(rack: &Rack, launch: &Launch) -> String {
    // The container name is `berth-<rack>-<app>-<id>`.
    let prefix = format!("berth-{}-", rack.rack_id);
    let suffix = format!("-{}", launch.id);
    launch
        .container
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix(&suffix))
        .unwrap_or_default()
        .to_string()
}

struct Pumped {
    /// The client went away before the process ended.
    cut: bool,
    timed_out: bool,
}

/// Moves bytes between the socket and the process until its output ends, the
/// client goes away, or the timeout passes.
async fn pump<F, Fut>(
    socket: &mut WebSocket,
    session: Session,
    timeout: Option<Duration>,
    tty: bool,
    resize: F,
) -> Pumped
where
    F: Fn(u16, u16) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Session {
        mut output,
        mut input,
    } = session;
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut stdin_open = true;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => {
                    let (tag, bytes) = match chunk {
                        SessionOutput::Stdout(b) => (1u8, b),
                        SessionOutput::Stderr(b) => (2u8, b),
                    };
                    let mut frame = Vec::with_capacity(bytes.len() + 1);
                    frame.push(tag);
                    frame.extend_from_slice(&bytes);
                    if socket.send(Message::Binary(frame.into())).await.is_err() {
                        return Pumped { cut: true, timed_out: false };
                    }
                }
                Some(Err(_)) | None => return Pumped { cut: false, timed_out: false },
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if stdin_open && input.write_all(&data).await.is_err() {
                        stdin_open = false;
                    }
                    let _ = input.flush().await;
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                    Ok(SessionMessage::Resize { rows, cols }) => resize(rows, cols).await,
                    // A TTY's stdin stays open: half-closing a TTY attach makes the
                    // engine end its output too, and a terminal sends ^D itself.
                    Ok(SessionMessage::Eof) if !tty => {
                        stdin_open = false;
                        let _ = input.shutdown().await;
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Pumped { cut: true, timed_out: false },
            },
            _ = &mut deadline => return Pumped { cut: false, timed_out: true },
        }
    }
}

async fn first_message<T: serde::de::DeserializeOwned>(socket: &mut WebSocket) -> Option<T> {
    let first = tokio::time::timeout(Duration::from_secs(30), socket.recv()).await;
    match first {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(text.as_str()) {
            Ok(req) => Some(req),
            Err(e) => {
                finish(
                    socket,
                    SessionMessage::Error {
                        error: format!("the first message must be the request as JSON: {e}"),
                    },
                )
                .await;
                None
            }
        },
        _ => None,
    }
}

async fn send(socket: &mut WebSocket, message: &SessionMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

async fn finish(socket: &mut WebSocket, message: SessionMessage) {
    let _ = send(socket, &message).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// `GET /apps/{app}/processes/{id}/exec`: a command inside a running process
/// (or a running one-off) over a WebSocket.
pub async fn exec_ws(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let mut socket = socket;
        let req: ExecRequest = match first_message(&mut socket).await {
            Some(r) => r,
            None => return,
        };
        let outcome = exec(&rack, &app, &id, &req, &mut socket).await;
        finish(&mut socket, outcome).await;
    })
}

async fn exec(
    rack: &Arc<Rack>,
    app: &str,
    id: &str,
    req: &ExecRequest,
    socket: &mut WebSocket,
) -> SessionMessage {
    let error = |error: String| SessionMessage::Error { error };
    if let Err(e) = rack.store.app(app) {
        return error(e.to_string());
    }
    if req.command.is_empty() {
        return error("no command given; use `berth exec PROCESS -- CMD ARGS`".into());
    }
    let container = rack
        .observed(app, id)
        .map(|o| o.container_id)
        .unwrap_or_else(|| rack.container_name(app, id));
    match rack.runtime.inspect_container(&container).await {
        // The labels, not the name, say whose it is: `berth-<rack>-a-b-web-1` could be
        // app `a`'s process `b-web-1` or app `a-b`'s process `web-1`.
        Ok(Some(c))
            if c.state == ContainerState::Running
                && c.labels.get(LABEL_APP).map(String::as_str) == Some(app)
                && c.labels.get(berth_runtime::LABEL_RACK) == Some(&rack.rack_id)
                && (c.labels.get(LABEL_PROCESS).map(String::as_str) == Some(id)
                    || c.labels.get(LABEL_ONEOFF).map(String::as_str) == Some(id)) => {}
        Ok(_) => {
            return error(format!(
                "process {id} of app {app} is not running; see `berth ps -a {app}` for the running ones"
            ));
        }
        Err(e) => return error(e.to_string()),
    }
    let (exec_id, session) = match rack
        .runtime
        .exec(&container, &req.command, req.tty, req.stdin)
        .await
    {
        Ok(s) => s,
        Err(e) => return error(e.to_string()),
    };
    if req.tty
        && let (Some(rows), Some(cols)) = (req.rows, req.cols)
    {
        let _ = rack.runtime.resize_exec(&exec_id, rows, cols).await;
    }
    if send(socket, &SessionMessage::Started { id: id.to_string() })
        .await
        .is_err()
    {
        return SessionMessage::Exit {
            code: None,
            timed_out: false,
        };
    }
    let runtime = rack.runtime.clone();
    let exec_for_resize = exec_id.clone();
    let resize = move |rows, cols| {
        let runtime = runtime.clone();
        let exec_id = exec_for_resize.clone();
        async move {
            let _ = runtime.resize_exec(&exec_id, rows, cols).await;
        }
    };
    pump(socket, session, None, req.tty, resize).await;
    // The output ends a moment before the engine records the exit code.
    let mut code = None;
    for _ in 0..50 {
        match rack.runtime.exec_exit_code(&exec_id).await {
            Ok(Some(c)) => {
                code = Some(c);
                break;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => break,
        }
    }
    SessionMessage::Exit {
        code,
        timed_out: false,
    }
}

/// The one-offs of `app` as `berth ps` shows them (SERVICE `web (run)`).
pub async fn processes(rack: &Rack, app: &str) -> Vec<Process> {
    let containers = match rack.cached_oneoffs(app) {
        Ok(list) => list,
        Err(generation) => {
            let Ok(list) = rack.runtime.list_containers(LABEL_APP, app).await else {
                return vec![];
            };
            let list: Vec<_> = list
                .into_iter()
                .filter(|c| c.labels.contains_key(LABEL_ONEOFF))
                .collect();
            rack.remember_oneoffs(app, generation, list.clone());
            list
        }
    };
    containers
        .into_iter()
        .filter(|c| c.labels.get(berth_runtime::LABEL_RACK) == Some(&rack.rack_id))
        .filter_map(|c| {
            let id = c.labels.get(LABEL_ONEOFF)?.clone();
            let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
            let kind = match c.labels.get(LABEL_TIMER) {
                Some(t) => format!("timer {t}"),
                None => "run".into(),
            };
            let (state, last_exit) = match &c.state {
                ContainerState::Running => ("running".to_string(), None),
                ContainerState::Created => ("starting".to_string(), None),
                ContainerState::Exited { code, .. } => ("exited".to_string(), *code),
                ContainerState::Other(s) => (s.clone(), None),
            };
            Some(Process {
                id,
                app: app.to_string(),
                service: format!("{service} ({kind})"),
                release: c
                    .labels
                    .get(berth_runtime::LABEL_RELEASE)
                    .cloned()
                    .unwrap_or_default(),
                state,
                started: c.started_at.clone(),
                address: c.ip.map(|ip| ip.to_string()),
                restarts: 0,
                last_exit,
            })
        })
        .collect()
}

/// The reconciler's part: one-offs of deleted apps are removed, those past
/// their deadline stopped, exited ones nobody waits for removed.
pub async fn converge(rack: &Rack, apps: &BTreeSet<String>, oneoffs: Vec<ContainerInfo>) {
    let now = unix_now();
    for c in oneoffs {
        let app = c.labels.get(LABEL_APP).cloned().unwrap_or_default();
        let id = c.labels.get(LABEL_ONEOFF).cloned().unwrap_or_default();
        if !apps.contains(&app) {
            let _ = rack.runtime.remove_container(&c.id).await;
            continue;
        }
        if is_waited(&app, &id) {
            continue;
        }
        match &c.state {
            ContainerState::Running => {
                let deadline = c
                    .labels
                    .get(LABEL_DEADLINE)
                    .and_then(|d| d.parse::<i64>().ok());
                if deadline.is_some_and(|d| now >= d) {
                    rack.logs.event(
                        &app,
                        &format!("one-off {id} passed its timeout; stopping it"),
                    );
                    let _ = rack.runtime.stop_container(&c.id, STOP_GRACE).await;
                }
            }
            // Timer runs are the scheduler's to finish: it records their exit code.
            _ if c.labels.contains_key(LABEL_TIMER) => {}
            ContainerState::Exited { code, .. } => {
                if c.labels.contains_key(LABEL_DETACHED) {
                    rack.logs.event(
                        &app,
                        &format!(
                            "one-off {id} exited with code {}",
                            code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                        ),
                    );
                }
                let _ = rack.runtime.remove_container(&c.id).await;
            }
            // Created but never started: a session that died between the two.
            ContainerState::Created => {
                let _ = rack.runtime.remove_container(&c.id).await;
            }
            ContainerState::Other(_) => {}
        }
    }
}
