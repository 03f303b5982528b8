//! Running a program: its steps, its signals (SIGTERM, SIGKILL, a crash) and
//! its exit, writing to an [`Output`] as a process writes to its streams.

use crate::fs::Files;
use crate::http::{self, Answers};
use crate::output::Output;
use crate::program::{self, DEFAULT_PORT, Program, Step, Then};
use berth_runtime::LogStream;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, DuplexStream};
use tokio::sync::mpsc;

/// Bytes a container's stdin holds before its writer waits for the program.
pub(crate) const STDIN_BUFFER: usize = 64 * 1024;

/// Exit code of a process ended by SIGTERM (128 + 15).
pub(crate) const TERMINATED: i64 = 143;
/// Exit code of a process ended by SIGKILL (128 + 9).
pub(crate) const KILLED: i64 = 137;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    Term,
    /// Ends the process at once with this code: SIGKILL (137) or a crash.
    Kill(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub code: i64,
    pub oom_killed: bool,
}

impl Exit {
    pub(crate) fn code(code: i64) -> Exit {
        Exit {
            code,
            oom_killed: false,
        }
    }
}

/// Where a program writes; with a TTY everything is stdout and lines end in CRLF.
#[derive(Clone)]
pub(crate) struct Writer {
    pub output: Arc<Output>,
    pub tty: bool,
}

impl Writer {
    pub(crate) fn line(&self, stream: LogStream, text: &str) {
        let end = if self.tty { "\r\n" } else { "\n" };
        self.raw(stream, Bytes::from(format!("{text}{end}")));
    }

    pub(crate) fn raw(&self, stream: LogStream, bytes: Bytes) {
        let stream = if self.tty { LogStream::Stdout } else { stream };
        self.output.push(stream, bytes);
    }
}

/// What a program sees of the container it runs in.
pub(crate) struct Context {
    /// The container's name, which `serve` answers with.
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    pub env: BTreeMap<String, String>,
    pub out: Writer,
    /// `None`: stdin is closed.
    pub stdin: Option<DuplexStream>,
    pub files: Files,
}

/// Runs `program` until it exits or a signal ends it.
pub(crate) async fn run(
    program: Program,
    mut context: Context,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) -> Exit {
    let crash = async {
        match program.crash_after {
            Some((after, code)) => {
                tokio::time::sleep(after).await;
                Exit::code(code)
            }
            None => std::future::pending().await,
        }
    };
    let signalled = async {
        loop {
            match signals.recv().await {
                Some(Signal::Term) if program.stubborn => {}
                Some(Signal::Term) => return Exit::code(TERMINATED),
                Some(Signal::Kill(code)) => return Exit::code(code),
                // Nobody can signal any more; the program ends by itself.
                None => std::future::pending::<()>().await,
            }
        }
    };
    let steps = async {
        if program.steps.is_empty() {
            std::future::pending::<()>().await;
        }
        run_steps(&program.steps, &mut context).await.exit()
    };
    tokio::select! {
        exit = steps => exit,
        exit = crash => exit,
        exit = signalled => exit,
    }
}

/// How a list of steps ended.
pub(crate) enum Outcome {
    /// The last step that ran exited with this code.
    Finished(i64),
    /// `exit` (or an OOM kill) ended the process there.
    Ended(Exit),
}

impl Outcome {
    pub(crate) fn exit(self) -> Exit {
        match self {
            Outcome::Finished(code) => Exit::code(code),
            Outcome::Ended(exit) => exit,
        }
    }
}

/// Runs steps as a shell runs a list: `&&` skips a step after a failure.
pub(crate) async fn run_steps(steps: &[(Then, Step)], context: &mut Context) -> Outcome {
    let mut last = 0;
    for (then, step) in steps {
        if *then == Then::OnSuccess && last != 0 {
            continue;
        }
        match step {
            Step::Exit(code) => return Outcome::Ended(Exit::code(*code)),
            Step::Oom => {
                return Outcome::Ended(Exit {
                    code: KILLED,
                    oom_killed: true,
                });
            }
            Step::Shell => last = Box::pin(shell(context)).await,
            other => last = run_step(other, context).await,
        }
    }
    Outcome::Finished(last)
}

