//! Passing listening sockets from a running router process to the one that takes
//! over (SCM_RIGHTS over the control socket), and moving the control socket's name to
//! the new process in one step. Both processes then hold the same kernel sockets:
//! connections queued on them are accepted by whichever process accepts, so none is
//! refused or lost while the old one stops accepting.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The most sockets one handover passes (HTTP and HTTPS).
pub(crate) const MAX_SOCKETS: usize = 2;

/// The byte the sockets ride on: ancillary data needs at least one byte of data.
const CARRIER: u8 = b'S';

/// Sends `sockets` to the process at the other end of `stream`.
pub(crate) async fn send_sockets(stream: &UnixStream, sockets: &[OwnedFd]) -> io::Result<()> {
    if sockets.len() > MAX_SOCKETS {
        return Err(io::Error::other(format!(
            "{} sockets to pass, at most {MAX_SOCKETS} fit",
            sockets.len()
        )));
    }
    let fds: Vec<_> = sockets.iter().map(AsFd::as_fd).collect();
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(io::Error::other("no room for the sockets in the message"));
            }
            let carrier = [CARRIER];
            Ok(rustix::net::sendmsg(
                stream,
                &[io::IoSlice::new(&carrier)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        })
        .await?;
    if sent == 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the sockets were not sent",
        ))
    }
}

/// What a router asked for its sockets sent first.
pub(crate) enum Received {
    Sockets(Vec<OwnedFd>),
    /// Another first byte: the start of an answer that refuses (a router too old
    /// to know the request, or one already handing over).
    Refused(u8),
}

/// Receives the sockets sent with [`send_sockets`] (close-on-exec, like every
/// descriptor this process opens).
pub(crate) async fn receive_sockets(stream: &UnixStream) -> io::Result<Received> {
    stream
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut carrier = [0u8; 1];
            let received = rustix::net::recvmsg(
                stream,
                &mut [io::IoSliceMut::new(&mut carrier)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            if received.bytes == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the running router closed the connection instead of sending its sockets",
                ));
            }
            let mut fds = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(passed) = message {
                    fds.extend(passed);
                }
            }
            if carrier[0] != CARRIER {
                return Ok(Received::Refused(carrier[0]));
            }
            Ok(Received::Sockets(fds))
        })
        .await
}

/// A control socket bound under a name of its own next to `control`, to be moved onto
/// `control` with [`publish`] once the process is ready to answer there.
pub(crate) fn staging_path(control: &Path) -> PathBuf {
    let mut name = control.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".takeover-{}", std::process::id()));
    control.with_file_name(name)
}

/// Gives the socket at `staged` the name `control`. A rename replaces the old name in
/// one step: every client connects either to the old process or to the new one, never
/// to nothing.
pub(crate) fn publish(staged: &Path, control: &Path) -> io::Result<()> {
    std::fs::rename(staged, control)
}

/// Writes `contents` to `path` through a file beside it renamed over it, so a reader
/// never sees it half written (the pid file changes hands in a takeover).
pub(crate) fn replace_file(path: &Path, contents: &str) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let staged = path.with_file_name(name);
    std::fs::write(&staged, contents)?;
    std::fs::rename(&staged, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&staged);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listening socket sent to the other end is the same socket: a connection made
    /// to it is accepted through the received copy.
    #[tokio::test]
    async fn a_passed_listener_accepts_what_the_original_queued() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = UnixStream::pair().expect("pair");
        send_sockets(&a, &[OwnedFd::from(listener)])
            .await
            .expect("send");
        // Queued before the receiver looks, after the sender closed its copy.
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let Received::Sockets(fds) = receive_sockets(&b).await.expect("receive") else {
            panic!("no sockets received");
        };
        assert_eq!(fds.len(), 1);
        let received = std::net::TcpListener::from(fds.into_iter().next().expect("fd"));
        let (accepted, _) = received.accept().expect("accept");
        assert_eq!(
            accepted.peer_addr().expect("peer"),
            client.local_addr().expect("local")
        );
    }
}
