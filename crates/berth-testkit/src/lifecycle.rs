//! Containers from create to destroy: what the engine does on create, start,
//! stop, kill, wait and remove, with the events it publishes on the way.

use crate::fs::{SharedFs, normalize};
use crate::output::{Output, Phase};
use crate::process::{self, Context, Exit, KILLED, STDIN_BUFFER, Signal, Writer};
use crate::program;
use crate::state::{
    Container, DEFAULT_NETWORK, Engine, Run, State, Status, Volume, no_such_container, random_id,
};
use berth_runtime::{ContainerInfo, ContainerSpec, Result, RuntimeError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What a new container is made of, once its image is known.
struct Blueprint {
    spec: ContainerSpec,
    image_id: String,
    labels: BTreeMap<String, String>,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    network: Option<String>,
}

/// `KEY=value` entries of an image's config as a map.
fn env_map(entries: &[String]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) async fn create(engine: &Arc<Engine>, spec: &ContainerSpec) -> Result<String> {
    engine.check()?;
    remove(engine, &spec.name).await?;
    let mut state = engine.lock();
    let image = state
        .images
        .resolve(&spec.image)
        .ok_or_else(|| RuntimeError::ImageMissing(spec.image.clone()))?;
    let network = if spec.network.is_empty() {
        DEFAULT_NETWORK.to_string()
    } else {
        spec.network.clone()
    };
    if !state.networks.contains_key(&network) {
        return Err(RuntimeError::Engine(format!(
            "network {network} not found (HTTP 404)"
        )));
    }
    // The spec's command replaces the image's CMD; the ENTRYPOINT stays.
    let command = spec
        .command
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| image.config.cmd.clone())
        .unwrap_or_default();
    let mut argv = image.config.entrypoint.clone().unwrap_or_default();
    argv.extend(command);
    if argv.is_empty() {
        return Err(RuntimeError::Engine(
            "No command specified (HTTP 400)".into(),
        ));
    }
    // Containers carry their image's labels, overlaid by their own.
    let mut labels = image.config.labels.clone();
    labels.extend(spec.labels.clone());
    let mut env = env_map(&image.config.env);
    env.extend(spec.env.clone());
    let blueprint = Blueprint {
        spec: spec.clone(),
        image_id: image.id.clone(),
        labels,
        argv,
        env,
        network: Some(network),
    };
    insert(engine, &mut state, blueprint)
}

/// A container never started, on no network, mounting `volumes`, for the
/// archive API to reach their content.
pub(crate) async fn create_helper(
    engine: &Arc<Engine>,
    name: &str,
    image: &str,
    labels: &BTreeMap<String, String>,
    volumes: &[(String, String)],
) -> Result<String> {
    engine.check()?;
    remove(engine, name).await?;
    let mut state = engine.lock();
    let found = state
        .images
        .resolve(image)
        .ok_or_else(|| RuntimeError::ImageMissing(image.to_string()))?;
    let mut all_labels = found.config.labels.clone();
    all_labels.extend(labels.clone());
    let blueprint = Blueprint {
        spec: ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            labels: labels.clone(),
            volumes: volumes.to_vec(),
            ..Default::default()
        },
        image_id: found.id.clone(),
        labels: all_labels,
        argv: vec!["berth-helper".into()],
        env: BTreeMap::new(),
        network: None,
    };
    insert(engine, &mut state, blueprint)
}

