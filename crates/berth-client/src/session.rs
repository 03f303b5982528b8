//! One-off processes, exec sessions and timers: the WebSocket side of the
//! client (see [`berth_api::SessionMessage`] for the protocol).

use crate::{Client, Error};
use berth_api::{ExecRequest, RunRequest, RunStarted, SessionMessage, TimerInfo};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How an attached run or exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The one-off's id (or the exec's process).
    pub id: Option<String>,
    /// The exit code; `None` when the engine could not tell.
    pub code: Option<i64>,
    /// `--timeout` stopped it.
    pub timed_out: bool,
    /// It was killed at its memory limit.
    pub oom_killed: bool,
}

/// An open run or exec session, before its streams are driven.
pub struct Session {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
}

impl Client {
    /// `POST /apps/{app}/run`: starts a detached one-off process.
    pub async fn run_detached(&self, app: &str, req: &RunRequest) -> Result<RunStarted, Error> {
        self.post_json(&["apps", app, "run"], Some(req)).await
    }

    /// `GET /apps/{app}/timers`
    pub async fn timers(&self, app: &str) -> Result<Vec<TimerInfo>, Error> {
        self.get_json(&["apps", app, "timers"]).await
    }

    /// Opens `GET /apps/{app}/run` and sends the request; drive it with [`Session::drive`].
    pub async fn open_run(&self, app: &str, req: &RunRequest) -> Result<Session, Error> {
        self.open_session(&["apps", app, "run"], serde_json::to_string(req))
            .await
    }

    /// Opens `GET /apps/{app}/processes/{id}/exec` and sends the request.
    pub async fn open_exec(
        &self,
        app: &str,
        process: &str,
        req: &ExecRequest,
    ) -> Result<Session, Error> {
        self.open_session(
            &["apps", app, "processes", process, "exec"],
            serde_json::to_string(req),
        )
        .await
    }

    /// Opens `GET /apps/{app}/resources/{name}/proxy`: one TCP connection to
    /// the resource; drive it with [`Session::drive`] (stdin: the bytes to the
    /// resource, stdout: its answers).
    pub async fn open_resource_proxy(&self, app: &str, name: &str) -> Result<Session, Error> {
        self.open_session(&["apps", app, "resources", name, "proxy"], Ok("{}".into()))
            .await
    }

    async fn open_session(
        &self,
        segments: &[&str],
        first: serde_json::Result<String>,
    ) -> Result<Session, Error> {
        let mut url = self.url(segments)?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| Error::InvalidUrl {
            url: url.to_string(),
            reason: "cannot be turned into a WebSocket URL".into(),
        })?;
        let text = url.to_string();
        let request_error = |reason: String| Error::Request {
            url: text.clone(),
            reason,
        };
        let mut request = text
            .as_str()
            .into_client_request()
            .map_err(|e| request_error(e.to_string()))?;
        let auth = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| request_error("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", auth);
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let connected =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
                .await;
        let (mut ws, _) = match connected {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_ascii_lowercase);
                return Err(crate::answer_error(
                    &self.base_url(),
                    "GET",
                    self.url(segments)?.path(),
                    resp.status(),
                    content_type.as_deref(),
                    resp.body().as_deref().unwrap_or_default(),
                ));
            }
            Err(tokio_tungstenite::tungstenite::Error::Io(e)) => {
                if crate::tls::is_untrusted_certificate(&e) {
                    return Err(Error::Untrusted {
                        url: self.base_url(),
                        reason: e.to_string(),
                    });
                }
                return Err(Error::Connect {
                    url: self.base_url(),
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(request_error(e.to_string())),
        };
        let first = first.map_err(|e| request_error(e.to_string()))?;
        ws.send(Message::Text(first.into()))
            .await
            .map_err(|e| request_error(e.to_string()))?;
        Ok(Session { ws, url: text })
    }
}

impl Session {
    /// Moves bytes until the process ends: `stdin` (if any) to the process, its
    /// stdout and stderr to `stdout` and `stderr`, terminal sizes from `resize`.
    pub async fn drive<I, O, E>(
        self,
        stdin: Option<I>,
        mut stdout: O,
        mut stderr: E,
        mut resize: mpsc::Receiver<(u16, u16)>,
    ) -> Result<Outcome, Error>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let Session { mut ws, url } = self;
        let broken = |reason: String| Error::Request {
            url: url.clone(),
            reason,
        };
        let mut stdin = stdin;
        let mut buf = vec![0u8; 8192];
        let mut id = None;
        let mut resize_open = true;
        loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Binary(data))) => {
                        let (tag, bytes) = match data.split_first() {
                            Some((tag, bytes)) => (*tag, bytes),
                            None => continue,
                        };
                        let written = if tag == 2 {
                            stderr.write_all(bytes).await.and(stderr.flush().await)
                        } else {
                            stdout.write_all(bytes).await.and(stdout.flush().await)
                        };
                        written.map_err(|source| Error::Output { source })?;
                    }
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<SessionMessage>(text.as_str()) {
                            Ok(SessionMessage::Started { id: started }) => id = Some(started),
                            Ok(SessionMessage::Exit { code, timed_out, oom_killed }) => {
                                let _ = ws.close(None).await;
                                return Ok(Outcome { id, code, timed_out, oom_killed });
                            }
                            Ok(SessionMessage::Error { error }) => {
                                return Err(Error::Api { status: 400, message: error });
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(broken(e.to_string())),
                    None => {
                        return Err(broken(
                            "the server ended the session without an exit code".into(),
                        ));
                    }
                },
                read = async {
                    match stdin.as_mut() {
                        Some(input) => input.read(&mut buf).await,
                        None => std::future::pending().await,
                    }
                } => match read {
                    Ok(0) | Err(_) => {
                        stdin = None;
                        let eof = serde_json::to_string(&SessionMessage::Eof).unwrap_or_default();
                        ws.send(Message::Text(eof.into()))
                            .await
                            .map_err(|e| broken(e.to_string()))?;
                    }
                    Ok(n) => {
                        ws.send(Message::Binary(buf[..n].to_vec().into()))
                            .await
                            .map_err(|e| broken(e.to_string()))?;
                    }
                },
                size = resize.recv(), if resize_open => match size {
                    Some((rows, cols)) => {
                        let text = serde_json::to_string(&SessionMessage::Resize { rows, cols })
                            .unwrap_or_default();
                        ws.send(Message::Text(text.into()))
                            .await
                            .map_err(|e| broken(e.to_string()))?;
                    }
                    None => resize_open = false,
                },
            }
        }
    }
}
