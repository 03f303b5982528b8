//! A process's output as an engine keeps it: timestamped chunks per stream,
//! read back whole (`tail_logs`), followed live (`logs`, attach), or cut into
//! lines.

use crate::sync::lock;
use berth_runtime::{LogLine, LogStream};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where the process writing an output is in its life. Followers wait while
/// it has not ended: a container attached before its start, or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    NotStarted,
    Live,
    Ended,
}

#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub ts_nanos: i128,
    pub stream: LogStream,
    pub bytes: Bytes,
}

pub(crate) struct Output {
    state: Mutex<OutputState>,
    /// Bumped on every change, so followers wake without polling.
    changed: watch::Sender<u64>,
}

struct OutputState {
    chunks: Vec<Chunk>,
    phase: Phase,
}

impl Output {
    pub(crate) fn new(phase: Phase) -> Arc<Output> {
        Arc::new(Output {
            state: Mutex::new(OutputState {
                chunks: Vec::new(),
                phase,
            }),
            changed: watch::Sender::new(0),
        })
    }

    pub(crate) fn push(&self, stream: LogStream, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        lock(&self.state).chunks.push(Chunk {
            ts_nanos: now_nanos(),
            stream,
            bytes,
        });
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        lock(&self.state).phase = phase;
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn chunks(&self) -> Vec<Chunk> {
        lock(&self.state).chunks.clone()
    }

    /// Every chunk from the first on, then new ones as they come, until the
    /// process has ended.
    pub(crate) fn follow(self: &Arc<Self>) -> BoxStream<'static, Chunk> {
        // Subscribed before the first read: a chunk pushed between a read and
        // the wait still wakes the follower.
        let changes = self.changed.subscribe();
        stream::unfold(
            (self.clone(), changes, 0usize),
            |(output, mut changes, next)| async move {
                loop {
                    {
                        let state = lock(&output.state);
                        if let Some(chunk) = state.chunks.get(next) {
                            let chunk = chunk.clone();
                            drop(state);
                            return Some((chunk, (output, changes, next + 1)));
                        }
                        if state.phase == Phase::Ended {
                            return None;
                        }
                    }
                    if changes.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
        .boxed()
    }
}

pub(crate) fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Cuts chunks into lines, stdout and stderr apart; a line carries the time
/// of the chunk that began it.
#[derive(Default)]
pub(crate) struct LineCutter {
    stdout: Partial,
    stderr: Partial,
}

#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    ts_nanos: i128,
}

impl LineCutter {
    pub(crate) fn push(&mut self, chunk: &Chunk, out: &mut VecDeque<LogLine>) {
        let partial = match chunk.stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        for piece in chunk.bytes.split_inclusive(|b| *b == b'\n') {
            if partial.bytes.is_empty() {
                partial.ts_nanos = chunk.ts_nanos;
            }
            partial.bytes.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                out.push_back(line(partial, chunk.stream));
            }
        }
    }

    pub(crate) fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        for (partial, stream) in [
            (&mut self.stdout, LogStream::Stdout),
            (&mut self.stderr, LogStream::Stderr),
        ] {
            if !partial.bytes.is_empty() {
                out.push_back(line(partial, stream));
            }
        }
    }
}

fn line(partial: &mut Partial, stream: LogStream) -> LogLine {
    let bytes = std::mem::take(&mut partial.bytes);
    LogLine {
        ts_nanos: partial.ts_nanos,
        stream,
        text: String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string(),
    }
}

pub(crate) fn lines_of(chunks: &[Chunk]) -> Vec<LogLine> {
    let mut cutter = LineCutter::default();
    let mut out = VecDeque::new();
    for chunk in chunks {
        cutter.push(chunk, &mut out);
    }
    cutter.finish(&mut out);
    // Both streams' lines, in the order they began.
    let mut lines: Vec<LogLine> = out.into();
    lines.sort_by_key(|l| l.ts_nanos);
    lines
}

/// Lines of a followed output, each as soon as its newline arrives.
pub(crate) fn follow_lines(chunks: BoxStream<'static, Chunk>) -> BoxStream<'static, LogLine> {
    let state = (chunks, LineCutter::default(), VecDeque::new(), false);
    stream::unfold(
        state,
        |(mut chunks, mut cutter, mut ready, mut done)| async move {
            loop {
                if let Some(line) = ready.pop_front() {
                    return Some((line, (chunks, cutter, ready, done)));
                }
                if done {
                    return None;
                }
                match chunks.next().await {
                    Some(chunk) => cutter.push(&chunk, &mut ready),
                    None => {
                        cutter.finish(&mut ready);
                        done = true;
                    }
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ts: i128, stream: LogStream, text: &str) -> Chunk {
        Chunk {
            ts_nanos: ts,
            stream,
            bytes: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    #[test]
    fn chunks_become_lines_per_stream() {
        let lines = lines_of(&[
            chunk(1, LogStream::Stdout, "one\ntw"),
            chunk(2, LogStream::Stderr, "err\r\n"),
            chunk(3, LogStream::Stdout, "o\nthree"),
        ]);
        let got: Vec<(i128, LogStream, &str)> = lines
            .iter()
            .map(|l| (l.ts_nanos, l.stream, l.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, LogStream::Stdout, "one"),
                (1, LogStream::Stdout, "two"),
                (2, LogStream::Stderr, "err"),
                (3, LogStream::Stdout, "three"),
            ]
        );
    }

    #[tokio::test]
    async fn followers_see_what_comes_until_the_end() {
        let output = Output::new(Phase::Live);
        output.push(LogStream::Stdout, Bytes::from_static(b"a\n"));
        let follower = output.follow();
        let writer = output.clone();
        tokio::spawn(async move {
            writer.push(LogStream::Stdout, Bytes::from_static(b"b\n"));
            writer.set_phase(Phase::Ended);
        });
        let texts: Vec<String> = follow_lines(follower).map(|l| l.text).collect().await;
        assert_eq!(texts, vec!["a", "b"]);
    }
}
