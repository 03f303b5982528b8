//! Every node's router as one `RouterHandle`: on a swarm each node runs a
//! router (started by its agent) and the server feeds them all the same
//! table, certificates and challenges through the node links of
//! `rack::agents`. A node whose agent is lost is left out of `synced` and
//! `drain`, so one dead node never holds up a rollout; its router keeps
//! serving its last table, and gets the current one when it is back.
//!
//! The routers are on every app network, so they also make the health
//! checks (`Prober`): from the process's own node when it is linked.

use super::agents::{Agents, NodeLink};
use async_trait::async_trait;
use berth_router::tls::TlsCert;
use berth_router::{RouteTable, RouterHandle};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub struct RouterFleet {
    agents: Arc<Agents>,
    http: SocketAddr,
    table: Mutex<Arc<RouteTable>>,
    certs: Mutex<Vec<TlsCert>>,
    challenges: Mutex<HashMap<String, String>>,
    generation: watch::Sender<u64>,
    /// Whether the server gave a table (and certificates) yet: a router
    /// linked before that keeps what it serves rather than get an empty
    /// table (after a server restart, the routers' tables are the truth
    /// until the first reconcile pass).
    has_table: std::sync::atomic::AtomicBool,
    has_certs: std::sync::atomic::AtomicBool,
}

impl RouterFleet {
    /// The fleet over `agents`' links; `http` is where every router serves.
    pub fn new(agents: Arc<Agents>, http: SocketAddr) -> Arc<RouterFleet> {
        let fleet = Arc::new(RouterFleet {
            agents,
            http,
            table: Mutex::new(Arc::new(RouteTable::default())),
            certs: Mutex::new(Vec::new()),
            challenges: Mutex::new(HashMap::new()),
            generation: watch::channel(0).0,
            has_table: Default::default(),
            has_certs: Default::default(),
        });
        tokio::spawn(hand_over_to_new_links(Arc::downgrade(&fleet)));
        fleet
    }

    fn links(&self) -> Vec<Arc<NodeLink>> {
        self.agents.live_links()
    }

    /// Gives a (new) link everything the routers hold now.
    fn bring_up_to_date(&self, link: &NodeLink) {
        use std::sync::atomic::Ordering;
        if self.has_table.load(Ordering::SeqCst) {
            link.router.update(RouteTable::clone(&self.table()));
        }
        if self.has_certs.load(Ordering::SeqCst) {
            link.router
                .update_certs(self.certs.lock().unwrap_or_else(|p| p.into_inner()).clone());
        }
        let challenges = self
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (token, key) in challenges {
            // Sent with the next push; nobody waits on it here.
            let router = link.router.clone();
            tokio::spawn(async move {
                let _ = router
                    .add_challenge(&token, &key, Duration::from_secs(30))
                    .await;
            });
        }
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Hands the current table to each link as it is made.
async fn hand_over_to_new_links(fleet: std::sync::Weak<RouterFleet>) {
    let mut changes = match fleet.upgrade() {
        Some(f) => f.agents.subscribe(),
        None => return,
    };
    let mut known: HashMap<String, usize> = HashMap::new();
    while changes.changed().await.is_ok() {
        let Some(fleet) = fleet.upgrade() else { return };
        for link in fleet.agents.live_links() {
            let id = Arc::as_ptr(&link) as usize;
            if known.insert(link.node_id.clone(), id) != Some(id) {
                fleet.bring_up_to_date(&link);
            }
        }
    }
}

#[async_trait]
impl RouterHandle for RouterFleet {
    fn http_addr(&self) -> SocketAddr {
        self.http
    }

    fn update(&self, table: RouteTable) {
        let table = Arc::new(table);
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = table.clone();
        self.has_table
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links() {
            link.router.update(RouteTable::clone(&table));
        }
        self.bump();
    }

    fn update_certs(&self, certs: Vec<TlsCert>) {
        *self.certs.lock().unwrap_or_else(|p| p.into_inner()) = certs.clone();
        self.has_certs
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links() {
            link.router.update_certs(certs.clone());
        }
        self.bump();
    }

    async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        timeout: Duration,
    ) -> io::Result<()> {
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
        self.bump();
        let links = self.links();
        let adds = links
            .iter()
            .map(|l| l.router.add_challenge(token, key_authorization, timeout));
        for (link, outcome) in links.iter().zip(futures_util::future::join_all(adds).await) {
            outcome
                .map_err(|e| io::Error::new(e.kind(), format!("node {}: {e}", link.hostname)))?;
        }
        Ok(())
    }

    fn remove_challenge(&self, token: &str) {
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
        for link in self.links() {
            link.router.remove_challenge(token);
        }
        self.bump();
    }

    async fn synced(&self, timeout: Duration) -> bool {
        let links = self.links();
        let syncs = links.iter().map(|l| l.router.synced(timeout));
        futures_util::future::join_all(syncs)
            .await
            .into_iter()
            .all(|ok| ok)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn table(&self) -> Arc<RouteTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn drain(&self, process: &str, timeout: Duration) -> u64 {
        let links = self.links();
        let drains = links.iter().map(|l| l.router.drain(process, timeout));
        futures_util::future::join_all(drains)
            .await
            .into_iter()
            .sum()
    }

    async fn metrics(&self) -> Option<berth_router::RouterMetrics> {
        let links = self.links();
        let reads = links.iter().map(|l| l.router.metrics());
        let mut all: Option<berth_router::RouterMetrics> = None;
        for (link, read) in links
            .iter()
            .zip(futures_util::future::join_all(reads).await)
        {
            match read {
                Ok(m) => match &mut all {
                    Some(all) => all.merge(m),
                    None => all = Some(m),
                },
                Err(e) => {
                    tracing::warn!(node = %link.hostname, "cannot read the router's metrics: {e}")
                }
            }
        }
        all
    }
}

#[async_trait]
impl berth_runtime::Prober for RouterFleet {
    async fn probe(
        &self,
        node: Option<&str>,
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let mut links = self.links();
        links.sort_by_key(|l| Some(l.node_id.as_str()) != node);
        match links.first() {
            Some(link) => link.router.probe(addr, host, path, timeout).await,
            None => Err(format!(
                "no node's router can check {addr}: no berth agent is linked; see `berth instances`"
            )),
        }
    }
}
