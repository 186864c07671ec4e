//! [`Listener`]: accepts stream connections on an [`Endpoint`], for tokio.

use std::future::Future;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use socket2::Socket;

use super::Stream;
use crate::{blocking, socket, Endpoint, Error, Result};

/// A listening stream socket for tokio, like `tokio::net::TcpListener` for any [`Endpoint`]
/// (vsock, unix including abstract names, tcp, and [`Endpoint::Hybrid`], which binds
/// `<uds_path>_<port>` for a guest's connects to the host).
///
/// With the `axum` feature it is an `axum::serve::Listener` (connect info: the peer's
/// [`Endpoint`]).
///
/// # Examples
///
/// ```
/// use uring_vsock::tokio::{Listener, Stream};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// tokio::runtime::Runtime::new()?.block_on(async {
///     let listener = Listener::bind_with_backlog(&"tcp:127.0.0.1:0".parse()?, 1024)?;
///     let ep = listener.local_addr()?; // the port the kernel chose
///     let client = Stream::connect(&ep).await?;
///     let (_server, peer) = listener.accept().await?;
///     assert_eq!(peer, client.local_addr()?);
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct Listener {
    pub(super) io: AsyncFd<Socket>,
    /// The bound endpoint (as the kernel reports it), for error messages.
    local: Endpoint,
}

impl Listener {
    /// Binds to `ep` and listens with [`DEFAULT_BACKLOG`](crate::DEFAULT_BACKLOG).
    ///
    /// # Errors
    ///
    /// `bind ...` or `listen ...` with the OS error (for example `EADDRINUSE`); an error when
    /// called outside a tokio runtime.
    pub fn bind(ep: &Endpoint) -> Result<Listener> {
        Listener::bind_with_backlog(ep, socket::DEFAULT_BACKLOG)
    }

    /// Binds to `ep` and listens with the given backlog (the kernel caps it at
    /// `net.core.somaxconn`).
    ///
    /// # Errors
    ///
    /// As [`Listener::bind`].
    pub fn bind_with_backlog(ep: &Endpoint, backlog: i32) -> Result<Listener> {
        let socket = socket::listen(ep, backlog, true)?;
        // A port or CID of "any" is resolved by the kernel: report what it chose.
        let local = socket::local_endpoint(&socket).unwrap_or_else(|_| ep.clone());
        Listener::register(socket, local)
    }

    /// Takes over a blocking path listener (made nonblocking here).
    ///
    /// # Errors
    ///
    /// The `fcntl` or `getsockname` error; an error outside a tokio runtime.
    pub fn from_std(listener: blocking::Listener) -> Result<Listener> {
        Listener::adopt(Socket::from(OwnedFd::from(listener)))
    }

    /// Adopts an inherited listening socket (socket activation, `LISTEN_FDS`), after the same
    /// checks as [`blocking::Listener::from_fd`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the fd is not a listening stream socket of the vsock, unix or tcp
    /// family (the message says what it is); the fd is closed on error. As
    /// [`Listener::from_std`] otherwise.
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let err = uring_vsock::tokio::Listener::from_fd(OwnedFd::from(a)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// # })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Listener> {
        Listener::adopt(socket::adopt_listener(fd)?)
    }

    fn adopt(socket: Socket) -> Result<Listener> {
        let local = socket::local_endpoint(&socket)?;
        socket
            .set_nonblocking(true)
            .map_err(Error::with("fcntl O_NONBLOCK", &local))?;
        Listener::register(socket, local)
    }

    fn register(socket: Socket, local: Endpoint) -> Result<Listener> {
        let io = super::register(socket, "listen", Some(&local))?;
        Ok(Listener { io, local })
    }

