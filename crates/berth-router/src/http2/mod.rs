//! HTTP/2 from clients (RFC 9113; TLS with ALPN `h2`), berth's own layer: what
//! `multiplex` serves a connection with.
//!
//! - `frame`: the frames; `hpack`: header compression (a decoder keeping the
//!   client's dynamic table; responses encoded with the static table only);
//!   `connection`: the socket, the client's frames checked as the RFC asks, request
//!   heads made into requests, the two-step GOAWAY; `stream`: what a connection
//!   shares with its streams behind one mutex (the output, flow control both ways,
//!   the request bodies); `respond`: a stream's side of its response.
//!
//! Why not the `h2` crate (or hyper's server on it): the router's HTTP/2 cost per
//! request stayed above haproxy's, and the crate's share of it (its stream store,
//! and the locks and wakers between a connection and its stream handles, built for
//! streams in tasks of their own) was the largest left. Here a stream writes its
//! response straight into the connection's output, in the same poll that got it
//! from the process (BENCHMARKS.md, "HTTP/2 on berth's own frames").

mod connection;
mod frame;
mod hpack;
mod respond;
mod stream;

pub(crate) use self::connection::{Connection, Event};
pub(crate) use self::respond::Responder;
pub(crate) use self::stream::{RequestBody, SharedRef};

/// The HTTP/2 settings of the router's connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// A larger request head is answered 431.
    pub(crate) max_header_list_size: u32,
}
