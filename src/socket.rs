//! Stream socket setup shared by every path: create (close-on-exec set atomically), bind,
//! listen, connect (with an optional deadline), accept, and adopt an inherited listener.
//! Errors carry the operation and the endpoint.

use std::borrow::Cow;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use socket2::{SockAddr, Socket, Type};

use crate::{Endpoint, Error, Result};

/// The listen backlog used when the caller gives none (as std's `TcpListener`).
pub const DEFAULT_BACKLOG: i32 = 128;

/// The socket type a listener or connection is made with: the API chosen picks it, never the
/// endpoint string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `SOCK_STREAM`: every family.
    Stream,
    /// `SOCK_SEQPACKET`: vsock and unix (not tcp, nor hybrid, whose VMM devices relay streams).
    Seqpacket,
}

/// A new stream socket for `ep`'s family, as [`new_socket`] makes them.
#[cfg(feature = "tokio")]
pub(crate) fn new_stream(ep: &Endpoint, nonblocking: bool) -> Result<Socket> {
    new_socket(ep, SocketKind::Stream, nonblocking)
}

/// A new socket of type `kind` for `ep`'s family; `SOCK_CLOEXEC` (and `SOCK_NONBLOCK` when
/// asked) are set by `socket(2)` itself, so no other thread's `exec` can inherit it. A
/// seqpacket socket for an endpoint whose family has none (tcp, hybrid) is an `Unsupported`
/// error naming the endpoint.
pub(crate) fn new_socket(ep: &Endpoint, kind: SocketKind, nonblocking: bool) -> Result<Socket> {
    let ty = match kind {
        SocketKind::Stream => Type::STREAM,
        SocketKind::Seqpacket => match ep {
            Endpoint::Vsock(_) | Endpoint::Unix(_) | Endpoint::UnixAbstract(_) => Type::SEQPACKET,
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) | Endpoint::Hybrid(_) => {
                return Err(Error::new(
                    "socket",
                    Some(ep.clone()),
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        "SOCK_SEQPACKET is only on vsock and unix endpoints",
                    ),
                ))
            }
        },
    };
    let ty = if nonblocking { ty.nonblocking() } else { ty };
    Socket::new(ep.domain(), ty, None).map_err(Error::with("socket", ep))
}

/// `ep` with a tcp host name resolved (blocking DNS); errors are `resolve <ep>: …` from
/// `op`'s caller's view, so a bad name is told apart from a refused connect.
pub(crate) fn resolve<'a>(op: &'static str, ep: &'a Endpoint) -> Result<Cow<'a, Endpoint>> {
    match ep {
        Endpoint::TcpHost(..) => ep
            .resolve()
            .map(Cow::Owned)
            .map_err(|e| Error::new(op, Some(ep.clone()), annotate_resolve(e))),
        _ => Ok(Cow::Borrowed(ep)),
    }
}

/// A resolver error, saying it was the name lookup that failed.
pub(crate) fn annotate_resolve(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("resolving the host name: {e}"))
}

/// The kernel address of `ep`, with a setup error naming `op` when it cannot be formed.
pub(crate) fn sock_addr(op: &'static str, ep: &Endpoint) -> Result<SockAddr> {
    ep.to_sock_addr().map_err(Error::with(op, ep))
}

/// A stream listener on `ep`, as [`listen_kind_with`] makes them, with nothing to set
/// before it binds.
#[cfg(feature = "tokio")]
pub(crate) fn listen(ep: &Endpoint, backlog: i32, nonblocking: bool) -> Result<Socket> {
    listen_kind_with(ep, SocketKind::Stream, backlog, nonblocking, |_| Ok(()))
}

/// Binds and listens on `ep` with a socket of type `kind`, running `configure` on the socket
/// before it binds (for options that must be set before listening, such as buffer sizes
/// accepted sockets inherit). TCP listeners get `SO_REUSEADDR`, as std's do. On error the
/// socket is closed before returning.
pub(crate) fn listen_kind_with(
    ep: &Endpoint,
    kind: SocketKind,
    backlog: i32,
    nonblocking: bool,
    configure: impl FnOnce(&Socket) -> Result<()>,
) -> Result<Socket> {
    let ep = &*resolve("bind", ep)?;
    let addr = ep.listen_sock_addr().map_err(Error::with("bind", ep))?;
    let socket = new_socket(ep, kind, nonblocking)?;
    configure(&socket)?;
    if matches!(ep, Endpoint::Tcp(_)) {
        socket
            .set_reuse_address(true)
            .map_err(Error::with("setsockopt SO_REUSEADDR", ep))?;
    }
    socket.bind(&addr).map_err(Error::with("bind", ep))?;
    socket.listen(backlog).map_err(Error::with("listen", ep))?;
    Ok(socket)
}

