//! The app log stream: process output, build output and system events, kept
//! as NDJSON segments per app in the data dir (`segments`: named by their time
//! range, removed by [`Retention`]), plus a live feed for `logs --follow`.
//!
//! Lines reach the stream out of time order: process output comes per
//! container with the engine's timestamps, events and access lines are
//! stamped when written. Reads sort by timestamp, and a followed stream goes
//! through [`Reorder`], which holds new lines for [`FOLLOW_WINDOW_NANOS`].

mod filter;
pub mod rack;
mod read;
mod reorder;
mod segments;
mod time;

pub use filter::{LogFilter, LogSource, matches};
pub use reorder::{FOLLOW_WINDOW_NANOS, Reorder};
pub use segments::{Retention, file_stamp};
pub use time::{entry_nanos, format_ts, now_nanos};

use berth_api::LogEntry;
use filter::service_of_process_source;
use read::{Newest, open_existing, read_entries};
use segments::{Open, Segment};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::broadcast;

pub struct LogBook {
    dir: PathBuf,
    apps: Mutex<HashMap<String, AppLog>>,
    retention: Mutex<Retention>,
    /// Deleted apps: lines still on their way (a collector's backlog) are
    /// dropped rather than making their log again.
    deleted: Mutex<HashSet<String>>,
    /// app → the write failure going on (a full disk, most likely): reported
    /// once when it starts and once, with what was lost, when writing resumes.
    failing: Mutex<HashMap<String, Failing>>,
    /// Gets every entry appended to any app's stream (the log drains).
    sink: std::sync::OnceLock<std::sync::Arc<dyn LogSink>>,
}

/// Something that gets every appended entry of every app as it is appended
/// (before it is stored, outside the log's lock, so a log that cannot be
/// written does not stop it); it must not block: the log drains spool to
/// disk and return.
pub trait LogSink: Send + Sync {
    fn entry(&self, app: &str, entry: &LogEntry);
    /// For its owner to find it again (`LogBook::sink`).
    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
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
    /// `DATA/logs/<app>/`, its segments.
    dir: PathBuf,
    open: Open,
    feed: broadcast::Sender<LogEntry>,
}

impl LogBook {
    pub fn new(dir: PathBuf) -> std::io::Result<LogBook> {
        std::fs::create_dir_all(&dir)?;
        Ok(LogBook {
            dir,
            apps: Mutex::new(HashMap::new()),
            retention: Mutex::new(Retention::default()),
            deleted: Mutex::new(HashSet::new()),
            failing: Mutex::new(HashMap::new()),
            sink: std::sync::OnceLock::new(),
        })
    }

    /// Installs the sink (once; later calls return the one installed).
    pub fn set_sink(
        &self,
        make: impl FnOnce() -> std::sync::Arc<dyn LogSink>,
    ) -> &std::sync::Arc<dyn LogSink> {
        self.sink.get_or_init(make)
    }

    pub fn sink(&self) -> Option<&std::sync::Arc<dyn LogSink>> {
        self.sink.get()
    }

