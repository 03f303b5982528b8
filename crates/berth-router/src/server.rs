//! The top of the data path: accept loops and one task per client connection. An
//! HTTP/1.1 connection, plain or TLS (ALPN `http/1.1` or none), starts on the fast path
//! (`relay`); if relay hands it back, the rest of it, bytes already read included, runs
//! on hyper (`proxy`). A TLS connection that chose `h2` is served by `multiplex` (on `http2`).
//! On shutdown every connection follows the server's [`Phase`] (idle ones close,
//! requests finish), bounded by the router's [`crate::Drain`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::body::{ClientBody, ResBody};
use crate::conn::{self, ConnCtx, HEADER_READ_TIMEOUT, Phase};
use crate::headers;
use crate::http2;
use crate::multiplex;
use crate::proxy;
use crate::relay::{self, Ended};
use crate::{Limits, Router};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a listener's connections are served; configured once per listener.
enum Protocol {
    /// HTTP/1.1: the fast path (`relay`) first, hyper from the first request it hands
    /// over.
    Plain(Arc<http1::Builder>),
    /// HTTPS: HTTP/1.1 as on a plain connection, HTTP/2 (ALPN `h2`) by `http2`.
    Tls(tokio_rustls::TlsAcceptor, Arc<TlsBuilders>),
}

/// The connection builders of an HTTPS listener.
struct TlsBuilders {
    http1: http1::Builder,
    http2: http2::Settings,
}

impl Router {
    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops accepting and
    /// lets in-flight requests finish (at most 10 s); upgraded connections (WebSocket)
    /// are closed when that time is over. Dropping the returned future closes every
    /// connection at once.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let http = self.http1_builder();
        self.serve_any(listener, Protocol::Plain(Arc::new(http)), shutdown)
            .await
    }

    /// hyper's HTTP/1.1 side, for the requests the fast path hands over.
    fn http1_builder(&self) -> http1::Builder {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            // A larger head gets 431 from hyper too (requests the fast path
            // hands over).
            .max_buf_size(self.limits.max_head.max(Limits::MIN_HEAD))
            // Small responses dominate: one flattened write beats writev's iovecs
            // (profiled: writev and its task switches were the top cost), and over
            // TLS one write is one record.
            .writev(false)
            .keep_alive(true);
        http
    }

    /// Serves HTTPS on `listener` (HTTP/2 or HTTP/1.1 by ALPN), like [`Router::serve`].
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let builders = TlsBuilders {
            http1: self.http1_builder(),
            http2: http2::Settings {
                max_header_list_size: u32::try_from(self.limits.max_head).unwrap_or(u32::MAX),
            },
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        self.serve_any(
            listener,
            Protocol::Tls(acceptor, Arc::new(builders)),
            shutdown,
        )
        .await
    }

    async fn serve_any(
        self: Arc<Self>,
        listener: TcpListener,
        protocol: Protocol,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        // Every connection task holds a sender; the drain is over when all are gone.
        let (alive_tx, mut alive_rx) = mpsc::channel::<Infallible>(1);

        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let ctx = ConnCtx {
                        router: self.clone(),
                        client_ip: headers::ip_header(peer.ip()),
                        phase: phase_rx.clone(),
                        https: matches!(protocol, Protocol::Tls(..)),
                        alive: alive_tx.clone(),
                    };
                    // One task type per protocol: a plain connection's task is not
                    // sized for a TLS session.
                    match &protocol {
                        Protocol::Plain(http) => {
                            tokio::spawn(serve_connection(
                                stream,
                                ctx,
                                http.clone(),
                                alive_tx.clone(),
                            ));
                        }
                        Protocol::Tls(acceptor, http) => {
                            tokio::spawn(serve_tls_connection(
                                stream,
                                acceptor.clone(),
                                http.clone(),
                                ctx,
                                alive_tx.clone(),
                            ));
                        }
                    }
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors or similar: wait for connections to close.
                    tracing::warn!("router cannot accept connections: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }

        drop(listener);
        phase_tx.send_replace(Phase::Draining);
        drop(alive_tx);
        let limit = self.drain().timeout;
        if tokio::time::timeout(limit, alive_rx.recv()).await.is_err() {
            tracing::info!("router: requests still running after {limit:?}; closing them");
        }
        phase_tx.send_replace(Phase::Stopped);
        Ok(())
    }
}

