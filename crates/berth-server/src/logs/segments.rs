//! An app's stored log as segments: `DATA/logs/<app>/` holds files named
//! `<seq>_<from>_<to>.ndjson` (sealed: `from` and `to` bound the time of
//! every line in it, to the second, UTC, e.g.
//! `00000012_20261201T210000Z_20261201T213353Z.ndjson`) and one
//! `<seq>_open.ndjson` being written. `seq` gives the order they were written
//! in. Reads skip sealed segments outside `--since`/`--until` by name, and
//! [`Retention`] removes the ones older than the retention and the oldest
//! beyond the size bound, without reading any of them.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// How long and how much of each app's log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Segments whose newest line is older than this are removed (seconds).
    pub max_age_secs: u64,
    /// The oldest segments are removed while an app's sealed segments take
    /// more than this (bytes); the open one adds at most [`Retention::segment_bytes`].
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age_secs: 7 * 86_400,
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The smallest and largest segment.
const MIN_SEGMENT: u64 = 256 * 1024;
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;
/// A segment is sealed after this long even if it is not full, so old lines
/// can age out and `--since` can skip whole hours.
pub const SEGMENT_SECS: u64 = 3600;

impl Retention {
    /// The size at which the open segment is sealed: a sixteenth of the
    /// bound, between 256 KiB and 64 MiB.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(MIN_SEGMENT, MAX_SEGMENT)
    }
}

/// A segment file of an app's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub seq: u64,
    /// The time range of its lines (Unix seconds, inclusive), for sealed ones.
    pub range: Option<(i64, i64)>,
}

impl Segment {
    /// Whether some line of it may fall in `[since, until)` (nanoseconds, 0: open).
    pub fn may_hold(&self, since_nanos: i128, until_nanos: i128) -> bool {
        let Some((from, to)) = self.range else {
            return true;
        };
        let s = 1_000_000_000i128;
        !(since_nanos != 0 && i128::from(to + 1) * s <= since_nanos
            || until_nanos != 0 && i128::from(from) * s >= until_nanos)
    }
}

/// `20261201T213352Z`: a time to the second, for file names.
pub fn file_stamp(secs: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return "19700101T000000Z".into();
    };
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc().unix_timestamp())
}

/// The name of a sealed segment holding lines from `min` to `max` (nanoseconds).
pub fn sealed_name(seq: u64, min_nanos: i128, max_nanos: i128) -> String {
    let s = 1_000_000_000i128;
    let from = i64::try_from(min_nanos.div_euclid(s)).unwrap_or(0);
    let to = i64::try_from(max_nanos.div_euclid(s)).unwrap_or(0);
    format!("{seq:08}_{}_{}.ndjson", file_stamp(from), file_stamp(to))
}

pub fn open_name(seq: u64) -> String {
    format!("{seq:08}_open.ndjson")
}

/// Reads a segment's name; `None` for other files.
pub fn parse_name(dir: &Path, name: &str) -> Option<Segment> {
    let stem = name.strip_suffix(".ndjson")?;
    let mut parts = stem.split('_');
    let seq = parts.next()?.parse().ok()?;
    let range = match (parts.next()?, parts.next(), parts.next()) {
        ("open", None, None) => None,
        (from, Some(to), None) => Some((parse_stamp(from)?, parse_stamp(to)?)),
        _ => return None,
    };
    Some(Segment {
        path: dir.join(name),
        seq,
        range,
    })
}

/// The segments in `dir`, oldest first; none if it does not exist.
pub fn list(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(segment) = entry.file_name().to_str().and_then(|n| parse_name(dir, n)) {
            segments.push(segment);
        }
    }
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

/// The time range of the lines in a file (nanoseconds); `None` if it has none.
pub fn scan_range(path: &Path) -> std::io::Result<Option<(i128, i128)>> {
    let file = std::fs::File::open(path)?;
    let mut range: Option<(i128, i128)> = None;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if let Some(ts) = line_ts(&line) {
            range = Some(range.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
        }
    }
    Ok(range)
}

/// The `ts` of an NDJSON log line, read without parsing the rest of it.
pub fn line_ts(line: &[u8]) -> Option<i128> {
    #[derive(serde::Deserialize)]
    struct Ts<'a> {
        #[serde(borrow)]
        ts: &'a str,
    }
    let ts: Ts = serde_json::from_slice(line).ok()?;
    super::time::parse_ts(ts.ts)
}

