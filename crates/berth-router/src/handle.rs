//! What the server asks of its router, whichever way the router runs: as a
//! process of its own fed over the control socket ([`RouterLink`], the
//! product), or inside a test process (berth-testkit). The server holds an
//! `Arc<dyn RouterHandle>` and never knows which.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::RouteTable;
use crate::control::RouterLink;
use crate::tls::TlsCert;

#[async_trait]
pub trait RouterHandle: Send + Sync + 'static {
    /// Where the router serves plain HTTP.
    fn http_addr(&self) -> SocketAddr;
    /// Replaces the route table (taken in the background; the newest wins).
    fn update(&self, table: RouteTable);
    /// Replaces the TLS certificates.
    fn update_certs(&self, certs: Vec<TlsCert>);
    /// Has the router answer the ACME HTTP-01 challenge `token` for any host;
    /// returns once the router has it, an error when it did not within `timeout`.
    async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        timeout: Duration,
    ) -> io::Result<()>;
    fn remove_challenge(&self, token: &str);
    /// Waits (at most `timeout`) until the router runs the latest table; false
    /// when it did not take it in time.
    async fn synced(&self, timeout: Duration) -> bool;
    /// Sees every change of the table, certificates or challenges.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// The table last given to [`RouterHandle::update`].
    fn table(&self) -> Arc<RouteTable>;
    /// Waits until the router runs the latest table and has nothing in flight to
    /// `process`, at most `timeout`; the requests still in flight.
    async fn drain(&self, process: &str, timeout: Duration) -> u64;
    /// What the router counted (on many nodes: all routers' counts added up);
    /// `None` when no router answers.
    async fn metrics(&self) -> Option<crate::RouterMetrics>;
    /// Stops the router for good, for a server whose router must not outlive it
    /// (`berth start`); routers the server does not own are left alone.
    async fn shut_down(&self) {}
    /// The berth version the router process runs; `None` when unknown.
    async fn version(&self) -> Option<String> {
        None
    }
    /// Replaces the router process by one started from the server's binary,
    /// which takes over its listening sockets (no connection refused or closed).
    async fn upgrade(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this router cannot be replaced in place",
        ))
    }
}

#[async_trait]
impl RouterHandle for RouterLink {
    fn http_addr(&self) -> SocketAddr {
        RouterLink::http_addr(self)
    }

    fn update(&self, table: RouteTable) {
        RouterLink::update(self, table)
    }

    fn update_certs(&self, certs: Vec<TlsCert>) {
        RouterLink::update_certs(self, certs)
    }

    async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        timeout: Duration,
    ) -> io::Result<()> {
        RouterLink::add_challenge(self, token, key_authorization, timeout).await
    }

    fn remove_challenge(&self, token: &str) {
        RouterLink::remove_challenge(self, token)
    }

    async fn synced(&self, timeout: Duration) -> bool {
        RouterLink::synced(self, timeout).await
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        RouterLink::subscribe(self)
    }

    fn table(&self) -> Arc<RouteTable> {
        RouterLink::table(self)
    }

    async fn drain(&self, process: &str, timeout: Duration) -> u64 {
        RouterLink::drain(self, process, timeout).await
    }

    async fn metrics(&self) -> Option<crate::RouterMetrics> {
        match RouterLink::metrics(self).await {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!("cannot read the router's metrics: {e}");
                None
            }
        }
    }

    async fn shut_down(&self) {
        RouterLink::shut_down(self).await
    }

    async fn version(&self) -> Option<String> {
        RouterLink::version(self)
    }

    async fn upgrade(&self) -> io::Result<()> {
        RouterLink::upgrade(self)
            .await
            .map(|_| ())
            .map_err(io::Error::other)
    }
}
