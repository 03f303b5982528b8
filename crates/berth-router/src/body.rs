//! Body types of the data path: the client's request body as either server reads it
//! (hyper's for HTTP/1.1, `http2`'s for HTTP/2), the request body sent to a
//! process (recoverable while unsent, so a refused connection can fail over) and the
//! response body sent to the client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::Limits;

/// The error of the data path's bodies: whatever the side it came from failed with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body: from hyper's HTTP/1.1 server, or from a stream of an
/// HTTP/2 connection (`http2`).
pub(crate) enum ClientBody {
    Hyper(Incoming),
    H2(crate::http2::RequestBody),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ClientBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ClientBody::H2(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::H2(body) => body.size_hint(),
        }
    }
}

/// The request body forwarded to a process.
///
/// When a later attempt may still need it, the body carries a `giveback` sender: if the
/// body is dropped before it was ever polled (the connection to the process could not be
/// made, so nothing was sent), it hands the client's body back for the next attempt.
pub(crate) struct ReqBody {
    inner: Option<ClientBody>,
    giveback: Option<oneshot::Sender<ClientBody>>,
    /// Most bytes allowed through; a chunked body has no length to check up
    /// front, so the limit is enforced while it streams.
    limit: Option<u64>,
    sent: u64,
    /// Longest wait for the client's next part of the body.
    stall_after: Duration,
    /// Runs while the body waits for the client; made at the first wait.
    stall: Option<Pin<Box<Sleep>>>,
}

/// A streamed request body went past the router's `--max-body`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the router's limit of {0} bytes")]
pub(crate) struct BodyTooLarge(pub u64);

/// The client sent no part of a streamed request body for the router's
/// `Limits::body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of the request body for {0:?}")]
pub(crate) struct BodyStalled(pub Duration);

/// `error`, or the first error it was caused by, that is an `E`.
pub(crate) fn caused_by<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

impl ReqBody {
    /// A body with no data (most GETs): trivially replayable.
    pub(crate) fn empty() -> Self {
        ReqBody {
            inner: None,
            giveback: None,
            limit: None,
            sent: 0,
            stall_after: Duration::MAX,
            stall: None,
        }
    }

    /// Streams the client's body; it is lost if this attempt fails.
    pub(crate) fn stream(body: ClientBody, limits: &Limits) -> Self {
        ReqBody {
            inner: Some(body),
            giveback: None,
            limit: limits.max_body,
            sent: 0,
            stall_after: limits.body_timeout,
            stall: None,
        }
    }

    /// Streams the client's body, or hands it back through the receiver if it is dropped
    /// before the first poll.
    pub(crate) fn recoverable(
        body: ClientBody,
        limits: &Limits,
    ) -> (Self, oneshot::Receiver<ClientBody>) {
        let (tx, rx) = oneshot::channel();
        let mut body = ReqBody::stream(body, limits);
        body.giveback = Some(tx);
        (body, rx)
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Once polled, data may have left: this body can no longer be replayed.
        this.giveback = None;
        let Some(body) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                let after = this.stall_after;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if stall.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(after)))));
                }
                return Poll::Pending;
            }
        };
        if let (Some(stall), Some(deadline)) = (
            &mut this.stall,
            Instant::now().checked_add(this.stall_after),
        ) {
            stall.as_mut().reset(deadline);
        }
        if let (Some(limit), Some(data)) = (this.limit, frame.data_ref()) {
            this.sent = this.sent.saturating_add(data.len() as u64);
            if this.sent > limit {
                this.inner = None;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(body) => body.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ReqBody {
    fn drop(&mut self) {
        if let (Some(tx), Some(body)) = (self.giveback.take(), self.inner.take()) {
            let _ = tx.send(body);
        }
    }
}

/// The response body sent to the client: a process's body streamed through, or a short
/// message of berth's own.
pub(crate) enum ResBody {
    /// A process's body; it counts as one of the process's in-flight requests until it
    /// is dropped (fully sent or the client went away), so draining waits for it.
    Counted(Incoming, #[allow(dead_code)] crate::routing::Inflight),
    /// A process's body read straight from its connection (`direct`), counted the same.
    Process(
        crate::backend::BodyReader,
        #[allow(dead_code)] crate::routing::Inflight,
    ),
    Full(Option<Bytes>),
}

impl ResBody {
    pub(crate) fn empty() -> Self {
        ResBody::Full(None)
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResBody::Counted(body, _) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResBody::Process(body, _) => body
                .poll_data(cx)
                .map(|data| data.map(|d| d.map(Frame::data).map_err(Into::into))),
            ResBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Counted(body, _) => body.is_end_stream(),
            ResBody::Process(body, _) => body.is_end(),
            ResBody::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Counted(body, _) => body.size_hint(),
            ResBody::Process(body, _) => match body.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            ResBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
