//! A client connection as both data paths see it: what a request handler knows about
//! its client, and where the server is in its life. `server` creates these per
//! connection; `relay` and `proxy` only read them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{mpsc, watch};

use crate::Router;

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is in its life; connections and tunnels watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; finish in-flight requests, close idle connections.
    Draining,
    /// Drop whatever is left.
    Stopped,
}

/// What the request handler knows about its client connection.
pub(crate) struct ConnCtx {
    pub(crate) router: Arc<Router>,
    /// The client's IP, ready for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    pub(crate) phase: watch::Receiver<Phase>,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub(crate) https: bool,
    /// Held by the connection and by a tunnel made of it (WebSocket), which outlives
    /// the connection's task: the server's drain is over when every one is dropped.
    pub(crate) alive: mpsc::Sender<Infallible>,
}

impl ConnCtx {
    /// The server is neither draining nor stopped: connections may stay open.
    #[inline] // Asked per request by the fast path, in another module.
    pub(crate) fn running(&self) -> bool {
        *self.phase.borrow() == Phase::Running
    }
}

/// Resolves when an idle client connection should close: once the server drains and
/// the drain's idle grace is over (a connection busy until then closes after its
/// response instead).
pub(crate) async fn idle_closing(phase: &mut watch::Receiver<Phase>, router: &crate::Router) {
    let _ = phase.wait_for(|p| *p != Phase::Running).await;
    let grace = router.drain().idle_grace;
    if !grace.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            _ = phase.wait_for(|p| *p == Phase::Stopped) => {}
        }
    }
}
