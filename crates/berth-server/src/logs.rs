//! The app log stream: process output, build output and system events, one
//! NDJSON file per app in the data dir, plus a live feed for `logs --follow`.
//!
//! Lines reach the stream out of time order: process output comes per
//! container with the engine's timestamps, events and access lines are
//! stamped when written. Reads sort by timestamp, and a followed stream goes
//! through [`Reorder`], which holds new lines for [`FOLLOW_WINDOW_NANOS`].

use berth_api::LogEntry;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
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
    file: std::fs::File,
    size: u64,
    feed: broadcast::Sender<LogEntry>,
}

/// RFC 3339 in UTC with all nine digits of the fraction
/// (`2024-05-01T12:00:00.120000000Z`): the `time` crate's RFC 3339 drops
/// trailing zeros, which made columns ragged and text order differ from time
/// order (`…:00Z` sorts after `…:00.5Z`).
pub fn format_ts(nanos: i128) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

pub fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

fn parse_ts(ts: &str) -> Option<i128> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// An entry's time in Unix nanoseconds; the oldest possible if it has none.
pub fn entry_nanos(entry: &LogEntry) -> i128 {
    parse_ts(&entry.ts).unwrap_or(i128::MIN)
}

impl LogBook {
    pub fn new(dir: PathBuf) -> std::io::Result<LogBook> {
        std::fs::create_dir_all(&dir)?;
        Ok(LogBook {
            dir,
            apps: Mutex::new(HashMap::new()),
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
        if let Some(sink) = self.sink.get() {
            sink.entry(app, &entry);
        }
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

/// Which stored lines a read returns.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only lines at or after this time (0: all).
    pub since_nanos: i128,
    /// Only lines before this time (0: no end).
    pub until_nanos: i128,
    /// Only lines of this service: its process output and events about it.
    pub service: Option<String>,
    /// Only output of this process (`web-3f9a2c`, a one-off's id too).
    pub process: Option<String>,
    /// Only lines from this kind of source.
    pub source: Option<LogSource>,
    /// Only lines whose text holds this (case-sensitive, as grep).
    pub grep: Option<String>,
    /// Only the newest this many (after the other filters).
    pub tail: Option<usize>,
}

/// Where a line comes from, as `berth logs --source` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// Build output (`build/B2`).
    Build,
    /// Output of service processes and one-offs (`web/web-3f9a2c`).
    Process,
    /// Output of timer runs (`timer/nightly`).
    Timer,
    /// The router's access log.
    Router,
    /// berth's own events (deploys, exits, certificates).
    System,
}

impl LogSource {
    pub const NAMES: &'static str = "build, process, timer, router or system";

    pub fn parse(name: &str) -> Option<LogSource> {
        Some(match name {
            "build" => LogSource::Build,
            "process" => LogSource::Process,
            "timer" => LogSource::Timer,
            "router" => LogSource::Router,
            "system" => LogSource::System,
            _ => return None,
        })
    }

    fn of(source: &str) -> Option<LogSource> {
        if source == "berth" {
            Some(LogSource::System)
        } else if source == "router" {
            Some(LogSource::Router)
        } else if source.starts_with("build/") {
            Some(LogSource::Build)
        } else if source.starts_with("timer/") {
            Some(LogSource::Timer)
        } else {
            service_of_process_source(source).map(|_| LogSource::Process)
        }
    }
}

impl LogFilter {
    /// Whether `entry` (written at `ts`, when known) passes every filter but
    /// `tail`.
    pub fn admits(&self, entry: &LogEntry, ts: Option<i128>) -> bool {
        if self.since_nanos != 0 && ts.is_none_or(|t| t < self.since_nanos) {
            return false;
        }
        if self.until_nanos != 0 && ts.is_none_or(|t| t >= self.until_nanos) {
            return false;
        }
        if !matches(entry, 0, self.service.as_deref()) {
            return false;
        }
        if let Some(process) = &self.process {
            // `web/web-3f9a2c`, or `web/web-3f9a2c@node2` on a swarm.
            let of = entry.source.split_once('/').map(|(_, p)| p);
            let id = of.map(|p| p.split_once('@').map_or(p, |(id, _)| id));
            if id != Some(process.as_str()) {
                return false;
            }
        }
        if let Some(kind) = self.source
            && LogSource::of(&entry.source) != Some(kind)
        {
            return false;
        }
        self.grep
            .as_deref()
            .is_none_or(|needle| entry.text.contains(needle))
    }
}

pub fn matches(entry: &LogEntry, since_nanos: i128, service: Option<&str>) -> bool {
    if let Some(s) = service
        && entry.service.as_deref() != Some(s)
    {
        let prefix = format!("{s}/");
        if !entry.source.starts_with(&prefix) {
            return false;
        }
    }
    since_nanos == 0 || parse_ts(&entry.ts).is_some_and(|t| t >= since_nanos)
}

/// The service of process or one-off output (`web/web-3f9a2c`,
/// `web/web-run-01cb29`); `None` for other sources (`build/B2`, `timer/nightly`).
fn service_of_process_source(source: &str) -> Option<&str> {
    let (service, process) = source.split_once('/')?;
    process
        .strip_prefix(service)
        .is_some_and(|rest| rest.starts_with('-'))
        .then_some(service)
}

/// Width of a timestamp written by [`format_ts`].
const TS_WIDTH: usize = "2024-05-01T12:00:00.000000000Z".len();

fn open_existing(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_entries(file: impl Read, filter: &LogFilter, kept: &mut Newest) -> std::io::Result<()> {
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
struct Newest {
    limit: Option<usize>,
    seq: u64,
    all: Vec<Keyed>,
    newest: BinaryHeap<Reverse<Keyed>>,
}

impl Newest {
    fn new(limit: Option<usize>) -> Newest {
        Newest {
            limit,
            seq: 0,
            all: Vec::new(),
            newest: BinaryHeap::new(),
        }
    }

    fn push(&mut self, ts: i128, entry: LogEntry) {
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

    fn into_sorted(self) -> Vec<LogEntry> {
        let mut entries = self.all;
        entries.extend(self.newest.into_iter().map(|Reverse(k)| k));
        entries.sort_unstable();
        entries.into_iter().map(|k| k.entry).collect()
    }
}

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

    fn entry(ts: i128, text: &str) -> LogEntry {
        LogEntry {
            ts: format_ts(ts),
            source: "web/web-1".into(),
            text: text.into(),
            service: None,
        }
    }

    #[test]
    fn filters_pick_by_process_source_text_and_time() {
        let at = |source: &str, text: &str| LogEntry {
            source: source.into(),
            ..entry(1_000, text)
        };
        let process = LogFilter {
            process: Some("web-1a".into()),
            ..LogFilter::default()
        };
        assert!(process.admits(&at("web/web-1a", "x"), Some(1_000)));
        assert!(process.admits(&at("web/web-1a@node2", "x"), Some(1_000)));
        assert!(!process.admits(&at("web/web-1ab", "x"), Some(1_000)));
        let router = LogFilter {
            source: LogSource::parse("router"),
            grep: Some("GET /a".into()),
            ..LogFilter::default()
        };
        assert!(router.admits(&at("router", "GET /a 200"), Some(1_000)));
        assert!(!router.admits(&at("router", "GET /b 200"), Some(1_000)));
        assert!(!router.admits(&at("berth", "GET /a"), Some(1_000)));
        assert_eq!(LogSource::of("timer/nightly"), Some(LogSource::Timer));
        assert_eq!(LogSource::of("build/B2"), Some(LogSource::Build));
        assert_eq!(
            LogSource::of("web/web-run-01cb29"),
            Some(LogSource::Process)
        );
        let window = LogFilter {
            since_nanos: 1_000,
            until_nanos: 2_000,
            ..LogFilter::default()
        };
        assert!(window.admits(&at("berth", "x"), Some(1_500)));
        assert!(!window.admits(&at("berth", "x"), Some(2_000)));
        assert!(!window.admits(&at("berth", "x"), None));
    }

    fn texts(entries: Vec<LogEntry>) -> Vec<String> {
        entries.into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn timestamps_have_one_width() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_ts(1_714_564_800_120_000_000),
            "2024-05-01T12:00:00.120000000Z"
        );
        assert_eq!(
            parse_ts("2024-05-01T12:00:00.120000000Z"),
            Some(1_714_564_800_120_000_000)
        );
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
