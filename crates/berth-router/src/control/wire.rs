//! The control socket's messages: one JSON line per request and per reply.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::CALL_TIMEOUT;
use crate::access_log::AccessLine;
use crate::{Backend, Route, RouteTable};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Request {
    Hello,
    Table {
        routes: Vec<WireRoute>,
    },
    Inflight {
        process: String,
    },
    Logs,
    /// What the router counted ([`crate::RouterMetrics`]).
    Metrics,
    Stop,
    Certs {
        certs: Vec<crate::tls::TlsCert>,
    },
    Challenges {
        challenges: HashMap<String, String>,
    },
    Probe {
        addr: SocketAddr,
        host: String,
        path: String,
        timeout_ms: u64,
    },
    /// From a router process taking over: the listening sockets (passed beside the
    /// reply) and the state ([`Snapshot`]).
    Handover,
    /// From the router that took over, once it answers on the control socket: stop
    /// accepting, let open connections finish within `drain_ms`, exit.
    Commit {
        drain_ms: u64,
    },
    /// From a router that handed over, as it exits: the access lines it had not
    /// given the server yet (those of the requests it served while draining among
    /// them), for the server to collect from the router that answers now.
    Carry {
        logs: Vec<crate::AccessLine>,
        /// What it counted since it handed over (counters only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics: Option<crate::RouterMetrics>,
    },
}

/// What a router taking over starts from, so it serves the same routes from its
/// first accept.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub(super) routes: Vec<WireRoute>,
    pub(super) certs: Vec<crate::tls::TlsCert>,
    pub(super) challenges: HashMap<String, String>,
    /// Its counts, which the new router goes on from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) metrics: Option<crate::RouterMetrics>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireRoute {
    pub(super) hosts: Vec<String>,
    pub(super) app: String,
    pub(super) service: String,
    pub(super) backends: Vec<(SocketAddr, String)>,
    pub(super) timeout_ms: u64,
    #[serde(default)]
    pub(super) tls_redirect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hsts: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Reply {
    pub(super) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) http: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) https: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pid: Option<u32>,
    /// Made at the router's start: a new one means a new router process
    /// (in a container, the pid does not tell), which has an empty table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) boot: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) inflight: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) logs: Vec<AccessLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) metrics: Option<crate::RouterMetrics>,
    /// A probe's outcome: the status, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) probe: Option<Result<u16, String>>,
    /// The berth version the router runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) snapshot: Option<Snapshot>,
    /// This router took over and the old one may still accept for a moment (it has
    /// not confirmed the `commit` yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) committing: bool,
}

pub(super) fn to_wire(table: &RouteTable) -> Vec<WireRoute> {
    let mut by_route: HashMap<*const Route, WireRoute> = HashMap::new();
    for (host, route) in &table.hosts {
        by_route
            .entry(Arc::as_ptr(route))
            .or_insert_with(|| WireRoute {
                hosts: vec![],
                app: route.app.clone(),
                service: route.service.clone(),
                backends: route
                    .backends
                    .iter()
                    .map(|b| (b.addr, b.process.clone()))
                    .collect(),
                timeout_ms: u64::try_from(route.timeout.as_millis()).unwrap_or(u64::MAX),
                tls_redirect: route.tls_redirect,
                hsts: route.hsts.clone(),
            })
            .hosts
            .push(host.clone());
    }
    by_route.into_values().collect()
}

pub(super) fn from_wire(routes: Vec<WireRoute>) -> RouteTable {
    let mut table = RouteTable::default();
    for r in routes {
        let route = Arc::new(Route {
            app: r.app,
            service: r.service,
            backends: r
                .backends
                .into_iter()
                .map(|(addr, process)| Backend { addr, process })
                .collect(),
            timeout: Duration::from_millis(r.timeout_ms),
            tls_redirect: r.tls_redirect,
            hsts: r.hsts,
        });
        for host in r.hosts {
            table.hosts.insert(host, route.clone());
        }
    }
    table
}

pub(super) async fn call(socket: &Path, request: &Request) -> io::Result<Reply> {
    call_within(socket, request, CALL_TIMEOUT).await
}

pub(super) async fn call_within(
    socket: &Path,
    request: &Request,
    limit: Duration,
) -> io::Result<Reply> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        let reply: Reply = serde_json::from_str(&answer).map_err(io::Error::other)?;
        if !reply.ok {
            return Err(io::Error::other(
                reply.error.unwrap_or_else(|| "request refused".into()),
            ));
        }
        Ok(reply)
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_survive_the_wire() {
        let route = Arc::new(Route {
            app: "a".into(),
            service: "web".into(),
            backends: vec![Backend {
                addr: "10.0.0.2:8080".parse().expect("addr"),
                process: "web-1".into(),
            }],
            timeout: Duration::from_millis(1500),
            tls_redirect: true,
            hsts: Some("max-age=60".into()),
        });
        let mut table = RouteTable::default();
        table.hosts.insert("a.example".into(), route.clone());
        table.hosts.insert("www.a.example".into(), route);
        let json = serde_json::to_string(&Request::Table {
            routes: to_wire(&table),
        })
        .expect("json");
        let Ok(Request::Table { routes }) = serde_json::from_str(&json) else {
            panic!("not a table: {json}");
        };
        let back = from_wire(routes);
        assert_eq!(back.hosts.len(), 2);
        let (a, b) = (&back.hosts["a.example"], &back.hosts["www.a.example"]);
        // Hosts of one route still share it, as the data path expects.
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(**a, *table.hosts["a.example"]);
    }
}
