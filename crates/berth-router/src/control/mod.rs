//! The router as its own process, and the server's link to it.
//!
//! The router runs as `berth router`, a process the server spawns once and that
//! outlives it: when the server stops (upgrade, crash, SIGTERM) the router keeps
//! its listening socket, its table and its connections, so clients never see a
//! refused connection. The server talks to it over a unix socket in the data dir
//! (`router.sock`, mode 0600), one JSON line per request and per reply:
//!
//! - `hello`: the router's HTTP address and pid (a starting server uses this to
//!   attach to a router that is already running);
//! - `table`: replace the route table;
//! - `inflight`: requests in flight to one process (draining);
//! - `logs`: take the access log lines gathered since the last call;
//! - `certs`: replace the TLS certificates;
//! - `challenges`: replace the ACME HTTP-01 challenges answered for any host;
//! - `probe`: a health check of a process made from the router (on a swarm
//!   the router is the one on every app network; the server is not);
//! - `stop`: drain and exit;
//! - `handover` and `commit`: a new router process takes over from the running one
//!   (`berth router --takeover`, [`RouterLink::upgrade`]), see [`process::take_over`];
//! - `carry`: from a router that handed over, as it exits: its access lines not
//!   collected yet, queued here as if served here, and what it counted since.
//!
//! On one engine the server spawns the router ([`RouterLink::start`]); on a
//! swarm each node's agent runs it in a container and the server reaches its
//! socket through the agent ([`RouterLink::attach`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::access_log::AccessLine;

mod link;
mod process;
mod wire;

pub use link::{LinkOptions, RouterInfo, RouterLink, stop_router_at};
pub use process::{RouterOptions, run_router_process};

/// The longest a control call may take before the router counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a spawned router may take to answer `hello`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot start the router ({exe}): {source}; check that the berth binary is executable")]
    Spawn {
        exe: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the router exited at start ({status}); its log {log} says:\n{tail}\nis another program listening on the --http address? pick another with --http"
    )]
    Exited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("the router did not answer on {socket} within {START_TIMEOUT:?}; see its log {log}")]
    Timeout { socket: String, log: String },
    #[error("router control socket {socket}: {source}")]
    Io {
        socket: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot listen on {addr} (router): {source}; is another berth router running? pick another address with --http"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(
        "no new router took over from the one on {socket}: {reason}; the running router keeps serving"
    )]
    Takeover { socket: String, reason: String },
}

/// Whether a router listening on `have` (HTTP, and HTTPS if any) listens where
/// `wanted` says (a wanted port 0 takes any port on that address).
fn listens_as_asked(
    (http, https): (SocketAddr, Option<SocketAddr>),
    wanted: (SocketAddr, Option<SocketAddr>),
) -> bool {
    let same = |have: SocketAddr, want: SocketAddr| {
        have == want || (want.port() == 0 && have.ip() == want.ip())
    };
    let https_same = match (https, wanted.1) {
        (None, None) => true,
        (Some(have), Some(want)) => same(have, want),
        _ => false,
    };
    same(http, wanted.0) && https_same
}