fn insert(engine: &Engine, state: &mut State, blueprint: Blueprint) -> Result<String> {
    let mut spec = blueprint.spec;
    let id = random_id();
    if spec.name.is_empty() {
        // The engine names a container that was given no name.
        spec.name = format!("memory_{}", &id[..12]);
    }
    if let Some(other) = state.containers.values().find(|c| c.name == spec.name) {
        return Err(RuntimeError::Engine(format!(
            "Conflict. The container name \"/{}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name. (HTTP 409)",
            spec.name, other.id
        )));
    }
    let mut mounts = Vec::new();
    for (volume, path) in &spec.volumes {
        let path = normalize(path).filter(|p| !p.is_empty()).ok_or_else(|| {
            RuntimeError::Engine(format!("invalid mount config: {volume}:{path} (HTTP 400)"))
        })?;
        mounts.push((path, volume.clone()));
    }
    for (_, volume) in &mounts {
        // A volume not made beforehand is made now, unlabelled, as the engine does.
        state
            .volumes
            .entry(volume.clone())
            .or_insert_with(|| Volume {
                labels: BTreeMap::new(),
                files: SharedFs::default(),
            });
    }
    let (stdin_client, stdin_program) = if spec.stdin {
        let (client, program) = tokio::io::duplex(STDIN_BUFFER);
        (Some(client), Some(program))
    } else {
        (None, None)
    };
    let mut env = blueprint.env;
    // The engine sets it from the container's hostname (its short id unless given).
    let hostname = spec
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    env.entry("HOSTNAME".into()).or_insert(hostname);
    let container = Container {
        id: id.clone(),
        name: spec.name.clone(),
        image: spec.image.clone(),
        image_id: blueprint.image_id,
        labels: blueprint.labels,
        argv: blueprint.argv,
        env,
        network: blueprint.network,
        mounts,
        own_files: SharedFs::default(),
        status: watch::Sender::new(Status::Created),
        last_exit: 0,
        runs: 0,
        ip: None,
        started_at: None,
        started: None,
        output: Output::new(Phase::NotStarted),
        stdin_client,
        stdin_program,
        run: None,
        tty_size: None,
        spec,
    };
    engine.emit(&container, "create", &[]);
    state.containers.insert(id.clone(), container);
    Ok(id)
}

pub(crate) fn start(engine: &Arc<Engine>, reference: &str) -> Result<()> {
    engine.check()?;
    let mut state = engine.lock();
    let id = state
        .container_id(reference)
        .ok_or_else(|| no_such_container(reference))?;
    let container = state
        .containers
        .get(&id)
        .ok_or_else(|| no_such_container(reference))?;
    if container.is_running() {
        return Ok(());
    }
    if let Some(missing) = program::missing_executable(&container.argv) {
        let message = format!(
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{missing}\": executable file not found in $PATH: unknown (HTTP 400)"
        );
        if let Some(container) = state.containers.get_mut(&id) {
            container.last_exit = 127;
        }
        return Err(RuntimeError::Engine(message));
    }
    let files = state.files_of(container);
    let ip = match container.network.clone() {
        None => None,
        Some(name) => {
            let network = state.networks.get_mut(&name).ok_or_else(|| {
                RuntimeError::Engine(format!("network {name} not found (HTTP 404)"))
            })?;
            Some(network.allocate().ok_or_else(|| {
                RuntimeError::Engine(format!(
                    "no available IPv4 addresses on this network's address pools: {name} ({}) (HTTP 500)",
                    network.subnet()
                ))
            })?)
        }
    };
    let Some(container) = state.containers.get_mut(&id) else {
        return Err(no_such_container(reference));
    };
    let run = container.runs + 1;
    let program = program::parse(&container.argv, &container.env);
    let context = Context {
        name: container.name.clone(),
        ip,
        env: container.env.clone(),
        out: Writer {
            output: container.output.clone(),
            tty: container.spec.tty,
        },
        stdin: container.stdin_program.take(),
        files,
    };
    let (signals, receiver) = mpsc::unbounded_channel();
    // The task holds the engine weakly: dropping the runtime ends it.
    let weak = Arc::downgrade(engine);
    let task_id = id.clone();
    let task = tokio::spawn(async move {
        let exit = process::run(program, context, receiver).await;
        if let Some(engine) = weak.upgrade() {
            exited(&engine, &task_id, run, exit);
        }
    });
    container.run = Some(Run::new(signals, task.abort_handle()));
    container.mark_started(run, ip);
    engine.emit(container, "start", &[]);
    Ok(())
}

/// Records a run's end: the exit code, the address handed back, execs ended.
fn exited(engine: &Engine, id: &str, run: u64, exit: Exit) {
    let mut state = engine.lock();
    let Some(container) = state.containers.get_mut(id) else {
        return;
    };
    if container.runs != run || !container.is_running() {
        return;
    }
    container.last_exit = exit.code;
    container.status.send_replace(Status::Exited {
        code: exit.code,
        oom_killed: exit.oom_killed,
    });
    container.output.set_phase(Phase::Ended);
    if let Some(run) = container.run.take() {
        run.finished();
    }
    state.release_address(id);
    // Processes started by exec die with the container.
    for exec in state.execs.values().filter(|e| e.container == id) {
        if let Some(run) = &exec.run {
            let _ = run.signals.send(Signal::Kill(KILLED));
        }
    }
    if let Some(container) = state.containers.get(id) {
        if exit.oom_killed {
            engine.emit(container, "oom", &[]);
        }
        engine.emit(container, "die", &[("exitCode", exit.code.to_string())]);
    }
}