    /// Waits for a connection; returns the stream and the peer's endpoint. The stream is
    /// close-on-exec and nonblocking from birth (`accept4`). Cancel-safe: dropping the future
    /// loses no connection.
    ///
    /// # Errors
    ///
    /// `accept <endpoint>: ...` with the OS error (`EMFILE`, `ECONNABORTED`, ...).
    pub async fn accept(&self) -> Result<(Stream, Endpoint)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection, as [`Listener::accept`] (for hand-written futures and
    /// streams): `Pending` registers `cx`'s waker for the next one.
    ///
    /// # Errors
    ///
    /// As [`Listener::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<(Stream, Endpoint)>> {
        loop {
            let mut guard =
                ready!(self.io.poll_read_ready(cx)).map_err(Error::with("accept", &self.local))?;
            match socket::accept(self.io.get_ref(), &self.local, true) {
                Ok((socket, peer)) => {
                    let io = super::register(socket, "accept", Some(&self.local))?;
                    return Poll::Ready(Ok((Stream::from_async_fd(io, &self.local), peer)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The listener as a stream of accepted connections (a `futures_core::Stream`, so
    /// `tokio_stream::StreamExt`, `futures::StreamExt` and tonic's `serve_with_incoming`
    /// take it), ending never. See [`Incoming`].
    ///
    /// Its items are [`io::Result`]s, like tokio's listener streams: an error is this crate's
    /// [`Error`] inside an [`io::Error`] of the same kind (`ECONNABORTED` is
    /// `ConnectionAborted`, which tonic's accept loop skips).
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream as _;
    /// use uring_vsock::tokio::{Listener, Stream};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// tokio::runtime::Runtime::new()?.block_on(async {
    ///     let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
    ///     let ep = listener.local_addr()?;
    ///     let mut incoming = listener.incoming();
    ///     let client = Stream::connect(&ep).await?;
    ///     let conn = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)).await.unwrap()?;
    ///     assert_eq!(conn.peer_addr()?, client.local_addr()?);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn incoming(self) -> Incoming {
        Incoming {
            listener: self,
            pause: None,
        }
    }

    /// The endpoint this listener is bound to (with the port the kernel chose for port 0 or
    /// `PORT_ANY`).
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    pub fn local_addr(&self) -> Result<Endpoint> {
        socket::local_endpoint(self.io.get_ref())
    }
}

/// How long [`Incoming`] and the axum integration wait after an accept error that is not the
/// connection's own (`EMFILE`, `ENOMEM`, ...) before accepting again: the failing connection
/// stays queued, so accepting at once would fail the same way and spin a core.
pub(super) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Errors that end one connection before it was accepted: the next accept may well work.
pub(super) fn is_connection_error(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connections of a [`Listener`], from [`Listener::incoming`]: a never-ending
/// `futures_core::Stream` of `io::Result<`[`Stream`]`>` (the peer's endpoint is
/// [`Stream::peer_addr`]).
///
/// An error is one failed `accept` (as [`Listener::accept`]'s), and the stream goes on after
/// it. After an error that is not the connection's own (`EMFILE`, `ENOMEM`, ...) it waits a
/// second before accepting again, since consumers such as tonic's `serve_with_incoming` poll
/// again at once and the same failure would spin a core. The pause is a tokio timer, so the
/// runtime needs its time driver (`enable_time`/`enable_all`, as `#[tokio::main]` has, and
/// as `axum::serve`'s own accept loop needs too). [`Incoming::into_inner`] gives the
/// listener back.
#[derive(Debug)]
pub struct Incoming {
    listener: Listener,
    /// The wait after an error, while it lasts.
    pause: Option<Pin<Box<::tokio::time::Sleep>>>,
}

impl Incoming {
    /// The next connection, without the peer's endpoint (`Stream::peer_addr` has it): the
    /// `Stream` trait's `poll_next`, callable without importing the trait (and with the same
    /// pause after an error that is not the connection's own).
    ///
    /// # Errors
    ///
    /// As [`Listener::accept`], in an [`io::Error`] of the same kind.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Stream>> {
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let accepted = ready!(self.listener.poll_accept(cx));
        if let Err(e) = &accepted {
            if !is_connection_error(e.kind()) {
                log::error!("{e}; accepting again in {ACCEPT_ERROR_PAUSE:?}");
                self.pause = Some(Box::pin(::tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
            }
        }
        Poll::Ready(
            accepted
                .map(|(stream, _peer)| stream)
                .map_err(io::Error::from),
        )
    }

    /// The listener.
    pub fn get_ref(&self) -> &Listener {
        &self.listener
    }

    /// The listener back, for [`Listener::accept`] and its peer endpoints.
    pub fn into_inner(self) -> Listener {
        self.listener
    }
}

impl futures_core::Stream for Incoming {
    type Item = io::Result<Stream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Stream>>> {
        self.get_mut().poll_accept(cx).map(Some)
    }
}

impl TryFrom<blocking::Listener> for Listener {
    type Error = Error;

    /// As [`Listener::from_std`].
    fn try_from(listener: blocking::Listener) -> Result<Listener> {
        Listener::from_std(listener)
    }
}

impl IntoRawFd for Listener {
    fn into_raw_fd(self) -> RawFd {
        self.io.into_inner().into_raw_fd()
    }
}

impl From<Listener> for OwnedFd {
    /// The socket, deregistered from the runtime (still nonblocking).
    fn from(listener: Listener) -> OwnedFd {
        listener.io.into_inner().into()
    }
}
