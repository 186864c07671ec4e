//! [`SeqpacketListener`]: accepts `SOCK_SEQPACKET` connections on a vsock or unix endpoint.

use socket2::Socket;

use super::SeqpacketConn;
use crate::socket::SocketKind;
use crate::Endpoint;

/// A listening `SOCK_SEQPACKET` socket: connections that keep message boundaries (see
/// [`SeqpacketConn`]). vsock (Linux 5.14+) and unix endpoints only.
///
/// # Examples
///
/// ```
/// use uring_vsock::blocking::{SeqpacketConn, SeqpacketListener};
///
/// let dir = std::env::temp_dir().join(format!("uv-sql-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/l.sock", dir.display()).parse()?;
/// let listener = SeqpacketListener::bind(&ep)?;
/// let client = SeqpacketConn::connect(&ep)?;
/// let (server, _peer) = listener.accept()?;
/// client.send(b"one")?;
/// client.send(b"two")?;
/// let mut buf = [0; 16];
/// let n = server.recv(&mut buf)?.len;
/// assert_eq!(&buf[..n], b"one"); // never "onetwo"
/// let n = server.recv(&mut buf)?.len;
/// assert_eq!(&buf[..n], b"two");
///
/// // tcp has no seqpacket sockets.
/// let err = SeqpacketListener::bind(&"tcp:127.0.0.1:0".parse()?).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
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
    /// `socket <endpoint>: ...` with `Unsupported` for tcp and hybrid endpoints (no
    /// seqpacket there); `bind ...` or `listen ...` with the OS error.
    bind(SocketKind::Seqpacket, nonblocking: false);

    /// Waits for a connection; returns it and the peer's endpoint (close-on-exec from
    /// birth).
    ///
    /// # Errors
    ///
    /// `accept <endpoint>: ...` with the OS error; `WouldBlock` in nonblocking mode.
    accept(SeqpacketConn, nonblocking: false, |socket, _| SeqpacketConn::from_socket(socket));

    /// The endpoint this listener is bound to (with the port the kernel chose).
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

crate::impl_macros::impl_fd_traits!(SeqpacketListener);
