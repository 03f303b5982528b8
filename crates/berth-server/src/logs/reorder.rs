//! A followed stream's window: new lines held briefly and sent in time order.

use super::time::parse_ts;
use berth_api::LogEntry;
use std::collections::BTreeMap;

/// How long a followed stream holds a new line. Process output reaches the
/// server a little after its engine timestamp, events and access lines are
/// stamped on arrival; within this window they are sent in time order.
pub const FOLLOW_WINDOW_NANOS: i128 = 1_000_000_000;

/// The lines of a followed stream, held for a window and released in time
/// order. A line is due a window after its timestamp or its arrival,
/// whichever is earlier, and lines leave oldest first, so nothing is held
/// longer than the window; a line that arrives more than a window late is
/// sent at once, after the newer lines already sent.
pub struct Reorder {
    window: i128,
    seq: u64,
    held: BTreeMap<(i128, u64), (LogEntry, i128)>,
}

impl Reorder {
    pub fn new(window_nanos: i128) -> Reorder {
        Reorder {
            window: window_nanos,
            seq: 0,
            held: BTreeMap::new(),
        }
    }

    /// Holds `entry`, which reached the server at `arrived` (Unix nanoseconds).
    pub fn push(&mut self, entry: LogEntry, arrived: i128) {
        let ts = parse_ts(&entry.ts).unwrap_or(arrived);
        self.held.insert((ts, self.seq), (entry, arrived));
        self.seq += 1;
    }

    /// When the oldest held line is due (Unix nanoseconds), if any is held.
    pub fn next_due(&self) -> Option<i128> {
        self.held
            .iter()
            .next()
            .map(|((ts, _), (_, arrived))| (*ts).min(*arrived) + self.window)
    }

    /// The lines due at `now`, oldest first.
    pub fn take_due(&mut self, now: i128) -> Vec<LogEntry> {
        let mut due = Vec::new();
        while self.next_due().is_some_and(|at| at <= now) {
            if let Some((_, (entry, _))) = self.held.pop_first() {
                due.push(entry);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::time::format_ts;

    fn entry(ts: i128, text: &str) -> LogEntry {
        LogEntry {
            ts: format_ts(ts),
            source: "web/web-1".into(),
            text: text.into(),
            service: None,
        }
    }

    fn texts(entries: Vec<LogEntry>) -> Vec<String> {
        entries.into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn followed_lines_leave_in_time_order_within_the_window_and_late_ones_at_once() {
        const S: i128 = 1_000_000_000;
        let t0 = 1_714_564_800 * S;
        let mut window = Reorder::new(S);
        window.push(entry(t0 + S / 2, "b"), t0 + S / 2);
        window.push(entry(t0, "a"), t0 + S / 2 + 1);
        assert!(window.take_due(t0 + S / 2 + 2).is_empty(), "held");
        assert_eq!(window.next_due(), Some(t0 + S));
        assert_eq!(texts(window.take_due(t0 + S)), ["a"]);
        assert_eq!(texts(window.take_due(t0 + 3 * S / 2)), ["b"]);
        // More than a window late: sent at once rather than held or dropped.
        window.push(entry(t0 - 5 * S, "late"), t0 + 2 * S);
        assert_eq!(texts(window.take_due(t0 + 2 * S)), ["late"]);
        // A clock ahead of the server's holds a line no longer than the window.
        window.push(entry(t0 + 60 * S, "ahead"), t0 + 2 * S);
        assert_eq!(texts(window.take_due(t0 + 3 * S)), ["ahead"]);
        assert_eq!(window.next_due(), None);
    }
}
