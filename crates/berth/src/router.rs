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
    /// Event loops, each on a thread of its own [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Largest request body forwarded, in bytes
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Address to serve HTTPS on
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
}

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
