//! Connections to processes over HTTP/1.1, shared by the fast path (`relay`) and the
//! hyper path's direct forwarding (`proxy`): a per-thread pool of idle connections,
//! sending a request and reading the response head, and finding where a response
//! body ends (length, chunked, or the connection's close).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::metrics::UpstreamError;
use crate::routing::{CONNECT_TIMEOUT, Entry, POOL_IDLE_TIMEOUT, Target};

/// Idle connections kept per process and thread.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// How much is read from a process at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// A connection to a process, with its read buffer.
pub(crate) struct BackendConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// Nothing was sent: the next process may be tried.
    #[error("{0}")]
    Connect(io::Error),
    #[error("{0}")]
    Broken(io::Error),
}

/// Sends the request over a pooled connection (or a new one when a pooled one turns out
/// closed) and reads the response head.
/// `parse` reads a response head from the start of what the process sent;
/// `retryable`: the request may be sent again if a pooled connection turns out closed
/// after it was written.
pub(crate) async fn send<T>(
    addr: SocketAddr,
    (head, body): (&[u8], &[u8]),
    retryable: bool,
    now: Instant,
    mut parse: impl FnMut(&[u8]) -> Result<Parsed<T>, RoundtripError>,
) -> Result<(BackendConn, T), SendError> {
    loop {
        let (mut conn, reused) = match pool_take(addr, now) {
            Some(conn) => (conn, true),
            None => (connect(addr).await.map_err(SendError::Connect)?, false),
        };
        match roundtrip(&mut conn, head, body, &mut parse).await {
            Ok(response) => return Ok((conn, response)),
            // A pooled connection the process closed while it sat idle: the request
            // never reached it, unless it was written and then lost (only safe requests
            // are sent again then).
            Err(RoundtripError::Write(_)) if reused => {}
            Err(RoundtripError::Closed) if reused && retryable => {}
            Err(e) => return Err(SendError::Broken(e.into())),
        }
    }
}

