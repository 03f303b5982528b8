//! Reading stored lines: parsing, filtering and keeping the newest `tail`.

use super::filter::LogFilter;
use super::time::{format_ts, parse_ts};
use berth_api::LogEntry;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, Read};
use std::path::Path;

/// Width of a timestamp written by [`format_ts`].
pub(super) const TS_WIDTH: usize = "2024-05-01T12:00:00.000000000Z".len();

pub(super) fn open_existing(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn read_entries(
    file: impl Read,
    filter: &LogFilter,
    kept: &mut Newest,
) -> std::io::Result<()> {
    if filter.tail == Some(0) {
        return Ok(());
    }
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // A torn last line (disk full, crash) is skipped rather than failing the whole read.
        let Ok(mut entry) = serde_json::from_str::<LogEntry>(&line) else {
            continue;
        };
        let ts = parse_ts(&entry.ts);
        if !filter.admits(&entry, ts) {
            continue;
        }
        // Lines of older servers have fewer fraction digits: sent as every other line.
        if let Some(t) = ts
            && entry.ts.len() != TS_WIDTH
        {
            entry.ts = format_ts(t);
        }
        kept.push(ts.unwrap_or(i128::MIN), entry);
    }
    Ok(())
}

/// An entry with its time and its place in the files: entries of the same
/// time keep the order they were written in.
struct Keyed {
    ts: i128,
    seq: u64,
    entry: LogEntry,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// The entries a read keeps: all of them, or the newest `limit` in a heap,
/// so `--tail` needs memory for its lines only, however long the log.
pub(super) struct Newest {
    limit: Option<usize>,
    seq: u64,
    all: Vec<Keyed>,
    newest: BinaryHeap<Reverse<Keyed>>,
}

impl Newest {
    pub(super) fn new(limit: Option<usize>) -> Newest {
        Newest {
            limit,
            seq: 0,
            all: Vec::new(),
            newest: BinaryHeap::new(),
        }
    }

    pub(super) fn push(&mut self, ts: i128, entry: LogEntry) {
        let keyed = Keyed {
            ts,
            seq: self.seq,
            entry,
        };
        self.seq += 1;
        match self.limit {
            None => self.all.push(keyed),
            Some(limit) if self.newest.len() < limit => self.newest.push(Reverse(keyed)),
            Some(_) => {
                if self
                    .newest
                    .peek()
                    .is_some_and(|Reverse(oldest)| keyed > *oldest)
                {
                    self.newest.pop();
                    self.newest.push(Reverse(keyed));
                }
            }
        }
    }

    pub(super) fn into_sorted(self) -> Vec<LogEntry> {
        let mut entries = self.all;
        entries.extend(self.newest.into_iter().map(|Reverse(k)| k));
        entries.sort_unstable();
        entries.into_iter().map(|k| k.entry).collect()
    }
}
