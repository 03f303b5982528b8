//! `berth router`: the HTTP router as its own process. `berth server` starts it and
//! it outlives the server, so a server restart never closes the listening socket.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Address to serve HTTP on
    #[arg(long, value_name = "ADDR")]
    pub http: SocketAddr,
    /// The server's control socket
    #[arg(long, value_name = "PATH")]
    pub control: PathBuf,
    /// Worker threads [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Largest request body forwarded, in bytes
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Address to serve HTTPS on
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
}

/// Runs on the CLI's runtime when `--threads` is not given; with it, on a runtime of
/// its own with that many workers (see `main`).
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
    };
    berth_router::run_router_process(options, shutdown).await?;
    Ok(())
}

/// The runtime the router runs on: `threads` workers, or one per core.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    // One worker: a current-thread runtime has no work-stealing bookkeeping at all.
    if threads == Some(1) {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
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