async fn run_step(step: &Step, context: &mut Context) -> i64 {
    let out = &context.out;
    match step {
        Step::Serve(options) => serve(options, context).await,
        Step::Sleep(None) => std::future::pending().await,
        Step::Sleep(Some(duration)) => {
            tokio::time::sleep(*duration).await;
            0
        }
        Step::Print { stream, text } => {
            out.line(*stream, text);
            0
        }
        Step::Cat(None) => {
            copy_stdin(context).await;
            0
        }
        Step::Cat(Some(path)) => match context.files.read(path) {
            Some(data) => {
                out.raw(LogStream::Stdout, data);
                0
            }
            None => {
                out.line(
                    LogStream::Stderr,
                    &format!("cat: can't open '{path}': No such file or directory"),
                );
                1
            }
        },
        Step::Env => {
            for (key, value) in &context.env {
                out.line(LogStream::Stdout, &format!("{key}={value}"));
            }
            0
        }
        Step::Write { path, content } => {
            match context
                .files
                .write(path, Bytes::from(content.clone().into_bytes()))
            {
                Ok(()) => 0,
                Err(e) => {
                    out.line(LogStream::Stderr, &format!("write: {e}"));
                    1
                }
            }
        }
        Step::Status(code) => *code,
        Step::NotFound(command) => {
            out.line(LogStream::Stderr, &format!("sh: {command}: not found"));
            127
        }
        Step::Usage(message) => {
            out.line(LogStream::Stderr, message);
            2
        }
        // Handled by `run_steps`, which can end the whole list.
        Step::Exit(code) => *code,
        Step::Oom => KILLED,
        Step::Shell => 0,
    }
}

async fn copy_stdin(context: &mut Context) {
    let Some(stdin) = context.stdin.as_mut() else {
        return;
    };
    let mut buffer = vec![0u8; 8192];
    // A read error is a closed stdin, as for a process.
    while let Ok(n @ 1..) = stdin.read(&mut buffer).await {
        context
            .out
            .raw(LogStream::Stdout, Bytes::copy_from_slice(&buffer[..n]));
    }
}

/// An interactive shell: each line of stdin runs as a command; `exit` or the
/// end of stdin ends it.
async fn shell(context: &mut Context) -> i64 {
    let Some(stdin) = context.stdin.take() else {
        return 0;
    };
    let mut lines = tokio::io::BufReader::new(stdin).lines();
    let mut last = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let argv = vec!["sh".to_string(), "-c".to_string(), line];
        let program = program::parse(&argv, &context.env);
        match run_steps(&program.steps, context).await {
            Outcome::Finished(code) => last = code,
            Outcome::Ended(exit) => return exit.code,
        }
    }
    last
}

async fn serve(options: &program::Serve, context: &Context) -> i64 {
    let out = &context.out;
    tokio::time::sleep(options.startup).await;
    let port = options
        .port
        .or_else(|| context.env.get("PORT")?.parse().ok())
        .unwrap_or(DEFAULT_PORT);
    let Some(ip) = context.ip else {
        out.line(
            LogStream::Stderr,
            "serve: the container has no network address to listen on",
        );
        return 1;
    };
    let listener = match tokio::net::TcpListener::bind((ip, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            out.line(
                LogStream::Stderr,
                &format!("serve: cannot listen on {ip}:{port}: {e}"),
            );
            return 1;
        }
    };
    out.line(LogStream::Stdout, &format!("listening on {ip}:{port}"));
    let answers = Answers {
        name: context.name.clone(),
        fail: options.fail.clone(),
        delay: options.delay,
    };
    http::serve(listener, Arc::new(answers)).await;
    0
}
