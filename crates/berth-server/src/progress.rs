//! Progress of long work (builds, rollouts), sent as wire events to whoever
//! follows it (the CLI through an NDJSON stream), or to nobody.

use berth_api::Event;
use tokio::sync::mpsc;

pub type Progress = mpsc::Sender<Event>;

pub async fn step(progress: &Progress, text: impl Into<String>) {
    // Nobody listening (a closed stream, background work) is fine.
    let _ = progress.send(Event::Step { text: text.into() }).await;
}

/// Progress for work nobody follows (the reconciler, `ps stop`).
pub fn unobserved() -> Progress {
    mpsc::channel(1).0
}
