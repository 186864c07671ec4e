//! [`Stream`]: a nonblocking connected stream socket for a `mio::Poll`.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use socket2::Socket;

use super::source_by_fd;
use crate::hybrid::connector::Connector;
use crate::hybrid::drive::{advance, Progress};
use crate::socket::{self, SocketKind};
use crate::{Endpoint, Error, Result};

/// A nonblocking stream socket. Reads and writes return `WouldBlock` instead of waiting;
/// writes use `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never `SIGPIPE`).
///
/// # Examples
///
/// ```
/// use uring_vsock::epoll::Stream;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let stream = Stream::from_connected(a.into())?;
/// let err = (&stream).read(&mut [0; 8]).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
/// # use std::io::Read;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
    /// The endpoint connected to, for error messages; `None` for an adopted fd.
    peer: Option<Endpoint>,
    /// A hybrid endpoint's handshake while [`Stream::connect_result`] still drives it (a
    /// mutex because that takes `&self`; it is never contended).
    handshake: Mutex<Option<Connector>>,
}

impl Stream {
    pub(crate) fn from_socket(socket: Socket, peer: Option<Endpoint>) -> Stream {
        Stream {
            socket,
            peer,
            handshake: Mutex::new(None),
        }
    }

    /// Starts connecting to `ep` without waiting. Register the stream for `WRITABLE`; after
    /// the event, [`Stream::connect_result`] says whether the connection was made.
    ///
    /// A hybrid endpoint's handshake is driven by [`Stream::connect_result`] too: register for
    /// `READABLE | WRITABLE` and call it after each event until it is no longer `WouldBlock`;
    /// then read until `WouldBlock`, as the guest's first bytes may already be queued.
    ///
    /// # Errors
    ///
    /// `connect <endpoint>: ...` for errors known at once (unix: `ENOENT`, `ECONNREFUSED`,
    /// `EAGAIN` when the listener's backlog is full). Errors that arrive later (vsock
    /// `ECONNRESET`, tcp `ECONNREFUSED`) come from [`Stream::connect_result`].
    pub fn connect(ep: &Endpoint) -> Result<Stream> {
        let ep = &*socket::resolve("connect", ep)?;
        let socket = socket::start_connect(ep, SocketKind::Stream)?;
        let stream = Stream::from_socket(socket, Some(ep.clone()));
        if let Endpoint::Hybrid(h) = ep {
            *stream.handshake_state() = Some(Connector::new(h.port()));
        }
        Ok(stream)
    }

    /// Connects to `ep`, waiting at most `timeout`: for a client that has nothing to do
    /// before it is connected. A nonblocking connect polled until the deadline (unix, which
    /// has no connect in progress, waits for backlog room with `SO_SNDTIMEO`); on vsock,
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT` is raised to `timeout` when that is longer, as it
    /// bounds nonblocking connects too. A hybrid endpoint's handshake runs nonblocking, on
    /// readiness, within the same deadline. The stream is nonblocking once connected.
    ///
    /// # Errors
    ///
    /// `connect <endpoint>: ...` with the OS error (`ECONNREFUSED`, vsock `ECONNRESET`, ...);
    /// [`io::ErrorKind::TimedOut`] when the peer does not answer in time; `InvalidInput`
    /// for a zero timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use uring_vsock::epoll::{Listener, Stream};
    ///
    /// let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
    /// let stream = Stream::connect_timeout(&listener.local_addr()?, Duration::from_secs(5))?;
    /// stream.connect_result()?; // already connected
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Stream> {
        let socket = socket::connect_then(ep, Some(timeout), true)?;
        Ok(Stream::from_socket(socket, Some(ep.clone())))
    }

    /// Wraps a connected stream socket (for example one passed over `SCM_RIGHTS`) and makes
    /// it nonblocking.
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    pub fn from_connected(fd: OwnedFd) -> io::Result<Stream> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        Ok(Stream::from_socket(socket, None))
    }

    /// The outcome of [`Stream::connect`]: `Ok` once connected, `WouldBlock` while still in
    /// progress, or the connect error (`connect <endpoint>: ...`). For a hybrid endpoint it
    /// also runs the handshake as far as the socket allows: `Ok` once the guest accepted.
    ///
    /// # Errors
    ///
    /// As above; a hybrid handshake's errors are `handshake <endpoint>: ...` and carry a
    /// [`HandshakeError`](crate::hybrid::HandshakeError) (refused, malformed, oversized).
    pub fn connect_result(&self) -> Result<()> {
        let mut state = self.handshake_state();
        // A unix connect is done when `connect` returns: a socket error after it (a reset
        // from a VMM that hung up) belongs to the handshake.
        let op = if state.is_some() {
            "handshake"
        } else {
            "connect"
        };
        let wrap = |e: io::Error| {
            let e = match state.as_ref() {
                Some(connector) => connector.io_error(e),
                None => e,
            };
            Error::new(op, self.peer.clone(), e)
        };
        socket::connect_progress(&self.socket).map_err(wrap)?;
        let Some(connector) = state.as_mut() else {
            return Ok(());
        };
        let res = advance(connector, &self.socket);
        match res {
            Ok(Progress::Done) => {
                *state = None;
                Ok(())
            }
            Ok(Progress::Blocked { .. }) => Err(Error::new(
                op,
                self.peer.clone(),
                io::ErrorKind::WouldBlock.into(),
            )),
            Err(e) => Err(Error::new(op, self.peer.clone(), e)),
        }
    }

    /// The handshake slot; a panic elsewhere cannot leave it half-updated, so a poisoned
    /// lock is still usable.
    fn handshake_state(&self) -> std::sync::MutexGuard<'_, Option<Connector>> {
        self.handshake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

crate::impl_macros::socket_methods! { Stream {
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

    /// Reads queued bytes without removing them.
    ///
    /// # Errors
    ///
    /// `WouldBlock` with nothing queued, or the `recv` error.
    peek;

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    take_error;
}}

source_by_fd!(Stream);

crate::impl_macros::impl_stream_io!(Stream);
crate::impl_macros::impl_fd_traits!(Stream);
