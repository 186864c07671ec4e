//! What users pick instead of this library: tokio's `UnixStream`/`TcpStream`, and
//! `tokio-vsock` for vsock, on a multi-threaded runtime of `--workers` threads.

use std::ffi::OsStr;
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::timeout;
use uring_vsock::blocking::Listener;
use uring_vsock::Endpoint;

use super::tokio_common::{drive, run_clients, runtime, serve_conn, start_server, Accept, Dial};
use super::{tune, Backend, BackendKind, Server, BACKLOG, CONNECT_TIMEOUT};
use crate::error::{Error, Result};
use crate::session::{ServerStats, Session, SessionSource};
use crate::sockets::SocketOpts;

/// The tokio backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tokio {
    /// The run's socket options, for both ends.
    pub(crate) opts: SocketOpts,
}

/// Connects to `ep` and runs `session` over the connection, with `opts` on its socket.
async fn connect_and_drive(
    ep: &Endpoint,
    opts: SocketOpts,
    session: &mut dyn Session,
    buf: &mut [u8],
) -> Result<()> {
    let connect_err = |_| Error::new(format!("connect timed out after {CONNECT_TIMEOUT:?}"));
    match ep {
        Endpoint::Unix(path) => {
            let fut = tokio::net::UnixStream::connect(path);
            let mut s = timeout(CONNECT_TIMEOUT, fut).await.map_err(connect_err)??;
            drive(&mut s, session, buf).await
        }
        Endpoint::UnixAbstract(name) => {
            // tokio reads a leading NUL as the abstract namespace.
            let mut path = vec![0];
            path.extend_from_slice(name);
            let fut = tokio::net::UnixStream::connect(OsStr::from_bytes(&path));
            let mut s = timeout(CONNECT_TIMEOUT, fut).await.map_err(connect_err)??;
            drive(&mut s, session, buf).await
        }
        Endpoint::TcpHost(host, port) => {
            let fut = tokio::net::TcpStream::connect((host.as_str(), *port));
            let mut s = timeout(CONNECT_TIMEOUT, fut).await.map_err(connect_err)??;
            s.set_nodelay(true)?;
            drive(&mut s, session, buf).await
        }
        Endpoint::Tcp(addr) => {
            let fut = tokio::net::TcpStream::connect(addr);
            let mut s = timeout(CONNECT_TIMEOUT, fut).await.map_err(connect_err)??;
            s.set_nodelay(true)?;
            drive(&mut s, session, buf).await
        }
        Endpoint::Hybrid(_) => {
            // tokio has no hybrid vsock: the library's connect runs the handshake (within
            // the deadline) off the runtime's threads; tokio then takes the stream.
            let target = ep.clone();
            let std_stream = tokio::task::spawn_blocking(move || {
                uring_vsock::blocking::Stream::connect_timeout(&target, CONNECT_TIMEOUT)
            })
            .await
            .map_err(|e| Error::new(format!("hybrid connect task: {e}")))??;
            std_stream.set_nonblocking(true)?;
            let fd = OwnedFd::from(std_stream);
            let mut s = tokio::net::UnixStream::from_std(fd.into())?;
            drive(&mut s, session, buf).await
        }
        Endpoint::Vsock(addr) => {
            let fut = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(
                addr.cid(),
                addr.port(),
            ));
            let mut s = timeout(CONNECT_TIMEOUT, fut).await.map_err(connect_err)??;
            tune(s.as_fd(), ep, &opts)?;
            drive(&mut s, session, buf).await
        }
    }
}

/// A tokio listener of any family we serve.
enum AnyListener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
    /// With its endpoint and the run's socket options, set on each accepted socket.
    Vsock(tokio_vsock::VsockListener, Endpoint, SocketOpts),
}

impl AnyListener {
    /// Takes over a bound, listening, nonblocking socket. Must run inside the runtime.
    fn from_fd(fd: OwnedFd, ep: &Endpoint, opts: SocketOpts) -> Result<AnyListener> {
        Ok(match ep {
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) | Endpoint::Hybrid(_) => {
                AnyListener::Unix(tokio::net::UnixListener::from_std(
                    std::os::unix::net::UnixListener::from(fd),
                )?)
            }
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) => AnyListener::Tcp(
                tokio::net::TcpListener::from_std(std::net::TcpListener::from(fd))?,
            ),
            Endpoint::Vsock(_) => {
                AnyListener::Vsock(tokio_vsock::VsockListener::from(fd), ep.clone(), opts)
            }
        })
    }

    /// Accepts one connection.
    async fn accept(&self) -> Result<Accepted> {
        Ok(match self {
            AnyListener::Unix(l) => Accepted::Unix(l.accept().await?.0),
            AnyListener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Accepted::Tcp(s)
            }
            AnyListener::Vsock(l, ep, opts) => {
                let (s, _) = l.accept().await?;
                tune(s.as_fd(), ep, opts)?;
                Accepted::Vsock(s)
            }
        })
    }
}

/// An accepted connection of any family.
enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Vsock(tokio_vsock::VsockStream),
}

impl Accept for AnyListener {
    type Conn = Accepted;

    async fn accept(&self) -> Result<Accepted> {
        AnyListener::accept(self).await
    }

    fn spawn(conn: Accepted, conns: &mut JoinSet<()>, stats: Arc<ServerStats>) {
        match conn {
            Accepted::Unix(s) => conns.spawn(serve_conn(s, stats)),
            Accepted::Tcp(s) => conns.spawn(serve_conn(s, stats)),
            Accepted::Vsock(s) => conns.spawn(serve_conn(s, stats)),
        };
    }
}

impl Dial for Tokio {
    fn connect_and_drive<'a>(
        self,
        ep: &'a Endpoint,
        session: &'a mut dyn Session,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        connect_and_drive(ep, self.opts, session, buf)
    }
}

impl Backend for Tokio {
    fn kind(&self) -> BackendKind {
        BackendKind::Tokio
    }

    fn serve(&self, listen: &Endpoint, workers: usize) -> Result<Box<dyn Server>> {
        let rt = runtime(workers, "tokio-server")?;
        let listener = Listener::bind_with_backlog(listen, BACKLOG)?;
        let endpoint = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        // On the listener too, so accepted sockets start with them.
        tune(listener.as_fd(), &endpoint, &self.opts)?;
        let listener = {
            let _in_runtime = rt.enter();
            AnyListener::from_fd(OwnedFd::from(listener), &endpoint, self.opts)?
        };
        Ok(start_server(rt, listener, endpoint, "tokio accept"))
    }

    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    ) {
        run_clients(*self, "tokio", connect, source, slots, workers);
    }
}