impl SendError {
    /// Counts the failed attempt in the route's counters and tells the route (which
    /// logs it): both data paths, the same way.
    pub(crate) fn record(&self, entry: &Entry, target: &Target) {
        match self {
            SendError::Connect(e) => {
                entry
                    .stats
                    .upstream_error(if e.kind() == io::ErrorKind::TimedOut {
                        UpstreamError::Timeout
                    } else {
                        UpstreamError::Connect
                    });
                entry.attempt_failed(target, "cannot connect to process", e);
            }
            SendError::Broken(e) => {
                entry.stats.upstream_error(UpstreamError::Reset);
                entry.attempt_failed(target, "process failed to answer", e);
            }
        }
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> io::Result<BackendConn> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(BackendConn {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
    })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RoundtripError {
    #[error("sending the request: {0}")]
    Write(io::Error),
    #[error("the connection closed before a response")]
    Closed,
    #[error("reading the response: {0}")]
    Read(io::Error),
    #[error("invalid response: {0}")]
    Invalid(&'static str),
}

impl From<RoundtripError> for io::Error {
    fn from(e: RoundtripError) -> io::Error {
        match e {
            RoundtripError::Write(e) | RoundtripError::Read(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

async fn roundtrip<T>(
    conn: &mut BackendConn,
    head: &[u8],
    body: &[u8],
    parse: &mut impl FnMut(&[u8]) -> Result<Parsed<T>, RoundtripError>,
) -> Result<T, RoundtripError> {
    if body.is_empty() {
        conn.stream.write_all(head).await
    } else {
        let mut whole = Vec::with_capacity(head.len() + body.len());
        whole.extend_from_slice(head);
        whole.extend_from_slice(body);
        conn.stream.write_all(&whole).await
    }
    .map_err(RoundtripError::Write)?;

    conn.buf.clear();
    let mut received = false;
    loop {
        if !conn.buf.is_empty() {
            match parse(&conn.buf)? {
                Parsed::Final(response) => return Ok(response),
                // 1xx before the final response: not forwarded (as on the hyper path).
                Parsed::Interim(len) => {
                    conn.buf.advance(len);
                    continue;
                }
                Parsed::Partial => {}
            }
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if !received => return Err(RoundtripError::Closed),
            Ok(0) => return Err(RoundtripError::Invalid("the response head was cut short")),
            Ok(_) => received = true,
            Err(e) if !received && is_reset(&e) => return Err(RoundtripError::Closed),
            Err(e) => return Err(RoundtripError::Read(e)),
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

pub(crate) enum Parsed<T> {
    Final(T),
    Interim(usize),
    Partial,
}

/// How the end of a response body is found (RFC 9112, section 6.3).
#[derive(Debug)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunked),
    /// Until the process closes the connection.
    Close,
}

/// What a response's headers say of how its body ends (RFC 9112, section 6.3), read
/// header by header by both parsers of response heads (`relay`, `direct`).
#[derive(Default)]
pub(crate) struct BodyHeaders {
    chunked: bool,
    other_encoding: bool,
    content_length: Option<u64>,
}

impl BodyHeaders {
    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) {
        // Only the last coding says how the body ends.
        let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
        self.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        self.other_encoding |= !self.chunked;
    }

    /// Refuses an invalid length and two that differ.
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<(), RoundtripError> {
        let n = parse_length(value).ok_or(RoundtripError::Invalid("invalid Content-Length"))?;
        if self.content_length.is_some_and(|m| m != n) {
            return Err(RoundtripError::Invalid("conflicting Content-Length"));
        }
        self.content_length = Some(n);
        Ok(())
    }

    /// The `Content-Length` the process sent, if any.
    pub(crate) fn length(&self) -> Option<u64> {
        self.content_length
    }

    /// The body is chunked, or ends with the connection: a length sent with it does
    /// not hold.
    pub(crate) fn encoded(&self) -> bool {
        self.chunked || self.other_encoding
    }

    /// How the body ends; `no_body`: the answer to HEAD, 204 or 304.
    pub(crate) fn framing(&self, no_body: bool) -> Framing {
        if no_body {
            Framing::Empty
        } else if self.chunked && !self.other_encoding {
            Framing::Chunked(Chunked::default())
        } else if self.encoded() {
            Framing::Close
        } else {
            match self.content_length {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        }
    }
}

/// A `Content-Length` value: digits only, no sign or spaces (RFC 9110, section 8.6).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

impl Framing {
    /// Of `data` (the next bytes from the process), how many belong to this body, and
    /// whether the body ends with them.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ChunkError> {
        match self {
            Framing::Empty => Ok((0, true)),
            Framing::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                Ok((take as usize, *left == 0))
            }
            Framing::Chunked(chunked) => chunked.feed(data),
            Framing::Close => Ok((data.len(), false)),
        }
    }
}

/// Finds the end of a chunked body while its bytes pass through unchanged.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, whether a digit was seen, and whether
    /// the extensions began.
    #[default]
    SizeStart,
    Size {
        size: u64,
        extension: bool,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section; `true` at the start of a line.
    Trailer(bool),
    TrailerLf(bool),
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChunkError;

/// One step of [`Chunked::next_data`] over the bytes given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChunkStep {
    /// How many of the bytes given were read.
    pub(crate) consumed: usize,
    /// Where in them the data of a chunk is, if the step found some.
    pub(crate) data: Option<std::ops::Range<usize>>,
    /// The body ended (last chunk and trailers read).
    pub(crate) done: bool,
}

impl Chunked {
    /// Of `data`, how many bytes belong to this body, and whether the body ends with
    /// them (its bytes pass through unchanged).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ChunkError> {
        let step = self.scan(data, false)?;
        Ok((step.consumed, step.done))
    }

    /// Decodes: reads `data` up to the end of the first run of chunk data in it (or
    /// all of it if none), and says where that run is. Sizes, extensions and trailers
    /// are read and dropped.
    pub(crate) fn next_data(&mut self, data: &[u8]) -> Result<ChunkStep, ChunkError> {
        self.scan(data, true)
    }

    fn scan(&mut self, data: &[u8], stop_at_data: bool) -> Result<ChunkStep, ChunkError> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                Done => break,
                SizeStart => match hex(b) {
                    Some(d) => Size {
                        size: u64::from(d),
                        extension: false,
                    },
                    None => return Err(ChunkError),
                },
                Size { size, extension } => match (b, hex(b)) {
                    (b'\r', _) => SizeLf { size },
                    (b'\n', _) => after_size(size),
                    (_, Some(d)) if !extension => Size {
                        size: size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(ChunkError)?,
                        extension,
                    },
                    (b';' | b' ' | b'\t', _) => Size {
                        size,
                        extension: true,
                    },
                    _ if extension => Size { size, extension },
                    _ => return Err(ChunkError),
                },
                SizeLf { size } if b == b'\n' => after_size(size),
                SizeLf { .. } => return Err(ChunkError),
                Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - i);
                    let run = i..i + take;
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { DataCr } else { Data(left) };
                    if stop_at_data {
                        return Ok(ChunkStep {
                            consumed: i,
                            data: Some(run),
                            done: false,
                        });
                    }
                    continue;
                }
                DataCr if b == b'\r' => DataLf,
                DataCr | DataLf if b == b'\n' => SizeStart,
                DataCr | DataLf => return Err(ChunkError),
                Trailer(start) => match b {
                    b'\r' => TrailerLf(start),
                    b'\n' if start => Done,
                    b'\n' => Trailer(true),
                    _ => Trailer(false),
                },
                TrailerLf(start) if b == b'\n' => {
                    if start {
                        Done
                    } else {
                        Trailer(true)
                    }
                }
                TrailerLf(_) => return Err(ChunkError),
            };
            i += 1;
        }
        Ok(ChunkStep {
            consumed: i,
            data: None,
            done: self.state == Done,
        })
    }
}

fn after_size(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::Trailer(true)
    } else {
        ChunkState::Data(size)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A response body read from a process's connection as the client takes it, decoded
/// from its HTTP/1.1 framing. At its end the connection goes back to the pool if it
/// can serve another request; dropped before (the client went away), it is closed.
pub(crate) struct BodyReader {
    conn: Option<BackendConn>,
    framing: Framing,
    addr: SocketAddr,
    keep_alive: bool,
}

impl BodyReader {
    /// `conn.buf` holds what was read after the response head.
    pub(crate) fn new(
        conn: BackendConn,
        framing: Framing,
        addr: SocketAddr,
        keep_alive: bool,
    ) -> Self {
        let keep_alive = keep_alive && !matches!(framing, Framing::Close);
        let mut reader = BodyReader {
            conn: Some(conn),
            framing,
            addr,
            keep_alive,
        };
        if matches!(reader.framing, Framing::Empty | Framing::Length(0)) {
            reader.finish();
        }
        reader
    }

    /// The whole body, if it is already here: the connection is back in the pool.
    pub(crate) fn take_whole(&mut self) -> Option<Bytes> {
        let conn = self.conn.as_mut()?;
        let Framing::Length(left) = self.framing else {
            return None;
        };
        if (conn.buf.len() as u64) < left {
            return None;
        }
        let whole = conn.buf.split_to(usize::try_from(left).ok()?).freeze();
        self.framing = Framing::Length(0);
        self.finish();
        Some(whole)
    }

    /// Nothing more to read.
    pub(crate) fn is_end(&self) -> bool {
        self.conn.is_none()
    }

    /// Bytes left, when the process said how many.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match (&self.conn, &self.framing) {
            (None, _) => Some(0),
            (Some(_), Framing::Length(left)) => Some(*left),
            _ => None,
        }
    }

    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            pool_put(self.addr, conn, Instant::now());
        }
    }

    fn fail(&mut self, what: &str) -> Poll<Option<io::Result<Bytes>>> {
        self.conn = None;
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            what.to_owned(),
        ))))
    }

    /// The next piece of the body.
    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if !conn.buf.is_empty() {
                match &mut self.framing {
                    Framing::Empty => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Framing::Length(left) => {
                        let take = (*left).min(conn.buf.len() as u64);
                        *left -= take;
                        let data = conn.buf.split_to(take as usize).freeze();
                        if *left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                    Framing::Chunked(chunked) => {
                        let Ok(step) = chunked.next_data(&conn.buf) else {
                            return self.fail("the process sent an invalid chunked body");
                        };
                        let mut read = conn.buf.split_to(step.consumed);
                        if step.done {
                            self.finish();
                        }
                        if let Some(run) = step.data.filter(|run| !run.is_empty()) {
                            read.truncate(run.end);
                            read.advance(run.start);
                            return Poll::Ready(Some(Ok(read.freeze())));
                        }
                        if step.done {
                            return Poll::Ready(None);
                        }
                        continue;
                    }
                    Framing::Close => return Poll::Ready(Some(Ok(conn.buf.split().freeze()))),
                }
            }
            conn.buf.reserve(READ_CHUNK);
            let read = loop {
                match conn.stream.try_read_buf(&mut conn.buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = ready!(conn.stream.poll_read_ready(cx)) {
                            break Err(e);
                        }
                    }
                    other => break other,
                }
            };
            match read {
                Ok(0) if matches!(self.framing, Framing::Close) => {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return self.fail("the process closed the connection before the body ended");
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

struct Idle {
    conn: BackendConn,
    since: Instant,
}

thread_local! {
    /// Idle connections to processes, per thread: each router event loop has a thread
    /// of its own, so a connection never wakes another thread.
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
    static PUTS: Cell<u32> = const { Cell::new(0) };
}

/// An idle connection to `addr` that the process has not closed, if any.
pub(crate) fn pool_take(addr: SocketAddr, now: Instant) -> Option<BackendConn> {
    POOL.with_borrow_mut(|pool| {
        let idle = pool.get_mut(&addr)?;
        while let Some(Idle { conn, since }) = idle.pop() {
            // An idle connection has nothing to read: readiness means the process
            // closed it (or sent something unasked). Checking costs no system call.
            let readable = conn.stream.ready(Interest::READABLE).now_or_never();
            if now.saturating_duration_since(since) < POOL_IDLE_TIMEOUT && readable.is_none() {
                return Some(conn);
            }
        }
        None
    })
}

pub(crate) fn pool_put(addr: SocketAddr, conn: BackendConn, now: Instant) {
    POOL.with_borrow_mut(|pool| {
        let idle = pool.entry(addr).or_default();
        if idle.len() >= MAX_IDLE_PER_BACKEND {
            idle.remove(0);
        }
        idle.push(Idle { conn, since: now });
        // Now and then, drop what timed out, including connections to processes that
        // left the table.
        let puts = PUTS.get().wrapping_add(1);
        PUTS.set(puts);
        if puts.is_multiple_of(4096) {
            pool.retain(|_, idle| {
                idle.retain(|i| now.saturating_duration_since(i.since) < POOL_IDLE_TIMEOUT);
                !idle.is_empty()
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<(usize, bool), ChunkError> {
        Chunked::default().feed(input)
    }

    #[test]
    fn finds_the_end_of_chunked_bodies() {
        let body = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        assert_eq!(whole(body), Ok((body.len(), true)));
        // With trailers, and bytes after the end left alone.
        let body = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1";
        assert_eq!(whole(body), Ok((body.len() - 14, true)));
        // Not finished yet.
        assert_eq!(whole(b"5\r\nhel"), Ok((6, false)));
    }

    #[test]
    fn chunked_bodies_split_anywhere() {
        let body = b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let (a, done_a) = c.feed(&body[..split]).unwrap();
            assert_eq!((a, done_a), (split, false), "split at {split}");
            let (b, done_b) = c.feed(&body[split..]).unwrap();
            assert_eq!((a + b, done_b), (body.len(), true), "split at {split}");
        }
    }

    #[test]
    fn rejects_broken_chunks() {
        assert_eq!(whole(b"zz\r\n"), Err(ChunkError));
        assert_eq!(whole(b"3\r\nabcX"), Err(ChunkError));
        assert_eq!(whole(b"ffffffffffffffffff\r\n"), Err(ChunkError));
    }

    /// Decodes `body` given in pieces split at `split`, as a body reader would.
    fn decode(body: &[u8], split: usize) -> (Vec<u8>, bool) {
        let mut chunked = Chunked::default();
        let (mut out, mut done) = (Vec::new(), false);
        for mut piece in [&body[..split], &body[split..]] {
            while !piece.is_empty() && !done {
                let step = chunked.next_data(piece).expect("valid");
                if let Some(run) = step.data {
                    out.extend_from_slice(&piece[run]);
                }
                done = step.done;
                piece = &piece[step.consumed..];
            }
        }
        (out, done)
    }

    #[test]
    fn decodes_chunked_bodies_split_anywhere() {
        let body = b"5\r\nhello\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
        for split in 0..=body.len() {
            assert_eq!(
                decode(body, split),
                (b"hello0123456789abcdef".to_vec(), true),
                "split at {split}"
            );
        }
    }
}
