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
//! Attached runs and execs are carried over WebSockets by `http::sessions`;
//! this module starts, ends and lists them.

use crate::error::{Error, Result};
use crate::rack::Rack;
use crate::spec::{Instance, desired};
use berth_api::{ExecRequest, Process, ProcessKind, RunRequest, RunStarted};
use berth_runtime::{
    ContainerInfo, ContainerState, LABEL_APP, LABEL_DEADLINE, LABEL_DETACHED, LABEL_ONEOFF,
    LABEL_PROCESS, LABEL_SERVICE, LABEL_TIMER, Session,
};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
    pub app: String,
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
) -> Result<Launch, Error> {
    berth_core::validate_app_name(app)?;
    let row = rack.store.app(app)?;
    let release = match &req.release {
        Some(r) => r.clone(),
        None => row.release.clone().ok_or_else(|| {
            Error::Conflict(format!(
                "app {app} has no release yet; deploy it first (berth deploy -a {app}) or pass --release"
            ))
        })?,
    };
    let release_row = rack.store.release(app, &release)?;
    let manifest = rack.manifest(&release_row)?;
    let svc = crate::spec::release_service(&manifest, app, &release, &req.service)?;
    let formation = rack.store.formation(app)?;
    let (_, memory, cpu) = desired(svc, formation.get(&req.service));
    let id = options.id.clone();
    let instance = Instance {
        app,
        id: &id,
        service: &req.service,
        release: &release,
        memory,
        cpu,
    };
    let (mut spec, _) = crate::spec::container(rack, instance).await?;
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
        app: app.to_string(),
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

/// Starts a detached one-off; its output goes to the app log.
pub async fn run_detached(rack: &Arc<Rack>, app: &str, req: RunRequest) -> Result<RunStarted> {
    let req = RunRequest {
        tty: false,
        stdin: false,
        ..req
    };
    let launch = create(
        rack,
        app,
        &req,
        LaunchOptions {
            id: new_id(&req.service),
            detached: true,
            timer: None,
        },
    )
    .await?;
    if let Err(e) = start(rack, &launch).await {
        let _ = rack.runtime.remove_container(&launch.container).await;
        return Err(e.into());
    }
    rack.logs.service_event(
        app,
        &launch.service,
        &format!(
            "one-off {} started (detached) from release {}: {}",
            launch.id,
            launch.release,
            describe(&req)
        ),
    );
    collect(rack, &launch, format!("{}/{}", launch.service, launch.id));
    Ok(RunStarted {
        id: launch.id,
        release: launch.release,
    })
}

/// Follows a one-off's output into the app log under `source`.
pub fn collect(rack: &Arc<Rack>, launch: &Launch, source: String) {
    let rack = rack.clone();
    let app = launch.app.clone();
    let container = launch.container.clone();
    tokio::spawn(async move {
        let mut lines = rack.runtime.logs(&container, 0);
        while let Some(Ok(line)) = lines.next().await {
            rack.logs
                .append_at(&app, line.ts_nanos, &source, &line.text);
        }
    });
}

/// An attached one-off, started; the reconciler leaves it to its waiter until
/// [`finish_attached`].
pub struct Attached {
    pub launch: Launch,
    _waiting: WaitGuard,
}

/// How an attached one-off's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its output ended: the process exited.
    Exited,
    /// The client went away first.
    Cut,
    /// Its `--timeout` passed.
    TimedOut,
}

/// Creates a one-off for `req`, attaches to it *before* starting it (so not a
/// byte of output is missed) and starts it; its streams.
pub async fn attach(rack: &Rack, app: &str, req: &RunRequest) -> Result<(Attached, Session)> {
    let id = new_id(&req.service);
    let waiting = WaitGuard::new(app, &id);
    let options = LaunchOptions {
        id,
        detached: false,
        timer: None,
    };
    let launch = create(rack, app, req, options).await?;
    let started = async {
        let session = rack
            .runtime
            .attach_container(&launch.container, req.stdin)
            .await?;
        start(rack, &launch).await?;
        Ok::<_, Error>(session)
    }
    .await;
    let session = match started {
        Ok(session) => session,
        Err(e) => {
            let _ = rack.runtime.remove_container(&launch.container).await;
            rack.forget_oneoffs(None);
            rack.logs.service_event(
                app,
                &launch.service,
                &format!("one-off {} failed: {e}", launch.id),
            );
            return Err(e);
        }
    };
    rack.logs.service_event(
        app,
        &launch.service,
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
    let attached = Attached {
        launch,
        _waiting: waiting,
    };
    Ok((attached, session))
}

/// How a one-off ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// `None`: the engine could not tell.
    pub code: Option<i64>,
    /// Killed at its memory limit.
    pub oom_killed: bool,
}

