//! [`Listener`]: accepts stream connections on an [`Endpoint`].

use std::io;
use std::os::fd::OwnedFd;

use socket2::Socket;

use super::Stream;
use crate::socket::{self, SocketKind};
use crate::{Endpoint, Result};

/// A listening stream socket, like [`std::net::TcpListener`] for any [`Endpoint`].
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use uring_vsock::blocking::{Listener, Stream};
///
/// let dir = std::env::temp_dir().join(format!("uv-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/l.sock", dir.display()).parse()?;
/// let listener = Listener::bind(&ep)?;
/// let mut client = Stream::connect(&ep)?;
/// let (mut server, _peer) = listener.accept()?;
/// client.write_all(b"hi")?;
/// let mut buf = [0; 2];
/// server.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    /// The bound endpoint (as the kernel reports it), for error messages.
    local: Endpoint,
}

crate::impl_macros::socket_methods! { Listener {
    /// Binds to `ep` and listens with [`DEFAULT_BACKLOG`](crate::DEFAULT_BACKLOG).
    ///
    /// # Errors
    ///
    /// `bind ...` or `listen ...` with the OS error (for example `EADDRINUSE`).
    bind(SocketKind::Stream, nonblocking: false);

    /// Waits for a connection; returns the stream and the peer's endpoint. The stream is
    /// close-on-exec from birth (`accept4`).
    ///
    /// # Errors
    ///
    /// `accept <endpoint>: ...` with the OS error; `WouldBlock` in nonblocking mode.
    accept(Stream, nonblocking: false, |socket, _| Stream::from_socket(socket));

    /// The endpoint this listener is bound to (with the port the kernel chose for port 0 or
    /// `PORT_ANY`).
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;

    /// Switches nonblocking mode: `accept` then fails with `WouldBlock` instead of waiting.
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    set_nonblocking;
}}

impl Listener {
    /// Adopts an inherited listening socket (socket activation, `LISTEN_FDS`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the fd is not a listening stream socket of the vsock, unix or tcp
    /// family; the message says what it is instead. The fd is closed on error.
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let err = uring_vsock::blocking::Listener::from_fd(OwnedFd::from(a)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Listener> {
        let socket = socket::adopt_listener(fd)?;
        let local = socket::local_endpoint(&socket)?;
        Ok(Listener { socket, local })
    }

    /// An iterator over incoming connections; it never ends, each item is one `accept`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A second handle to the same socket (`F_DUPFD_CLOEXEC`).
    ///
    /// # Errors
    ///
    /// The `fcntl` error (for example `EMFILE`).
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener {
            socket: self.socket.try_clone()?,
            local: self.local.clone(),
        })
    }
}

/// Iterator returned by [`Listener::incoming`]: yields `accept` results, forever.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a Listener,
}

impl Iterator for Incoming<'_> {
    type Item = Result<Stream>;

    fn next(&mut self) -> Option<Result<Stream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

crate::impl_macros::impl_fd_traits!(Listener);
