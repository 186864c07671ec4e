//! [`Listener`]: a nonblocking listening socket for a `mio::Poll`.

use std::os::fd::OwnedFd;

use socket2::Socket;

use super::{source_by_fd, Stream};
use crate::socket::{self, SocketKind};
use crate::{Endpoint, Result};

/// A nonblocking listening stream socket; register it with a `mio::Poll` for `READABLE` and
/// call [`Listener::accept`] until `WouldBlock` after each event.
///
/// # Examples
///
/// ```
/// use uring_vsock::epoll::Listener;
///
/// let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
/// let err = listener.accept().unwrap_err(); // nobody has connected yet
/// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    local: Endpoint,
}

crate::impl_macros::socket_methods! { Listener {
    /// Binds to `ep` and listens with [`DEFAULT_BACKLOG`](crate::DEFAULT_BACKLOG).
    ///
    /// # Errors
    ///
    /// `bind ...` or `listen ...` with the OS error.
    bind(SocketKind::Stream, nonblocking: true);

    /// Accepts a pending connection: a nonblocking, close-on-exec stream and the peer.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is pending; otherwise `accept <endpoint>: ...`.
    accept(Stream, nonblocking: true, |socket, peer| {
        Stream::from_socket(socket, Some(peer.clone()))
    });

    /// The endpoint this listener is bound to.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;
}}

impl Listener {
    /// Adopts an inherited listening socket (socket activation) and makes it nonblocking.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the fd is not a listening stream socket of the vsock, unix or tcp
    /// family. The fd is closed on error.
    pub fn from_fd(fd: OwnedFd) -> Result<Listener> {
        let socket = socket::adopt_listener(fd)?;
        socket
            .set_nonblocking(true)
            .map_err(|e| crate::Error::new("adopt listener", None, e))?;
        let local = socket::local_endpoint(&socket)?;
        Ok(Listener { socket, local })
    }
}

source_by_fd!(Listener);

crate::impl_macros::impl_fd_traits!(Listener);
