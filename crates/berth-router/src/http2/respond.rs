//! A stream's side of its response: the head, the body as the client's flow control
//! allows, the trailers, all written into the connection's output.

use std::future::poll_fn;
use std::task::Poll;

use bytes::{Buf, Bytes};
use http::{HeaderMap, StatusCode};

use super::frame::{self, Reason};
use super::hpack;
use super::stream::{self, SharedRef};

/// Answers one stream. Every method is a no-op (or says false) once the stream is
/// gone: reset by the client, or cancelled with its connection.
pub(crate) struct Responder {
    shared: SharedRef,
    id: u32,
}

impl Responder {
    pub(super) fn new(shared: SharedRef, id: u32) -> Self {
        Responder { shared, id }
    }

    #[cfg(test)]
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// Writes the response head; `end`: there is no body.
    pub(crate) fn send_head(&self, status: StatusCode, fields: &HeaderMap, end: bool) -> bool {
        let mut state = stream::lock(&self.shared);
        let state = &mut *state;
        if !state.streams.contains_key(&self.id) {
            return false;
        }
        let max_frame = state.peer_max_frame;
        frame::put_headers(&mut state.out, self.id, end, max_frame, |out| {
            hpack::encode_status(out, status);
            // `proxy` took the hop-by-hop headers off every response.
            for (name, value) in fields {
                hpack::encode_header(out, name, value);
            }
        });
        if end {
            state.finish(self.id);
        }
        true
    }

    /// Sends a whole body at once if the windows allow all of it now (most responses
    /// are small); false if it must go through [`Responder::send_data`].
    pub(crate) fn try_send_whole(&self, data: &Bytes) -> bool {
        let mut state = stream::lock(&self.shared);
        let Some(stream_state) = state.streams.get(&self.id) else {
            // Gone: nothing more to send.
            return true;
        };
        if data.len() > state.sendable(stream_state) {
            return false;
        }
        frame::put_data(&mut state.out, self.id, data, true);
        state.send_window -= data.len() as i64;
        state.finish(self.id);
        true
    }

    /// Sends as much of `data` as the windows allow (all of it ends the stream if
    /// `end`); false once the stream is gone.
    pub(crate) fn send_data(&self, data: &mut Bytes, end: bool) -> bool {
        let mut state = stream::lock(&self.shared);
        let state = &mut *state;
        let Some(stream_state) = state.streams.get(&self.id) else {
            return false;
        };
        let n = state.sendable(stream_state).min(data.len());
        let last = n == data.len();
        if n > 0 || (last && end) {
            frame::put_data(&mut state.out, self.id, &data[..n], last && end);
            if let Some(stream_state) = state.streams.get_mut(&self.id) {
                stream_state.send_window -= n as i64;
            }
            state.send_window -= n as i64;
            data.advance(n);
            if last && end {
                state.finish(self.id);
            }
        }
        true
    }

    /// Ends the stream with trailers.
    pub(crate) fn send_trailers(&self, trailers: &HeaderMap) {
        let mut state = stream::lock(&self.shared);
        let state = &mut *state;
        if !state.streams.contains_key(&self.id) {
            return;
        }
        let max_frame = state.peer_max_frame;
        frame::put_headers(&mut state.out, self.id, true, max_frame, |out| {
            for (name, value) in trailers {
                hpack::encode_header(out, name, value);
            }
        });
        state.finish(self.id);
    }

    /// Resets the stream: its response failed half-way.
    pub(crate) fn fail(&self) {
        let mut state = stream::lock(&self.shared);
        if state.streams.contains_key(&self.id) {
            state.reset(self.id, Reason::INTERNAL_ERROR);
        }
    }

    /// Waits until the stream may send at least a byte; false once it is gone.
    pub(crate) async fn ready_to_send(&self) -> bool {
        poll_fn(|cx| {
            let mut state = stream::lock(&self.shared);
            let state = &mut *state;
            let Some(stream_state) = state.streams.get(&self.id) else {
                return Poll::Ready(false);
            };
            if state.sendable(stream_state) > 0 {
                return Poll::Ready(true);
            }
            if state.out.len() >= stream::HIGH_WATER {
                state.blocked.push(cx.waker().clone());
            }
            if let Some(stream_state) = state.streams.get_mut(&self.id) {
                stream_state.send_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