    /// How long and how much of each app's log is kept from now on.
    pub fn set_retention(&self, retention: Retention) {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()) = retention;
    }

    pub fn retention(&self) -> Retention {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn app_dir(&self, app: &str) -> PathBuf {
        self.dir.join(app)
    }

    /// The single file of older servers, and its rotated generation.
    fn legacy(&self, app: &str) -> [PathBuf; 2] {
        [
            self.dir.join(format!("{app}.log.1")),
            self.dir.join(format!("{app}.log")),
        ]
    }

    /// Opens an app's log for writing: its directory made, the log of an
    /// older server moved in, a segment left open by the last run sealed, a
    /// new one started.
    fn open_app(&self, app: &str) -> std::io::Result<AppLog> {
        let dir = self.app_dir(app);
        std::fs::create_dir_all(&dir)?;
        let existing = segments::list(&dir)?;
        let mut next = existing.last().map_or(1, |s| s.seq + 1);
        for segment in existing.iter().filter(|s| s.range.is_none()) {
            let range = segments::scan_range(&segment.path)?;
            segments::seal(&dir, &segment.path, segment.seq, range)?;
        }
        next = segments::adopt_legacy(&self.dir, app, &dir, next)?;
        let open = Open::create(&dir, next)?;
        let (feed, _) = broadcast::channel(1024);
        Ok(AppLog { dir, open, feed })
    }

    fn with_app<T>(&self, app: &str, f: impl FnOnce(&mut AppLog) -> T) -> std::io::Result<T> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if !apps.contains_key(app) {
            let log = self.open_app(app)?;
            apps.insert(app.to_string(), log);
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
            ts_nanos,
            LogEntry {
                ts: format_ts(ts_nanos),
                source: source.into(),
                text: text.into(),
                service: None,
            },
        );
    }

    /// Appends `entry`, whose `ts` is `ts_nanos` formatted (the segment's
    /// time range is kept from the number, not by parsing the text again).
    fn append_entry(&self, app: &str, ts_nanos: i128, entry: LogEntry) {
        if self
            .deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(app)
        {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(&entry) else {
            return;
        };
        line.push(b'\n');
        if let Some(sink) = self.sink.get() {
            sink.entry(app, &entry);
        }
        if self.skip(app) {
            let _ = self.with_app(app, |log| log.feed.send(entry));
            return;
        }
        let retention = self.retention();
        let result = self.with_app(app, |log| {
            if log.open.full(line.len() as u64, retention)
                && let Err(e) = roll(log, retention)
            {
                tracing::warn!(app, "cannot start a new segment of the log: {e}");
            }
            let written = log.open.write(&line, ts_nanos);
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
        let now = now_nanos();
        self.append_entry(
            app,
            now,
            LogEntry {
                ts: format_ts(now),
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

    /// The stored files of `app` that may hold lines in `[since, until)`,
    /// opened, oldest first: the log of an older server if it is not moved
    /// yet, then the segments. Called under the apps lock, so no segment is
    /// sealed (renamed) between listing and opening.
    fn open_stored(
        &self,
        app: &str,
        since_nanos: i128,
        until_nanos: i128,
    ) -> std::io::Result<Vec<(Segment, std::fs::File)>> {
        let mut stored: Vec<Segment> = self
            .legacy(app)
            .into_iter()
            .map(|path| Segment {
                path,
                seq: 0,
                range: None,
            })
            .collect();
        stored.extend(segments::list(&self.app_dir(app))?);
        let mut files = Vec::new();
        for segment in stored {
            if !segment.may_hold(since_nanos, until_nanos) {
                continue;
            }
            // Retention may have removed it since the listing.
            if let Some(file) = open_existing(&segment.path)? {
                files.push((segment, file));
            }
        }
        Ok(files)
    }

    /// Stored entries that pass `filter`, in time order.
    pub fn read_filtered(&self, app: &str, filter: &LogFilter) -> std::io::Result<Vec<LogEntry>> {
        let files = {
            let _apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            self.open_stored(app, filter.since_nanos, filter.until_nanos)?
        };
        let mut kept = Newest::new(filter.tail);
        for (_, file) in files {
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
        // Appends write and feed under the same lock, so what the segments
        // hold, the open one up to this length, is exactly what the feed will
        // not carry. Open handles keep reading the same files if they are
        // sealed (renamed) or removed meanwhile.
        let (live, files, open_seq, length) = self.with_app(app, |log| {
            let files = self.open_stored(app, filter.since_nanos, filter.until_nanos)?;
            Ok::<_, std::io::Error>((log.feed.subscribe(), files, log.open.seq, log.open.size))
        })??;
        let mut kept = Newest::new(filter.tail);
        for (segment, file) in files {
            if segment.range.is_none() && segment.seq == open_seq {
                read_entries(file.take(length), filter, &mut kept)?;
            } else {
                read_entries(file, filter, &mut kept)?;
            }
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
        let files = {
            let _apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            self.open_stored(app, 0, 0)?
        };
        for (_, file) in files {
            for line in std::io::BufReader::new(file).lines() {
                if let Ok(entry) = serde_json::from_str::<LogEntry>(&line?) {
                    each(entry);
                }
            }
        }
        Ok(())
    }

    /// Applies the retention to every app's log: an open segment older than
    /// an hour is sealed (so its lines can age out), then the segments past
    /// the retention and the oldest beyond the size bound are removed.
    /// Returns the bytes removed.
    pub fn sweep(&self) -> u64 {
        let retention = self.retention();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(app) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(log) = apps.get_mut(&app)
                && log.open.size > 0
                && log.open.opened.elapsed().as_secs() >= segments::SEGMENT_SECS
            {
                if let Err(e) = roll(log, retention) {
                    tracing::warn!(app, "cannot start a new segment of the log: {e}");
                }
                continue;
            }
            drop(apps);
            match segments::enforce(&entry.path(), retention, now_secs()) {
                Ok(bytes) => removed += bytes,
                Err(e) => tracing::warn!(app, "cannot apply the log retention: {e}"),
            }
        }
        removed
    }

    /// An app of this name is created (again): its lines are kept.
    pub fn created(&self, app: &str) {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(app);
    }

    /// Removes an app's log (the app is deleted); lines that still come for
    /// it are dropped until an app of that name is created again.
    pub fn remove(&self, app: &str) {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string());
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.remove(app);
        let _ = std::fs::remove_dir_all(self.app_dir(app));
        for path in self.legacy(app) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn now_secs() -> i64 {
    i64::try_from(now_nanos().div_euclid(1_000_000_000)).unwrap_or(i64::MAX)
}

/// Seals the open segment, starts the next one and applies the retention
/// to the app's segments, so the size bound holds however fast lines come.
fn roll(log: &mut AppLog, retention: Retention) -> std::io::Result<()> {
    let next = Open::create(&log.dir, log.open.seq + 1)?;
    let sealed = std::mem::replace(&mut log.open, next);
    drop(sealed.file);
    segments::seal(&log.dir, &sealed.path, sealed.seq, sealed.range)?;
    segments::enforce(&log.dir, retention, now_secs())?;
    Ok(())
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

    fn dir_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn the_size_bound_holds_and_follow_neither_doubles_nor_misses_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        let retention = Retention {
            max_age_secs: 86_400,
            max_bytes: 2 << 20,
        };
        book.set_retention(retention);
        let app_dir = dir.path().join("shop");
        let filler = "x".repeat(200);
        let mut follow_at = None;
        let mut fed = Vec::new();
        for i in 0..40_000 {
            book.append("shop", "web/web-1", &format!("line {i} {filler}"));
            if i == 30_000 {
                follow_at = Some(book.follow("shop", &LogFilter::default()).unwrap());
            }
            if let Some((_, live)) = &mut follow_at {
                while let Ok(entry) = live.try_recv() {
                    fed.push(entry.text);
                }
            }
            if i % 1000 == 0 {
                let bytes = dir_bytes(&app_dir);
                assert!(
                    bytes <= retention.max_bytes + retention.segment_bytes(),
                    "{bytes} bytes after {i} lines"
                );
            }
        }
        let segments = segments::list(&app_dir).unwrap();
        assert!(segments.len() > 4, "{segments:?}");
        // The oldest lines are gone, the newest kept, in order.
        let stored = texts(book.read("shop", 0, None).unwrap());
        assert!(stored.len() < 40_000);
        assert!(stored.last().unwrap().starts_with("line 39999 "));
        // A follower from line 30000 on: what it read plus what it was fed
        // is every line since, each once, though segments were sealed and removed.
        let (past, _) = follow_at.unwrap();
        let mut seen: Vec<String> = texts(past);
        seen.extend(fed);
        let first = seen
            .iter()
            .position(|t| t.starts_with("line 30000 "))
            .unwrap();
        let numbers: Vec<usize> = seen[first..]
            .iter()
            .map(|t| t.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(
            numbers == (30_000..40_000).collect::<Vec<_>>(),
            "{} lines from {:?} to {:?}",
            numbers.len(),
            numbers.first(),
            numbers.last()
        );
        book.remove("shop");
        book.append("shop", "web/web-1", "a late line of the deleted app");
        assert!(
            !app_dir.exists(),
            "a deleted app's log is removed, and stays so"
        );
        book.created("shop");
        book.append("shop", "berth", "app shop created");
        assert_eq!(
            texts(book.read("shop", 0, None).unwrap()),
            ["app shop created"]
        );
    }

    #[test]
    fn reads_skip_segments_outside_the_window_and_a_restart_seals_the_open_one() {
        const S: i128 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400 * S;
        let now = now_nanos();
        {
            let book = LogBook::new(dir.path().to_path_buf()).unwrap();
            book.append_at("shop", now - 3 * day, "berth", "three days ago");
            book.append_at("shop", now - 3 * day + S, "berth", "and a second later");
        }
        // A new server: the open segment is sealed with its time range.
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        book.append_at("shop", now, "berth", "now");
        let listed = segments::list(&dir.path().join("shop")).unwrap();
        assert_eq!(listed.len(), 2);
        let old = listed[0].range.expect("sealed");
        assert_eq!(i128::from(old.0), (now - 3 * day).div_euclid(S));
        // A read of the last day opens only the open segment.
        let files = book.open_stored("shop", now - day, 0).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(texts(book.read("shop", now - day, None).unwrap()), ["now"]);
        let until = LogFilter {
            until_nanos: now - day,
            ..LogFilter::default()
        };
        assert_eq!(
            texts(book.read_filtered("shop", &until).unwrap()),
            ["three days ago", "and a second later"]
        );
        // Past the retention: the sweep removes the old segment.
        book.set_retention(Retention {
            max_age_secs: 86_400,
            ..Retention::default()
        });
        assert!(book.sweep() > 0);
        assert_eq!(texts(book.read("shop", 0, None).unwrap()), ["now"]);
    }

    #[test]
    fn a_full_disk_drops_lines_once_reported_and_writing_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        let mut follower = book.subscribe("shop").unwrap();
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        book.apps.lock().unwrap().get_mut("shop").unwrap().open.file = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
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
        // Space is back (here: the segment is writable again).
        {
            let mut apps = book.apps.lock().unwrap();
            let log = apps.get_mut("shop").unwrap();
            log.open.file = std::fs::OpenOptions::new()
                .append(true)
                .open(&log.open.path)
                .unwrap();
        }
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
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().to_path_buf()).unwrap();
        book.append("shop", "berth", "whole");
        // A half-written entry, as a write cut short by a full disk leaves it.
        {
            let mut apps = book.apps.lock().unwrap();
            let log = apps.get_mut("shop").unwrap();
            log.open.file.write_all(b"{\"ts\":\"2024-").unwrap();
            // What a failed write does.
            log.open.file.set_len(log.open.size).unwrap();
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