/// Connects a new blocking socket to `ep`, giving up after `timeout` when one is given
/// (the error is then `TimedOut`). A hybrid endpoint's handshake is part of the connect, and
/// of its deadline.
pub(crate) fn connect(ep: &Endpoint, timeout: Option<Duration>) -> Result<Socket> {
    connect_then(ep, timeout, false)
}

/// As [`connect`]; the socket is then made nonblocking when asked (the epoll path: nobody
/// sees it before it is connected, so nonblocking from birth buys nothing here).
pub(crate) fn connect_then(
    ep: &Endpoint,
    timeout: Option<Duration>,
    nonblocking: bool,
) -> Result<Socket> {
    connect_kind(ep, SocketKind::Stream, timeout, nonblocking)
}

/// As [`connect_then`], for a socket of type `kind`.
pub(crate) fn connect_kind(
    ep: &Endpoint,
    kind: SocketKind,
    timeout: Option<Duration>,
    nonblocking: bool,
) -> Result<Socket> {
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    let ep = &*resolve("connect", ep)?;
    let addr = sock_addr("connect", ep)?;
    let socket = new_socket(ep, kind, false)?;
    match timeout {
        None => socket.connect(&addr),
        Some(t) if t.is_zero() => {
            return Err(Error::new(
                "connect",
                Some(ep.clone()),
                io::Error::new(io::ErrorKind::InvalidInput, "connect timeout of zero"),
            ))
        }
        Some(t) => match ep {
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) | Endpoint::Hybrid(_) => {
                connect_unix_timeout(&socket, &addr, t)
            }
            Endpoint::Vsock(_) => {
                raise_vsock_connect_timeout(&socket, t)
                    .map_err(Error::with("setsockopt SO_VM_SOCKETS_CONNECT_TIMEOUT", ep))?;
                socket.connect_timeout(&addr, t)
            }
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) => socket.connect_timeout(&addr, t),
        },
    }
    .map_err(Error::with("connect", ep))?;
    if nonblocking || matches!(ep, Endpoint::Hybrid(_)) {
        socket
            .set_nonblocking(true)
            .map_err(Error::with("fcntl O_NONBLOCK", ep))?;
    }
    if let Endpoint::Hybrid(h) = ep {
        crate::hybrid::drive::handshake(&socket, h.port(), deadline, timeout)
            .map_err(Error::with("handshake", ep))?;
        if !nonblocking {
            socket
                .set_nonblocking(false)
                .map_err(Error::with("fcntl O_NONBLOCK", ep))?;
        }
    }
    Ok(socket)
}

/// The longest `SO_VM_SOCKETS_CONNECT_TIMEOUT` we set: the kernel refuses (`ERANGE`) one of
/// `MAX_SCHEDULE_TIMEOUT / HZ - 1` seconds or more, about 24 days with a 32-bit `long`.
const MAX_VSOCK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2_000_000);

/// vsock bounds every connect, nonblocking ones too, by `SO_VM_SOCKETS_CONNECT_TIMEOUT`
/// (2 s by default): raise it to `timeout` when that is longer, so the caller's deadline is
/// what decides.
pub(crate) fn raise_vsock_connect_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let want = timeout.min(MAX_VSOCK_CONNECT_TIMEOUT);
    if crate::sys::get_vsock_connect_timeout(socket)? < want {
        crate::sys::set_vsock_connect_timeout(socket, want)?;
    }
    Ok(())
}

/// An `AF_UNIX` connect that waits at most `timeout` for room in the listener's backlog.
///
/// unix connects never return `EINPROGRESS`: a nonblocking one fails with `EAGAIN` at once
/// when the backlog is full (which socket2's `connect_timeout` takes for "in progress"), and
/// no readiness event says when there is room. A blocking one waits for room for at most
/// `SO_SNDTIMEO`, then fails with `EAGAIN`: that is our timeout.
fn connect_unix_timeout(socket: &Socket, addr: &SockAddr, timeout: Duration) -> io::Result<()> {
    // A timeval of zero means "forever": round a sub-microsecond timeout up.
    socket.set_write_timeout(Some(timeout.max(Duration::from_micros(1))))?;
    let res = socket.connect(addr).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => {
            io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
        }
        _ => e,
    });
    socket.set_write_timeout(None)?;
    res
}

