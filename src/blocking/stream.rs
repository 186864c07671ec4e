//! [`Stream`]: a connected stream socket with `Read`/`Write`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::Socket;

use crate::{socket, Endpoint, Result};

/// A connected stream socket, like [`std::net::TcpStream`] for any [`Endpoint`].
///
/// Writes use `MSG_NOSIGNAL`: writing to a closed peer returns `EPIPE`
/// ([`io::ErrorKind::BrokenPipe`](std::io::ErrorKind::BrokenPipe)) and never raises
/// `SIGPIPE`.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use uring_vsock::blocking::{Listener, Stream};
///
/// let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
/// let ep = listener.local_addr()?;
/// let mut client = Stream::connect_timeout(&ep, std::time::Duration::from_secs(5))?;
/// let (mut server, _) = listener.accept()?;
/// client.write_all(b"ping")?;
/// client.shutdown(Shutdown::Write)?;
/// let mut got = Vec::new();
/// server.read_to_end(&mut got)?; // EOF after the client's shutdown
/// assert_eq!(got, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
}

impl Stream {
    pub(crate) fn from_socket(socket: Socket) -> Stream {
        Stream { socket }
    }

    /// Connects to `ep`, waiting as long as the kernel does (for vsock,
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT`, 2 s by default).
    ///
    /// # Errors
    ///
    /// `connect <endpoint>: ...` with the OS error: `ECONNRESET` from vsock with no listener,
    /// `ECONNREFUSED` from unix and tcp. A hybrid endpoint's handshake errors are
    /// `handshake <endpoint>: ...` (see [`crate::hybrid`]); with no deadline, its handshake
    /// waits for the VMM's reply as long as that takes: prefer [`Stream::connect_timeout`].
    pub fn connect(ep: &Endpoint) -> Result<Stream> {
        socket::connect(ep, None).map(Stream::from_socket)
    }

    /// Connects to `ep`, giving up after `timeout`. On vsock, `SO_VM_SOCKETS_CONNECT_TIMEOUT`
    /// is raised to `timeout` when that is longer, so the kernel's 2 s default does not cut
    /// the wait short.
    ///
    /// # Errors
    ///
    /// As [`Stream::connect`]; [`io::ErrorKind::TimedOut`](std::io::ErrorKind::TimedOut)
    /// when the peer does not answer in time (for a hybrid endpoint, the deadline covers the
    /// handshake); `InvalidInput` for a zero timeout.
    pub fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Stream> {
        socket::connect(ep, Some(timeout)).map(Stream::from_socket)
    }
}

crate::impl_macros::socket_methods! { Stream {
    /// The peer's endpoint.
    ///
    /// # Errors
    ///
    /// `getpeername` failures (`ENOTCONN` once the peer is gone on some families).
    peer_addr;

    /// This side's endpoint. A connected vsock client on Linux 6.12 loopback reports
    /// `CID_ANY`, not its CID.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;

    /// Shuts down the read half, the write half, or both; the peer sees EOF after a write
    /// shutdown.
    ///
    /// # Errors
    ///
    /// The `shutdown` error (`ENOTCONN` when not connected).
    shutdown;

    /// Reads queued bytes into `buf` without removing them: a later `read` returns them again.
    ///
    /// # Errors
    ///
    /// The `recv` error; `WouldBlock` in nonblocking mode with nothing queued.
    peek;

    /// Sets how long a read may block (`SO_RCVTIMEO`); `None` waits forever. A read that
    /// times out fails with `WouldBlock`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, or the `setsockopt` error.
    set_read_timeout;

    /// Sets how long a write may block (`SO_SNDTIMEO`); `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, or the `setsockopt` error.
    set_write_timeout;

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    read_timeout;

    /// The write timeout.
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    write_timeout;

    /// Switches nonblocking mode: reads and writes then fail with `WouldBlock` instead of
    /// waiting.
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    set_nonblocking;

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), for example to read on one
    /// thread and write on another.
    ///
    /// # Errors
    ///
    /// The `fcntl` error (for example `EMFILE`).
    try_clone;
}}

crate::impl_macros::impl_stream_io!(Stream);
crate::impl_macros::impl_fd_traits!(Stream);

impl FromRawFd for Stream {
    /// # Safety
    ///
    /// `fd` must be an open connected stream socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> Stream {
        // SAFETY: the caller hands over ownership of an open socket fd.
        Stream::from_socket(unsafe { Socket::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for Stream {
    /// Wraps a connected stream socket fd (for example one passed over `SCM_RIGHTS`).
    fn from(fd: OwnedFd) -> Stream {
        Stream::from_socket(Socket::from(fd))
    }
}