/// Until the container is not running (or is gone).
async fn until_stopped(status: &mut watch::Receiver<Status>) {
    let _ = status
        .wait_for(|s| !matches!(s, Status::Running { .. }))
        .await;
}

/// How to signal a running container and see it stop; `None` when it is not running.
fn running(
    state: &State,
    id: &str,
) -> Option<(mpsc::UnboundedSender<Signal>, watch::Receiver<Status>)> {
    let container = state.containers.get(id)?;
    let run = container.run.as_ref().filter(|_| container.is_running())?;
    Some((run.signals.clone(), container.status.subscribe()))
}

fn emit_for(engine: &Engine, id: &str, action: &str, extra: &[(&str, String)]) {
    if let Some(container) = engine.lock().containers.get(id) {
        engine.emit(container, action, extra);
    }
}

pub(crate) async fn stop(engine: &Arc<Engine>, reference: &str, grace: u32) -> Result<()> {
    engine.check()?;
    let (id, signals, mut status) = {
        let state = engine.lock();
        let Some(id) = state.container_id(reference) else {
            return Ok(());
        };
        let Some((signals, status)) = running(&state, &id) else {
            return Ok(());
        };
        (id, signals, status)
    };
    emit_for(engine, &id, "kill", &[("signal", "15".into())]);
    let _ = signals.send(Signal::Term);
    let grace = Duration::from_secs(u64::from(grace));
    if tokio::time::timeout(grace, until_stopped(&mut status))
        .await
        .is_err()
    {
        emit_for(engine, &id, "kill", &[("signal", "9".into())]);
        let _ = signals.send(Signal::Kill(KILLED));
        until_stopped(&mut status).await;
    }
    emit_for(engine, &id, "stop", &[]);
    Ok(())
}

/// Makes a running container's program exit with `code`, as a crash would.
pub(crate) async fn kill(engine: &Arc<Engine>, reference: &str, code: i64) -> Result<()> {
    engine.check()?;
    let (signals, mut status) = {
        let state = engine.lock();
        let id = state
            .container_id(reference)
            .ok_or_else(|| no_such_container(reference))?;
        running(&state, &id).ok_or_else(|| {
            RuntimeError::Engine(format!("Container {id} is not running (HTTP 409)"))
        })?
    };
    let _ = signals.send(Signal::Kill(code));
    until_stopped(&mut status).await;
    Ok(())
}

/// Force-removes: a running container is killed first (`die` 137), then gone.
pub(crate) async fn remove(engine: &Arc<Engine>, reference: &str) -> Result<()> {
    engine.check()?;
    let (id, running) = {
        let state = engine.lock();
        let Some(id) = state.container_id(reference) else {
            return Ok(());
        };
        let running = running(&state, &id);
        (id, running)
    };
    if let Some((signals, mut status)) = running {
        emit_for(engine, &id, "kill", &[("signal", "9".into())]);
        let _ = signals.send(Signal::Kill(KILLED));
        until_stopped(&mut status).await;
    }
    let mut state = engine.lock();
    state.release_address(&id);
    state.execs.retain(|_, exec| exec.container != id);
    if let Some(container) = state.containers.remove(&id) {
        engine.emit(&container, "destroy", &[]);
    }
    Ok(())
}

pub(crate) async fn wait(engine: &Arc<Engine>, reference: &str) -> Result<i64> {
    engine.check()?;
    let mut status = {
        let state = engine.lock();
        let container = state
            .container(reference)
            .ok_or_else(|| no_such_container(reference))?;
        // Not running and never will be by itself: the engine answers at once.
        if !container.is_running() {
            return Ok(container.last_exit);
        }
        container.status.subscribe()
    };
    until_stopped(&mut status).await;
    let last = *status.borrow();
    Ok(match last {
        Status::Exited { code, .. } => code,
        _ => KILLED,
    })
}

pub(crate) fn list(engine: &Engine, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
    engine.check()?;
    let state = engine.lock();
    Ok(state
        .containers
        .values()
        .filter(|c| c.labels.get(key).map(String::as_str) == Some(value))
        .map(|c| c.info(true))
        .collect())
}

pub(crate) fn inspect(engine: &Engine, reference: &str) -> Result<Option<ContainerInfo>> {
    engine.check()?;
    Ok(engine.lock().container(reference).map(|c| c.info(false)))
}
