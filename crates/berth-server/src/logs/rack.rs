//! The rack's own logs (`berth rack logs`): the server's, which the server
//! process writes to `DATA/rack-logs/server.log` through [`ServerLogFile`]
//! (besides stderr; rotated at [`SERVER_LOG_ROTATE`] to `server.log.1`), and
//! the router's, its stdout and stderr in `DATA/router.log`. Lines are the
//! text `tracing` writes (`<RFC 3339 time>  INFO target: message`); they are
//! sent as log entries of source `server` or `router`.

use super::time::{format_ts, parse_ts};
use berth_api::LogEntry;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Above this size the server's log is moved to `server.log.1` (one generation kept).
pub const SERVER_LOG_ROTATE: u64 = 16 * 1024 * 1024;
/// How much of the end of a log a read looks at.
const TAIL_BYTES: u64 = 8 * 1024 * 1024;

pub fn server_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("rack-logs").join("server.log")
}

pub fn router_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("router.log")
}

fn rotated(path: &Path) -> PathBuf {
    path.with_extension("log.1")
}

/// The server's log file, appended to and rotated by size. Each write is one
/// formatted event, so rotation falls between lines.
pub struct ServerLogFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl ServerLogFile {
    pub fn open(data_dir: &Path) -> std::io::Result<ServerLogFile> {
        let path = server_log_path(data_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(&path)?;
        let size = file.metadata()?.len();
        Ok(ServerLogFile { path, file, size })
    }
}

impl Write for ServerLogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > SERVER_LOG_ROTATE {
            std::fs::rename(&self.path, rotated(&self.path))?;
            self.file = append(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Turns one line of a rack log into an entry; a line without a time of its
/// own (a panic's message, a multi-line one) takes the time of the line before.
fn entry(source: &str, line: &str, last_ts: &mut i128) -> LogEntry {
    let line = line.trim_end_matches('\r');
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (ts, text) = match parse_ts(first) {
        Some(ts) => (ts, rest.trim_start()),
        None => (*last_ts, line),
    };
    *last_ts = ts;
    LogEntry {
        ts: format_ts(ts),
        source: source.into(),
        text: text.into(),
        service: None,
    }
}

/// Where a reader is in one rack log: new whole lines are read from here.
pub struct Cursor {
    source: &'static str,
    path: PathBuf,
    /// Whether the file is rotated to `<name>.1` (the server's log).
    rotates: bool,
    ino: Option<u64>,
    offset: u64,
    last_ts: i128,
}

impl Cursor {
    fn new(source: &'static str, path: PathBuf, rotates: bool) -> Cursor {
        Cursor {
            source,
            path,
            rotates,
            ino: None,
            offset: 0,
            last_ts: 0,
        }
    }

    /// The whole lines of `file` from `from`; returns them and the offset after the last.
    fn read_from(
        &mut self,
        mut file: std::fs::File,
        from: u64,
        out: &mut Vec<LogEntry>,
    ) -> std::io::Result<u64> {
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&bytes[..whole]).lines() {
            if !line.trim().is_empty() {
                out.push(entry(self.source, line, &mut self.last_ts));
            }
        }
        Ok(from + whole as u64)
    }

    /// The lines written since the last call (at the first: the end of the
    /// log, at most [`TAIL_BYTES`]), including what was written to the old
    /// file before a rotation.
    pub fn poll(&mut self) -> std::io::Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        match self.ino {
            None => {
                // The first read: the end of the log (with the rotated file
                // if the current one is short).
                if self.rotates && meta.len() < TAIL_BYTES {
                    let old = rotated(&self.path);
                    if let Ok(old_file) = std::fs::File::open(&old) {
                        let len = old_file.metadata()?.len();
                        let from = len.saturating_sub(TAIL_BYTES - meta.len());
                        let from = line_start(&old_file, from)?;
                        self.read_from(old_file, from, &mut out)?;
                    }
                }
                let from = line_start(&file, meta.len().saturating_sub(TAIL_BYTES))?;
                self.offset = self.read_from(file, from, &mut out)?;
            }
            Some(ino) if ino != meta.ino() => {
                // Rotated: the rest of the old file, then the new one.
                if self.rotates
                    && let Ok(old_file) = std::fs::File::open(rotated(&self.path))
                    && old_file.metadata()?.ino() == ino
                {
                    self.read_from(old_file, self.offset, &mut out)?;
                }
                self.offset = self.read_from(file, 0, &mut out)?;
            }
            Some(_) => {
                let from = if meta.len() < self.offset {
                    0
                } else {
                    self.offset
                };
                self.offset = self.read_from(file, from, &mut out)?;
            }
        }
        self.ino = Some(meta.ino());
        Ok(out)
    }
}

/// The start of the first whole line at or after `from`.
fn line_start(file: &std::fs::File, from: u64) -> std::io::Result<u64> {
    if from == 0 {
        return Ok(0);
    }
    let mut file = file;
    file.seek(SeekFrom::Start(from - 1))?;
    let mut chunk = [0u8; 4096];
    let mut at = from - 1;
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(at);
        }
        if let Some(i) = chunk[..n].iter().position(|b| *b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
}

/// Followers of the server's and the router's logs.
pub struct RackLogs {
    cursors: Vec<Cursor>,
}

impl RackLogs {
    pub fn new(data_dir: &Path) -> RackLogs {
        RackLogs {
            cursors: vec![
                Cursor::new("server", server_log_path(data_dir), true),
                Cursor::new("router", router_log_path(data_dir), false),
            ],
        }
    }

