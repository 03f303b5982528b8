//! Access log lines of the router, buffered until the server collects them
//! over the control socket (at most [`ACCESS_BUFFER`] kept; the oldest go).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::Route;

/// Access log lines kept between two `logs` calls; older ones are dropped.
pub(crate) const ACCESS_BUFFER: usize = 20_000;

/// One request as the router saw it, for the app's log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLine {
    pub app: String,
    pub line: String,
}

/// Buffers the access log is split into, so worker threads rarely share a lock.
const ACCESS_SHARDS: usize = 8;

/// An access line waiting in [`AccessLog`], with the app it was for.
type Waiting = (LineApp, String);

/// A line's app: the route of a request served here (a reference count, taken on
/// every request), or the name sent with a line another router carried over.
enum LineApp {
    Route(Arc<Route>),
    Name(String),
}

/// Where the access log lines of a router process wait for the server. A line keeps
/// its route (a reference count) rather than a copy of the app's name: the name is
/// copied only for the lines the server collects, not on every request.
#[derive(Default)]
pub(crate) struct AccessLog {
    shards: [Mutex<VecDeque<Waiting>>; ACCESS_SHARDS],
}

thread_local! {
    static SHARD: usize = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id())
            as usize
            % ACCESS_SHARDS
    };
}

impl AccessLog {
    pub(crate) fn push(&self, route: &Arc<Route>, line: String) {
        let mut lines = self.own_shard();
        push_bounded(&mut lines, (LineApp::Route(Arc::clone(route)), line));
    }

    /// Queues the lines a router that handed over to this one served while it
    /// drained, as if served here: the server collects them from this router.
    pub(crate) fn carry(&self, carried: Vec<AccessLine>) {
        let mut lines = self.own_shard();
        for AccessLine { app, line } in carried {
            push_bounded(&mut lines, (LineApp::Name(app), line));
        }
    }

    /// The shard of this thread.
    fn own_shard(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        let shard = SHARD.with(|s| *s);
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn take(&self) -> Vec<AccessLine> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut lines = shard.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(lines.drain(..).map(|(app, line)| AccessLine {
                app: match app {
                    LineApp::Route(route) => route.app.clone(),
                    LineApp::Name(name) => name,
                },
                line,
            }));
        }
        out
    }
}

/// Queues a line in a shard, dropping its oldest when the shard is full.
fn push_bounded(lines: &mut VecDeque<Waiting>, waiting: Waiting) {
    if lines.len() >= ACCESS_BUFFER / ACCESS_SHARDS {
        lines.pop_front();
    }
    lines.push_back(waiting);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_buffer_is_bounded() {
        let log = AccessLog::default();
        let route = Arc::new(Route {
            app: "a".into(),
            service: "web".into(),
            backends: Vec::new(),
            timeout: std::time::Duration::ZERO,
            tls_redirect: false,
            hsts: None,
        });
        for i in 0..ACCESS_BUFFER + 5 {
            log.push(&route, i.to_string());
        }
        let lines = log.take();
        // One thread writes to one shard: it keeps the newest of its share.
        assert_eq!(lines.len(), ACCESS_BUFFER / ACCESS_SHARDS);
        assert_eq!(lines[0].app, "a");
        assert_eq!(
            lines.last().map(|l| l.line.clone()),
            Some((ACCESS_BUFFER + 4).to_string())
        );
        assert!(log.take().is_empty());
    }

    #[test]
    fn carried_lines_are_taken_with_their_app() {
        let log = AccessLog::default();
        log.carry(vec![AccessLine {
            app: "old".into(),
            line: "GET a.test / 200 2 1ms web.1".into(),
        }]);
        assert_eq!(
            log.take(),
            [AccessLine {
                app: "old".into(),
                line: "GET a.test / 200 2 1ms web.1".into(),
            }]
        );
    }
}
