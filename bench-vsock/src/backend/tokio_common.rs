//! What the two tokio backends share (theirs, [`super::tokio`], and the library's tokio
//! path, [`super::tokio_ours`]): the runtime, driving a session over any `AsyncRead +
//! AsyncWrite`, the accept loop and its server, and the client tasks. Each backend only
//! says how to accept and how to connect, so the two differ in their sockets alone.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use uring_vsock::Endpoint;

use super::{Server, IO_TIMEOUT};
use crate::error::{Context, Error, Result};
use crate::session::{ServerSession, ServerStats, Session, SessionSource, Want};

const READ_BUF: usize = 64 * 1024;

/// A multi-threaded runtime of `workers` threads named `name`.
pub(super) fn runtime(workers: usize, name: &str) -> Result<Runtime> {
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
pub(super) async fn drive<T>(io: &mut T, session: &mut dyn Session, buf: &mut [u8]) -> Result<()>
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

/// Serves one accepted connection with a [`ServerSession`] and records how it went.
pub(super) async fn serve_conn<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    stats: Arc<ServerStats>,
) {
    let mut session = ServerSession::new();
    let mut buf = vec![0; READ_BUF];
    let result = drive(&mut io, &mut session, &mut buf).await;
    stats.record(&session, &result);
}

/// A listener of one tokio backend.
pub(super) trait Accept: Send + Sync + 'static {
    /// An accepted connection.
    type Conn: Send + 'static;
    /// Accepts one connection (tuned for the bench: `TCP_NODELAY` on tcp).
    fn accept(&self) -> impl Future<Output = Result<Self::Conn>> + Send;
    /// Spawns the task that serves `conn` (with [`serve_conn`]) into `conns`.
    fn spawn(conn: Self::Conn, conns: &mut JoinSet<()>, stats: Arc<ServerStats>);
}

async fn accept_loop<A: Accept>(
    listener: A,
    stats: Arc<ServerStats>,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(conn) => A::spawn(conn, &mut conns, stats.clone()),
                Err(e) => stats.fail(e.context(what)),
            },
            // Reap finished connections as we go, so a long `serve` does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
}

/// Serves `listener` (made inside `rt`, listening at `endpoint`) on `rt` until stopped;
/// `what` names its accept errors (`tokio accept`).
pub(super) fn start_server<A: Accept>(
    rt: Runtime,
    listener: A,
    endpoint: Endpoint,
    what: &'static str,
) -> Box<dyn Server> {
    let stats = Arc::new(ServerStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let task = rt.spawn(accept_loop(listener, stats.clone(), stop_rx, what));
    Box::new(TokioServer {
        endpoint,
        stats,
        stop,
        task: Some(task),
        rt: Some(rt),
    })
}

/// How one tokio backend connects: connect to `ep` and drive the session over it.
pub(super) trait Dial: Send + Sync + Copy + 'static {
    /// Connects to `ep` (within [`super::CONNECT_TIMEOUT`]) and runs `session` over it.
    fn connect_and_drive<'a>(
        self,
        ep: &'a Endpoint,
        session: &'a mut dyn Session,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<()>> + Send + 'a;
}

/// Runs `slots` client tasks on a runtime of `workers` threads named `name`, each taking
/// sessions from `source` until it has none, dialling with `dial`; see
/// [`super::Backend::run_clients`].
pub(super) fn run_clients<D: Dial>(
    dial: D,
    name: &'static str,
    connect: &Endpoint,
    source: Arc<SessionSource>,
    slots: usize,
    workers: usize,
) {
    let rt = match runtime(workers, &format!("{name}-client")) {
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
                    if let Err(e) = dial.connect_and_drive(&ep, &mut session, &mut buf).await {
                        source.fail(e.context(format!("{name} client to {ep}")));
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            if r.is_err() {
                source.fail(Error::new(format!("a {name} client task panicked")));
            }
        }
    });
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
