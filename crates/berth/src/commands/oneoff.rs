//! `berth run`, `berth exec` and `berth timers`.
//!
//! Attached runs and execs are WebSocket sessions. When stdin is a terminal,
//! the process gets a TTY: the terminal goes raw for the session (restored on
//! every way out) and its size follows SIGWINCH. Otherwise stdout and stderr
//! stay apart, and stdin is forwarded only when it is a pipe or a file.

use crate::cli::{AppArg, ExecArgs, JsonArg, RunArgs};
use crate::output::{or_dash, print_list, shell_words};
use crate::resolve;
use anyhow::{Context, Result, bail};
use berth_api::{ExecRequest, RunRequest};
use berth_client::Client;
use berth_client::session::{Outcome, Session};
use std::io::Write;
use tokio::sync::mpsc;

pub async fn run(args: RunArgs) -> Result<()> {
    let app = resolve::current_app(args.app.app.as_deref())?;
    berth_core::validate_service_name(&args.service)?;
    let client = Client::from_config()?;
    let terminal = Terminal::detect();
    let mut req = RunRequest {
        service: args.service.clone(),
        release: args.release.clone(),
        command: args.command.clone(),
        tty: false,
        stdin: false,
        timeout: args.timeout,
        rows: None,
        cols: None,
    };
    if args.detach {
        let started = client.run_detached(&app, &req).await?;
        println!("{}", started.id);
        eprintln!(
            "started {} from release {}; its output: berth logs -a {app} --service {}",
            started.id, started.release, args.service
        );
        return Ok(());
    }
    terminal.fill(&mut req.tty, &mut req.stdin, &mut req.rows, &mut req.cols);
    let session = client
        .open_run(&app, &req)
        .await
        .with_context(|| format!("cannot run a {} process of app {app}", args.service))?;
    let outcome = drive(session, &terminal).await?;
    if outcome.timed_out {
        eprintln!(
            "berth: {} timed out after {} s and was stopped (exit code {})",
            outcome.id.as_deref().unwrap_or("the process"),
            args.timeout.unwrap_or(0),
            or_dash(outcome.code)
        );
    }
    if outcome.oom_killed {
        eprintln!(
            "berth: {} was killed for running out of memory (exit code {}); raise the limit with `berth scale {} --memory MIB -a {app}`",
            outcome.id.as_deref().unwrap_or("the process"),
            or_dash(outcome.code),
            args.service
        );
    }
    exit_with(&outcome)
}

pub async fn exec(args: ExecArgs) -> Result<()> {
    let app = resolve::current_app(args.app.app.as_deref())?;
    let client = Client::from_config()?;
    let terminal = Terminal::detect();
    let mut req = ExecRequest {
        command: args.command.clone(),
        ..Default::default()
    };
    terminal.fill(&mut req.tty, &mut req.stdin, &mut req.rows, &mut req.cols);
    let session = client
        .open_exec(&app, &args.process, &req)
        .await
        .with_context(|| format!("cannot exec in process {} of app {app}", args.process))?;
    let outcome = drive(session, &terminal).await?;
    exit_with(&outcome)
}

/// Exits with the process's exit code, as `docker run` does. Exiting here,
/// rather than returning, also skips waiting on the stdin reader thread, which
/// stays blocked in `read` on a terminal.
fn exit_with(outcome: &Outcome) -> Result<()> {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    match outcome.code {
        Some(code) => std::process::exit(i32::try_from(code).unwrap_or(1)),
        None => bail!("the process's exit code is unknown (the engine did not report one)"),
    }
}

async fn drive(session: Session, terminal: &Terminal) -> Result<Outcome> {
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let raw = if terminal.tty {
        RawMode::enable()
    } else {
        None
    };
    let watcher = terminal.tty.then(|| tokio::spawn(watch_size(resize_tx)));
    let stdin = terminal.stdin.then(tokio::io::stdin);
    let result = session
        .drive(stdin, tokio::io::stdout(), tokio::io::stderr(), resize_rx)
        .await;
    if let Some(w) = watcher {
        w.abort();
    }
    drop(raw);
    Ok(result?)
}

async fn watch_size(tx: mpsc::Sender<(u16, u16)>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Some(size) = window_size()
            && tx.send(size).await.is_err()
        {
            return;
        }
    }
}

/// What stdin is.
struct Terminal {
    tty: bool,
    stdin: bool,
}

impl Terminal {
    fn detect() -> Terminal {
        // SAFETY: isatty and fstat only read the state of fd 0.
        let tty = unsafe { libc::isatty(0) == 1 };
        let piped = !tty && {
            let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
            // SAFETY: fstat writes into `st`, which is large enough.
            let ok = unsafe { libc::fstat(0, st.as_mut_ptr()) == 0 };
            // SAFETY: fstat succeeded, so `st` is initialised.
            let mode = if ok {
                unsafe { st.assume_init() }.st_mode & libc::S_IFMT
            } else {
                0
            };
            mode == libc::S_IFIFO || mode == libc::S_IFREG
        };
        Terminal {
            tty,
            stdin: tty || piped,
        }
    }

    fn fill(
        &self,
        tty: &mut bool,
        stdin: &mut bool,
        rows: &mut Option<u16>,
        cols: &mut Option<u16>,
    ) {
        *tty = self.tty;
        *stdin = self.stdin;
        if self.tty
            && let Some((r, c)) = window_size()
        {
            *rows = Some(r);
            *cols = Some(c);
        }
    }
}

fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The terminal in raw mode until dropped: keys go to the remote TTY as typed.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: tcgetattr fills `t` on success; only then is it read.
        if unsafe { libc::tcgetattr(0, t.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { t.assume_init() };
        let mut raw = saved;
        // SAFETY: cfmakeraw and tcsetattr only touch `raw` and fd 0's settings.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
        }
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

pub async fn timers(app: AppArg, json: JsonArg) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    let timers = Client::from_config()?.timers(&app).await?;
    print_list(
        &timers,
        json.json,
        &[
            "NAME", "SCHEDULE", "SERVICE", "COMMAND", "LAST-RUN", "EXIT", "NEXT-RUN",
        ],
        |t| {
            vec![
                t.name.clone(),
                t.schedule.clone(),
                t.service.clone(),
                shell_words(&t.command),
                match &t.running {
                    Some(id) => format!("running ({id})"),
                    None => or_dash(t.last_run.as_ref()),
                },
                or_dash(t.exit_code),
                or_dash(t.next_run.as_ref()),
            ]
        },
    )
}
