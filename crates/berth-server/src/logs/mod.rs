//! The app log stream: process output, build output and system events, one
//! NDJSON file per app in the data dir, plus a live feed for `logs --follow`.
//!
//! Lines reach the stream out of time order: process output comes per
//! container with the engine's timestamps, events and access lines are
//! stamped when written. Reads sort by timestamp, and a followed stream goes
//! through [`Reorder`], which holds new lines for [`FOLLOW_WINDOW_NANOS`].

mod filter;
mod read;
mod reorder;
mod time;

pub use filter::{LogFilter, LogSource, matches};
pub use reorder::{FOLLOW_WINDOW_NANOS, Reorder};
pub use time::{entry_nanos, format_ts, now_nanos};

use berth_api::LogEntry;
use filter::service_of_process_source;
use read::{Newest, open_existing, read_entries};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Above this size an app's log file is rotated to `<app>.log.1` (one generation kept).
const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

pub struct LogBook {
    dir: PathBuf,
    apps: Mutex<HashMap<String, AppLog>>,
    /// app → the write failure going on (a full disk, most likely): reported
    /// once when it starts and once, with what was lost, when writing resumes.
    failing: Mutex<HashMap<String, Failing>>,
}

struct Failing {
    error: String,
    dropped: u64,
    since: std::time::Instant,
    /// Lines are dropped without trying until then: a nearly full disk would
    /// otherwise take a short line now and then, and the spell would flap.
    retry_at: std::time::Instant,
}

/// How often a failing log is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// Free space a full disk needs again before writing resumes.
const RESUME_FREE: u64 = 256 * 1024;

struct AppLog {
    file: std::fs::File,
    size: u64,
    feed: broadcast::Sender<LogEntry>,
}

impl LogBook {
    pub fn new(dir: PathBuf) -> std::io::Result<LogBook> {
        std::fs::create_dir_all(&dir)?;
        Ok(LogBook {
            dir,
            apps: Mutex::new(HashMap::new()),
            failing: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, app: &str) -> PathBuf {
        self.dir.join(format!("{app}.log"))
    }

    fn with_app<T>(&self, app: &str, f: impl FnOnce(&mut AppLog) -> T) -> std::io::Result<T> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if !apps.contains_key(app) {
            let path = self.path(app);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let size = file.metadata()?.len();
            let (feed, _) = broadcast::channel(1024);
            apps.insert(app.to_string(), AppLog { file, size, feed });
        }
        let log = apps
            .get_mut(app)
            .ok_or_else(|| std::io::Error::other("log vanished"))?;
        Ok(f(log))
    }

    /// Appends one entry (with its timestamp in nanoseconds) and feeds followers.
    pub fn append_at(&self, app: &str, ts_nanos: i128, source: &str, text: &str) {
        self.append_entry(
            app,
            LogEntry {
                ts: format_ts(ts_nanos),
                source: source.into(),
                text: text.into(),
                service: None,
            },
        );
    }

    fn append_entry(&self, app: &str, entry: LogEntry) {
        let Ok(mut line) = serde_json::to_vec(&entry) else {
            return;
        };
        line.push(b'\n');
        if self.skip(app) {
            let _ = self.with_app(app, |log| log.feed.send(entry));
            return;
        }
        let result = self.with_app(app, |log| {
            if log.size + line.len() as u64 > ROTATE_BYTES {
                let path = self.path(app);
                let _ = std::fs::rename(&path, path.with_extension("log.1"));
                if let Ok(f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    log.file = f;
                    log.size = 0;
                }
            }
            let written = log.file.write_all(&line);
            match &written {
                Ok(()) => log.size += line.len() as u64,
                // A full disk can take half a line: cut it off, so the next
                // entry starts on a line of its own and the file stays NDJSON.
                Err(_) => {
                    let _ = log.file.set_len(log.size);
                }
            }
            let _ = log.feed.send(entry);
            written
        });
        match result {
            Ok(Ok(())) => self.resumed(app),
            Err(e) | Ok(Err(e)) => self.failed(app, &e),
        }
    }

    /// Whether to drop this line without trying: the log is failing and it is
    /// not time to try again yet (or the disk is still nearly full).
    fn skip(&self, app: &str) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = failing.get_mut(app) else {
            return false;
        };
        let now = std::time::Instant::now();
        if now < f.retry_at {
            f.dropped += 1;
            return true;
        }
        if crate::disk::free_bytes(&self.dir).is_some_and(|free| free < RESUME_FREE) {
            f.retry_at = now + RETRY;
            f.dropped += 1;
            return true;
        }
        false
    }

