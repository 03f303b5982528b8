//! `berth router`: the HTTP router as its own process. `berth server` starts it and
//! it outlives the server, so a server restart never closes the listening socket.

use crate::cli::RouterArgs;
use crate::daemon;
use anyhow::Result;

/// Runs `--threads` event loops (default: one per core), see `runtime`.
pub async fn run(args: RouterArgs) -> Result<()> {
    daemon::init_logging(false);
    let shutdown = daemon::shutdown_signal("router: ", "draining")?;
    let options = berth_router::RouterOptions {
        http: args.http,
        control: args.control,
        limits: berth_router::Limits {
            max_body: args.max_body,
            max_head: args.max_header_size,
            body_timeout: std::time::Duration::from_secs(args.body_timeout),
        },
        https: args.https,
        loops: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        metrics: !args.no_metrics,
        takeover: args.takeover,
        handover_drain: std::time::Duration::from_secs(args.handover_drain),
        version: Some(berth_core::version::version().to_owned()),
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
