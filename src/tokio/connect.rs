//! The async connect: a nonblocking `connect(2)` awaited on the poller, a hybrid endpoint's
//! handshake on the same readiness, and one deadline over both. Everything lives in the
//! future, so dropping it closes the socket mid-connect.

use std::future::Future;
use std::io;
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use ::tokio::time::Instant;
use socket2::{Domain, SockAddr, Socket};

use crate::hybrid::connector::Connector;
use crate::hybrid::drive::{advance, Progress};
use crate::{socket, Endpoint, Error, Result};

/// Pauses between tries of a unix connect to a full backlog: unix has no connect in
/// progress and no readiness event for room in the backlog, so it is tried again.
const UNIX_RETRY_MIN: Duration = Duration::from_millis(1);
const UNIX_RETRY_MAX: Duration = Duration::from_millis(50);

/// Connects to `ep`, within `timeout` when one is given.
pub(crate) async fn connect(ep: &Endpoint, timeout: Option<Duration>) -> Result<AsyncFd<Socket>> {
    if timeout == Some(Duration::ZERO) {
        return Err(Error::new(
            "connect",
            Some(ep.clone()),
            io::Error::new(io::ErrorKind::InvalidInput, "connect timeout of zero"),
        ));
    }
    // A timeout too long to add to now is no deadline at all.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let resolved;
    let ep = match ep {
        Endpoint::TcpHost(host, port) => {
            resolved = within(deadline, timeout, "connect", ep, resolve(ep, host, *port)).await?;
            &resolved
        }
        _ => ep,
    };
    let addr = socket::sock_addr("connect", ep)?;
    let socket = socket::new_stream(ep, true)?;
    if let (Endpoint::Vsock(_), Some(t)) = (ep, timeout) {
        socket::raise_vsock_connect_timeout(&socket, t)
            .map_err(Error::with("setsockopt SO_VM_SOCKETS_CONNECT_TIMEOUT", ep))?;
    }
    let fd = within(
        deadline,
        timeout,
        "connect",
        ep,
        connect_socket(socket, &addr, ep),
    )
    .await?;
    if let Endpoint::Hybrid(h) = ep {
        within(deadline, timeout, "handshake", ep, async {
            handshake(&fd, h.port())
                .await
                .map_err(Error::with("handshake", ep))
        })
        .await?;
    }
    Ok(fd)
}

/// The runtime's lookup of a tcp host name (off the reactor), first address.
async fn resolve(ep: &Endpoint, host: &str, port: u16) -> Result<Endpoint> {
    let fail = |e| Error::new("connect", Some(ep.clone()), socket::annotate_resolve(e));
    ::tokio::net::lookup_host((host, port))
        .await
        .map_err(fail)?
        .next()
        .map(Endpoint::Tcp)
        .ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::NotFound,
                format!("host {host:?} resolves to no address"),
            ))
        })
}

/// Runs `fut`, failing with `TimedOut` (operation `op`) once `deadline` passes.
async fn within<T>(
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    op: &'static str,
    ep: &Endpoint,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(deadline) = deadline else {
        return fut.await;
    };
    ::tokio::time::timeout_at(deadline, fut)
        .await
        .unwrap_or_else(|_elapsed| {
            let after = timeout.unwrap_or_default();
            let what = if op == "handshake" {
                format!("connect timed out after {after:?}, in the handshake")
            } else {
                format!("connect timed out after {after:?}")
            };
            Err(Error::new(
                op,
                Some(ep.clone()),
                io::Error::new(io::ErrorKind::TimedOut, what),
            ))
        })
}

/// The connect itself, until the socket is connected or the connect failed.
async fn connect_socket(socket: Socket, addr: &SockAddr, ep: &Endpoint) -> Result<AsyncFd<Socket>> {
    let err = |e| Error::new("connect", Some(ep.clone()), e);
    let unix = ep.domain() == Domain::UNIX;
    let mut pause = UNIX_RETRY_MIN;
    loop {
        match socket.connect(addr) {
            Ok(()) => return super::register(socket, "connect", Some(ep)),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
            // A full unix backlog: wait, then try again (the socket is still unconnected).
            Err(e) if unix && e.kind() == io::ErrorKind::WouldBlock => {
                ::tokio::time::sleep(pause).await;
                pause = (pause * 2).min(UNIX_RETRY_MAX);
            }
            Err(e) => return Err(err(e)),
        }
    }
    let fd = super::register(socket, "connect", Some(ep))?;
    wait_connected(&fd).await.map_err(err)?;
    Ok(fd)
}

/// Waits until the connect in progress on `fd` succeeds (`Ok`) or fails (its error).
async fn wait_connected(fd: &AsyncFd<Socket>) -> io::Result<()> {
    loop {
        let mut guard = fd.ready(Interest::WRITABLE | Interest::ERROR).await?;
        if let Some(e) = fd.get_ref().take_error()? {
            return Err(e);
        }
        match fd.get_ref().peer_addr() {
            Ok(_) => return Ok(()),
            // Not connected yet: the readiness was for something else.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => guard.clear_ready(),
            Err(e) => return Err(e),
        }
    }
}

/// The hybrid `CONNECT` handshake on the connected `fd`, driven on readiness.
async fn handshake(fd: &AsyncFd<Socket>, port: u32) -> io::Result<()> {
    let mut c = Connector::new(port);
    loop {
        let Progress::Blocked { write } = advance(&mut c, fd.get_ref())? else {
            return Ok(());
        };
        // Clearing after the wait is safe: `advance` runs again before the next wait.
        let mut guard = if write {
            fd.writable().await?
        } else {
            fd.readable().await?
        };
        guard.clear_ready();
    }
}
