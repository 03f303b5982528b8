//! What a connection shares with its streams: the frames waiting to be written, the
//! flow-control windows both ways, and each stream's received body. The connection's
//! task owns the socket; a stream (its request through the proxy, then its response)
//! and its request body, which may be read from another task (hyper's client), reach
//! this state through one mutex, taken briefly and never held across an await.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_util::future::AbortHandle;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

use super::frame::{self, Reason};

/// The router's receive window, per stream and for the connection (as hyper's server
/// had it); what a body has read is announced once half of it is.
pub(crate) const RECV_WINDOW: i64 = 1024 * 1024;
/// Past this much unwritten output, streams wait before adding response data.
pub(crate) const HIGH_WATER: usize = 256 * 1024;

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

/// What a body fails with, as the data path's other bodies.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves nothing half-written that matters more
    // than the connection: carry on with what is there.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Shared {
    /// Frames for the client, in order.
    pub(crate) out: BytesMut,
    /// What the router may still send on the connection.
    pub(crate) send_window: i64,
    /// What the client may still send on the connection.
    pub(crate) recv_window: i64,
    /// Read by bodies, not yet given back to the client's connection window.
    unreleased: i64,
    pub(crate) peer_max_frame: usize,
    pub(crate) peer_initial_window: i64,
    pub(crate) streams: HashMap<u32, StreamState, foldhash::fast::RandomState>,
    /// Woken when a body (in whatever task) added frames.
    pub(crate) conn_waker: Option<Waker>,
    /// Streams waiting for `out` to drain below `HIGH_WATER`.
    pub(crate) blocked: Vec<Waker>,
    /// Streams the client reset while they ran, less those that finished since.
    pub(crate) resets_in_flight: usize,
}

/// A stream from its request head until its response is sent (or it is reset).
pub(crate) struct StreamState {
    /// Received request data not yet read by the body.
    pub(crate) recv: VecDeque<Bytes>,
    /// The client may still send data (no END_STREAM yet).
    pub(crate) recv_open: bool,
    pub(crate) received: u64,
    /// The request's `Content-Length`: the data must match it.
    pub(crate) length: Option<u64>,
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) body_waker: Option<Waker>,
    /// The request body was dropped: what arrives is only counted.
    pub(crate) body_gone: bool,
    /// The request body was read to its end.
    body_ended: bool,
    /// The response was sent whole while the request body was still being read.
    responded: bool,
    /// What the client may still send on this stream.
    pub(crate) recv_window: i64,
    unreleased: i64,
    /// What the router may still send on this stream.
    pub(crate) send_window: i64,
    pub(crate) send_waker: Option<Waker>,
    pub(crate) abort: AbortHandle,
}

impl StreamState {
    pub(crate) fn new(
        recv_open: bool,
        length: Option<u64>,
        send_window: i64,
        abort: AbortHandle,
    ) -> Self {
        StreamState {
            recv: VecDeque::new(),
            recv_open,
            received: 0,
            length,
            trailers: None,
            body_ended: !recv_open,
            body_waker: None,
            body_gone: false,
            responded: false,
            recv_window: RECV_WINDOW,
            unreleased: 0,
            send_window,
            send_waker: None,
            abort,
        }
    }

    pub(crate) fn wake_body(&mut self) {
        if let Some(waker) = self.body_waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn wake_sender(&mut self) {
        if let Some(waker) = self.send_waker.take() {
            waker.wake();
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            out: BytesMut::with_capacity(16 * 1024),
            send_window: frame::DEFAULT_WINDOW,
            recv_window: RECV_WINDOW,
            unreleased: 0,
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            peer_initial_window: frame::DEFAULT_WINDOW,
            streams: HashMap::default(),
            conn_waker: None,
            blocked: Vec::new(),
            resets_in_flight: 0,
        }
    }
}

impl Shared {
    /// Gives `n` received bytes back to the client's windows (the stream's only while
    /// it may still send), announcing them once half a window is owed.
    pub(crate) fn release(&mut self, id: Option<u32>, n: usize) {
        let n = n as i64;
        if n == 0 {
            return;
        }
        if let Some(stream) = id.and_then(|id| Some((id, self.streams.get_mut(&id)?))) {
            let (id, stream) = stream;
            if stream.recv_open {
                stream.unreleased += n;
                if stream.unreleased >= RECV_WINDOW / 2 {
                    stream.recv_window += stream.unreleased;
                    frame::put_window_update(&mut self.out, id, stream.unreleased as u32);
                    stream.unreleased = 0;
                }
            }
        }
        self.unreleased += n;
        if self.unreleased >= RECV_WINDOW / 2 {
            self.recv_window += self.unreleased;
            frame::put_window_update(&mut self.out, 0, self.unreleased as u32);
            self.unreleased = 0;
        }
    }

