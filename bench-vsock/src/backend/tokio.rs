//! What users pick instead of this library: tokio's `UnixStream`/`TcpStream`, and
//! `tokio-vsock` for vsock, on a multi-threaded runtime of `--workers` threads.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use uring_vsock::blocking::Listener;
use uring_vsock::Endpoint;

use super::{Backend, BackendKind, Server, BACKLOG, CONNECT_TIMEOUT, IO_TIMEOUT};
use crate::error::{Context, Error, Result};
use crate::session::{ServerSession, ServerStats, Session, SessionSource, Want};

const READ_BUF: usize = 64 * 1024;

/// The tokio backend.
#[derive(Debug)]
pub(crate) struct Tokio;

fn runtime(workers: usize, name: &str) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .context("starting a tokio runtime")
}

fn timed_out(what: &str) -> Error {
    Error::new(format!("{what} timed out after {IO_TIMEOUT:?}"))
}

/// Waits until `until` to within a few µs. tokio's timer ticks in whole milliseconds and
/// rounds up, which would add up to a millisecond of pacing lateness to every open-loop
/// latency (measured from the intended send time); so sleep to the last tick before, then
/// yield until the moment.
async fn pace(until: Instant) {
    let tick = std::time::Duration::from_millis(1);
    if let Some(early) = until.checked_sub(tick) {
        if early > Instant::now() {
            tokio::time::sleep_until(early.into()).await;
        }
    }
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Runs one session over an async stream until it is done.
async fn drive<T>(io: &mut T, session: &mut dyn Session, buf: &mut [u8]) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let now = Instant::now();
        match session.next(now) {
            Want::Send(out) => {
                let n = timeout(IO_TIMEOUT, io.write(out.as_slice()))
                    .await
                    .map_err(|_| timed_out("write"))?
                    .context("write")?;
                session.on_sent(n, Instant::now());
            }
            Want::Recv => {
                let n = timeout(IO_TIMEOUT, io.read(buf))
                    .await
                    .map_err(|_| timed_out("read"))?
                    .context("read")?;
                if n == 0 {
                    session.on_eof()?;
                } else {
                    session.on_recv(&buf[..n], Instant::now())?;
                }
            }
            Want::Wait(until) => pace(until).await,
            Want::Done => return Ok(()),
        }
    }
}

/// Connects to `ep` and runs `session` over the connection.
async fn connect_and_drive(ep: &Endpoint, session: &mut dyn Session, buf: &mut [u8]) -> Result<()> {
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
            drive(&mut s, session, buf).await
        }
    }
}

/// A tokio listener of any family we serve.
enum AnyListener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
    Vsock(tokio_vsock::VsockListener),
}

impl AnyListener {
    /// Takes over a bound, listening, nonblocking socket. Must run inside the runtime.
    fn from_fd(fd: OwnedFd, ep: &Endpoint) -> Result<AnyListener> {
        Ok(match ep {
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) | Endpoint::Hybrid(_) => {
                AnyListener::Unix(tokio::net::UnixListener::from_std(
                    std::os::unix::net::UnixListener::from(fd),
                )?)
            }
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) => AnyListener::Tcp(
                tokio::net::TcpListener::from_std(std::net::TcpListener::from(fd))?,
            ),
            Endpoint::Vsock(_) => AnyListener::Vsock(tokio_vsock::VsockListener::from(fd)),
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
            AnyListener::Vsock(l) => Accepted::Vsock(l.accept().await?.0),
        })
    }
}

/// An accepted connection of any family.
enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Vsock(tokio_vsock::VsockStream),
}

impl Accepted {
    /// Spawns a task serving the connection.
    fn spawn_into(self, conns: &mut JoinSet<()>, stats: &Arc<ServerStats>) {
        let stats = stats.clone();
        match self {
            Accepted::Unix(s) => conns.spawn(serve_conn(s, stats)),
            Accepted::Tcp(s) => conns.spawn(serve_conn(s, stats)),
            Accepted::Vsock(s) => conns.spawn(serve_conn(s, stats)),
        };
    }
}

async fn serve_conn<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, stats: Arc<ServerStats>) {
    let mut session = ServerSession::new();
    let mut buf = vec![0; READ_BUF];
    let result = drive(&mut io, &mut session, &mut buf).await;
    stats.record(&session, &result);
}

async fn accept_loop(
    listener: AnyListener,
    stats: Arc<ServerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(conn) => conn.spawn_into(&mut conns, &stats),
                Err(e) => stats.fail(e.context("tokio accept")),
            },
            // Reap finished connections as we go, so a long `serve` does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
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
        let listener = {
            let _in_runtime = rt.enter();
            AnyListener::from_fd(OwnedFd::from(listener), &endpoint)?
        };
        let stats = Arc::new(ServerStats::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = rt.spawn(accept_loop(listener, stats.clone(), stop_rx));
        Ok(Box::new(TokioServer {
            endpoint,
            stats,
            stop,
            task: Some(task),
            rt: Some(rt),
        }))
    }

    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    ) {
        let rt = match runtime(workers, "tokio-client") {
            Ok(rt) => rt,
            Err(e) => return source.fail(e),
        };
        rt.block_on(async {
            let mut tasks = JoinSet::new();
            for _ in 0..slots {
                let (source, ep) = (source.clone(), connect.clone());
                tasks.spawn(async move {
                    let mut buf = vec![0; READ_BUF];
                    while let Some(mut session) = source.next_session() {
                        if let Err(e) = connect_and_drive(&ep, &mut session, &mut buf).await {
                            source.fail(e.context(format!("tokio client to {ep}")));
                        }
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                if r.is_err() {
                    source.fail(Error::new("a tokio client task panicked"));
                }
            }
        });
    }
}

struct TokioServer {
    endpoint: Endpoint,
    stats: Arc<ServerStats>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    rt: Option<Runtime>,
}

impl Server for TokioServer {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    fn stop(mut self: Box<Self>) -> Result<()> {
        let _ = self.stop.send(true);
        if let (Some(rt), Some(task)) = (self.rt.take(), self.task.take()) {
            rt.block_on(task)
                .map_err(|_| Error::new("tokio server task panicked"))?;
        }
        self.stats.result()
    }
}
