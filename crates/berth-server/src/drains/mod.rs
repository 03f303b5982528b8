//! Log drains: every app's log stream (process output, build output, system
//! events, access lines: all that [`LogBook`](crate::logs::LogBook) records)
//! forwarded to syslog receivers (RFC 5424 over TCP or TLS) and OTLP/HTTP
//! collectors, per app or rack-wide.
//!
//! A drain never slows logging or other drains: the log book hands each entry
//! to the [`Hub`] (its [`LogSink`]), which appends it to the on-disk
//! [`spool`] of each drain that wants it and returns; a task per drain sends
//! from there with retries and exponential back-off, and acknowledges what the
//! receiver took, so a restarted server sends nothing twice. A full spool
//! drops lines: counted (`berth_drain_dropped_total{drain}`, `berth drains`)
//! and said once per spell in the app's log and the server log.
//!
//! - `target`: the URL forms, and masking credentials in them;
//! - `spool`: the bounded on-disk buffer;
//! - `format`: syslog frames and OTLP requests;
//! - `send`: connections and the HTTP client.

pub mod format;
pub mod send;
pub mod spool;
pub mod target;

use crate::error::Error;
use crate::logs::LogSink;
use crate::rack::Rack;
use berth_api::{AddDrain, DrainInfo, LogEntry};
use berth_store::drains::DrainRow;
use format::Line;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use target::Target;
use tokio_util::sync::CancellationToken;

/// Default bound of a drain's buffer.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Smallest bound accepted.
const MIN_MAX_BYTES: u64 = 4096;
/// Lines and bytes sent at once.
const BATCH_LINES: usize = 500;
const BATCH_BYTES: usize = 512 << 10;
/// Back-off between failed sends: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long an app's current release is taken as known.
const RELEASE_TTL: Duration = Duration::from_secs(2);

/// The running drains: the log book's sink, and a task per drain.
pub struct Hub {
    rack: Weak<Rack>,
    hostname: String,
    drains: RwLock<Vec<Arc<Drain>>>,
    notices: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    /// (app, process id) → its release.
    releases: Mutex<HashMap<(String, String), String>>,
    /// app → its current release, and when that was read.
    current: Mutex<HashMap<String, (Instant, Option<String>)>>,
    /// The server stops: each task ends after the batch it is sending.
    closing: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Drain {
    row: DrainRow,
    spool: Mutex<spool::Spool>,
    wake: tokio::sync::Notify,
    stop: CancellationToken,
    state: Mutex<DrainState>,
}

#[derive(Default)]
struct DrainState {
    last_error: Option<String>,
    dropped: u64,
    /// Lines dropped in the spell going on, if any.
    spell: Option<u64>,
}

impl LogSink for Hub {
    fn entry(&self, app: &str, entry: &LogEntry) {
        let drains: Vec<Arc<Drain>> = self
            .drains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|d| d.row.app.as_deref().is_none_or(|a| a == app))
            .cloned()
            .collect();
        if drains.is_empty() {
            return;
        }
        let line = self.line(app, entry);
        let Ok(bytes) = serde_json::to_vec(&line) else {
            return;
        };
        for drain in drains {
            let in_spell = drain
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .spell
                .is_some();
            let pushed = {
                let mut spool = drain.spool.lock().unwrap_or_else(|p| p.into_inner());
                // A spell of drops ends once half the buffer is free again, so
                // a short line that happens to fit does not end it (and the
                // next long one start another, said again).
                if in_spell && spool.pending() > spool.max_bytes() / 2 {
                    Ok(false)
                } else {
                    spool.push(&bytes)
                }
            };
            match pushed {
                Ok(true) => {
                    self.spell_over(&drain);
                    drain.wake.notify_one();
                }
                Ok(false) => self.dropped(&drain, app),
                Err(e) => {
                    drain
                        .state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .last_error = Some(format!("cannot write its buffer: {e}"));
                    self.dropped(&drain, app);
                }
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Hub {
    /// The line a drain keeps for `entry`, with its process and release.
    fn line(&self, app: &str, entry: &LogEntry) -> Line {
        let ts = crate::logs::entry_nanos(entry);
        let ts = if ts == i128::MIN {
            crate::logs::now_nanos()
        } else {
            ts
        };
        // On a swarm a process's source names its node (`web/web-3f9a2c@n1`):
        // the process is what comes before; the source keeps the node.
        let (service, process) = match entry.source.split_once('/') {
            Some(("build" | "timer", id)) => (entry.service.clone(), Some(id.to_string())),
            Some((service, id)) => {
                let id = id.split_once('@').map_or(id, |(id, _)| id);
                (Some(service.to_string()), Some(id.to_string()))
            }
            None => (entry.service.clone(), None),
        };
        let release = match (format::kind(&entry.source), &process) {
            ("process", Some(id)) => self
                .release_of(app, id)
                .or_else(|| self.current_release(app)),
            _ => self.current_release(app),
        };
        Line {
            ts: ts.clamp(0, i64::MAX.into()) as i64,
            app: app.to_string(),
            source: entry.source.clone(),
            text: entry.text.clone(),
            service,
            process,
            release,
        }
    }

    fn release_of(&self, app: &str, process: &str) -> Option<String> {
        let key = (app.to_string(), process.to_string());
        if let Some(r) = self
            .releases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(r.clone());
        }
        let rack = self.rack.upgrade()?;
        let rows = rack.store.processes(Some(app)).ok()?;
        let mut releases = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        if releases.len() > 10_000 {
            releases.clear();
        }
        for row in rows {
            releases.insert((row.app, row.id), row.release);
        }
        releases.get(&key).cloned()
    }

    fn current_release(&self, app: &str) -> Option<String> {
        if let Some((at, release)) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            && at.elapsed() < RELEASE_TTL
        {
            return release.clone();
        }
        let rack = self.rack.upgrade()?;
        let release = rack.store.app(app).ok().and_then(|a| a.release);
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), (Instant::now(), release.clone()));
        release
    }

