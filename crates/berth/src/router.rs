//! `berth router`: the HTTP router as its own process. `berth server` starts it and
//! it outlives the server, so a server restart never closes the listening socket.

use crate::cli::RouterArgs;
use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

/// Runs `--threads` event loops (default: one per core), see `runtime`.
pub async fn run(args: RouterArgs) -> Result<()> {
    init_logging();
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("router: SIGTERM received; draining"),
            _ = int.recv() => tracing::info!("router: SIGINT received; draining"),
        }
    };
    let options = berth_router::RouterOptions {
        http: args.http,
        control: args.control,
        max_body: args.max_body,
        https: args.https,
        loops: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    };
    berth_router::run_router_process(options, shutdown).await?;
    Ok(())
}

/// The runtime a command runs on. The router's is a current-thread runtime: its
/// first event loop runs there and `run_router_process` starts the others, each
/// on a thread and runtime of its own, so no request ever crosses threads.
pub fn runtime(is_router: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if is_router {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
