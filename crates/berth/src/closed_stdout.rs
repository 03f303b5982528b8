//! A closed stdout (`berth apps | head -1`) ends every command quietly: exit status
//! 0 and nothing on stderr (no error message, panic or backtrace), as `berth logs`
//! already did; whoever closed the pipe has what they wanted.
//!
//! Rust ignores SIGPIPE, so writing to a closed pipe fails with `EPIPE` instead:
//! `print!` panics on it and `write!` returns it as an error. Both end here, in
//! `main`, whichever command wrote, so no command needs a check of its own.

use std::sync::atomic::{AtomicBool, Ordering};

/// A `print!` panicked because nobody reads stdout any more.
static PRINT_HIT_CLOSED_STDOUT: AtomicBool = AtomicBool::new(false);

/// Keeps quiet about `print!`'s panic on a closed stdout (and remembers it); every
/// other panic goes to the default hook as before.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_print_failure(info.payload()) && reader_gone() {
            PRINT_HIT_CLOSED_STDOUT.store(true, Ordering::SeqCst);
            return;
        }
        default(info);
    }));
}

/// std's own words when `print!`/`println!` cannot write.
fn is_print_failure(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    message.starts_with("failed printing to stdout")
}

/// Whether the command ended because its stdout was closed: a `print!` panicked on
/// it, or `error` comes from a write that failed with `EPIPE` while stdout's reader
/// is gone (an `EPIPE` from a network connection is a real error and is reported).
pub fn ended_the_command(error: Option<&anyhow::Error>) -> bool {
    if PRINT_HIT_CLOSED_STDOUT.load(Ordering::SeqCst) {
        return true;
    }
    let Some(error) = error else {
        return false;
    };
    let broken_pipe = error.chain().any(|cause| {
        let kind = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            // serde_json keeps the I/O error of `--json` output out of its sources.
            None => cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe && reader_gone()
}

/// Whether fd 1 is a pipe or socket nobody reads any more: poll reports an error
/// (or a hang-up) on it rather than room to write.
fn reader_gone() -> bool {
    let mut stdout = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: polls one initialised pollfd, without waiting.
    let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
    ready == 1 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_print_failures_are_quiet() {
        let print: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "failed printing to stdout: Broken pipe (os error 32)",
        ));
        assert!(is_print_failure(print.as_ref()));
        let bug: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert!(!is_print_failure(bug.as_ref()));
    }

    #[test]
    fn epipe_counts_only_while_stdout_is_closed() {
        // The test harness's stdout is open, so an EPIPE (from a socket, say) is
        // reported as the error it is.
        let epipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(!ended_the_command(Some(&epipe.context("cannot upload"))));
        assert!(!ended_the_command(None));
    }
}
