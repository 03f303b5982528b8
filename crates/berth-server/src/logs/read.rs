//! Reading stored lines: parsing, filtering and keeping the newest `tail`.

use super::filter::LogFilter;
use super::time::{format_ts, parse_ts};
use berth_api::LogEntry;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
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
    mut file: impl Read,
    filter: &LogFilter,
    kept: &mut Newest,
) -> std::io::Result<()> {
    if filter.tail == Some(0) {
        return Ok(());
    }
    let needle = filter.grep.as_deref().map(json_escaped);
    let finder = needle.as_deref().map(memchr::memmem::Finder::new);
    // Whole chunks of lines: with --grep only the lines that hold the needle
    // (as the file spells it, JSON-escaped) are parsed.
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut at_end = false;
    while !at_end {
        let filled = buf.len();
        buf.resize(filled + CHUNK, 0);
        let mut len = filled;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(len);
        // Up to the last newline (all of it at the end: a torn last line is skipped by parsing).
        let whole = if at_end {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        match &finder {
            Some(finder) => {
                let region = &buf[..whole];
                let mut from = 0;
                while let Some(hit) = finder.find(&region[from..]) {
                    let hit = from + hit;
                    let start = memchr::memrchr(b'\n', &region[..hit]).map_or(0, |i| i + 1);
                    let end =
                        memchr::memchr(b'\n', &region[hit..]).map_or(region.len(), |i| hit + i);
                    take_line(&region[start..end], filter, kept);
                    from = end + 1;
                    if from >= region.len() {
                        break;
                    }
                }
            }
            None => {
                for line in buf[..whole].split(|b| *b == b'\n') {
                    take_line(line, filter, kept);
                }
            }
        }
        buf.drain(..whole);
    }
    Ok(())
}

/// How much of a file a read takes at a time.
const CHUNK: usize = 4 << 20;

/// `text` as it appears inside a JSON string written by serde_json: escaping
/// is per character, so a text that holds `text` holds this when written.
fn json_escaped(text: &str) -> Vec<u8> {
    let quoted = serde_json::to_vec(text).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_vec()
}

/// Parses one stored line and keeps it if it passes `filter`.
fn take_line(line: &[u8], filter: &LogFilter, kept: &mut Newest) {
    if line.is_empty() {
        return;
    }
    // A torn line (disk full, crash) is skipped rather than failing the whole read.
    let Ok(mut entry) = serde_json::from_slice::<LogEntry>(line) else {
        return;
    };
    let ts = parse_ts(&entry.ts);
    if !filter.admits(&entry, ts) {
        return;
    }
    // Lines of older servers have fewer fraction digits: sent as every other line.
    if let Some(t) = ts
        && entry.ts.len() != TS_WIDTH
    {
        entry.ts = format_ts(t);
    }
    kept.push(ts.unwrap_or(i128::MIN), entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> String {
        let entry = LogEntry {
            ts: format_ts(1_000),
            source: "web/web-1".into(),
            text: text.into(),
            service: None,
        };
        format!("{}\n", serde_json::to_string(&entry).unwrap())
    }

    fn grep(file: &str, needle: &str) -> Vec<String> {
        let filter = LogFilter {
            grep: Some(needle.into()),
            ..LogFilter::default()
        };
        let mut kept = Newest::new(None);
        read_entries(file.as_bytes(), &filter, &mut kept).unwrap();
        kept.into_sorted().into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn search_finds_text_as_written_and_only_in_the_text() {
        let mut file = String::new();
        for text in [
            "plain GET /a",
            "say \"hi\"",
            "tab\there",
            "web-1 here",
            "naïve ☃",
            "GET /a again",
        ] {
            file.push_str(&line(text));
        }
        file.push_str("{\"ts\":\"torn");
        assert_eq!(grep(&file, "GET /a"), ["plain GET /a", "GET /a again"]);
        assert_eq!(grep(&file, "\"hi\""), ["say \"hi\""]);
        assert_eq!(grep(&file, "\th"), ["tab\there"]);
        assert_eq!(grep(&file, "☃"), ["naïve ☃"]);
        // In the source field only: found by the byte search, refused by the filter.
        assert_eq!(grep(&file, "web/web-1"), Vec::<String>::new());
        assert_eq!(grep(&file, "web-1"), ["web-1 here"]);
    }

    #[test]
    fn search_spans_chunks() {
        // More than a chunk of lines, a match on both sides of every boundary.
        let mut file = String::new();
        let mut expected = 0;
        let mut i = 0;
        while file.len() < 2 * CHUNK + 1000 {
            if i % 1000 == 0 {
                file.push_str(&line(&format!("needle {i}")));
                expected += 1;
            } else {
                file.push_str(&line(&format!("hay {i} {}", "x".repeat(i % 200))));
            }
            i += 1;
        }
        assert_eq!(grep(&file, "needle").len(), expected);
        let mut kept = Newest::new(None);
        read_entries(file.as_bytes(), &LogFilter::default(), &mut kept).unwrap();
        assert_eq!(kept.into_sorted().len(), i);
    }
}