/// Waits until a one-off's container has exited; its code and whether memory
/// ran out (which only inspecting tells).
async fn wait_ended(rack: &Rack, container: &str) -> Ended {
    let code = rack.runtime.wait_container(container).await.ok();
    Ended {
        code,
        oom_killed: ran_out_of_memory(rack, container).await,
    }
}

/// Whether an exited container was killed at its memory limit.
pub async fn ran_out_of_memory(rack: &Rack, container: &str) -> bool {
    matches!(
        rack.runtime.inspect_container(container).await,
        Ok(Some(ContainerInfo {
            state: ContainerState::Exited {
                oom_killed: true,
                ..
            },
            ..
        }))
    )
}

/// `exited with code N`, and why when memory ran out, with the fix: the same
/// words for attached, detached and timer runs.
pub fn exit_text(ended: Ended, app: &str, service: &str) -> String {
    let code = ended
        .code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "?".into());
    if ended.oom_killed {
        format!(
            "exited with code {code}: killed for running out of memory; raise the limit with `berth scale {service} --memory MIB -a {app}`"
        )
    } else {
        format!("exited with code {code}")
    }
}

/// Ends an attached one-off: stops it unless it exited, waits for its exit,
/// removes it and logs how it ended.
pub async fn finish_attached(
    rack: &Rack,
    attached: Attached,
    end: SessionEnd,
    timeout: Option<u64>,
) -> Ended {
    let Attached { launch, .. } = attached;
    if end != SessionEnd::Exited {
        let _ = rack
            .runtime
            .stop_container(&launch.container, STOP_GRACE)
            .await;
    }
    let ended = wait_ended(rack, &launch.container).await;
    let _ = rack.runtime.remove_container(&launch.container).await;
    rack.forget_oneoffs(None);
    let exit = exit_text(ended, &launch.app, &launch.service);
    let text = if end == SessionEnd::TimedOut {
        format!(
            "one-off {} timed out after {} s and was stopped ({exit})",
            launch.id,
            timeout.unwrap_or(0),
        )
    } else {
        format!("one-off {} {exit}", launch.id)
    };
    rack.logs.service_event(&launch.app, &launch.service, &text);
    ended
}

/// Stops one-off `id` of `app` by request (`berth ps stop`): SIGTERM, SIGKILL
/// after [`STOP_GRACE`]. It has no row and is never routed, so there is nothing
/// to drain or keep; whoever waits on it (a session, the timer scheduler), else
/// the reconciler, reports its exit and removes it. `Ok(false)`: `id` is not a
/// one-off of `app`.
pub async fn stop(rack: &Rack, app: &str, id: &str) -> Result<bool> {
    let Some(info) = rack
        .runtime
        .inspect_container(&rack.container_name(app, id))
        .await?
    else {
        return Ok(false);
    };
    // The labels, not the name, say whose it is (see `exec`).
    if info.labels.get(LABEL_APP).map(String::as_str) != Some(app)
        || !rack.owns(&info.labels)
        || info.labels.get(LABEL_ONEOFF).map(String::as_str) != Some(id)
    {
        return Ok(false);
    }
    if let ContainerState::Exited { code, .. } = info.state {
        return Err(Error::Conflict(format!(
            "one-off {id} of app {app} already exited (code {}); nothing to stop",
            code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
        )));
    }
    let service = info.labels.get(LABEL_SERVICE).map_or("", String::as_str);
    rack.logs.service_event(
        app,
        service,
        &format!("one-off {id} stopped by request (SIGTERM, SIGKILL after {STOP_GRACE} s)"),
    );
    rack.runtime.stop_container(&info.id, STOP_GRACE).await?;
    rack.forget_oneoffs(Some(app));
    Ok(true)
}

/// A command running inside a process (or a running one-off).
pub struct Exec {
    pub id: String,
    pub session: Session,
}