    /// A write failed: said once per failure spell (the server log), counted after.
    fn failed(&self, app: &str, error: &std::io::Error) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = failing.get_mut(app) {
            f.dropped += 1;
            f.retry_at = std::time::Instant::now() + RETRY;
            return;
        }
        let what = format!("write the log of app {app}");
        let message = crate::disk::full_message(&what, "logs", &self.dir, error)
            .unwrap_or_else(|| {
                format!(
                    "cannot write the log of app {app} to {}: {error}; check the data dir's disk and permissions",
                    self.dir.display()
                )
            });
        tracing::error!(
            app,
            dir = %self.dir.display(),
            "{message}. Log lines are passed to followers but not stored until it can write again"
        );
        failing.insert(
            app.to_string(),
            Failing {
                error: error.to_string(),
                dropped: 1,
                since: std::time::Instant::now(),
                retry_at: std::time::Instant::now() + RETRY,
            },
        );
    }

    /// A write succeeded: after a failure spell, say what was lost, in the log itself.
    fn resumed(&self, app: &str) {
        let spell = {
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            if failing.is_empty() {
                return;
            }
            failing.remove(app)
        };
        if let Some(f) = spell {
            let text = format!(
                "{} log lines were lost in {:.0} s while the log could not be written ({}); writing again",
                f.dropped,
                f.since.elapsed().as_secs_f64(),
                f.error
            );
            tracing::warn!(app, "{text}");
            self.append(app, "berth", &text);
        }
    }

    pub fn append(&self, app: &str, source: &str, text: &str) {
        self.append_at(app, now_nanos(), source, text);
    }

    /// A system event in the app's stream (source `berth`), also traced.
    pub fn event(&self, app: &str, text: &str) {
        tracing::info!(app, "{text}");
        self.append(app, "berth", text);
    }

    /// A system event about a process (or one-off) of `service`: in the
    /// app's stream like [`LogBook::event`], and in `logs --service` of that
    /// service too. An empty `service` (a container without its label) makes
    /// it a plain event.
    pub fn service_event(&self, app: &str, service: &str, text: &str) {
        tracing::info!(app, service, "{text}");
        self.append_entry(
            app,
            LogEntry {
                ts: format_ts(now_nanos()),
                source: "berth".into(),
                text: text.into(),
                service: (!service.is_empty()).then(|| service.to_string()),
            },
        );
    }

    pub fn subscribe(&self, app: &str) -> std::io::Result<broadcast::Receiver<LogEntry>> {
        self.with_app(app, |log| log.feed.subscribe())
    }

    /// Stored entries at or after `since_nanos`, from `service` when given, in time order.
    pub fn read(
        &self,
        app: &str,
        since_nanos: i128,
        service: Option<&str>,
    ) -> std::io::Result<Vec<LogEntry>> {
        self.read_filtered(
            app,
            &LogFilter {
                since_nanos,
                service: service.map(str::to_string),
                ..LogFilter::default()
            },
        )
    }

    /// Stored entries that pass `filter`, in time order.
    pub fn read_filtered(&self, app: &str, filter: &LogFilter) -> std::io::Result<Vec<LogEntry>> {
        let path = self.path(app);
        let files = [
            open_existing(&path.with_extension("log.1"))?,
            open_existing(&path)?,
        ];
        let mut kept = Newest::new(filter.tail);
        for file in files.into_iter().flatten() {
            read_entries(file, filter, &mut kept)?;
        }
        Ok(kept.into_sorted())
    }

    /// The stored entries that pass `filter` and a feed of every entry
    /// appended after them: no entry is in both, and none is missed.
    pub fn follow(
        &self,
        app: &str,
        filter: &LogFilter,
    ) -> std::io::Result<(Vec<LogEntry>, broadcast::Receiver<LogEntry>)> {
        // Appends write and feed under the same lock, so what the files hold
        // up to this length is exactly what the feed will not carry. Open
        // handles keep reading the same files if they are rotated meanwhile.
        let (live, rotated, current, length) = self.with_app(app, |log| {
            let path = self.path(app);
            let rotated = open_existing(&path.with_extension("log.1"))?;
            let current = open_existing(&path)?;
            Ok::<_, std::io::Error>((log.feed.subscribe(), rotated, current, log.size))
        })??;
        let mut kept = Newest::new(filter.tail);
        if let Some(file) = rotated {
            read_entries(file, filter, &mut kept)?;
        }
        if let Some(file) = current {
            read_entries(file.take(length), filter, &mut kept)?;
        }
        Ok((kept.into_sorted(), live))
    }

    /// Whether any stored entry is of `service` (process output, or an event about it).
    pub fn has_lines_of(&self, app: &str, service: &str) -> std::io::Result<bool> {
        let mut found = false;
        self.scan(app, |entry| {
            found = found || matches(&entry, 0, Some(service));
        })?;
        Ok(found)
    }

    /// The services with process output or events in the stored log (build
    /// and timer output are not services).
    pub fn services(&self, app: &str) -> std::io::Result<BTreeSet<String>> {
        let mut services = BTreeSet::new();
        self.scan(app, |entry| {
            if let Some(service) = entry.service {
                services.insert(service);
            } else if let Some(service) = service_of_process_source(&entry.source) {
                services.insert(service.to_string());
            }
        })?;
        Ok(services)
    }

    fn scan(&self, app: &str, mut each: impl FnMut(LogEntry)) -> std::io::Result<()> {
        let path = self.path(app);
        for file in [path.with_extension("log.1"), path] {
            if let Some(file) = open_existing(&file)? {
                for line in std::io::BufReader::new(file).lines() {
                    if let Ok(entry) = serde_json::from_str::<LogEntry>(&line?) {
                        each(entry);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn remove(&self, app: &str) {
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(app);
        let path = self.path(app);
        let _ = std::fs::remove_file(path.with_extension("log.1"));
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entries: Vec<LogEntry>) -> Vec<String> {
        entries.into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn entries_round_trip_filtered_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        let base = now_nanos();
        book.append_at("shop", base + 2_000, "web/web-1", "second");
        book.append_at("shop", base + 1_000, "worker/worker-1", "first");
        book.append_at("shop", base - 10_000_000_000, "berth", "old");
        let all = book.read("shop", base, None).unwrap();
        assert_eq!(
            all.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            ["first", "second"]
        );
        let web = book.read("shop", 0, Some("web")).unwrap();
        assert_eq!(web.len(), 1);
        book.remove("shop");
        assert!(book.read("shop", 0, None).unwrap().is_empty());
    }

    #[test]
    fn events_about_a_service_are_in_its_lines_and_old_entries_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shop.log"),
            "{\"ts\":\"2024-05-01T12:00:00Z\",\"source\":\"berth\",\"text\":\"old\"}\n",
        )
        .unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        book.service_event("shop", "web", "process web-1 exited with code 42");
        book.event("shop", "deploy of release R2 started");
        book.append("shop", "build/B1", "Step 1/2");
        book.append("shop", "web/web-run-01cb29", "one-off output");
        let web = book.read("shop", 0, Some("web")).unwrap();
        assert_eq!(
            texts(web),
            ["process web-1 exited with code 42", "one-off output"]
        );
        assert_eq!(book.read("shop", 0, None).unwrap()[0].text, "old");
        assert_eq!(
            book.services("shop")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["web"],
            "build output is not a service's"
        );
        assert!(book.has_lines_of("shop", "build").unwrap());
    }

    #[test]
    fn a_full_disk_drops_lines_once_reported_and_writing_resumes() {
        let dir = tempfile::tempdir().unwrap();
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join("shop.log")).unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        let mut follower = book.subscribe("shop").unwrap();
        for i in 0..100 {
            book.append("shop", "web/web-1", &format!("line {i}"));
        }
        {
            let failing = book.failing.lock().unwrap();
            let spell = failing.get("shop").expect("the failure is recorded");
            assert_eq!(spell.dropped, 100);
            assert!(spell.error.contains("No space left"), "{}", spell.error);
        }
        // Followers still got every line.
        assert_eq!(follower.try_recv().unwrap().text, "line 0");
        // Space is back (here: the file is writable again).
        std::fs::remove_file(dir.path().join("shop.log")).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("shop.log"))
            .unwrap();
        book.apps.lock().unwrap().get_mut("shop").unwrap().file = file;
        book.append("shop", "web/web-1", "dropped: not retried yet");
        book.failing
            .lock()
            .unwrap()
            .get_mut("shop")
            .unwrap()
            .retry_at = std::time::Instant::now();
        book.append("shop", "web/web-1", "after");
        let stored = book.read("shop", 0, None).unwrap();
        let texts: Vec<&str> = stored.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_eq!(texts[0], "after");
        assert!(
            texts[1].starts_with("101 log lines were lost"),
            "the loss is recorded in the log: {texts:?}"
        );
        assert!(book.failing.lock().unwrap().is_empty());
    }

    #[test]
    fn a_torn_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        book.append("shop", "berth", "whole");
        // A half-written entry, as a write cut short by a full disk leaves it.
        {
            let mut apps = book.apps.lock().unwrap();
            let log = apps.get_mut("shop").unwrap();
            log.file.write_all(b"{\"ts\":\"2024-").unwrap();
            // What append_at does after a failed write.
            log.file.set_len(log.size).unwrap();
        }
        book.append("shop", "berth", "next");
        let texts: Vec<String> = book
            .read("shop", 0, None)
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(texts, ["whole", "next"]);
    }
}
