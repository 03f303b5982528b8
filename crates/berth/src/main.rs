//! `berth`: the command line of a self-hosted PaaS, and its server (`berth server`).
//!
//! Thin: parses the command line, then runs a command through `berth-client` or runs
//! `berth-server`. Errors are printed as `error: <message>` and exit with status 1; a
//! closed stdout ends a command quietly (`closed_stdout`).

mod agent;
mod cli;
mod closed_stdout;
mod commands;
mod daemon;
mod dispatch;
mod install;
mod output;
mod progress;
mod resolve;
mod router;
mod server;
mod start;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: the router allocates and frees small
/// buffers and headers on every request, and glibc's free lists and consolidation
/// were about 6 % of its CPU per HTTP/2 request (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; usage errors exit 1 like any other.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Any HTTPS client in this process uses ring (see the function's doc).
    berth_client::install_default_crypto_provider();
    // `berth router` runs event loops of its own on top of a current-thread runtime;
    // everything else gets a worker per core.
    let is_router = matches!(&cli.command, cli::Command::Router(_));
    let is_daemon = is_router
        || matches!(
            &cli.command,
            cli::Command::Server(_) | cli::Command::Agent(_)
        );
    if !is_daemon {
        closed_stdout::install_panic_hook();
    }
    let runtime = match router::runtime(is_router) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(dispatch::run(cli.command))
    }));
    let failed = match &result {
        Ok(Err(e)) => Some(e),
        _ => None,
    };
    if !is_daemon && closed_stdout::ended_the_command(failed) {
        // Now, not after the runtime's shutdown, which may wait on a read of stdin.
        std::process::exit(0);
    }
    // Don't wait forever on blocking work still running (e.g. a stuck engine call).
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