/// Seals the segment at `path` (lines in `range`, or none) as `seq`: renamed
/// to its sealed name, or removed when empty.
pub fn seal(dir: &Path, path: &Path, seq: u64, range: Option<(i128, i128)>) -> std::io::Result<()> {
    match range {
        Some((min, max)) => std::fs::rename(path, dir.join(sealed_name(seq, min, max))),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Removes the sealed segments in `dir` older than the retention at `now`
/// (Unix seconds) and the oldest beyond the size bound. Returns the bytes removed.
pub fn enforce(dir: &Path, retention: Retention, now_secs: i64) -> std::io::Result<u64> {
    let horizon =
        now_secs.saturating_sub(i64::try_from(retention.max_age_secs).unwrap_or(i64::MAX));
    let mut sealed: Vec<(Segment, u64)> = Vec::new();
    for segment in list(dir)? {
        if segment.range.is_none() {
            continue;
        }
        match std::fs::metadata(&segment.path) {
            Ok(meta) => sealed.push((segment, meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut total: u64 = sealed.iter().map(|(_, len)| len).sum();
    let mut removed = 0;
    for (segment, len) in sealed {
        let old = segment.range.is_some_and(|(_, to)| to < horizon);
        if !old && total <= retention.max_bytes {
            continue;
        }
        match std::fs::remove_file(&segment.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        total -= len;
        removed += len;
    }
    Ok(removed)
}

/// Moves the single-file log of older servers (`<app>.log.1`, `<app>.log`)
/// into `dir` as sealed segments numbered from `next_seq`; returns the next free seq.
pub fn adopt_legacy(logs: &Path, app: &str, dir: &Path, mut next_seq: u64) -> std::io::Result<u64> {
    for legacy in [
        logs.join(format!("{app}.log.1")),
        logs.join(format!("{app}.log")),
    ] {
        match std::fs::symlink_metadata(&legacy) {
            Ok(meta) if meta.is_file() => {}
            _ => continue,
        }
        let range = scan_range(&legacy)?;
        seal(dir, &legacy, next_seq, range)?;
        next_seq += 1;
    }
    Ok(next_seq)
}

/// The segment being written.
pub struct Open {
    pub file: std::fs::File,
    pub path: PathBuf,
    pub seq: u64,
    /// Bytes written (whole lines only).
    pub size: u64,
    /// The time range of its lines, if it has any.
    pub range: Option<(i128, i128)>,
    pub opened: std::time::Instant,
}

impl Open {
    /// Starts segment `seq` in `dir`.
    pub fn create(dir: &Path, seq: u64) -> std::io::Result<Open> {
        let path = dir.join(open_name(seq));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(Open {
            file,
            path,
            seq,
            size,
            range: None,
            opened: std::time::Instant::now(),
        })
    }

    /// Whether a line of `len` bytes should go to a new segment.
    pub fn full(&self, len: u64, retention: Retention) -> bool {
        self.size > 0
            && (self.size + len > retention.segment_bytes()
                || self.opened.elapsed().as_secs() >= SEGMENT_SECS)
    }

    pub fn write(&mut self, line: &[u8], ts: i128) -> std::io::Result<()> {
        match self.file.write_all(line) {
            Ok(()) => {
                self.size += line.len() as u64;
                self.range = Some(
                    self.range
                        .map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))),
                );
                Ok(())
            }
            // A full disk can take half a line: cut it off, so the next
            // entry starts on a line of its own and the file stays NDJSON.
            Err(e) => {
                let _ = self.file.set_len(self.size);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn names_carry_the_time_range_and_order() {
        let t = 1_796_158_800i128; // 2026-12-01T21:00:00Z
        let name = sealed_name(12, t * S + 5, (t + 3600) * S + 999);
        assert_eq!(name, "00000012_20261201T210000Z_20261201T220000Z.ndjson");
        let dir = Path::new("/d");
        let seg = parse_name(dir, &name).unwrap();
        assert_eq!(seg.seq, 12);
        assert_eq!(seg.range, Some((t as i64, t as i64 + 3600)));
        assert!(seg.may_hold(0, 0));
        assert!(
            seg.may_hold((t + 3600) * S + 500, 0),
            "the last second counts"
        );
        assert!(!seg.may_hold((t + 3601) * S, 0));
        assert!(seg.may_hold(0, t * S + 1));
        assert!(!seg.may_hold(0, t * S));
        assert_eq!(parse_name(dir, "00000013_open.ndjson").unwrap().range, None);
        assert_eq!(parse_name(dir, "shop.log"), None);
        assert_eq!(parse_name(dir, "x_20261201T210000Z_bad.ndjson"), None);
    }

    #[test]
    fn retention_removes_old_segments_and_the_oldest_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400i128;
        let now = 1_796_161_200i128;
        let write = |seq: u64, from: i128, to: i128, bytes: usize| {
            std::fs::write(
                dir.path().join(sealed_name(seq, from * S, to * S)),
                vec![b'x'; bytes],
            )
            .unwrap();
        };
        write(1, now - 9 * day, now - 8 * day, 10); // past 7 days
        write(2, now - 8 * day, now - 6 * day, 10); // its newest line is recent enough
        write(3, now - 6 * day, now - 5 * day, 100);
        write(4, now - day, now, 100);
        std::fs::write(dir.path().join(open_name(5)), vec![b'x'; 500]).unwrap();
        let retention = Retention {
            max_age_secs: 7 * 86_400,
            max_bytes: 250,
        };
        let removed = enforce(dir.path(), retention, now as i64).unwrap();
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|s| s.seq).collect();
        // 1 is too old; then 2+3+4 = 210 fit in 250; the open segment is not counted.
        assert_eq!(left, [2, 3, 4, 5]);
        assert_eq!(removed, 10);
        let tighter = Retention {
            max_bytes: 150,
            ..retention
        };
        enforce(dir.path(), tighter, now as i64).unwrap();
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(left, [4, 5], "the oldest go first until the rest fits");
    }

    #[test]
    fn segment_size_follows_the_bound() {
        let r = |max_bytes| Retention {
            max_age_secs: 1,
            max_bytes,
        };
        assert_eq!(r(1 << 30).segment_bytes(), 64 << 20);
        assert_eq!(r(4 << 20).segment_bytes(), 256 << 10);
        assert_eq!(r(1).segment_bytes(), 256 << 10);
    }
}
