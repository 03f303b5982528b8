//! A container's output and input from outside: logs, attach, exec.

use crate::output::{Chunk, Output, Phase, follow_lines, lines_of};
use crate::process::{self, Context, Exit, STDIN_BUFFER, Writer};
use crate::program;
use crate::state::{Engine, Exec, Run, no_such_container, random_id, single};
use berth_runtime::{LogLine, LogStream, Result, RuntimeError, Session, SessionOutput};
use futures_util::stream::{BoxStream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

pub(crate) fn logs(
    engine: &Engine,
    reference: &str,
    since_secs: i64,
) -> BoxStream<'static, Result<LogLine>> {
    if let Err(e) = engine.check() {
        return single(Err(e));
    }
    let output = match engine.lock().container(reference) {
        Some(container) => container.output.clone(),
        None => return single(Err(RuntimeError::NotFound(reference.to_string()))),
    };
    let since = i128::from(since_secs.max(0)) * 1_000_000_000;
    let chunks = output
        .follow()
        .filter(move |chunk| std::future::ready(chunk.ts_nanos >= since))
        .boxed();
    follow_lines(chunks).map(Ok).boxed()
}

pub(crate) fn tail(engine: &Engine, reference: &str, lines: usize) -> Result<Vec<LogLine>> {
    engine.check()?;
    let chunks = engine
        .lock()
        .container(reference)
        .ok_or_else(|| RuntimeError::NotFound(reference.to_string()))?
        .output
        .chunks();
    let mut all = lines_of(&chunks);
    let skip = all.len().saturating_sub(lines);
    all.drain(..skip);
    Ok(all)
}

fn session_output(output: &Arc<Output>) -> BoxStream<'static, Result<SessionOutput>> {
    output
        .follow()
        .map(|Chunk { stream, bytes, .. }| {
            Ok(match stream {
                LogStream::Stdout => SessionOutput::Stdout(bytes),
                LogStream::Stderr => SessionOutput::Stderr(bytes),
            })
        })
        .boxed()
}

type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// The container's output from its start on; stdin when asked for, open and
/// not taken by an earlier attach (the engine's `StdinOnce`).
pub(crate) fn attach(engine: &Engine, reference: &str, stdin: bool) -> Result<Session> {
    engine.check()?;
    let mut state = engine.lock();
    let container = state
        .container_mut(reference)
        .ok_or_else(|| no_such_container(reference))?;
    let input: Input = match container.stdin_client.take() {
        Some(client) if stdin => Box::pin(client),
        other => {
            container.stdin_client = other;
            Box::pin(tokio::io::sink())
        }
    };
    Ok(Session {
        output: session_output(&container.output),
        input,
    })
}

pub(crate) fn exec(
    engine: &Arc<Engine>,
    reference: &str,
    command: &[String],
    tty: bool,
    stdin: bool,
) -> Result<(String, Session)> {
    engine.check()?;
    if command.is_empty() {
        return Err(RuntimeError::Engine(
            "No exec command specified (HTTP 400)".into(),
        ));
    }
    let mut state = engine.lock();
    let container = state
        .container(reference)
        .ok_or_else(|| no_such_container(reference))?;
    if !container.is_running() {
        return Err(RuntimeError::Engine(format!(
            "Container {} is not running (HTTP 409)",
            container.id
        )));
    }
    let output = Output::new(Phase::Live);
    let (input, program_stdin): (Input, _) = if stdin {
        let (client, program) = tokio::io::duplex(STDIN_BUFFER);
        (Box::pin(client), Some(program))
    } else {
        (Box::pin(tokio::io::sink()), None)
    };
    let context = Context {
        name: container.name.clone(),
        ip: container.ip,
        env: container.env.clone(),
        out: Writer {
            output: output.clone(),
            tty,
        },
        stdin: program_stdin,
        files: state.files_of(container),
    };
    let program = program::parse(command, &container.env);
    let exec_id = random_id();
    let (signals, receiver) = mpsc::unbounded_channel();
    let weak = Arc::downgrade(engine);
    let task_id = exec_id.clone();
    let task = tokio::spawn(async move {
        let exit = process::run(program, context, receiver).await;
        if let Some(engine) = weak.upgrade() {
            exec_exited(&engine, &task_id, exit);
        }
    });
    let shown = command.join(" ");
    engine.emit(container, &format!("exec_create: {shown}"), &[]);
    engine.emit(container, &format!("exec_start: {shown}"), &[]);
    let container_id = container.id.clone();
    let session = Session {
        output: session_output(&output),
        input,
    };
    state.execs.insert(
        exec_id.clone(),
        Exec {
            container: container_id,
            output,
            exit_code: None,
            run: Some(Run::new(signals, task.abort_handle())),
            tty_size: None,
        },
    );
    Ok((exec_id, session))
}

fn exec_exited(engine: &Engine, exec_id: &str, exit: Exit) {
    let mut state = engine.lock();
    let Some(exec) = state.execs.get_mut(exec_id) else {
        return;
    };
    exec.exit_code = Some(exit.code);
    exec.output.set_phase(Phase::Ended);
    if let Some(run) = exec.run.take() {
        run.finished();
    }
    let container = exec.container.clone();
    if let Some(container) = state.containers.get(&container) {
        engine.emit(
            container,
            "exec_die",
            &[
                ("execID", exec_id.to_string()),
                ("exitCode", exit.code.to_string()),
            ],
        );
    }
}

fn no_such_exec(exec_id: &str) -> RuntimeError {
    RuntimeError::Engine(format!("No such exec instance: {exec_id} (HTTP 404)"))
}

pub(crate) fn exec_exit_code(engine: &Engine, exec_id: &str) -> Result<Option<i64>> {
    engine.check()?;
    let state = engine.lock();
    let exec = state
        .execs
        .get(exec_id)
        .ok_or_else(|| no_such_exec(exec_id))?;
    Ok(exec.exit_code)
}

pub(crate) fn resize_container(
    engine: &Engine,
    reference: &str,
    rows: u16,
    cols: u16,
) -> Result<()> {
    engine.check()?;
    let mut state = engine.lock();
    let container = state
        .container_mut(reference)
        .ok_or_else(|| no_such_container(reference))?;
    container.tty_size = Some((rows, cols));
    Ok(())
}

pub(crate) fn resize_exec(engine: &Engine, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
    engine.check()?;
    let mut state = engine.lock();
    let exec = state
        .execs
        .get_mut(exec_id)
        .ok_or_else(|| no_such_exec(exec_id))?;
    exec.tty_size = Some((rows, cols));
    Ok(())
}
