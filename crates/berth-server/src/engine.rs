//! Whether the Docker engine answers, as the reconciler last found it.
//!
//! The engine may stop and come back (an upgrade, a crash, `systemctl restart
//! docker`) while the server runs. Nothing in the server exits for that: the
//! reconciler keeps trying every resync, the event watcher reconnects, and once
//! the engine answers again the usual diff puts back whatever its restart
//! removed. This module only keeps the state in between, so that the outage is
//! reported once (not on every pass) and `berth ps`, whose process states would
//! be a guess meanwhile, can say why instead.

use berth_runtime::RuntimeError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A transition worth reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It answered before (or at start-up) and does not now.
    Lost,
    /// It answers again after being down this long.
    Back(Duration),
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    error: String,
}

#[derive(Debug, Default)]
pub struct EngineWatch {
    outage: Mutex<Option<Outage>>,
}

/// Whether `error` means the engine is not there at all (as opposed to an
/// engine that answered with an error).
pub fn is_unreachable(error: &RuntimeError) -> bool {
    matches!(error, RuntimeError::Connect(_))
}

impl EngineWatch {
    /// Records a failed call; `Some(Change::Lost)` the first time in a row.
    /// Errors that are not about reaching the engine are ignored.
    pub fn failed(&self, error: &RuntimeError) -> Option<Change> {
        if !is_unreachable(error) {
            return None;
        }
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        match outage.as_mut() {
            Some(o) => {
                o.error = error.to_string();
                None
            }
            None => {
                *outage = Some(Outage {
                    since: Instant::now(),
                    error: error.to_string(),
                });
                Some(Change::Lost)
            }
        }
    }

    /// Records a call the engine answered; `Some(Change::Back)` after an outage.
    pub fn answered(&self) -> Option<Change> {
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        outage.take().map(|o| Change::Back(o.since.elapsed()))
    }

    /// While the engine is unreachable: for how long, and the last error.
    pub fn down(&self) -> Option<(Duration, String)> {
        let outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        outage
            .as_ref()
            .map(|o| (o.since.elapsed(), o.error.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RuntimeError {
        RuntimeError::Connect("connection refused".into())
    }

    #[test]
    fn an_outage_is_reported_once_and_its_end_once() {
        let watch = EngineWatch::default();
        assert_eq!(watch.answered(), None, "up from the start: nothing to say");
        assert!(watch.down().is_none());
        assert_eq!(watch.failed(&refused()), Some(Change::Lost));
        for _ in 0..5 {
            assert_eq!(watch.failed(&refused()), None, "no flood while down");
        }
        let (_, error) = watch.down().expect("down");
        assert!(error.contains("Docker engine"), "{error}");
        assert!(matches!(watch.answered(), Some(Change::Back(_))));
        assert_eq!(watch.answered(), None);
        assert_eq!(
            watch.failed(&refused()),
            Some(Change::Lost),
            "a second outage"
        );
    }

    #[test]
    fn an_engine_that_answers_with_an_error_is_not_down() {
        let watch = EngineWatch::default();
        let answered = RuntimeError::Engine("conflict (HTTP 409)".into());
        assert_eq!(watch.failed(&answered), None);
        assert!(watch.down().is_none());
        assert!(!is_unreachable(&answered));
        assert!(is_unreachable(&refused()));
    }
}
