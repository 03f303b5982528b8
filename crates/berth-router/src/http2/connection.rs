//! One client's HTTP/2 connection as its task sees it: the socket, reading and checking
//! the client's frames (RFC 9113), decoding request heads into requests, and writing
//! what the streams left in the shared output.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::{AbortHandle, AbortRegistration};
use http::header::{COOKIE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::frame::{self, Head, Reason};
use super::hpack::{self, Name};
use super::respond::Responder;
use super::stream::{self, RequestBody, SharedRef, StreamState};
use crate::headers;

/// Most streams open at once; more are refused (the client retries them).
pub(crate) const MAX_CONCURRENT_STREAMS: usize = 200;
/// Most streams the client may reset while they run, beyond those that finished: a
/// client that opens and cancels streams in a loop (the "rapid reset" attack) makes
/// the router start requests it never finishes.
const MAX_RESETS_IN_FLIGHT: usize = 1024;
/// How much room the router makes to read from the socket.
const READ_CHUNK: usize = 16 * 1024;
/// Below this much room left, the read buffer is grown first.
const MIN_READ_ROOM: usize = 2 * 1024;

/// What the connection's task is asked to do next.
// Unboxed: one is made per request, `Closed` once per connection.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Event {
    /// A new stream's request, the means to answer it, and its cancellation (the
    /// client reset it).
    Request(Request<RequestBody>, Responder, AbortRegistration),
    /// The connection is over.
    Closed,
}