    /// New lines of both logs since the last call, in time order (the first
    /// call: the end of each).
    pub fn poll(&mut self) -> std::io::Result<Vec<LogEntry>> {
        let mut all = Vec::new();
        for cursor in &mut self.cursors {
            all.extend(cursor.poll()?);
        }
        // Same-width timestamps: text order is time order; the sort is stable.
        all.sort_by(|a, b| a.ts.cmp(&b.ts));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_once_across_a_rotation_and_merged_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = ServerLogFile::open(dir.path()).unwrap();
        server
            .write_all(b"2026-12-01T21:00:00.000001Z  INFO berth_server: berth server ready\n")
            .unwrap();
        std::fs::write(
            router_log_path(dir.path()),
            "2026-12-01T21:00:00.5Z  INFO berth_router: listening\n",
        )
        .unwrap();
        let mut logs = RackLogs::new(dir.path());
        let first = logs.poll().unwrap();
        let texts: Vec<(&str, &str)> = first
            .iter()
            .map(|e| (e.source.as_str(), e.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("server", "INFO berth_server: berth server ready"),
                ("router", "INFO berth_router: listening")
            ]
        );
        assert_eq!(first[0].ts, "2026-12-01T21:00:00.000001000Z");
        assert!(logs.poll().unwrap().is_empty());
        // A line, a rotation (forced by the size), a line in the new file, a
        // line without a time, and half a line not finished yet.
        server
            .write_all(b"2026-12-01T21:00:01Z  WARN berth_server: before\n")
            .unwrap();
        server.size = SERVER_LOG_ROTATE;
        server
            .write_all(b"2026-12-01T21:00:02Z  INFO berth_server: after\nthread panicked\n2026-12-01T21:00:03Z half")
            .unwrap();
        let texts: Vec<String> = logs.poll().unwrap().into_iter().map(|e| e.text).collect();
        assert_eq!(
            texts,
            [
                "WARN berth_server: before",
                "INFO berth_server: after",
                "thread panicked"
            ]
        );
        server.write_all(b" done\n").unwrap();
        let texts: Vec<String> = logs.poll().unwrap().into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["half done"]);
        // A new reader sees the rotated file's lines too.
        let texts: Vec<String> = RackLogs::new(dir.path())
            .poll()
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(texts.len(), 6, "{texts:?}");
    }
}
