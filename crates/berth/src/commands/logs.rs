//! `berth logs`: an app's log lines in time order, as text or NDJSON (one JSON
//! object a line).

use crate::cli::{AppArg, Tail};
use crate::resolve;
use anyhow::Result;
use berth_client::{Client, LogsQuery};
use futures_util::StreamExt;
use std::io::{IsTerminal, Write};

pub async fn run(app: AppArg, json: bool, tail: Option<Tail>, mut query: LogsQuery) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    if let Some(s) = &query.service {
        berth_core::validate_service_name(s)?;
    }
    query.tail = lines_wanted(tail, std::io::stdout().is_terminal(), terminal_rows);
    let follow = query.follow;
    let entries = Client::from_config()?.logs(&app, &query).await?;
    print(entries, json, follow).await
}

/// Prints log entries as they come: `TS SOURCE TEXT` or NDJSON. A followed
/// stream is written line by line; a finished one is buffered (a search can
/// print millions of lines).
/// `berth rack logs`: the server's own log and the router's.
pub async fn rack(json: bool, tail: usize, follow: bool) -> Result<()> {
    let entries = Client::from_config()?.rack_logs(Some(tail), follow).await?;
    print(entries, json, follow).await
}

pub async fn print(mut entries: berth_client::LogStream, json: bool, follow: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        let mut written = if json {
            serde_json::to_writer(&mut out, &entry)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            // The server sends fixed-width timestamps, so the columns line up.
            writeln!(out, "{} {} {}", entry.ts, entry.source, entry.text)
        };
        if follow && written.is_ok() {
            written = out.flush();
        }
        match written {
            Ok(()) => {}
            // `berth logs | head`: the reader went away; that is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The stored lines to ask for: `--tail` as given; else the last screenful
/// on a terminal, where thousands of lines would scroll by unread (as
/// `docker logs` users expect), and every line when piped, where a script
/// or `grep` wants them all.
fn lines_wanted(
    tail: Option<Tail>,
    terminal: bool,
    rows: impl Fn() -> Option<u16>,
) -> Option<usize> {
    match tail {
        Some(Tail::All) => None,
        Some(Tail::Last(n)) => Some(n),
        None if terminal => {
            // One row is left for the prompt (or the first followed line).
            let rows = rows().unwrap_or(DEFAULT_ROWS);
            Some(usize::from(rows.saturating_sub(1).max(1)))
        }
        None => None,
    }
}

/// Rows assumed when the terminal does not say.
const DEFAULT_ROWS: u16 = 24;

/// The height of the terminal on stdout.
fn terminal_rows() -> Option<u16> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some(ws.ws_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_a_screenful_a_pipe_everything_unless_tail_says() {
        let rows = || Some(40);
        assert_eq!(lines_wanted(None, true, rows), Some(39));
        assert_eq!(lines_wanted(None, true, || None), Some(23));
        assert_eq!(lines_wanted(None, false, rows), None);
        assert_eq!(lines_wanted(Some(Tail::Last(5)), false, rows), Some(5));
        assert_eq!(lines_wanted(Some(Tail::Last(0)), true, rows), Some(0));
        assert_eq!(lines_wanted(Some(Tail::All), true, rows), None);
    }
}