/// A connection error: the client is sent GOAWAY with this reason, then the connection
/// closes.
struct ConnError(Reason, &'static str);

/// Where a graceful close is.
#[derive(Clone, Copy)]
enum GoingAway {
    /// GOAWAY that refuses nothing, and a PING, were sent.
    Announced,
    /// The final GOAWAY, naming the last stream the client had opened, was sent:
    /// streams it opens after are ignored.
    Final,
}

const MAX_STREAM_ID: u32 = (1 << 31) - 1;
/// The payload of the PING sent with the first GOAWAY.
const GOAWAY_PING: &[u8; 8] = b"berth-go";

/// A header block being received over HEADERS and CONTINUATION frames.
struct PartialBlock {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

pub(crate) struct Connection<IO> {
    io: IO,
    pub(crate) shared: SharedRef,
    read_buf: BytesMut,
    writing: BytesMut,
    written: usize,
    needs_flush: bool,
    decoder: hpack::Decoder,
    max_header_list_size: usize,
    preface_seen: bool,
    settings_seen: bool,
    partial: Option<PartialBlock>,
    /// The highest stream the client opened.
    last_stream: u32,
    going_away: Option<GoingAway>,
    /// The client sent GOAWAY: it opens no more streams.
    peer_gone: bool,
    read_closed: bool,
    /// A connection error was sent: close once it is written.
    failed: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    pub(crate) fn new(io: IO, shared: SharedRef, max_header_list_size: u32) -> Self {
        {
            let mut state = stream::lock(&shared);
            frame::put_settings(
                &mut state.out,
                &[
                    (
                        frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                        MAX_CONCURRENT_STREAMS as u32,
                    ),
                    (
                        frame::SETTINGS_INITIAL_WINDOW_SIZE,
                        stream::RECV_WINDOW as u32,
                    ),
                    (frame::SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list_size),
                ],
            );
            let raise = stream::RECV_WINDOW - frame::DEFAULT_WINDOW;
            frame::put_window_update(&mut state.out, 0, raise as u32);
        }
        Connection {
            io,
            shared,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            writing: BytesMut::new(),
            written: 0,
            needs_flush: false,
            decoder: hpack::Decoder::new(),
            max_header_list_size: max_header_list_size as usize,
            preface_seen: false,
            settings_seen: false,
            partial: None,
            last_stream: 0,
            going_away: None,
            peer_gone: false,
            read_closed: false,
            failed: false,
        }
    }

    /// The client's preface and first SETTINGS arrived.
    pub(crate) fn started(&self) -> bool {
        self.settings_seen
    }

    /// Sends GOAWAY in the two steps RFC 9113 (6.8) suggests: first one that refuses
    /// no stream, with a PING; once the PING comes back, every stream the client sent
    /// before it has arrived, and the final GOAWAY names the last one. Those finish;
    /// the client opens new ones on a new connection.
    pub(crate) fn go_away(&mut self) {
        if self.going_away.is_none() {
            self.going_away = Some(GoingAway::Announced);
            let mut shared = stream::lock(&self.shared);
            frame::put_goaway(&mut shared.out, MAX_STREAM_ID, Reason::NO_ERROR);
            frame::put_head(&mut shared.out, 8, frame::PING, 0, 0);
            shared.out.extend_from_slice(GOAWAY_PING);
        }
    }

    fn final_goaway(&mut self) {
        self.going_away = Some(GoingAway::Final);
        let mut shared = stream::lock(&self.shared);
        frame::put_goaway(&mut shared.out, self.last_stream, Reason::NO_ERROR);
    }

    /// Reads and handles the client's frames and writes the output, until a new
    /// request arrives or the connection is over. `idle`: no stream is running.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>, idle: bool) -> Poll<Event> {
        loop {
            if self.poll_write(cx).is_err() {
                return Poll::Ready(Event::Closed);
            }
            if self.failed || self.read_closed {
                // Whatever was left to say is said (or the client is gone).
                if self.writing.is_empty() || self.read_closed {
                    return Poll::Ready(Event::Closed);
                }
                return Poll::Pending;
            }
            if idle
                && (matches!(self.going_away, Some(GoingAway::Final)) || self.peer_gone)
                && self.writing.is_empty()
                && stream::lock(&self.shared).streams.is_empty()
            {
                return Poll::Ready(Event::Closed);
            }
            match self.next_frame() {
                Ok(Some(event)) => return Poll::Ready(event),
                Ok(None) => {}
                Err(ConnError(reason, why)) => {
                    tracing::debug!("HTTP/2 client connection: {reason}: {why}");
                    self.failed = true;
                    let mut shared = stream::lock(&self.shared);
                    frame::put_goaway(&mut shared.out, self.last_stream, reason);
                    continue;
                }
            }
            if self.read_buf_has_frame() {
                continue;
            }
            // Read more only while the output keeps up: a client that does not read
            // its responses is not sent more work.
            {
                let mut shared = stream::lock(&self.shared);
                if shared.out.len() >= stream::HIGH_WATER {
                    register(&mut shared.conn_waker, cx);
                    return Poll::Pending;
                }
            }
            // Header values and request data keep parts of the buffer alive, so a
            // reserve would often mean a new buffer: only when little room is left.
            if self.read_buf.capacity() - self.read_buf.len() < MIN_READ_ROOM {
                self.read_buf.reserve(READ_CHUNK);
            }
            let read = pin!(self.io.read_buf(&mut self.read_buf)).poll(cx);
            match read {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.read_closed = true;
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => {
                    let mut shared = stream::lock(&self.shared);
                    register(&mut shared.conn_waker, cx);
                    // Go round again only to write what the frames just read added;
                    // a write already waiting on the socket is woken by it.
                    if shared.out.is_empty() || self.written < self.writing.len() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Writes the output: what is being written, then what the streams added since.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.written == self.writing.len() {
                self.writing.clear();
                self.written = 0;
                let mut shared = stream::lock(&self.shared);
                if shared.out.is_empty() {
                    break;
                }
                std::mem::swap(&mut shared.out, &mut self.writing);
                for waker in shared.blocked.drain(..) {
                    waker.wake();
                }
            }
            match std::pin::Pin::new(&mut self.io).poll_write(cx, &self.writing[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.needs_flush = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.needs_flush {
            match std::pin::Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Closes the connection's write side after everything was written (TLS sends its
    /// close_notify).
    pub(crate) async fn shut_down(&mut self) {
        let _ = futures_util::future::poll_fn(|cx| {
            if self.poll_write(cx).is_err() {
                return Poll::Ready(());
            }
            if self.written < self.writing.len() || self.needs_flush {
                return Poll::Pending;
            }
            std::pin::Pin::new(&mut self.io)
                .poll_shutdown(cx)
                .map(|_| ())
        })
        .await;
    }

    fn read_buf_has_frame(&self) -> bool {
        if !self.preface_seen {
            return self.read_buf.len() >= frame::PREFACE.len();
        }
        self.read_buf.len() >= frame::HEAD_LEN
            && self.read_buf.len() >= frame::HEAD_LEN + Head::parse(&self.read_buf).len
    }

    /// Handles the next whole frame in the read buffer, if there is one.
    fn next_frame(&mut self) -> Result<Option<Event>, ConnError> {
        if !self.preface_seen {
            let n = frame::PREFACE.len().min(self.read_buf.len());
            if self.read_buf[..n] != frame::PREFACE[..n] {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "not the HTTP/2 preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(None);
            }
            self.read_buf.advance(n);
            self.preface_seen = true;
        }
        if self.read_buf.len() < frame::HEAD_LEN {
            return Ok(None);
        }
        let head = Head::parse(&self.read_buf);
        if head.len > frame::DEFAULT_MAX_FRAME {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "frame larger than allowed",
            ));
        }
        if self.read_buf.len() < frame::HEAD_LEN + head.len {
            return Ok(None);
        }
        let mut whole = self.read_buf.split_to(frame::HEAD_LEN + head.len).freeze();
        whole.advance(frame::HEAD_LEN);
        if !self.settings_seen && (head.kind != frame::SETTINGS || head.has(frame::ACK)) {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "the first frame is not SETTINGS",
            ));
        }
        if let Some(partial) = &self.partial
            && (head.kind != frame::CONTINUATION || head.stream != partial.stream)
        {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "header block interrupted",
            ));
        }
        match head.kind {
            frame::DATA => self.on_data(head, whole).map(|()| None),
            frame::HEADERS => self.on_headers(head, whole),
            frame::CONTINUATION => self.on_continuation(head, whole),
            frame::PRIORITY => self.on_priority(head, &whole).map(|()| None),
            frame::RST_STREAM => self.on_rst_stream(head, &whole).map(|()| None),
            frame::SETTINGS => self.on_settings(head, &whole).map(|()| None),
            frame::PING => self.on_ping(head, &whole).map(|()| None),
            frame::GOAWAY => {
                if head.stream != 0 {
                    return Err(ConnError(Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if head.len < 8 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR, "short GOAWAY"));
                }
                self.peer_gone = true;
                Ok(None)
            }
            frame::WINDOW_UPDATE => self.on_window_update(head, &whole).map(|()| None),
            frame::PUSH_PROMISE => Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "a client sent PUSH_PROMISE",
            )),
            // Unknown frame types are ignored (RFC 9113, 4.1).
            _ => Ok(None),
        }
    }

    fn idle_stream(&self, id: u32) -> bool {
        id > self.last_stream
    }

    fn on_data(&mut self, head: Head, mut payload: Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        if self.idle_stream(head.stream) {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
        }
        let flow = head.len;
        let mut shared = stream::lock(&self.shared);
        shared.recv_window -= flow as i64;
        if shared.recv_window < 0 {
            return Err(ConnError(
                Reason::FLOW_CONTROL_ERROR,
                "DATA past the connection's window",
            ));
        }
        let id = head.stream;
        let Some(state) = shared.streams.get_mut(&id) else {
            // A stream the router reset or answered: counted, then dropped.
            shared.release(None, flow);
            return Ok(());
        };
        if !state.recv_open {
            shared.release(None, flow);
            shared.reset(id, Reason::STREAM_CLOSED);
            return Ok(());
        }
        state.recv_window -= flow as i64;
        if state.recv_window < 0 {
            shared.release(None, flow);
            shared.reset(id, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        if let Err(reason) = frame::unpad(&head, &mut payload) {
            shared.release(None, flow);
            shared.reset(id, reason);
            return Ok(());
        }
        let padding = flow - payload.len();
        state.received += payload.len() as u64;
        let end = head.has(frame::END_STREAM);
        let wrong_length = state
            .length
            .is_some_and(|n| state.received > n || (end && state.received != n));
        if wrong_length {
            shared.release(None, flow);
            shared.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let discard = state.body_gone;
        let data_len = payload.len();
        if !discard && !payload.is_empty() {
            state.recv.push_back(payload);
        }
        if end {
            state.recv_open = false;
        }
        state.wake_body();
        shared.release(Some(id), padding);
        if discard {
            shared.release(None, data_len);
        }
        Ok(())
    }

    fn on_headers(&mut self, head: Head, mut payload: Bytes) -> Result<Option<Event>, ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
        }
        frame::unpad(&head, &mut payload).map_err(|r| ConnError(r, "HEADERS padding"))?;
        if head.has(frame::PRIORITY_FLAG) {
            if payload.len() < 5 {
                return Err(ConnError(
                    Reason::FRAME_SIZE_ERROR,
                    "short HEADERS priority",
                ));
            }
            payload.advance(5);
        }
        let end_stream = head.has(frame::END_STREAM);
        if head.has(frame::END_HEADERS) {
            return self.on_header_block(head.stream, end_stream, payload);
        }
        self.partial = Some(PartialBlock {
            stream: head.stream,
            end_stream,
            block: BytesMut::from(&payload[..]),
        });
        Ok(None)
    }

    fn on_continuation(&mut self, head: Head, payload: Bytes) -> Result<Option<Event>, ConnError> {
        let Some(partial) = &mut self.partial else {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS",
            ));
        };
        partial.block.extend_from_slice(&payload);
        // A header block may be somewhat larger than the list it holds; much larger is
        // a client trying to make the router buffer without end.
        if partial.block.len() > 4 * self.max_header_list_size + 64 * 1024 {
            return Err(ConnError(
                Reason::ENHANCE_YOUR_CALM,
                "header block too large",
            ));
        }
        if !head.has(frame::END_HEADERS) {
            return Ok(None);
        }
        let Some(partial) = self.partial.take() else {
            return Ok(None);
        };
        self.on_header_block(partial.stream, partial.end_stream, partial.block.freeze())
    }

    fn on_header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: Bytes,
    ) -> Result<Option<Event>, ConnError> {
        let mut fields = Fields::default();
        self.decoder
            .decode(&block, |name, name_len, value| {
                fields.add(name, name_len, value)
            })
            .map_err(|_| ConnError(Reason::COMPRESSION_ERROR, "invalid header block"))?;
        if !self.idle_stream(id) {
            return self.on_trailers(id, end_stream, fields);
        }
        if id.is_multiple_of(2) {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "a client opened an even stream",
            ));
        }
        self.last_stream = id;
        if matches!(self.going_away, Some(GoingAway::Final)) || self.peer_gone {
            // Past GOAWAY: ignored, the client sends it again on a new connection.
            return Ok(None);
        }
        let mut shared = stream::lock(&self.shared);
        if shared.streams.len() >= MAX_CONCURRENT_STREAMS {
            frame::put_rst_stream(&mut shared.out, id, Reason::REFUSED_STREAM);
            return Ok(None);
        }
        if fields.size > self.max_header_list_size {
            // As hyper's server: answered, not reset, so the client sees why.
            let max_frame = shared.peer_max_frame;
            frame::put_headers(&mut shared.out, id, true, max_frame, |out| {
                hpack::encode_status(out, http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            });
            if !end_stream {
                frame::put_rst_stream(&mut shared.out, id, Reason::NO_ERROR);
            }
            return Ok(None);
        }
        let req = match fields.into_request() {
            Ok(req) => req,
            Err(why) => {
                tracing::debug!("HTTP/2 stream {id}: malformed request: {why}");
                frame::put_rst_stream(&mut shared.out, id, Reason::PROTOCOL_ERROR);
                return Ok(None);
            }
        };
        let length = headers::content_length(req.headers());
        if end_stream && length.is_some_and(|n| n != 0) {
            frame::put_rst_stream(&mut shared.out, id, Reason::PROTOCOL_ERROR);
            return Ok(None);
        }
        let (abort, registration) = AbortHandle::new_pair();
        let send_window = shared.peer_initial_window;
        shared.streams.insert(
            id,
            StreamState::new(!end_stream, length, send_window, abort),
        );
        drop(shared);
        let length = if end_stream { Some(0) } else { length };
        let body = RequestBody::new(self.shared.clone(), id, length, end_stream);
        let responder = Responder::new(self.shared.clone(), id);
        Ok(Some(Event::Request(
            req.map(|()| body),
            responder,
            registration,
        )))
    }

    fn on_trailers(
        &mut self,
        id: u32,
        end_stream: bool,
        fields: Fields,
    ) -> Result<Option<Event>, ConnError> {
        let mut shared = stream::lock(&self.shared);
        let Some(state) = shared.streams.get_mut(&id) else {
            // A stream already closed: its block was decoded for the table's sake.
            return Ok(None);
        };
        if !state.recv_open {
            shared.reset(id, Reason::STREAM_CLOSED);
            return Ok(None);
        }
        let wrong_length = state.length.is_some_and(|n| state.received != n);
        if !end_stream || fields.pseudo_seen || fields.malformed.is_some() || wrong_length {
            shared.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(None);
        }
        state.trailers = Some(fields.headers);
        state.recv_open = false;
        state.wake_body();
        Ok(None)
    }

    fn on_priority(&mut self, head: Head, _payload: &Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"));
        }
        if head.len != 5 {
            let mut shared = stream::lock(&self.shared);
            shared.reset(head.stream, Reason::FRAME_SIZE_ERROR);
        }
        Ok(())
    }

    fn on_rst_stream(&mut self, head: Head, payload: &Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
        }
        if head.len != 4 {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "RST_STREAM of the wrong size",
            ));
        }
        if self.idle_stream(head.stream) {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        let reason = Reason(u32::from_be_bytes([
            payload[0], payload[1], payload[2], payload[3],
        ]));
        let mut shared = stream::lock(&self.shared);
        if shared.streams.contains_key(&head.stream) {
            tracing::debug!(
                "HTTP/2 stream {} reset by the client: {reason}",
                head.stream
            );
            shared.forget(head.stream);
            shared.resets_in_flight += 1;
            if shared.resets_in_flight > MAX_RESETS_IN_FLIGHT {
                return Err(ConnError(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many streams reset",
                ));
            }
        }
        Ok(())
    }

    fn on_settings(&mut self, head: Head, payload: &Bytes) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if head.has(frame::ACK) {
            if head.len != 0 {
                return Err(ConnError(
                    Reason::FRAME_SIZE_ERROR,
                    "SETTINGS ACK with a payload",
                ));
            }
            return Ok(());
        }
        if !head.len.is_multiple_of(6) {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS of the wrong size",
            ));
        }
        self.settings_seen = true;
        let mut shared = stream::lock(&self.shared);
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                frame::SETTINGS_ENABLE_PUSH if value > 1 => {
                    return Err(ConnError(Reason::PROTOCOL_ERROR, "ENABLE_PUSH above 1"));
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError(
                            Reason::FLOW_CONTROL_ERROR,
                            "initial window too large",
                        ));
                    }
                    let delta = value - shared.peer_initial_window;
                    shared.peer_initial_window = value;
                    for state in shared.streams.values_mut() {
                        state.send_window += delta;
                        if state.send_window > frame::MAX_WINDOW {
                            return Err(ConnError(Reason::FLOW_CONTROL_ERROR, "window overflow"));
                        }
                        state.wake_sender();
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnError(
                            Reason::PROTOCOL_ERROR,
                            "MAX_FRAME_SIZE out of range",
                        ));
                    }
                    shared.peer_max_frame = value as usize;
                }
                // The router's responses use no dynamic table, and it never pushes:
                // HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS and the rest do not bind it.
                _ => {}
            }
        }
        frame::put_head(&mut shared.out, 0, frame::SETTINGS, frame::ACK, 0);
        Ok(())
    }

    fn on_ping(&mut self, head: Head, payload: &Bytes) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR, "PING on a stream"));
        }
        if head.len != 8 {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "PING of the wrong size",
            ));
        }
        if !head.has(frame::ACK) {
            let mut shared = stream::lock(&self.shared);
            frame::put_head(&mut shared.out, 8, frame::PING, frame::ACK, 0);
            shared.out.extend_from_slice(payload);
        } else if &payload[..] == GOAWAY_PING
            && matches!(self.going_away, Some(GoingAway::Announced))
        {
            self.final_goaway();
        }
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &Bytes) -> Result<(), ConnError> {
        if head.len != 4 {
            return Err(ConnError(
                Reason::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE of the wrong size",
            ));
        }
        let increment = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        let mut shared = stream::lock(&self.shared);
        if head.stream == 0 {
            if increment == 0 {
                return Err(ConnError(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            shared.send_window += increment;
            if shared.send_window > frame::MAX_WINDOW {
                return Err(ConnError(
                    Reason::FLOW_CONTROL_ERROR,
                    "connection window overflow",
                ));
            }
            for state in shared.streams.values_mut() {
                state.wake_sender();
            }
            return Ok(());
        }
        if self.idle_stream(head.stream) {
            return Err(ConnError(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(state) = shared.streams.get_mut(&head.stream) else {
            return Ok(());
        };
        if increment == 0 {
            shared.reset(head.stream, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        state.send_window += increment;
        if state.send_window > frame::MAX_WINDOW {
            shared.reset(head.stream, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        state.wake_sender();
        Ok(())
    }
}

impl<IO> Drop for Connection<IO> {
    /// Request bodies still read elsewhere (hyper's client) learn that their
    /// streams are gone, rather than wait for data that will never come.
    fn drop(&mut self) {
        let mut shared = stream::lock(&self.shared);
        for (_, mut state) in shared.streams.drain() {
            state.wake_body();
        }
    }
}

fn register(slot: &mut Option<std::task::Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) => waker.clone_from(cx.waker()),
        none => *none = Some(cx.waker().clone()),
    }
}

/// A request head's fields as they are decoded, checked as HTTP/2 requires
/// (RFC 9113, 8.2 and 8.3).
#[derive(Default)]
struct Fields {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    pseudo_seen: bool,
    regular_seen: bool,
    /// The header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it.
    size: usize,
    /// `Cookie` fields seen (joined into one if several).
    cookies: usize,
    malformed: Option<&'static str>,
}

impl Fields {
    fn add(&mut self, name: Name, name_len: usize, value: Bytes) {
        self.size += name_len + value.len() + 32;
        if self.malformed.is_some() || self.size > 1 << 24 {
            return;
        }
        let pseudo = match name {
            Name::Method => &mut self.method,
            Name::Scheme => &mut self.scheme,
            Name::Authority => &mut self.authority,
            Name::Path => &mut self.path,
            Name::OtherPseudo => return self.malformed = Some("an unknown pseudo-header"),
            Name::Invalid => return self.malformed = Some("an invalid header name"),
            Name::Header(name) => {
                self.regular_seen = true;
                if headers::is_connection_specific(&name) {
                    return self.malformed = Some("a connection-specific header");
                }
                if name == http::header::TE && value != "trailers" {
                    return self.malformed = Some("TE other than trailers");
                }
                if name == COOKIE {
                    self.cookies += 1;
                }
                match HeaderValue::from_maybe_shared(value) {
                    Ok(value) => {
                        self.headers.append(name, value);
                    }
                    Err(_) => self.malformed = Some("an invalid header value"),
                }
                return;
            }
        };
        self.pseudo_seen = true;
        if self.regular_seen {
            self.malformed = Some("a pseudo-header after a header");
        } else if pseudo.is_some() {
            self.malformed = Some("a repeated pseudo-header");
        } else {
            *pseudo = Some(value);
        }
    }

    fn into_request(mut self) -> Result<Request<()>, &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let method = Method::from_bytes(&self.method.ok_or("no :method")?)
            .map_err(|_| "an invalid :method")?;
        let mut parts = http::uri::Parts::default();
        if method == Method::CONNECT {
            if self.scheme.is_some() || self.path.is_some() {
                return Err(":scheme or :path in a CONNECT request");
            }
            parts.authority = Some(
                Authority::from_maybe_shared(self.authority.ok_or("CONNECT without :authority")?)
                    .map_err(|_| "an invalid :authority")?,
            );
        } else {
            let scheme = self.scheme.ok_or("no :scheme")?;
            let path = self.path.ok_or("no :path")?;
            if path.is_empty() {
                return Err("an empty :path");
            }
            parts.path_and_query =
                Some(PathAndQuery::from_maybe_shared(path).map_err(|_| "an invalid :path")?);
            Scheme::try_from(&scheme[..]).map_err(|_| "an invalid :scheme")?;
            if let Some(authority) = self.authority {
                // The request goes on as HTTP/1.1 would carry it: `:authority` becomes
                // `Host` (replacing one that differs, as an absolute URI would), the
                // target stays in origin form.
                let checked = Authority::from_maybe_shared(authority.clone())
                    .map_err(|_| "an invalid :authority")?;
                if checked.as_str().contains('@') {
                    return Err("userinfo in :authority");
                }
                let host = HeaderValue::from_maybe_shared(authority)
                    .map_err(|_| "an invalid :authority")?;
                self.headers.insert(HOST, host);
            }
        }
        if self.cookies > 1 {
            join_cookies(&mut self.headers);
        }
        let uri = Uri::from_parts(parts).map_err(|_| "an invalid request target")?;
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = self.headers;
        Ok(req)
    }
}

/// Joins the `Cookie` fields into one with `; `, as RFC 9113 (8.2.3) requires before a
/// request leaves HTTP/2: browsers send each cookie as a field of its own there, and
/// HTTP/1.1 servers expect one `Cookie` header.
fn join_cookies(headers: &mut HeaderMap) {
    let mut joined = Vec::new();
    for value in headers.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    // Made of valid values and "; ": valid too.
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::mpsc;

    const LIMIT: u32 = 8 * 1024;

    /// A connection served in a task of its own; its requests come out of the receiver
    /// and are never answered (unless a test answers them through the shared state).
    fn serve() -> (
        DuplexStream,
        mpsc::UnboundedReceiver<(u32, Request<RequestBody>)>,
        SharedRef,
    ) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let shared = SharedRef::default();
        let mut conn = Connection::new(server, shared.clone(), LIMIT);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match futures_util::future::poll_fn(|cx| conn.poll_io(cx, false)).await {
                    Event::Request(req, responder, _registration) => {
                        let _ = tx.send((responder.id(), req));
                    }
                    Event::Closed => return,
                }
            }
        });
        (client, rx, shared)
    }

    struct Client {
        io: DuplexStream,
        buf: BytesMut,
    }

    impl Client {
        async fn start(io: DuplexStream, settings: &[(u16, u32)]) -> Client {
            let mut client = Client {
                io,
                buf: BytesMut::new(),
            };
            let mut out = BytesMut::from(frame::PREFACE);
            frame::put_settings(&mut out, settings);
            client.send(&out).await;
            client
        }

        /// Opens a request with the first part of its body (the stream stays open).
        async fn send_head_and_data(&mut self, stream: u32, data: &[u8]) {
            let mut out = headers_frame(stream, &request_block(&[]), frame::END_HEADERS);
            frame::put_data(&mut out, stream, data, false);
            self.send(&out).await;
        }

        /// Sends a request head with no body (HEADERS ending the stream).
        async fn send_head_only(&mut self, stream: u32, block: &[u8]) {
            self.send(&headers_frame(
                stream,
                block,
                frame::END_HEADERS | frame::END_STREAM,
            ))
            .await;
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.io.write_all(bytes).await.unwrap();
        }

        /// The next frame from the server, or None once it closed the connection.
        async fn frame(&mut self) -> Option<(Head, Bytes)> {
            loop {
                if self.buf.len() >= frame::HEAD_LEN {
                    let head = Head::parse(&self.buf);
                    if self.buf.len() >= frame::HEAD_LEN + head.len {
                        let mut whole = self.buf.split_to(frame::HEAD_LEN + head.len).freeze();
                        whole.advance(frame::HEAD_LEN);
                        return Some((head, whole));
                    }
                }
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    self.io.read_buf(&mut self.buf),
                )
                .await
                .expect("the server answers within 5 s");
                if read.unwrap_or(0) == 0 {
                    return None;
                }
            }
        }

        /// The next frame of a kind, skipping the others.
        async fn frame_of(&mut self, kind: u8) -> Option<(Head, Bytes)> {
            loop {
                let (head, payload) = self.frame().await?;
                if head.kind == kind {
                    return Some((head, payload));
                }
            }
        }

        /// The reason of the GOAWAY that ends the connection.
        async fn goaway(&mut self) -> Reason {
            let (_, payload) = self.frame_of(frame::GOAWAY).await.expect("GOAWAY");
            Reason(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]))
        }

        async fn rst_stream(&mut self) -> (u32, Reason) {
            let (head, payload) = self.frame_of(frame::RST_STREAM).await.expect("RST_STREAM");
            (
                head.stream,
                Reason(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ])),
            )
        }
    }

    fn request_block(extra: &[(&str, &str)]) -> BytesMut {
        let mut block = BytesMut::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "shop.localhost"),
            (":path", "/cart?x=1"),
        ]
        .iter()
        .chain(extra)
        {
            hpack::encode_literal(&mut block, name.as_bytes(), value.as_bytes());
        }
        block
    }

    fn headers_frame(stream: u32, block: &[u8], flags: u8) -> BytesMut {
        let mut out = BytesMut::new();
        frame::put_head(&mut out, block.len(), frame::HEADERS, flags, stream);
        out.extend_from_slice(block);
        out
    }

    /// A header block sent as HEADERS (with `flags`) up to `at`, the rest as
    /// CONTINUATION.
    fn headers_continued(stream: u32, block: &[u8], at: usize, flags: u8) -> BytesMut {
        let (first, rest) = block.split_at(at);
        let mut out = headers_frame(stream, first, flags);
        frame::put_head(
            &mut out,
            rest.len(),
            frame::CONTINUATION,
            frame::END_HEADERS,
            stream,
        );
        out.extend_from_slice(rest);
        out
    }

    #[tokio::test]
    async fn the_server_states_its_settings_and_answers_settings_and_ping() {
        let (io, _requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        let (head, payload) = client.frame().await.unwrap();
        assert_eq!((head.kind, head.flags), (frame::SETTINGS, 0));
        let settings: Vec<(u16, u32)> = payload
            .chunks(6)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                )
            })
            .collect();
        assert_eq!(
            settings,
            [
                (frame::SETTINGS_MAX_CONCURRENT_STREAMS, 200),
                (frame::SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),
                (frame::SETTINGS_MAX_HEADER_LIST_SIZE, LIMIT),
            ]
        );
        let (head, _) = client.frame().await.unwrap();
        assert_eq!((head.kind, head.stream), (frame::WINDOW_UPDATE, 0));
        let (head, _) = client.frame().await.unwrap();
        assert_eq!((head.kind, head.flags), (frame::SETTINGS, frame::ACK));
        let mut ping = BytesMut::new();
        frame::put_head(&mut ping, 8, frame::PING, 0, 0);
        ping.extend_from_slice(b"12345678");
        client.send(&ping).await;
        let (head, payload) = client.frame_of(frame::PING).await.unwrap();
        assert_eq!((head.flags, &payload[..]), (frame::ACK, &b"12345678"[..]));
    }

    #[tokio::test]
    async fn a_request_arrives_whole_over_headers_continuation_and_padded_data() {
        let (io, mut requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        let block = request_block(&[
            ("content-length", "11"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        let mut out = headers_continued(1, &block, 10, 0);
        frame::put_head(&mut out, 8, frame::DATA, frame::PADDED, 1);
        out.extend_from_slice(b"\x02hello\0\0");
        frame::put_data(&mut out, 1, b" world", true);
        client.send(&out).await;
        let (id, req) = requests.recv().await.unwrap();
        assert_eq!(id, 1);
        assert_eq!(req.method(), Method::POST);
        // As it goes on over HTTP/1.1: `:authority` as `Host`, the cookies in one field.
        assert_eq!(req.uri(), "/cart?x=1");
        assert_eq!(req.headers()["host"], "shop.localhost");
        assert_eq!(req.version(), Version::HTTP_2);
        let cookies: Vec<_> = req.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2"]);
        use http_body_util::BodyExt;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello world");
    }

    #[tokio::test]
    async fn malformed_requests_are_reset_and_the_connection_goes_on() {
        let (io, mut requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        let mut id = 1;
        for (why, block) in [
            ("uppercase name", request_block(&[("X-Up", "1")])),
            (
                "connection-specific",
                request_block(&[("connection", "keep-alive")]),
            ),
            (
                "transfer-encoding",
                request_block(&[("transfer-encoding", "chunked")]),
            ),
            ("te other than trailers", request_block(&[("te", "gzip")])),
            (
                "pseudo after header",
                request_block(&[("x-a", "1"), (":path", "/again")]),
            ),
            (
                "unknown pseudo",
                request_block(&[(":protocol", "websocket")]),
            ),
            (
                "value with a newline",
                request_block(&[("x-a", "1\r\nx-b: 2")]),
            ),
            (
                "body longer than its length",
                request_block(&[("content-length", "0")]),
            ),
        ] {
            let mut out = headers_frame(id, &block, frame::END_HEADERS);
            frame::put_data(&mut out, id, b"x", true);
            client.send(&out).await;
            assert_eq!(
                client.rst_stream().await,
                (id, Reason::PROTOCOL_ERROR),
                "{why}"
            );
            id += 2;
        }
        // Heads `request_block` cannot make: no `:path`, userinfo in `:authority`.
        let no_path: &[(&str, &str)] = &[(":method", "GET"), (":scheme", "https")];
        let userinfo: &[(&str, &str)] = &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "user@shop.localhost"),
            (":path", "/"),
        ];
        for (why, fields) in [("no :path", no_path), ("userinfo in :authority", userinfo)] {
            let mut block = BytesMut::new();
            for (name, value) in fields {
                hpack::encode_literal(&mut block, name.as_bytes(), value.as_bytes());
            }
            client.send_head_only(id, &block).await;
            assert_eq!(
                client.rst_stream().await,
                (id, Reason::PROTOCOL_ERROR),
                "{why}"
            );
            id += 2;
        }
        // A good request on the same connection still arrives.
        let block = request_block(&[("te", "trailers")]);
        client.send_head_only(id, &block).await;
        // (The one whose body outgrew its length arrived before its data.)
        let (got, req) = requests.recv().await.unwrap();
        assert_eq!(got, id - 6);
        drop(req);
        let (got, req) = requests.recv().await.unwrap();
        assert_eq!(got, id);
        assert_eq!(req.headers()["te"], "trailers");
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_answered_431() {
        let (io, _requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        let pad = "a".repeat(LIMIT as usize);
        let block = request_block(&[("x-pad", &pad)]);
        let out = headers_continued(1, &block, block.len() / 2, frame::END_STREAM);
        client.send(&out).await;
        let (head, payload) = client.frame_of(frame::HEADERS).await.unwrap();
        assert_eq!(head.stream, 1);
        assert!(head.has(frame::END_STREAM));
        let mut decoder = hpack::Decoder::new();
        let mut status = None;
        decoder
            .decode(&payload, |_, _, value| status = Some(value))
            .unwrap();
        assert_eq!(status.unwrap(), "431");
    }

    /// Each of these ends the connection with GOAWAY and the reason RFC 9113 gives.
    #[tokio::test]
    async fn protocol_violations_end_the_connection() {
        let block = request_block(&[]);
        let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
            (
                "even stream",
                headers_frame(2, &block, frame::END_HEADERS).to_vec(),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "CONTINUATION without HEADERS",
                {
                    let mut out = BytesMut::new();
                    frame::put_head(&mut out, 0, frame::CONTINUATION, frame::END_HEADERS, 1);
                    out.to_vec()
                },
                Reason::PROTOCOL_ERROR,
            ),
            (
                "frame above the largest size",
                {
                    let mut out = BytesMut::new();
                    frame::put_head(&mut out, 20_000, 0xfa, 0, 0);
                    out.extend_from_slice(&[0; 20_000]);
                    out.to_vec()
                },
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "connection window overflow",
                {
                    let mut out = BytesMut::new();
                    frame::put_window_update(&mut out, 0, 0x7fff_ffff);
                    out.to_vec()
                },
                Reason::FLOW_CONTROL_ERROR,
            ),
            (
                "DATA on an idle stream",
                {
                    let mut out = BytesMut::new();
                    frame::put_data(&mut out, 5, b"x", true);
                    out.to_vec()
                },
                Reason::PROTOCOL_ERROR,
            ),
            (
                "garbage header block",
                headers_frame(1, &[0x80], frame::END_HEADERS).to_vec(),
                Reason::COMPRESSION_ERROR,
            ),
            (
                "PUSH_PROMISE from a client",
                {
                    let mut out = BytesMut::new();
                    frame::put_head(&mut out, 4, frame::PUSH_PROMISE, frame::END_HEADERS, 1);
                    out.extend_from_slice(&[0, 0, 0, 2]);
                    out.to_vec()
                },
                Reason::PROTOCOL_ERROR,
            ),
        ];
        for (why, bytes, reason) in cases {
            let (io, _requests, _) = serve();
            let mut client = Client::start(io, &[]).await;
            client.send(&bytes).await;
            assert_eq!(client.goaway().await, reason, "{why}");
            assert!(client.frame().await.is_none(), "{why}: closed after GOAWAY");
        }
        // Not the HTTP/2 preface at all.
        let (mut io, _requests, _) = serve();
        io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut client = Client {
            io,
            buf: BytesMut::new(),
        };
        assert_eq!(client.goaway().await, Reason::PROTOCOL_ERROR);
    }

    #[tokio::test]
    async fn a_client_that_resets_streams_in_a_loop_is_sent_away() {
        let (io, mut requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        let block = request_block(&[]);
        let mut out = BytesMut::new();
        for i in 0..=MAX_RESETS_IN_FLIGHT as u32 {
            let id = 2 * i + 1;
            out.extend_from_slice(&headers_frame(id, &block, frame::END_HEADERS));
            frame::put_rst_stream(&mut out, id, Reason::CANCEL);
        }
        client.send(&out).await;
        assert_eq!(client.goaway().await, Reason::ENHANCE_YOUR_CALM);
        while requests.try_recv().is_ok() {}
    }

    #[tokio::test]
    async fn request_data_past_the_stream_window_resets_the_stream_only() {
        let (io, mut requests, shared) = serve();
        let mut client = Client::start(io, &[]).await;
        client
            .send(&headers_frame(1, &request_block(&[]), frame::END_HEADERS))
            .await;
        let (_, req) = requests.recv().await.unwrap();
        // Its body dropped unread: what arrives is given back to the connection's
        // window at once, never to the stream's. 1 MiB fits; one byte more does not.
        drop(req);
        let chunk = vec![0u8; frame::DEFAULT_MAX_FRAME];
        let mut out = BytesMut::new();
        for _ in 0..(stream::RECV_WINDOW as usize / chunk.len()) {
            frame::put_data(&mut out, 1, &chunk, false);
        }
        frame::put_data(&mut out, 1, b"x", false);
        client.send(&out).await;
        let reset = client.rst_stream().await;
        // The connection window (also 1 MiB) ran out on the same byte.
        assert!(reset == (1, Reason::FLOW_CONTROL_ERROR), "{reset:?}");
        assert!(stream::lock(&shared).streams.is_empty());
    }

    async fn next(conn: &mut Connection<DuplexStream>) -> Event {
        futures_util::future::poll_fn(|cx| conn.poll_io(cx, false)).await
    }

    /// Draining: a first GOAWAY refuses nothing; streams sent before the PING came
    /// back are served; the final GOAWAY names the last of them, and streams after it
    /// are ignored.
    #[tokio::test]
    async fn goaway_comes_in_two_steps_and_refuses_no_stream_the_client_sent_before() {
        let (client_io, server) = tokio::io::duplex(1 << 20);
        let shared = SharedRef::default();
        let mut conn = Connection::new(server, shared.clone(), LIMIT);
        let mut client = Client::start(client_io, &[]).await;
        let block = request_block(&[]);
        client.send_head_only(1, &block).await;
        assert!(matches!(next(&mut conn).await, Event::Request(_, r, _) if r.id() == 1));
        conn.go_away();
        // Polled until it has nothing more to do: GOAWAY and PING are written.
        let polled = tokio::time::timeout(std::time::Duration::from_millis(100), next(&mut conn));
        assert!(polled.await.is_err());
        let (_, payload) = client.frame_of(frame::GOAWAY).await.unwrap();
        assert_eq!(&payload[..4], &MAX_STREAM_ID.to_be_bytes());
        let (head, ping) = client.frame_of(frame::PING).await.unwrap();
        assert_eq!(head.flags, 0);
        // A stream the client sent before it saw GOAWAY is still served.
        client.send_head_only(3, &block).await;
        assert!(matches!(next(&mut conn).await, Event::Request(_, r, _) if r.id() == 3));
        let mut ack = BytesMut::new();
        frame::put_head(&mut ack, 8, frame::PING, frame::ACK, 0);
        ack.extend_from_slice(&ping);
        ack.extend_from_slice(&headers_frame(
            5,
            &block,
            frame::END_HEADERS | frame::END_STREAM,
        ));
        client.send(&ack).await;
        let serving = tokio::spawn(async move {
            let event = futures_util::future::poll_fn(|cx| conn.poll_io(cx, true)).await;
            (matches!(event, Event::Closed), conn)
        });
        let (_, payload) = client.frame_of(frame::GOAWAY).await.unwrap();
        assert_eq!(&payload[..4], &3u32.to_be_bytes());
        // Stream 5 came after: ignored. Once streams 1 and 3 are answered, it closes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!serving.is_finished());
        {
            let mut state = stream::lock(&shared);
            state.finish(1);
            state.finish(3);
            state.wake_conn();
        }
        let (closed, _conn) = serving.await.unwrap();
        assert!(closed);
    }

    /// A response sent whole while the client still sends its body (the process
    /// answered early) leaves the body to run to its end: the client is not reset,
    /// and the stream is forgotten once the body is done.
    #[tokio::test]
    async fn an_early_response_lets_the_request_body_finish() {
        let (io, mut requests, shared) = serve();
        let mut client = Client::start(io, &[]).await;
        client.send_head_and_data(1, b"abc").await;
        let (_, req) = requests.recv().await.unwrap();
        stream::lock(&shared).finish(1);
        assert!(stream::lock(&shared).streams.contains_key(&1));
        let mut out = BytesMut::new();
        frame::put_data(&mut out, 1, b"def", true);
        frame::put_head(&mut out, 8, frame::PING, 0, 0);
        out.extend_from_slice(b"after-it");
        client.send(&out).await;
        use http_body_util::BodyExt;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "abcdef");
        assert!(stream::lock(&shared).streams.is_empty());
        loop {
            let (head, _) = client.frame().await.unwrap();
            assert_ne!(head.kind, frame::RST_STREAM);
            if head.kind == frame::PING {
                break;
            }
        }
        // Dropped half-way instead, the body's stream is reset with NO_ERROR.
        client.send_head_and_data(3, b"abc").await;
        let (_, req) = requests.recv().await.unwrap();
        stream::lock(&shared).finish(3);
        drop(req);
        stream::lock(&shared).wake_conn();
        assert_eq!(client.rst_stream().await, (3, Reason::NO_ERROR));
    }

    /// A stream the client resets half-way through its body ends that body in an
    /// error, not as if it were whole: the process must not take it for a request.
    #[tokio::test]
    async fn a_reset_stream_fails_its_request_body() {
        let (io, mut requests, _) = serve();
        let mut client = Client::start(io, &[]).await;
        client.send_head_and_data(1, b"half").await;
        let mut out = BytesMut::new();
        frame::put_rst_stream(&mut out, 1, Reason::CANCEL);
        client.send(&out).await;
        let (_, req) = requests.recv().await.unwrap();
        use http_body_util::BodyExt;
        let mut body = req.into_body();
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "the body ended as if whole");
    }
}