    fn dropped(&self, drain: &Drain, app: &str) {
        let first = {
            let mut state = drain.state.lock().unwrap_or_else(|p| p.into_inner());
            state.dropped += 1;
            let first = state.spell.is_none();
            *state.spell.get_or_insert(0) += 1;
            first
        };
        if let Some(rack) = self.rack.upgrade() {
            rack.metrics.drain_dropped(&drain.row.id, 1);
        }
        if first {
            let url = target::mask(&drain.row.url);
            let text = format!(
                "log drain {} ({url}) is full ({} bytes wait for the receiver): lines for it are dropped until it catches up, counted in berth_drain_dropped_total{{drain=\"{}\"}} and `berth drains`",
                drain.row.id, drain.row.max_bytes, drain.row.id
            );
            tracing::warn!(drain = drain.row.id, app, "{text}");
            // Written by a task: this runs inside the log book's append.
            let _ = self.notices.send((app.to_string(), text));
        }
    }

    fn spell_over(&self, drain: &Drain) {
        let mut state = drain.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = state.spell.take() {
            tracing::warn!(
                drain = drain.row.id,
                dropped = n,
                "log drain {} has room again after dropping {n} lines",
                drain.row.id
            );
        }
    }

    fn find(&self, id: &str) -> Option<Arc<Drain>> {
        self.drains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|d| d.row.id == id)
            .cloned()
    }

    /// Opens the drain's spool and starts its task.
    fn start(&self, row: DrainRow, dir: &std::path::Path) -> Result<(), String> {
        let target = Target::parse(&row.url)?;
        let sender = send::Sender::new(target, self.hostname.clone(), row.ca_pem.as_deref())?;
        let spool = spool::Spool::open(&dir.join(&row.id), row.max_bytes)
            .map_err(|e| format!("cannot open its buffer in {}: {e}", dir.display()))?;
        let drain = Arc::new(Drain {
            row,
            spool: Mutex::new(spool),
            wake: tokio::sync::Notify::new(),
            stop: CancellationToken::new(),
            state: Mutex::new(DrainState::default()),
        });
        let task = tokio::spawn(run(drain.clone(), sender, self.closing.clone()));
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        self.drains
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(drain);
        Ok(())
    }

    fn stop(&self, id: &str) {
        let mut drains = self.drains.write().unwrap_or_else(|p| p.into_inner());
        drains.retain(|d| {
            if d.row.id == id {
                d.stop.cancel();
                false
            } else {
                true
            }
        });
    }
}