    /// Resets a stream from the router's side: the client is told, the stream's
    /// task is cancelled and what it had received is given back.
    pub(crate) fn reset(&mut self, id: u32, reason: Reason) {
        frame::put_rst_stream(&mut self.out, id, reason);
        self.forget(id);
    }

    /// Drops a stream's state, cancelling its task and giving back what it held.
    pub(crate) fn forget(&mut self, id: u32) {
        if let Some(stream) = self.remove(id) {
            stream.abort.abort();
        }
    }

    /// Takes a stream out: its body learns it is gone, and what it held is given
    /// back to the connection's window.
    fn remove(&mut self, id: u32) -> Option<StreamState> {
        let mut stream = self.streams.remove(&id)?;
        stream.wake_body();
        let held: usize = stream.recv.drain(..).map(|d| d.len()).sum();
        self.release(None, held);
        Some(stream)
    }

    /// The stream's response is sent. It is forgotten once its request body is done
    /// with: at once, or when the body ends or is dropped.
    pub(crate) fn finish(&mut self, id: u32) {
        self.resets_in_flight = self.resets_in_flight.saturating_sub(1);
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if !stream.body_ended && !stream.body_gone {
            // The process answered before it read the whole body (as nginx's
            // `return` does), and its connection may still be taking it: the body
            // goes on until it ends or is dropped, and the client is not cut off.
            stream.responded = true;
            return;
        }
        self.close(id);
    }

    /// Forgets a stream whose response was sent, once its request body is done with:
    /// a client still sending is told to stop (RFC 9113, 8.1).
    fn close(&mut self, id: u32) {
        if let Some(stream) = self.remove(id)
            && stream.recv_open
        {
            frame::put_rst_stream(&mut self.out, id, Reason::NO_ERROR);
        }
    }

    pub(crate) fn wake_conn(&mut self) {
        if let Some(waker) = &self.conn_waker {
            waker.wake_by_ref();
        }
    }

    /// What a stream may send now: its window, the connection's and the client's
    /// largest frame bound it; zero while the output waits to drain.
    pub(crate) fn sendable(&self, stream: &StreamState) -> usize {
        if self.out.len() >= HIGH_WATER {
            return 0;
        }
        stream
            .send_window
            .min(self.send_window)
            .clamp(0, self.peer_max_frame as i64) as usize
    }
}

/// A client's request body on an HTTP/2 stream.
pub(crate) struct RequestBody {
    shared: SharedRef,
    id: u32,
    length: Option<u64>,
    ended: bool,
}

impl RequestBody {
    pub(crate) fn new(shared: SharedRef, id: u32, length: Option<u64>, ended: bool) -> Self {
        RequestBody {
            shared,
            id,
            length,
            ended,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the client's HTTP/2 stream was reset, or its connection closed, before the request body ended"
)]
pub(crate) struct StreamReset;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let mut shared = lock(&this.shared);
        let Some(stream) = shared.streams.get_mut(&this.id) else {
            // A stream is kept until its body has ended: this one was reset, or its
            // connection closed.
            this.ended = true;
            return Poll::Ready(Some(Err(Box::new(StreamReset))));
        };
        if let Some(data) = stream.recv.pop_front() {
            let n = data.len();
            shared.release(Some(this.id), n);
            if !shared.out.is_empty() {
                shared.wake_conn();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if !stream.recv_open {
            if let Some(trailers) = stream.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            this.ended = true;
            stream.body_ended = true;
            if stream.responded {
                shared.close(this.id);
            }
            return Poll::Ready(None);
        }
        match &mut stream.body_waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.length == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut shared = lock(&self.shared);
        let Some(stream) = shared.streams.get_mut(&self.id) else {
            return;
        };
        stream.body_gone = true;
        stream.body_waker = None;
        let held: usize = stream.recv.drain(..).map(|d| d.len()).sum();
        let responded = stream.responded;
        shared.release(None, held);
        if responded {
            shared.close(self.id);
        }
        if !shared.out.is_empty() {
            shared.wake_conn();
        }
    }
}
