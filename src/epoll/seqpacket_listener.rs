//! [`SeqpacketListener`]: a nonblocking listening `SOCK_SEQPACKET` socket for a `mio::Poll`.

use socket2::Socket;

use super::{source_by_fd, SeqpacketConn};
use crate::socket::SocketKind;
use crate::Endpoint;

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
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
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

crate::impl_macros::socket_methods! { SeqpacketListener {
    /// Binds to `ep` and listens with [`DEFAULT_BACKLOG`](crate::DEFAULT_BACKLOG).
    ///
    /// # Errors
    ///
    /// `socket <endpoint>: ...` with `Unsupported` for tcp and hybrid endpoints; `bind ...`
    /// or `listen ...` with the OS error.
    bind(SocketKind::Seqpacket, nonblocking: true);

    /// Accepts a pending connection: nonblocking and close-on-exec from birth, and the peer.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is pending; otherwise `accept <endpoint>: ...`.
    accept(SeqpacketConn, nonblocking: true, |socket, peer| {
        SeqpacketConn::from_socket(socket, Some(peer.clone()))
    });

    /// The endpoint this listener is bound to.
    ///
    /// # Errors
    ///
    /// `getsockname` failures.
    local_addr;
}}

source_by_fd!(SeqpacketListener);

crate::impl_macros::impl_fd_traits!(SeqpacketListener);
