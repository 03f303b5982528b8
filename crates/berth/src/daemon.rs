//! What the long-running processes (`berth server`, `berth router`) share: logs on
//! stderr and a shutdown on SIGTERM or SIGINT.

use anyhow::{Context, Result};
use std::future::Future;
use tokio::signal::unix::{SignalKind, signal};

/// Logs on stderr at `RUST_LOG`'s level (default info); `ansi` colours them.
pub fn init_logging(ansi: bool) {
    init_logging_to::<std::io::Sink>(ansi, None);
}

/// Logs on stderr, and to `file` too (without colours) when given.
pub fn init_logging_to<W: std::io::Write + Send + 'static>(ansi: bool, file: Option<W>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let file = file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
    });
    // Another subscriber (tests) may already be set; then keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi),
        )
        .with(file)
        .try_init();
}

/// Resolves at the first SIGTERM or SIGINT, logging `{who}SIGTERM received; {then}`.
/// The handlers are installed now, so a signal that comes before the await counts.
pub fn shutdown_signal(
    who: &'static str,
    then: &'static str,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("{who}SIGTERM received; {then}"),
            _ = int.recv() => tracing::info!("{who}SIGINT received; {then}"),
        }
    })
}
