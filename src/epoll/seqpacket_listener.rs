//! [`SeqpacketListener`]: a nonblocking listening `SOCK_SEQPACKET` socket for a `mio::Poll`.

use socket2::Socket;

use super::{source_by_fd, SeqpacketConn};
use crate::socket::{self, SocketKind};
use crate::{Endpoint, Result};

/// A nonblocking listening `SOCK_SEQPACKET` socket (vsock or unix); register it with a
/// `mio::Poll` for `READABLE` and call [`accept`](Self::accept) until `WouldBlock` after
/// each event.
///
/// # Examples
///
/// ```
/// use uring_vsock::epoll::SeqpacketListener;
///
/// let dir = std::env::temp_dir().join(format!("uv-esql-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/l.sock", dir.display()).parse()?;
/// let listener = SeqpacketListener::bind(&ep)?;
/// let err = listener.accept().unwrap_err(); // nobody has connected yet
/// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketListener {
    socket: Socket,
    local: Endpoint,
}

impl SeqpacketListener {
    /// Binds to `ep` and listens with [`DEFAULT_BACKLOG`](crate::DEFAULT_BACKLOG).
    ///
    /// # Errors
    ///
    /// `socket <endpoint>: ...` with `Unsupported` for tcp and hybrid endpoints; `bind ...`
    /// or `listen ...` with the OS error.
    pub fn bind(ep: &Endpoint) -> Result<SeqpacketListener> {
        SeqpacketListener::bind_with_backlog(ep, socket::DEFAULT_BACKLOG)
    }

    /// Binds to `ep` and listens with the given backlog.
    ///
    /// # Errors
    ///
    /// As [`SeqpacketListener::bind`].
    pub fn bind_with_backlog(ep: &Endpoint, backlog: i32) -> Result<SeqpacketListener> {
        let socket =
            socket::listen_kind_with(ep, SocketKind::Seqpacket, backlog, true, |_| Ok(()))?;
        let local = socket::local_endpoint(&socket).unwrap_or_else(|_| ep.clone());
        Ok(SeqpacketListener { socket, local })
    }

    /// Accepts a pending connection: nonblocking and close-on-exec from birth, and the peer.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is pending; otherwise `accept <endpoint>: ...`.
    pub fn accept(&self) -> Result<(SeqpacketConn, Endpoint)> {
        let (socket, peer) = socket::accept(&self.socket, &self.local, true)?;
        Ok((SeqpacketConn::from_socket(socket, Some(peer.clone())), peer))
    }

    /// The endpoint this listener is bound to.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    pub fn local_addr(&self) -> Result<Endpoint> {
        socket::local_endpoint(&self.socket)
    }
}

source_by_fd!(SeqpacketListener);

crate::impl_macros::impl_fd_traits!(SeqpacketListener);
