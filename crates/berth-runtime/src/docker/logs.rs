//! The engine's multiplexed output frames: log lines with their timestamps,
//! raw chunks for attached sessions, and build output cut into lines.

use super::convert::{map_err, status_of};
use crate::{LogLine, LogStream, Result, RuntimeError, Session, SessionOutput};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::VecDeque;

type RawOutput =
    std::pin::Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, BollardError>> + Send>>;

pub(super) fn session(
    output: RawOutput,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) -> Session {
    let output = output
        .filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdErr { message }) => Some(Ok(SessionOutput::Stderr(message))),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(SessionOutput::Stdout(message)))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(map_err(e))),
            }
        })
        .boxed();
    Session { output, input }
}

/// Build output arrives in chunks that need not end at a line boundary.
#[derive(Default)]
pub(super) struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    pub(super) fn push(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            lines.push(line.trim_end_matches(['\n', '\r']).to_string());
        }
        lines
    }

    pub(super) fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.is_empty()).then_some(rest)
    }
}

/// Longest timestamp prefix we look for, e.g. `2024-01-02T03:04:05.123456789+00:00 `.
const MAX_TIMESTAMP_LEN: usize = 40;

/// A `<RFC 3339 timestamp> ` prefix: its time in ns since the epoch and the
/// prefix's length including the space.
fn split_timestamp(buf: &[u8]) -> Option<(i128, usize)> {
    let space = buf
        .iter()
        .take(MAX_TIMESTAMP_LEN)
        .position(|b| *b == b' ')?;
    let text = std::str::from_utf8(&buf[..space]).ok()?;
    let ts =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((ts.unix_timestamp_nanos(), space + 1))
}

/// One output stream's bytes on their way to lines.
#[derive(Default)]
struct LineAssembler {
    /// The current line's bytes; while `line_ts` is `None` they still start with
    /// (part of) its timestamp.
    pending: Vec<u8>,
    line_ts: Option<i128>,
    /// For lines that came without a timestamp of their own.
    last_ts: i128,
}

impl LineAssembler {
    fn push(&mut self, mut frame: &[u8], stream: LogStream, out: &mut VecDeque<LogLine>) {
        // The engine cuts lines longer than 16 KiB into several messages, each sent
        // with its own timestamp; a continuation's timestamp is not part of the text.
        if self.line_ts.is_some()
            && let Some((_, len)) = split_timestamp(frame)
        {
            frame = &frame[len..];
        }
        self.pending.extend_from_slice(frame);
        loop {
            if self.line_ts.is_none() {
                match split_timestamp(&self.pending) {
                    Some((ts, len)) => {
                        self.pending.drain(..len);
                        self.line_ts = Some(ts);
                        self.last_ts = ts;
                    }
                    None if self.pending.len() < MAX_TIMESTAMP_LEN
                        && !self.pending.iter().any(|b| *b == b' ' || *b == b'\n') =>
                    {
                        // Possibly a timestamp cut short by the chunk boundary.
                        return;
                    }
                    None => self.line_ts = Some(self.last_ts),
                }
            }
            let Some(newline) = self.pending.iter().position(|b| *b == b'\n') else {
                return;
            };
            let rest = self.pending.split_off(newline + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            out.push_back(self.make_line(&line, stream));
            self.line_ts = None;
        }
    }

    fn finish(&mut self, stream: LogStream, out: &mut VecDeque<LogLine>) {
        if self.line_ts.is_none()
            && let Some((ts, len)) = split_timestamp(&self.pending)
        {
            self.pending.drain(..len);
            self.line_ts = Some(ts);
        }
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            out.push_back(self.make_line(&line, stream));
        }
        self.line_ts = None;
    }

    fn make_line(&self, bytes: &[u8], stream: LogStream) -> LogLine {
        let text = String::from_utf8_lossy(bytes);
        LogLine {
            ts_nanos: self.line_ts.unwrap_or(self.last_ts),
            stream,
            text: text.trim_end_matches(['\n', '\r']).to_string(),
        }
    }
}

/// Splits the engine's log frames into lines, keeping stdout and stderr apart.
#[derive(Default)]
struct LogSplitter {
    stdout: LineAssembler,
    stderr: LineAssembler,
}

impl LogSplitter {
    fn push(&mut self, frame: LogOutput, out: &mut VecDeque<LogLine>) {
        match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.push(&message, LogStream::Stdout, out)
            }
            LogOutput::StdErr { message } => self.stderr.push(&message, LogStream::Stderr, out),
            LogOutput::StdIn { .. } => {}
        }
    }

    fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        self.stdout.finish(LogStream::Stdout, out);
        self.stderr.finish(LogStream::Stderr, out);
    }
}

