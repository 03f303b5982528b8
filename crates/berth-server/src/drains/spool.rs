//! A drain's bounded on-disk buffer: records appended to segment files
//! (`<first offset>.seg`, each record a little-endian u32 length and the
//! bytes), read from the last acknowledged offset, and acknowledged when the
//! receiver took them. What was acknowledged is kept in `state` (written to a
//! temporary file and renamed), so a restarted server resumes where the
//! receiver left off and sends nothing twice.
//!
//! Offsets count bytes of the whole stream, headers included. The bound is on
//! what waits (written but not acknowledged); a record that would pass it is
//! refused and counted as dropped by the caller.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: u64 = 4;
/// A record longer than this is cut (a log line is far shorter).
pub const MAX_RECORD: usize = 1 << 20;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// (first offset, length) of each segment, oldest first.
    segments: VecDeque<(u64, u64)>,
    file: Option<File>,
    /// Where the next record goes.
    head: u64,
    /// Everything before this was taken by the receiver.
    acked: u64,
    /// Lines the receiver took, ever.
    pub sent: u64,
}

/// One record read: its bytes and the offset just after it.
pub struct Record {
    pub bytes: Vec<u8>,
    pub end: u64,
}

fn seg_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.seg"))
}

impl Spool {
    /// Opens (or creates) the spool in `dir`; a record cut off by a crash is dropped.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let (acked, sent) = match std::fs::read_to_string(dir.join("state")) {
            Ok(text) => {
                let mut parts = text
                    .split_whitespace()
                    .map(|p| p.parse::<u64>().unwrap_or(0));
                (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => return Err(e),
        };
        let mut starts: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        starts.sort_unstable();
        let mut segments = VecDeque::new();
        for start in starts {
            let len = std::fs::metadata(seg_path(dir, start))?.len();
            segments.push_back((start, len));
        }
        // The last segment may end in a half-written record.
        if let Some((start, len)) = segments.back_mut() {
            let valid = valid_length(&seg_path(dir, *start))?;
            if valid < *len {
                OpenOptions::new()
                    .write(true)
                    .open(seg_path(dir, *start))?
                    .set_len(valid)?;
                *len = valid;
            }
        }
        let head = segments.back().map(|(s, l)| s + l).unwrap_or(acked);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 4).clamp(4096, 4 << 20),
            segments,
            file: None,
            head: head.max(acked),
            acked: acked.min(head.max(acked)),
            sent,
        };
        spool.remove_acked_segments();
        Ok(spool)
    }

    /// Bytes waiting for the receiver.
    pub fn pending(&self) -> u64 {
        self.head - self.acked
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Appends a record; `Ok(false)` when the bound leaves no room for it.
    pub fn push(&mut self, bytes: &[u8]) -> std::io::Result<bool> {
        let bytes = &bytes[..bytes.len().min(MAX_RECORD)];
        let size = HEADER + bytes.len() as u64;
        if self.pending() + size > self.max_bytes {
            return Ok(false);
        }
        let need_new = match self.segments.back() {
            None => true,
            Some((_, len)) => *len > 0 && len + size > self.segment_bytes,
        };
        if need_new || self.file.is_none() {
            if need_new {
                self.segments.push_back((self.head, 0));
            }
            let (start, _) = self.segments.back().copied().unwrap_or((self.head, 0));
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(seg_path(&self.dir, start))?,
            );
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("no segment open"));
        };
        let mut record = Vec::with_capacity(size as usize);
        record.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        record.extend_from_slice(bytes);
        if let Err(e) = file.write_all(&record) {
            // Keep the segment whole: cut what was half written.
            let len = self.segments.back().map(|(_, l)| *l).unwrap_or(0);
            let _ = file.set_len(len);
            self.file = None;
            return Err(e);
        }
        if let Some((_, len)) = self.segments.back_mut() {
            *len += size;
        }
        self.head += size;
        Ok(true)
    }

    /// Up to `max_records` records (about `max_bytes` at most) from `from` on.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut at = from.max(self.acked);
        let mut total = 0usize;
        for &(start, len) in &self.segments {
            if at >= start + len {
                continue;
            }
            if out.len() >= max_records || total >= max_bytes {
                break;
            }
            let mut file = File::open(seg_path(&self.dir, start))?;
            file.seek(SeekFrom::Start(at - start))?;
            let mut reader = std::io::BufReader::new(file.take(start + len - at));
            while at < start + len && out.len() < max_records && total < max_bytes {
                let mut header = [0u8; 4];
                reader.read_exact(&mut header)?;
                let n = u32::from_le_bytes(header) as usize;
                let mut bytes = vec![0u8; n];
                reader.read_exact(&mut bytes)?;
                at += HEADER + n as u64;
                total += n;
                out.push(Record { bytes, end: at });
            }
        }
        Ok(out)
    }

    /// The receiver took everything before `offset` (`lines` lines): kept on
    /// disk before this returns, and segments wholly before it removed.
    pub fn ack(&mut self, offset: u64, lines: u64) -> std::io::Result<()> {
        if offset <= self.acked {
            return Ok(());
        }
        self.acked = offset.min(self.head);
        self.sent += lines;
        let tmp = self.dir.join("state.tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.acked, self.sent))?;
        std::fs::rename(&tmp, self.dir.join("state"))?;
        self.remove_acked_segments();
        Ok(())
    }

    fn remove_acked_segments(&mut self) {
        while let Some(&(start, len)) = self.segments.front() {
            // The segment being written stays, even when all of it was taken.
            if start + len > self.acked || self.segments.len() == 1 {
                break;
            }
            if std::fs::remove_file(seg_path(&self.dir, start)).is_err() {
                break;
            }
            self.segments.pop_front();
        }
    }
}

