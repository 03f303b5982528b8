//! Access log lines of the router, buffered until the server collects them
//! over the control socket (at most [`ACCESS_BUFFER`] kept; the oldest go).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;

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

/// Where the access log lines of a router process wait for the server.
#[derive(Default)]
pub(crate) struct AccessLog {
    shards: [Mutex<VecDeque<AccessLine>>; ACCESS_SHARDS],
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
    pub(crate) fn push(&self, app: &str, line: String) {
        let shard = SHARD.with(|s| *s);
        let mut lines = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() >= ACCESS_BUFFER / ACCESS_SHARDS {
            lines.pop_front();
        }
        lines.push_back(AccessLine {
            app: app.to_owned(),
            line,
        });
    }

    pub(crate) fn take(&self) -> Vec<AccessLine> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_buffer_is_bounded() {
        let log = AccessLog::default();
        for i in 0..ACCESS_BUFFER + 5 {
            log.push("a", i.to_string());
        }
        let lines = log.take();
        // One thread writes to one shard: it keeps the newest of its share.
        assert_eq!(lines.len(), ACCESS_BUFFER / ACCESS_SHARDS);
        assert_eq!(
            lines.last().map(|l| l.line.clone()),
            Some((ACCESS_BUFFER + 4).to_string())
        );
        assert!(log.take().is_empty());
    }
}