async fn serve_connection(
    stream: TcpStream,
    ctx: ConnCtx,
    http: Arc<http1::Builder>,
    _alive: mpsc::Sender<Infallible>,
) {
    let _open = OpenConnection::count(&ctx.router);
    set_nodelay(&stream);
    serve_http1(stream, ctx, &http).await;
}

/// HTTP/1.1 on a client connection, plain or TLS: the fast path, then hyper from the
/// first request the fast path hands over.
async fn serve_http1<S>(stream: S, ctx: ConnCtx, http: &http1::Builder)
where
    S: relay::ClientStream + Send + 'static,
{
    let mut phase = ctx.phase.clone();
    let relayed = tokio::select! {
        ended = relay::serve(&ctx, stream) => ended,
        _ = phase.wait_for(|p| *p == Phase::Stopped) => return,
    };
    let (stream, buffered) = match relayed {
        Ended::Closed => return,
        Ended::Handoff(stream, buffered) => (stream, buffered),
    };
    let io = Prefixed {
        prefix: buffered,
        io: stream,
    };
    let router = ctx.router.clone();
    let conn = http
        .serve_connection(TokioIo::new(io), hyper_service(ctx))
        .with_upgrades();
    drive(conn, phase, &router, |conn| conn.graceful_shutdown()).await;
}

async fn serve_tls_connection(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    http: Arc<TlsBuilders>,
    ctx: ConnCtx,
    _alive: mpsc::Sender<Infallible>,
) {
    let _open = OpenConnection::count(&ctx.router);
    set_nodelay(&stream);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    // RFC 9113, section 3.2: over TLS, HTTP/2 is chosen by ALPN only; a client that
    // chose nothing speaks HTTP/1.1.
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        multiplex::serve(stream, ctx, &http.http2).await;
    } else {
        serve_http1(stream, ctx, &http.http1).await;
    }
}

/// One open client connection, counted while it lives.
struct OpenConnection(Arc<Router>);

impl OpenConnection {
    fn count(router: &Arc<Router>) -> OpenConnection {
        router.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(router.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn set_nodelay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("set TCP_NODELAY: {e}");
    }
}

/// The hyper service of one client connection: every request goes to [`proxy::handle`].
fn hyper_service(
    ctx: ConnCtx,
) -> impl Service<
    Request<Incoming>,
    Response = Response<ResBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static,
> {
    let ctx = Arc::new(ctx);
    service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok(proxy::handle(req.map(ClientBody::Hyper), &ctx).await) }
    })
}

/// Runs hyper's HTTP/1.1 connection to its end, following the server's phase: once
/// the server drains and the drain's idle grace is over (HTTP/1.1 has no way to say
/// "no more requests" but closing, which races a client sending its next one), the
/// connection finishes the request in progress and closes; once it stops, the
/// connection is dropped.
async fn drive<C, E>(
    conn: C,
    mut phase: watch::Receiver<Phase>,
    router: &Router,
    graceful_shutdown: fn(Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let log = |res: Result<(), E>| {
        if let Err(e) = res {
            tracing::debug!("client connection: {e}");
        }
    };
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => return log(res),
        () = conn::idle_closing(&mut phase, router) => {}
    }
    if *phase.borrow() == Phase::Stopped {
        return;
    }
    graceful_shutdown(conn.as_mut());
    tokio::select! {
        res = conn => log(res),
        _ = phase.wait_for(|p| *p == Phase::Stopped) => {}
    }
}

/// A client connection whose first bytes were already read (by the fast path).
struct Prefixed<S> {
    prefix: BytesMut,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
