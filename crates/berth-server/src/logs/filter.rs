//! Which stored lines a read returns: [`LogFilter`] and the kinds of source.

use super::time::parse_ts;
use berth_api::LogEntry;

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
pub(super) fn service_of_process_source(source: &str) -> Option<&str> {
    let (service, process) = source.split_once('/')?;
    process
        .strip_prefix(service)
        .is_some_and(|rest| rest.starts_with('-'))
        .then_some(service)
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
}