/// Length of the whole records at the start of `path`.
fn valid_length(path: &Path) -> std::io::Result<u64> {
    let mut reader = std::io::BufReader::new(File::open(path)?);
    let mut valid = 0u64;
    loop {
        let mut header = [0u8; 4];
        if reader.read_exact(&mut header).is_err() {
            return Ok(valid);
        }
        let n = u32::from_le_bytes(header) as u64;
        if std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink())? < n {
            return Ok(valid);
        }
        valid += HEADER + n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect()
    }

    #[test]
    fn records_wait_until_acknowledged_and_resume_after_reopen() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("opened");
        for i in 0..10 {
            assert!(spool.push(format!("line {i}").as_bytes()).expect("pushed"));
        }
        let first = spool.read(0, 4, usize::MAX).expect("read");
        assert_eq!(texts(&first), ["line 0", "line 1", "line 2", "line 3"]);
        spool.ack(first[3].end, 4).expect("acked");
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).expect("reopened");
        assert_eq!(spool.sent, 4);
        let rest = spool.read(0, 100, usize::MAX).expect("read");
        assert_eq!(texts(&rest).first().map(String::as_str), Some("line 4"));
        assert_eq!(rest.len(), 6);
    }

    #[test]
    fn the_bound_refuses_records_until_some_are_taken_and_segments_go() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut spool = Spool::open(dir.path(), 8192).expect("opened");
        let line = vec![b'x'; 96];
        let mut pushed = 0;
        while spool.push(&line).expect("pushed") {
            pushed += 1;
        }
        assert_eq!(pushed, 8192 / 100);
        assert!(spool.pending() <= 8192);
        let segments = || {
            std::fs::read_dir(dir.path())
                .expect("listed")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                })
                .count()
        };
        assert!(segments() >= 2, "{}", segments());
        let all = spool.read(0, usize::MAX, usize::MAX).expect("read");
        assert_eq!(all.len(), pushed);
        let last = all.last().map(|r| r.end).unwrap_or(0);
        spool.ack(last, pushed as u64).expect("acked");
        assert_eq!(spool.pending(), 0);
        assert_eq!(segments(), 1);
        assert!(spool.push(&line).expect("pushed"));
        let after = spool.read(0, usize::MAX, usize::MAX).expect("read");
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn a_half_written_record_is_dropped_on_reopen() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("opened");
        assert!(spool.push(b"whole").expect("pushed"));
        drop(spool);
        let seg = seg_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("opened");
        f.write_all(&[50, 0, 0, 0, b'h']).expect("written");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopened");
        assert!(spool.push(b"next").expect("pushed"));
        let all = spool.read(0, 10, usize::MAX).expect("read");
        assert_eq!(texts(&all), ["whole", "next"]);
    }
}
