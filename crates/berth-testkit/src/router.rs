//! [`InProcessRouter`]: berth's real router (`berth_router::Router`), serving
//! plain HTTP on a loopback port inside the test process, behind the same
//! [`RouterHandle`] the server holds its router process by. Tables, drains and
//! challenges take effect at once: there is no control socket in between.

use async_trait::async_trait;
use berth_router::tls::TlsCert;
use berth_router::{RouteTable, Router, RouterHandle};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub struct InProcessRouter {
    router: Arc<Router>,
    http: SocketAddr,
    table: Mutex<Arc<RouteTable>>,
    certs: Mutex<Vec<TlsCert>>,
    challenges: Mutex<HashMap<String, String>>,
    generation: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

impl InProcessRouter {
    /// A router serving on a free port of 127.0.0.1 until dropped.
    pub async fn start() -> io::Result<Arc<InProcessRouter>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        let router = Router::new();
        let (stop, mut stopped) = watch::channel(false);
        let serving = router.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = serving.serve(listener, shutdown).await;
        });
        Ok(Arc::new(InProcessRouter {
            router,
            http,
            table: Mutex::new(Arc::new(RouteTable::default())),
            certs: Mutex::new(Vec::new()),
            challenges: Mutex::new(HashMap::new()),
            generation: watch::channel(0).0,
            stop,
        }))
    }

    /// The certificates last given (this router serves no HTTPS).
    pub fn certs(&self) -> Vec<TlsCert> {
        self.certs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests in flight to `process` right now.
    pub fn inflight(&self, process: &str) -> usize {
        self.router.inflight(process)
    }

    /// The key authorization the router answers for an ACME token, if any.
    pub fn challenge(&self, token: &str) -> Option<String> {
        self.router.challenge(token)
    }

    fn changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for InProcessRouter {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[async_trait]
impl RouterHandle for InProcessRouter {
    fn http_addr(&self) -> SocketAddr {
        self.http
    }

    fn update(&self, table: RouteTable) {
        let table = Arc::new(table);
        self.router.update(RouteTable::clone(&table));
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = table;
        self.changed();
    }

    fn update_certs(&self, certs: Vec<TlsCert>) {
        *self.certs.lock().unwrap_or_else(|p| p.into_inner()) = certs;
        self.changed();
    }

    async fn add_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        _timeout: Duration,
    ) -> io::Result<()> {
        let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        challenges.insert(token.to_owned(), key_authorization.to_owned());
        self.router.set_challenges(challenges.clone());
        drop(challenges);
        self.changed();
        Ok(())
    }

    fn remove_challenge(&self, token: &str) {
        let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        if challenges.remove(token).is_some() {
            self.router.set_challenges(challenges.clone());
            drop(challenges);
            self.changed();
        }
    }

    async fn synced(&self, _timeout: Duration) -> bool {
        // `update` swaps the table in before it returns.
        true
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn table(&self) -> Arc<RouteTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn drain(&self, process: &str, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.router.inflight(process);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left as u64;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn metrics(&self) -> Option<berth_router::RouterMetrics> {
        Some(self.router.metrics())
    }
}
