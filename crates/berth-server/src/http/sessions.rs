//! Attached one-offs (`berth run`) and `berth exec` over WebSockets: the
//! first text frame is the request, then binary frames carry stdin one way
//! and `[stream, bytes...]` the other; text frames carry control messages
//! ([`berth_api::SessionMessage`]), the last one `exit` or `error`.

use crate::oneoff::{self, SessionEnd};
use crate::rack::Rack;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use berth_api::{ExecRequest, RunRequest, SessionMessage};
use berth_runtime::{Session, SessionOutput};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// `GET /apps/{app}/run`: an attached one-off.
#[utoipa::path(
    get,
    path = "/apps/{app}/run",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop")),
    responses(
        (status = 101, description = "WebSocket: the first text message a `RunRequest`, then `SessionMessage`s and stream frames"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = berth_api::ErrorBody)
    )
)]
pub async fn run(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let Some(req) = first_message::<RunRequest>(&mut socket).await else {
            return;
        };
        let (attached, session) = match oneoff::attach(&rack, &app, &req).await {
            Ok(a) => a,
            Err(e) => return fail(&mut socket, e).await,
        };
        let started = SessionMessage::Started {
            id: attached.launch.id.clone(),
        };
        let end = if send(&mut socket, &started).await.is_err() {
            SessionEnd::Cut
        } else {
            let runtime = rack.runtime.clone();
            let container = attached.launch.container.clone();
            let resize = move |rows, cols| {
                let (runtime, container) = (runtime.clone(), container.clone());
                async move {
                    let _ = runtime.resize_container(&container, rows, cols).await;
                }
            };
            let timeout = req.timeout.map(Duration::from_secs);
            pump(&mut socket, session, timeout, req.tty, resize).await
        };
        let ended = oneoff::finish_attached(&rack, attached, end, req.timeout).await;
        let exit = SessionMessage::Exit {
            code: ended.code,
            timed_out: end == SessionEnd::TimedOut,
            oom_killed: ended.oom_killed,
        };
        finish(&mut socket, exit).await;
    })
}

/// `GET /apps/{app}/processes/{id}/exec`: a command inside a running process
/// (or a running one-off).
#[utoipa::path(
    get,
    path = "/apps/{app}/processes/{id}/exec",
    tag = "processes",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("id" = String, Path, description = "The process's id")),
    responses(
        (status = 101, description = "WebSocket: the first text message an `ExecRequest`, then `SessionMessage`s and stream frames"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = berth_api::ErrorBody)
    )
)]
pub async fn exec(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let Some(req) = first_message::<ExecRequest>(&mut socket).await else {
            return;
        };
        let exec = match oneoff::exec(&rack, &app, &id, &req).await {
            Ok(exec) => exec,
            Err(e) => return fail(&mut socket, e).await,
        };
        let started = SessionMessage::Started { id: id.clone() };
        if send(&mut socket, &started).await.is_err() {
            let exit = SessionMessage::Exit {
                code: None,
                timed_out: false,
                oom_killed: false,
            };
            return finish(&mut socket, exit).await;
        }
        let runtime = rack.runtime.clone();
        let exec_id = exec.id.clone();
        let resize = move |rows, cols| {
            let (runtime, exec_id) = (runtime.clone(), exec_id.clone());
            async move {
                let _ = runtime.resize_exec(&exec_id, rows, cols).await;
            }
        };
        pump(&mut socket, exec.session, None, req.tty, resize).await;
        let code = oneoff::exec_exit_code(&rack, &exec.id).await;
        let exit = SessionMessage::Exit {
            code,
            timed_out: false,
            oom_killed: false,
        };
        finish(&mut socket, exit).await;
    })
}

/// `GET /apps/{app}/resources/{name}/proxy`: a TCP connection to the resource,
/// carried like an exec session (the first text frame is `{}`; the client's
/// bytes are its stdin, the resource's come back as stdout frames; `exit`
/// when the resource closes the connection), so `berth resources proxy` can
/// give a local port to a `psql` on the laptop.
#[utoipa::path(
    get,
    path = "/apps/{app}/resources/{name}/proxy",
    tag = "resources",
    params(("app" = String, Path, description = "The app's name", example = "shop"), ("name" = String, Path, description = "The resource's name (a key of `resources:` in berth.yml)")),
    responses(
        (status = 101, description = "WebSocket: after a first text message, the client's bytes are stdin frames to the resource and its bytes come back as stdout frames"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = berth_api::ErrorBody)
    )
)]
pub async fn resource_proxy(
    State(rack): State<Arc<Rack>>,
    Path((app, name)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        if first_message::<serde_json::Value>(&mut socket)
            .await
            .is_none()
        {
            return;
        }
        let (addr, process) = match crate::resources::address(&rack, &app, &name).await {
            Ok(found) => found,
            Err(e) => return fail(&mut socket, e).await,
        };
        let stream = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                let error =
                    format!("cannot connect to resource {name} of app {app} at {addr}: {e}");
                return finish(&mut socket, SessionMessage::Error { error }).await;
            }
        };
        let (read, write) = stream.into_split();
        let session = Session {
            output: tokio_util::io::ReaderStream::new(read)
                .map(|chunk| {
                    chunk
                        .map(SessionOutput::Stdout)
                        .map_err(|e| berth_runtime::RuntimeError::Engine(e.to_string()))
                })
                .boxed(),
            input: Box::pin(write),
        };
        if send(&mut socket, &SessionMessage::Started { id: process })
            .await
            .is_err()
        {
            return;
        }
        pump(&mut socket, session, None, false, |_, _| async {}).await;
        let exit = SessionMessage::Exit {
            code: Some(0),
            timed_out: false,
            oom_killed: false,
        };
        finish(&mut socket, exit).await;
    })
}

/// Moves bytes between the socket and the process until its output ends, the
/// client goes away, or the timeout passes.
async fn pump<F, Fut>(
    socket: &mut WebSocket,
    session: Session,
    timeout: Option<Duration>,
    tty: bool,
    resize: F,
) -> SessionEnd
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
                        return SessionEnd::Cut;
                    }
                }
                Some(Err(_)) | None => return SessionEnd::Exited,
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
                Some(Err(_)) | None => return SessionEnd::Cut,
            },
            _ = &mut deadline => return SessionEnd::TimedOut,
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

async fn fail(socket: &mut WebSocket, error: crate::error::Error) {
    let error = error.to_string();
    finish(socket, SessionMessage::Error { error }).await;
}
