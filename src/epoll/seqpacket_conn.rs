//! [`SeqpacketConn`]: a nonblocking `SOCK_SEQPACKET` connection for a `mio::Poll`.

use std::time::Duration;

use socket2::Socket;

use super::source_by_fd;
use crate::socket::{self, SocketKind};
use crate::{Endpoint, Error, Result};

/// A nonblocking `SOCK_SEQPACKET` connection (vsock or unix): each [`send`](Self::send) is
/// one message, each [`recv`](Self::recv) one message (flagged when truncated); both return
/// `WouldBlock` instead of waiting. See [`Message`](crate::Message#message-semantics) for
/// the semantics.
///
/// A send that would block sends nothing (unix) — but a vsock message larger than the
/// credit the peer has free may go out in part before `WouldBlock` (the kernel's
/// nonblocking seqpacket send): keep messages within what the peer reads promptly, or use
/// the blocking path for messages near the buffer size.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use uring_vsock::epoll::{SeqpacketConn, SeqpacketListener};
///
/// let dir = std::env::temp_dir().join(format!("uv-esqc-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/c.sock", dir.display()).parse()?;
/// let listener = SeqpacketListener::bind(&ep)?;
/// let client = SeqpacketConn::connect_timeout(&ep, Duration::from_secs(5))?;
/// let (server, _) = listener.accept()?;
/// client.send(b"ping")?;
/// let mut buf = [0; 16];
/// let msg = server.recv(&mut buf)?; // queued already; else WouldBlock: poll and retry
/// assert_eq!(&buf[..msg.len], b"ping");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketConn {
    socket: Socket,
    /// The endpoint connected to, for `connect_result`'s errors.
    peer: Option<Endpoint>,
}

impl SeqpacketConn {
    pub(crate) fn from_socket(socket: Socket, peer: Option<Endpoint>) -> SeqpacketConn {
        SeqpacketConn { socket, peer }
    }

    /// Starts a nonblocking connect to `ep`. Register the connection for `WRITABLE` and call
    /// [`connect_result`](Self::connect_result) after each event until it is no longer
    /// `WouldBlock`.
    ///
    /// # Errors
    ///
    /// `socket <endpoint>: ...` with `Unsupported` for tcp and hybrid endpoints;
    /// `connect <endpoint>: ...` for errors known at once (unix `ENOENT`, `ECONNREFUSED`,
    /// `EAGAIN` with the listener's backlog full). vsock's later errors come from
    /// `connect_result`.
    pub fn connect(ep: &Endpoint) -> Result<SeqpacketConn> {
        let socket = socket::start_connect(ep, SocketKind::Seqpacket)?;
        Ok(SeqpacketConn::from_socket(socket, Some(ep.clone())))
    }

    /// Connects to `ep`, waiting at most `timeout` (on vsock the kernel's connect timeout is
    /// raised to it when that is longer); nonblocking once connected.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); `TimedOut` when the peer does not answer in time;
    /// `InvalidInput` for a zero timeout.
    pub fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<SeqpacketConn> {
        let socket = socket::connect_kind(ep, SocketKind::Seqpacket, Some(timeout), true)?;
        Ok(SeqpacketConn::from_socket(socket, Some(ep.clone())))
    }

    /// The outcome of [`connect`](Self::connect): `Ok` once connected, `WouldBlock` while in
    /// progress, or the connect error.
    ///
    /// # Errors
    ///
    /// `connect <endpoint>: ...` with the OS error (`ECONNRESET` for a vsock port with no
    /// listener), or `WouldBlock`.
    pub fn connect_result(&self) -> Result<()> {
        socket::connect_progress(&self.socket)
            .map_err(|e| Error::new("connect", self.peer.clone(), e))
    }
}

crate::impl_macros::socket_methods! { SeqpacketConn {
    /// Sends `buf` as one message, whole, or fails with `WouldBlock` (see the type's note on
    /// vsock).
    ///
    /// # Errors
    ///
    /// `InvalidInput` carrying a [`MessageTooLarge`](crate::MessageTooLarge) when `buf` is
    /// longer than the connection allows; `InvalidInput` for an empty `buf`; `WouldBlock`
    /// with no room now; `BrokenPipe` once the peer is gone.
    send;

    /// Receives one message into `buf` (see
    /// [`blocking::SeqpacketConn::recv`](crate::blocking::SeqpacketConn::recv): truncation
    /// is reported, a zero-length `buf` discards one message, the end
    /// [`is_eof`](crate::Message::is_eof)).
    ///
    /// # Errors
    ///
    /// `WouldBlock` with no message queued; the `recv` error.
    recv;

    /// The largest message this side may send (unix `SO_SNDBUF` − 32; vsock
    /// `SO_VM_SOCKETS_BUFFER_SIZE`, and the peer's bounds it too).
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    max_message_size;

    /// The peer's endpoint.
    ///
    /// # Errors
    ///
    /// `getpeername` failures (`ENOTCONN` while connecting).
    peer_addr;

    /// This side's endpoint.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;

    /// Shuts down the read half, the write half, or both.
    ///
    /// # Errors
    ///
    /// The `shutdown` error.
    shutdown;

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    take_error;
}}

source_by_fd!(SeqpacketConn);

crate::impl_macros::impl_fd_traits!(SeqpacketConn);
