//! [`SeqpacketConn`]: a connected `SOCK_SEQPACKET` socket that sends and receives whole
//! messages.

use std::time::Duration;

use socket2::Socket;

use crate::socket::{self, SocketKind};
use crate::{Endpoint, Result};

/// A connected `SOCK_SEQPACKET` socket (vsock or unix): reliable, ordered, and message
/// boundaries kept. Each [`send`](Self::send) is one message; each [`recv`](Self::recv)
/// returns one message, flagged when the buffer was too short for it. See
/// [`Message`](crate::Message#message-semantics) for the semantics (`MSG_EOR`, the largest
/// size).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use uring_vsock::blocking::{SeqpacketConn, SeqpacketListener};
///
/// let dir = std::env::temp_dir().join(format!("uv-sqc-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/c.sock", dir.display()).parse()?;
/// let listener = SeqpacketListener::bind(&ep)?;
/// let client = SeqpacketConn::connect_timeout(&ep, Duration::from_secs(5))?;
/// let (server, _) = listener.accept()?;
/// client.send(b"request")?;
/// let mut buf = [0; 64];
/// let msg = server.recv(&mut buf)?;
/// assert!(!msg.truncated);
/// server.send(&buf[..msg.len])?;
/// drop(server);
/// assert_eq!(client.recv(&mut buf)?.len, 7);
/// assert!(client.recv(&mut buf)?.is_eof()); // the peer closed
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketConn {
    socket: Socket,
}

impl SeqpacketConn {
    pub(crate) fn from_socket(socket: Socket) -> SeqpacketConn {
        SeqpacketConn { socket }
    }

    /// Connects to `ep`, waiting as long as the kernel does (vsock:
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT`, 2 s by default).
    ///
    /// # Errors
    ///
    /// `socket <endpoint>: ...` with `Unsupported` for tcp and hybrid endpoints;
    /// `connect <endpoint>: ...` with the OS error (`ECONNRESET` from vsock with no
    /// listener, `ECONNREFUSED` from unix).
    pub fn connect(ep: &Endpoint) -> Result<SeqpacketConn> {
        socket::connect_kind(ep, SocketKind::Seqpacket, None, false).map(Self::from_socket)
    }

    /// Connects to `ep`, giving up after `timeout` (on vsock the kernel's connect timeout is
    /// raised to it when that is longer).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); `TimedOut` when the peer does not answer in time;
    /// `InvalidInput` for a zero timeout.
    pub fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<SeqpacketConn> {
        socket::connect_kind(ep, SocketKind::Seqpacket, Some(timeout), false).map(Self::from_socket)
    }
}

crate::impl_macros::socket_methods! { SeqpacketConn {
    /// Sends `buf` as one message, whole (`MSG_NOSIGNAL`: a closed peer is `EPIPE`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` carrying a [`MessageTooLarge`](crate::MessageTooLarge) when `buf` is
    /// longer than the connection allows (`EMSGSIZE`; see
    /// [`max_message_size`](Self::max_message_size)); `InvalidInput` for an empty `buf`;
    /// `BrokenPipe` once the peer is gone; `WouldBlock` after the write timeout.
    send;

    /// Receives one message into `buf`. A message longer than `buf` fills it and the rest
    /// is discarded: the result says so
    /// ([`Message::truncated`](crate::Message::truncated), with the full length).
    /// A zero-length `buf` is valid: it discards one message and reports its length. At the
    /// end of the stream the result [`is_eof`](crate::Message::is_eof).
    ///
    /// # Errors
    ///
    /// `WouldBlock` after the read timeout (or in nonblocking mode with nothing queued);
    /// the `recv` error (`ECONNRESET`, ...).
    recv;

    /// The largest message this side may send: unix `SO_SNDBUF` − 32; vsock
    /// `SO_VM_SOCKETS_BUFFER_SIZE` (the peer's buffer size bounds it too, and may be smaller).
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    max_message_size;

    /// The peer's endpoint.
    ///
    /// # Errors
    ///
    /// `getpeername` failures.
    peer_addr;

    /// This side's endpoint.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;

    /// Shuts down the read half, the write half, or both; after a write shutdown the peer's
    /// receives return [`Message::is_eof`](crate::Message::is_eof) once it has every message
    /// sent before.
    ///
    /// # Errors
    ///
    /// The `shutdown` error.
    shutdown;

    /// Sets how long a receive may block (`SO_RCVTIMEO`); `None` waits forever. A receive
    /// that times out fails with `WouldBlock`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, or the `setsockopt` error.
    set_read_timeout;

    /// Sets how long a send may block (`SO_SNDTIMEO`); `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, or the `setsockopt` error.
    set_write_timeout;

    /// Switches nonblocking mode: sends and receives then fail with `WouldBlock` instead of
    /// waiting.
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    set_nonblocking;

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`).
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    try_clone;
}}

crate::impl_macros::impl_fd_traits!(SeqpacketConn);