/// Starts `req` inside process `id` of `app`, which must be running and be this
/// rack's.
pub async fn exec(rack: &Rack, app: &str, id: &str, req: &ExecRequest) -> Result<Exec> {
    rack.store.app(app)?;
    if req.command.is_empty() {
        return Err(Error::Invalid(
            "no command given; use `berth exec PROCESS -- CMD ARGS`".into(),
        ));
    }
    let container = rack.container_of(app, id);
    match rack.runtime.inspect_container(&container).await? {
        // The labels, not the name, say whose it is: `berth-<rack>-a-b-web-1` could be
        // app `a`'s process `b-web-1` or app `a-b`'s process `web-1`.
        Some(c)
            if c.state == ContainerState::Running
                && c.labels.get(LABEL_APP).map(String::as_str) == Some(app)
                && rack.owns(&c.labels)
                && (c.labels.get(LABEL_PROCESS).map(String::as_str) == Some(id)
                    || c.labels.get(LABEL_ONEOFF).map(String::as_str) == Some(id)) => {}
        _ => {
            return Err(Error::Conflict(format!(
                "process {id} of app {app} is not running; see `berth ps -a {app}` for the running ones"
            )));
        }
    }
    let (exec_id, session) = rack
        .runtime
        .exec(&container, &req.command, req.tty, req.stdin)
        .await?;
    if req.tty
        && let (Some(rows), Some(cols)) = (req.rows, req.cols)
    {
        let _ = rack.runtime.resize_exec(&exec_id, rows, cols).await;
    }
    Ok(Exec {
        id: exec_id,
        session,
    })
}

/// The exit code of a finished exec. Its output ends a moment before the
/// engine records the code, so this asks a few times.
pub async fn exec_exit_code(rack: &Rack, exec_id: &str) -> Option<i64> {
    for _ in 0..50 {
        match rack.runtime.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return None,
        }
    }
    None
}

/// The one-offs of `app` as `berth ps` shows them: kind `run` or `timer`, with
/// their service and start time.
pub async fn processes(rack: &Rack, app: &str) -> Vec<Process> {
    let containers = match rack.cached_oneoffs(app) {
        Ok(list) => list,
        Err(generation) => {
            let Ok(list) = rack.runtime.list_containers(LABEL_APP, app).await else {
                return vec![];
            };
            let oneoffs = list
                .into_iter()
                .filter(|c| c.labels.contains_key(LABEL_ONEOFF))
                .map(|c| with_start_time(rack, c));
            let list = futures_util::future::join_all(oneoffs).await;
            rack.remember_oneoffs(app, generation, list.clone());
            list
        }
    };
    containers
        .into_iter()
        .filter(|c| rack.owns(&c.labels))
        .filter_map(|c| {
            let id = c.labels.get(LABEL_ONEOFF)?.clone();
            let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
            let timer = c.labels.get(LABEL_TIMER).cloned();
            let kind = match timer {
                Some(_) => ProcessKind::Timer,
                None => ProcessKind::Run,
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
                kind,
                service,
                timer,
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
                node: c.node.clone(),
                cpu: None,
                memory: None,
                memory_limit: None,
            })
        })
        .collect()
}

/// The engine's list leaves out when a running container started: asked for.
async fn with_start_time(rack: &Rack, c: ContainerInfo) -> ContainerInfo {
    if c.state != ContainerState::Running || c.started_at.is_some() {
        return c;
    }
    match rack.runtime.inspect_container(&c.id).await {
        Ok(Some(inspected)) => ContainerInfo {
            started_at: inspected.started_at,
            ..c
        },
        _ => c,
    }
}

/// The reconciler's part: one-offs of deleted apps are removed, those past
/// their deadline stopped, exited ones nobody waits for removed.
pub async fn converge(rack: &Rack, apps: &BTreeSet<String>, oneoffs: Vec<ContainerInfo>) {
    let now = unix_now();
    for c in oneoffs {
        let app = c.labels.get(LABEL_APP).cloned().unwrap_or_default();
        let id = c.labels.get(LABEL_ONEOFF).cloned().unwrap_or_default();
        let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
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
                    rack.logs.service_event(
                        &app,
                        &service,
                        &format!("one-off {id} passed its timeout; stopping it"),
                    );
                    let _ = rack.runtime.stop_container(&c.id, STOP_GRACE).await;
                }
            }
            // Timer runs are the scheduler's to finish: it records their exit code.
            _ if c.labels.contains_key(LABEL_TIMER) => {}
            ContainerState::Exited { code, oom_killed } => {
                if c.labels.contains_key(LABEL_DETACHED) {
                    let ended = Ended {
                        code: *code,
                        oom_killed: *oom_killed,
                    };
                    rack.logs.service_event(
                        &app,
                        &service,
                        &format!("one-off {id} {}", exit_text(ended, &app, &service)),
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
