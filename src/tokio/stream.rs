//! [`Stream`]: an async connected stream socket.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use socket2::Socket;

use super::io::{self as rw, impl_read, impl_write, Backoff, StreamFd};
use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use crate::{blocking, socket, sys, Endpoint, Result};

/// A connected stream socket for tokio, like `tokio::net::TcpStream` for any [`Endpoint`]:
/// [`AsyncRead`] and [`AsyncWrite`] (with vectored writes), halves for two tasks, and the
/// [`VsockOptions`](crate::VsockOptions).
///
/// Writes use `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never `SIGPIPE`); a transient
/// `ENOBUFS` is waited out, the kernel's small-packet reset is an error (see the module docs). `AsyncWrite::poll_shutdown` (`AsyncWriteExt::shutdown`) is
/// `shutdown(SHUT_WR)`: the peer reads EOF, this side can still read. [`Stream::shutdown_std`]
/// takes a [`Shutdown`] (read, write or both), as `shutdown` does on the other paths; it is
/// named apart so that `stream.shutdown().await` stays tokio's.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use uring_vsock::tokio::{Listener, Stream};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// tokio::runtime::Runtime::new()?.block_on(async {
///     let dir = std::env::temp_dir().join(format!("uv-tokio-doc-{}", std::process::id()));
/// #     let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
///     std::fs::create_dir_all(&dir)?;
///     let ep: uring_vsock::Endpoint = format!("unix:{}/s.sock", dir.display()).parse()?;
///     let listener = Listener::bind(&ep)?;
///     let mut client = Stream::connect_timeout(&ep, std::time::Duration::from_secs(5)).await?;
///     let (mut server, _peer) = listener.accept().await?;
///     client.write_all(b"hi").await?;
///     let mut buf = [0; 2];
///     server.peek(&mut buf).await?; // a later read returns the same bytes
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     std::fs::remove_dir_all(&dir)?;
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct Stream {
    pub(super) io: StreamFd,
    pub(super) backoff: Backoff,
}

impl Stream {
    /// `io`, connected to or accepted from an endpoint of `ep`'s family.
    pub(super) fn from_async_fd(io: AsyncFd<Socket>, ep: &Endpoint) -> Stream {
        Stream {
            io: StreamFd::new(io, matches!(ep, Endpoint::Vsock(_))),
            backoff: Backoff::default(),
        }
    }

    /// Connects to `ep`, waiting as long as the kernel does (for vsock,
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT`, 2 s by default). The socket is close-on-exec and
    /// nonblocking from birth. A vsock address's flags (such as
    /// [`VsockAddr::FLAG_TO_HOST`](crate::VsockAddr::FLAG_TO_HOST)) reach the kernel as given.
    ///
    /// # Errors
    ///
    /// `connect <endpoint>: ...` with the OS error: `ECONNRESET` from vsock with no listener,
    /// `ECONNREFUSED` from tcp, `ENOENT` for a unix path with no socket. A hybrid endpoint's
    /// handshake errors are `handshake <endpoint>: ...` (see [`crate::hybrid`]); with no
    /// deadline its handshake waits as long as the VMM takes: prefer
    /// [`Stream::connect_timeout`]. Outside a tokio runtime, an error saying so.
    pub async fn connect(ep: &Endpoint) -> Result<Stream> {
        super::connect::connect(ep, None)
            .await
            .map(|io| Stream::from_async_fd(io, ep))
    }

    /// Connects to `ep`, giving up after `timeout` (the deadline covers a hybrid endpoint's
    /// handshake). Dropping the future cancels the connect and closes its socket. On vsock,
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT` is raised to `timeout` when that is longer.
    ///
    /// # Errors
    ///
    /// As [`Stream::connect`]; [`io::ErrorKind::TimedOut`] when the peer does not answer in
    /// time (operation `connect`, or `handshake` when the deadline passed in the handshake);
    /// `InvalidInput` for a zero timeout.
    pub async fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Stream> {
        super::connect::connect(ep, Some(timeout))
            .await
            .map(|io| Stream::from_async_fd(io, ep))
    }

    /// Takes over a blocking path stream (made nonblocking here).
    ///
    /// # Errors
    ///
    /// The `fcntl` error, or not being inside a tokio runtime.
    pub fn from_std(stream: blocking::Stream) -> Result<Stream> {
        Stream::from_socket(Socket::from(OwnedFd::from(stream)))
    }

    /// Wraps a connected stream socket fd (for example one passed over `SCM_RIGHTS`), made
    /// nonblocking here.
    ///
    /// # Errors
    ///
    /// As [`Stream::from_std`].
    pub fn from_fd(fd: OwnedFd) -> Result<Stream> {
        Stream::from_socket(Socket::from(fd))
    }

    fn from_socket(socket: Socket) -> Result<Stream> {
        socket
            .set_nonblocking(true)
            .map_err(|e| crate::Error::new("fcntl O_NONBLOCK", None, e))?;
        let vsock = matches!(socket::local_endpoint(&socket), Ok(Endpoint::Vsock(_)));
        super::register(socket, "register", None).map(|io| Stream {
            io: StreamFd::new(io, vsock),
            backoff: Backoff::default(),
        })
    }

    /// The peer's endpoint.
    ///
    /// # Errors
    ///
    /// `getpeername` failures (`ENOTCONN` once the peer is gone on some families).
    pub fn peer_addr(&self) -> Result<Endpoint> {
        socket::peer_endpoint(self.io.get_ref())
    }

    /// This side's endpoint. A connected vsock client on Linux 6.12 loopback reports
    /// `CID_ANY`, not its CID.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    pub fn local_addr(&self) -> Result<Endpoint> {
        socket::local_endpoint(self.io.get_ref())
    }

    /// Shuts down the read half, the write half, or both, at once; the peer sees EOF after
    /// a write shutdown.
    ///
    /// # Errors
    ///
    /// The `shutdown` error (`ENOTCONN` when not connected).
    pub fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Waits for queued bytes and copies them into `buf` without removing them: a later read
    /// returns them again. Returns 0 at EOF.
    ///
    /// # Errors
    ///
    /// The `recv` error.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        peek(&self.io, buf).await
    }

    /// Borrowed halves, to read and write at once in one task (`tokio::join!`, `select!`).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf { io: &self.io },
            WriteHalf {
                io: &self.io,
                backoff: &mut self.backoff,
            },
        )
    }

    /// Owned halves, for two tasks; [`OwnedReadHalf::reunite`] puts them back together.
    /// Dropping the write half does not shut the connection down: call
    /// `AsyncWriteExt::shutdown` on it first for the peer to read EOF.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let io = Arc::new(self.io);
        (
            OwnedReadHalf {
                io: Arc::clone(&io),
            },
            OwnedWriteHalf {
                io,
                backoff: self.backoff,
            },
        )
    }
}

/// [`Stream::peek`], for the stream and its read halves.
pub(super) async fn peek(io: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    io.async_io(Interest::READABLE, |s| sys::peek(s, buf)).await
}

impl_read!(Stream);
impl_write!(Stream);

impl TryFrom<blocking::Stream> for Stream {
    type Error = crate::Error;

    /// As [`Stream::from_std`].
    fn try_from(stream: blocking::Stream) -> Result<Stream> {
        Stream::from_std(stream)
    }
}

impl IntoRawFd for Stream {
    fn into_raw_fd(self) -> RawFd {
        self.io.into_inner().into_raw_fd()
    }
}

impl From<Stream> for OwnedFd {
    /// The socket, deregistered from the runtime (still nonblocking).
    fn from(stream: Stream) -> OwnedFd {
        stream.io.into_inner().into()
    }
}