pub(super) fn log_lines(
    frames: impl Stream<Item = std::result::Result<LogOutput, BollardError>> + Send + 'static,
    id: String,
) -> BoxStream<'static, Result<LogLine>> {
    struct State<S> {
        frames: S,
        splitter: LogSplitter,
        ready: VecDeque<LogLine>,
        error: Option<RuntimeError>,
        done: bool,
        id: String,
    }
    let state = State {
        frames: Box::pin(frames),
        splitter: LogSplitter::default(),
        ready: VecDeque::new(),
        error: None,
        done: false,
        id,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((Ok(line), s));
            }
            if let Some(err) = s.error.take() {
                return Some((Err(err), s));
            }
            if s.done {
                return None;
            }
            match s.frames.next().await {
                Some(Ok(frame)) => s.splitter.push(frame, &mut s.ready),
                Some(Err(e)) => {
                    s.splitter.finish(&mut s.ready);
                    s.error = Some(match status_of(&e) {
                        Some(404) => RuntimeError::NotFound(s.id.clone()),
                        _ => map_err(e),
                    });
                    s.done = true;
                }
                None => {
                    s.splitter.finish(&mut s.ready);
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn lines(frames: &[(&str, bool)]) -> Vec<(i128, LogStream, String)> {
        let mut splitter = LogSplitter::default();
        let mut out = VecDeque::new();
        for (text, stderr) in frames {
            let message = Bytes::copy_from_slice(text.as_bytes());
            let frame = if *stderr {
                LogOutput::StdErr { message }
            } else {
                LogOutput::StdOut { message }
            };
            splitter.push(frame, &mut out);
        }
        splitter.finish(&mut out);
        out.into_iter()
            .map(|l| (l.ts_nanos, l.stream, l.text))
            .collect()
    }

    const T1: &str = "2024-01-02T03:04:05.123456789Z";
    const T1_NS: i128 = 1_704_164_645_123_456_789;
    const T2: &str = "2024-01-02T03:04:06.000000001Z";
    const T2_NS: i128 = 1_704_164_646_000_000_001;

    #[test]
    fn parses_timestamp_prefix() {
        assert_eq!(
            split_timestamp(format!("{T1} hello").as_bytes()),
            Some((T1_NS, T1.len() + 1))
        );
        assert_eq!(
            split_timestamp(b"2024-01-02T04:04:05.5+01:00 x"),
            Some((1_704_164_645_500_000_000, 28))
        );
        assert_eq!(split_timestamp(b"hello world"), None);
        assert_eq!(split_timestamp(b"no-space-here"), None);
    }

    #[test]
    fn one_frame_per_line() {
        let got = lines(&[
            (&format!("{T1} one\n"), false),
            (&format!("{T2} two\n"), true),
        ]);
        assert_eq!(
            got,
            vec![
                (T1_NS, LogStream::Stdout, "one".to_string()),
                (T2_NS, LogStream::Stderr, "two".to_string()),
            ]
        );
    }

    #[test]
    fn chunks_across_line_and_timestamp_boundaries() {
        let all = format!("{T1} first line\r\n{T2} second\n{T1} tail");
        // Every split point, including inside a timestamp.
        for cut in 0..all.len() {
            let got = lines(&[(&all[..cut], false), (&all[cut..], false)]);
            assert_eq!(
                got,
                vec![
                    (T1_NS, LogStream::Stdout, "first line".to_string()),
                    (T2_NS, LogStream::Stdout, "second".to_string()),
                    (T1_NS, LogStream::Stdout, "tail".to_string()),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn long_line_continuations_drop_their_timestamps() {
        let got = lines(&[
            (&format!("{T1} aaaa"), false),
            (&format!("{T2} bbbb"), false),
            (&format!("{T2} cc\n"), false),
        ]);
        assert_eq!(got, vec![(T1_NS, LogStream::Stdout, "aaaabbbbcc".into())]);
    }

    #[test]
    fn lines_without_timestamps_keep_the_last_one() {
        let got = lines(&[(&format!("{T1} a\nplain text line\n"), false)]);
        assert_eq!(
            got,
            vec![
                (T1_NS, LogStream::Stdout, "a".into()),
                (T1_NS, LogStream::Stdout, "plain text line".into()),
            ]
        );
    }

    #[test]
    fn empty_lines_are_kept() {
        let got = lines(&[(&format!("{T1} \n"), false)]);
        assert_eq!(got, vec![(T1_NS, LogStream::Stdout, String::new())]);
    }

    #[test]
    fn build_output_lines() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push("Step 1/2 : FROM"), Vec::<String>::new());
        assert_eq!(
            b.push(" scratch\n ---> x\n"),
            vec!["Step 1/2 : FROM scratch", " ---> x"]
        );
        assert_eq!(b.push("end"), Vec::<String>::new());
        assert_eq!(b.finish(), Some("end".to_string()));
        assert_eq!(b.finish(), None);
    }
}