/// Starts a nonblocking connect of a new socket of type `kind` to `ep` (the epoll path):
/// `EINPROGRESS` is a connect under way, which [`connect_progress`] follows; other errors
/// are `connect <ep>: ...`.
#[cfg(feature = "epoll")]
pub(crate) fn start_connect(ep: &Endpoint, kind: SocketKind) -> Result<Socket> {
    let addr = sock_addr("connect", ep)?;
    let socket = new_socket(ep, kind, true)?;
    match socket.connect(&addr) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(Error::new("connect", Some(ep.clone()), e)),
    }
    Ok(socket)
}

/// Where a nonblocking connect stands: `Ok` once connected, `WouldBlock` while under way,
/// or the error it ended with (`SO_ERROR`).
#[cfg(feature = "epoll")]
pub(crate) fn connect_progress(socket: &Socket) -> io::Result<()> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// Accepts one connection on `listener` (whose endpoint is `local`, for error messages); the
/// new socket is close-on-exec, and nonblocking when asked, from birth.
pub(crate) fn accept(
    listener: &Socket,
    local: &Endpoint,
    nonblocking: bool,
) -> Result<(Socket, Endpoint)> {
    let mut flags = libc::SOCK_CLOEXEC;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    let (fd, addr) = crate::sys::accept4(listener, flags).map_err(Error::with("accept", local))?;
    let peer = endpoint_of("accept", &addr)?;
    Ok((Socket::from(fd), peer))
}

/// The endpoint an address names, or an `op` error for a family we do not serve.
pub(crate) fn endpoint_of(op: &'static str, addr: &SockAddr) -> Result<Endpoint> {
    Endpoint::from_sock_addr(addr).ok_or_else(|| {
        Error::new(
            op,
            None,
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("address family {} is not vsock, unix or tcp", addr.family()),
            ),
        )
    })
}

/// The endpoint the socket is bound to.
pub(crate) fn local_endpoint(socket: &Socket) -> Result<Endpoint> {
    let addr = socket
        .local_addr()
        .map_err(|e| Error::new("getsockname", None, e))?;
    endpoint_of("getsockname", &addr)
}

/// The endpoint the socket is connected to.
pub(crate) fn peer_endpoint(socket: &Socket) -> Result<Endpoint> {
    let addr = socket
        .peer_addr()
        .map_err(|e| Error::new("getpeername", None, e))?;
    endpoint_of("getpeername", &addr)
}

/// Adopts an inherited fd (socket activation) as a listener after checking that it is a
/// listening stream socket of a family we serve; anything else is an `InvalidInput` error
/// that says what the fd is. The fd is closed on error.
pub(crate) fn adopt_listener(fd: OwnedFd) -> Result<Socket> {
    let socket = Socket::from(fd);
    let invalid = |why: String| {
        Error::new(
            "adopt listener",
            None,
            io::Error::new(io::ErrorKind::InvalidInput, why),
        )
    };
    let domain = socket
        .domain()
        .map_err(|e| Error::new("adopt listener", None, e))?;
    let served = [
        socket2::Domain::VSOCK,
        socket2::Domain::UNIX,
        socket2::Domain::IPV4,
        socket2::Domain::IPV6,
    ];
    if !served.contains(&domain) {
        return Err(invalid(format!(
            "fd is a {domain:?} socket, not vsock, unix or tcp"
        )));
    }
    let ty = socket
        .r#type()
        .map_err(|e| Error::new("adopt listener", None, e))?;
    if ty != Type::STREAM {
        return Err(invalid(format!(
            "fd is a {ty:?} socket, not a stream socket"
        )));
    }
    // An inet stream socket may be SCTP or MPTCP: only plain tcp is served as tcp.
    if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
        let protocol = socket
            .protocol()
            .map_err(|e| Error::new("adopt listener", None, e))?;
        if protocol.is_some_and(|p| p != socket2::Protocol::TCP) {
            return Err(invalid(format!(
                "fd is a {domain:?} stream socket of protocol {protocol:?}, not tcp"
            )));
        }
    }
    if !socket
        .is_listener()
        .map_err(|e| Error::new("adopt listener", None, e))?
    {
        return Err(invalid(
            "fd is a stream socket that is not listening".into(),
        ));
    }
    Ok(socket)
}