/// A drain's task: send what its spool holds, back off while the receiver fails.
async fn run(drain: Arc<Drain>, mut sender: send::Sender, closing: CancellationToken) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        if drain.stop.is_cancelled() || closing.is_cancelled() {
            return;
        }
        let batch = {
            let spool = drain.spool.lock().unwrap_or_else(|p| p.into_inner());
            spool.read(spool.acked(), BATCH_LINES, BATCH_BYTES)
        };
        let records = match batch {
            Ok(r) => r,
            Err(e) => {
                drain
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error = Some(format!("cannot read its buffer: {e}"));
                pause(&drain, &closing, BACKOFF_MAX).await;
                continue;
            }
        };
        let Some(end) = records.last().map(|r| r.end) else {
            tokio::select! {
                _ = drain.wake.notified() => {}
                _ = drain.stop.cancelled() => return,
                _ = closing.cancelled() => return,
                // A wake-up lost between the read and the wait costs a second at most.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let lines: Vec<Line> = records
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.bytes).ok())
            .collect();
        // A removed drain stops at once; a stopping server lets the batch
        // finish and be acknowledged, so a restart does not send it again.
        let sent = tokio::select! {
            r = sender.send(&lines) => r,
            _ = drain.stop.cancelled() => return,
        };
        match sent {
            Ok(()) => {
                backoff = BACKOFF_FIRST;
                let acked = drain
                    .spool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ack(end, records.len() as u64);
                let mut state = drain.state.lock().unwrap_or_else(|p| p.into_inner());
                state.last_error = acked
                    .err()
                    .map(|e| format!("cannot record what was sent: {e}"));
            }
            Err(e) => {
                let changed = {
                    let mut state = drain.state.lock().unwrap_or_else(|p| p.into_inner());
                    let changed = state.last_error.as_deref() != Some(e.as_str());
                    state.last_error = Some(e.clone());
                    changed
                };
                if changed {
                    tracing::warn!(drain = drain.row.id, "log drain cannot send: {e}; retrying");
                }
                pause(&drain, &closing, backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn pause(drain: &Drain, closing: &CancellationToken, how_long: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(how_long) => {}
        _ = drain.stop.cancelled() => {}
        _ = closing.cancelled() => {}
    }
}

/// The server stops: lets each drain finish (and acknowledge) the batch it
/// is sending, waiting `limit` at most.
pub async fn shutdown(rack: &Rack, limit: Duration) {
    let Some(Ok(hub)) = rack
        .logs
        .sink()
        .map(|s| s.clone().into_any().downcast::<Hub>())
    else {
        return;
    };
    hub.closing.cancel();
    let tasks: Vec<_> = std::mem::take(&mut *hub.tasks.lock().unwrap_or_else(|p| p.into_inner()));
    let _ = tokio::time::timeout(limit, futures_util::future::join_all(tasks)).await;
}

fn drains_dir(rack: &Rack) -> std::path::PathBuf {
    rack.data_dir.join("drains")
}

/// The rack's hub, started (with every stored drain) on first use.
pub fn hub(rack: &Arc<Rack>) -> Result<Arc<Hub>, Error> {
    let sink = rack.logs.set_sink(|| {
        let (notices, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let hub = Arc::new(Hub {
            rack: Arc::downgrade(rack),
            hostname: crate::cluster_ca::hostname().unwrap_or_else(|| rack.rack_id.clone()),
            drains: RwLock::new(Vec::new()),
            notices,
            releases: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            closing: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(rack);
        tokio::spawn(async move {
            while let Some((app, text)) = rx.recv().await {
                let Some(rack) = weak.upgrade() else { return };
                rack.logs.append(&app, "berth", &text);
            }
        });
        match rack.store.drains() {
            Ok(rows) => {
                for row in rows {
                    let id = row.id.clone();
                    if let Err(e) = hub.start(row, &drains_dir(rack)) {
                        tracing::error!(drain = id, "log drain not started: {e}");
                    }
                }
            }
            Err(e) => tracing::error!("cannot list the log drains: {e}"),
        }
        hub
    });
    sink.clone()
        .into_any()
        .downcast::<Hub>()
        .map_err(|_| Error::Internal("the log book's sink is not the drains' hub".into()))
}

/// Adds a drain for `app` (`None`: rack-wide) and starts it.
pub fn add(rack: &Arc<Rack>, app: Option<&str>, req: &AddDrain) -> Result<DrainInfo, Error> {
    if let Some(app) = app {
        known_app(rack, app)?;
    }
    let target = Target::parse(req.url.trim()).map_err(Error::Invalid)?;
    let ca_pem = req
        .ca_pem
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if ca_pem.is_some() && !matches!(target, Target::SyslogTls { .. }) {
        return Err(Error::Invalid(format!(
            "drain URL {}: a CA is only used by syslog+tls drains; leave --ca out",
            target::mask(&req.url)
        )));
    }
    if let Target::SyslogTls { .. } = target {
        send::tls_config(ca_pem).map_err(|e| {
            Error::Invalid(format!(
                "{e}; pass the receiver's CA as a PEM file with --ca FILE"
            ))
        })?;
    }
    let max_bytes = req.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes < MIN_MAX_BYTES {
        return Err(Error::Invalid(format!(
            "a drain's buffer must hold at least {MIN_MAX_BYTES} bytes (asked for {max_bytes}); give a larger --max-buffer or leave it out for {DEFAULT_MAX_BYTES}"
        )));
    }
    let row = DrainRow {
        id: format!("d-{}", hex::encode(rand::random::<[u8; 4]>())),
        url: req.url.trim().to_string(),
        app: app.map(str::to_string),
        ca_pem: ca_pem.map(str::to_string),
        max_bytes,
        created: berth_store::now_rfc3339(),
    };
    let hub = hub(rack)?;
    rack.store.insert_drain(&row)?;
    if let Err(e) = hub.start(row.clone(), &drains_dir(rack)) {
        let _ = rack.store.delete_drain(&row.id);
        return Err(Error::Internal(format!("log drain {}: {e}", row.id)));
    }
    let what = match app {
        Some(app) => format!("app {app}"),
        None => "every app".into(),
    };
    tracing::info!(drain = row.id, url = %target::mask(&row.url), "log drain added for {what}");
    Ok(info(&hub, &row))
}

/// Drains of `app` (`None`: every drain).
pub fn list(rack: &Arc<Rack>, app: Option<&str>) -> Result<Vec<DrainInfo>, Error> {
    if let Some(app) = app {
        known_app(rack, app)?;
    }
    let hub = hub(rack)?;
    Ok(rack
        .store
        .drains()?
        .iter()
        .filter(|d| app.is_none() || d.app.as_deref() == app)
        .map(|d| info(&hub, d))
        .collect())
}

/// Stops and removes drain `id` (of `app`, when given), with its buffer.
pub fn remove(rack: &Arc<Rack>, app: Option<&str>, id: &str) -> Result<(), Error> {
    if let Some(app) = app {
        known_app(rack, app)?;
    }
    let list_hint = match app {
        Some(app) => format!("berth drains -a {app}"),
        None => "berth drains".into(),
    };
    let row = rack
        .store
        .drain(id)?
        .filter(|d| app.is_none() || d.app.as_deref() == app)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "log drain {id} does not exist; list them with `{list_hint}`"
            ))
        })?;
    let hub = hub(rack)?;
    hub.stop(&row.id);
    rack.store.delete_drain(&row.id)?;
    let _ = std::fs::remove_dir_all(drains_dir(rack).join(&row.id));
    tracing::info!(drain = row.id, "log drain removed");
    Ok(())
}

/// Stops the drains of a deleted app (the store forgot them with the app).
pub fn app_deleted(rack: &Arc<Rack>, app: &str) {
    let Some(Ok(hub)) = rack
        .logs
        .sink()
        .map(|s| s.clone().into_any().downcast::<Hub>())
    else {
        return;
    };
    let ids: Vec<String> = hub
        .drains
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|d| d.row.app.as_deref() == Some(app))
        .map(|d| d.row.id.clone())
        .collect();
    for id in ids {
        hub.stop(&id);
        let _ = std::fs::remove_dir_all(drains_dir(rack).join(&id));
    }
}

fn known_app(rack: &Rack, app: &str) -> Result<(), Error> {
    berth_core::validate_app_name(app)?;
    rack.store.app(app)?;
    Ok(())
}

fn info(hub: &Hub, row: &DrainRow) -> DrainInfo {
    let mut out = DrainInfo {
        id: row.id.clone(),
        url: target::mask(&row.url),
        app: row.app.clone(),
        sent: 0,
        dropped: 0,
        buffered: 0,
        max_bytes: row.max_bytes,
        last_error: None,
    };
    if let Some(drain) = hub.find(&row.id) {
        let spool = drain.spool.lock().unwrap_or_else(|p| p.into_inner());
        out.sent = spool.sent;
        out.buffered = spool.pending();
        drop(spool);
        let state = drain.state.lock().unwrap_or_else(|p| p.into_inner());
        out.dropped = state.dropped;
        out.last_error = state.last_error.clone();
    } else {
        out.last_error = Some("not running (see the server log)".into());
    }
    out
}
