//! The servers under test, all hyper 1.x serving [`BytesService`] with the same
//! settings: HTTP/1.1 keep-alive with a 30 s header timeout, or HTTP/2 when the client
//! starts with its preface (prior knowledge), hyper's defaults otherwise. `engine` is
//! [`HttpServer`] on [`Engine::listen_async`]; `tokio-ours` and `tokio` are hyper-util's
//! auto builder (which tells the two versions apart the same way) on a multi-threaded
//! tokio runtime of the same number of workers, over the library's tokio `Listener` or over
//! tokio::net / tokio-vsock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use uring_vsock::uring::rt::HttpServer;
use uring_vsock::uring::{AsyncConn, Engine};
use uring_vsock::Endpoint;

use super::kinds::ServerKind;
use super::service::BytesService;
use crate::backend::{tune, BACKLOG};
use crate::error::{Context, Result};
use crate::sockets::SocketOpts;

/// How long a client has to send a request head (HTTP/1.1), on every server.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping tokio server waits for its connections' tasks.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The connections a server ended with an error: how many, and the first one's error (so
/// a report that counts any says what they were).
#[derive(Debug, Default)]
pub struct ServerErrors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ServerErrors {
    fn record(&self, e: &dyn std::fmt::Display) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }
}

/// A running server.
pub struct Running {
    endpoint: Endpoint,
    errors: Arc<ServerErrors>,
    stop: Box<dyn FnOnce() + Send>,
}

impl Running {
    /// Where it listens (with the real port of a `tcp:...:0` address).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stops it (the engine shuts down; the tokio runtime stops accepting and drops what
    /// is left after a grace period) and returns how many connections it ended with an
    /// error, with the first one's error.
    pub fn stop(self) -> (u64, Option<String>) {
        (self.stop)();
        let first = self
            .errors
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        (self.errors.count.load(Ordering::Relaxed), first)
    }
}

/// Starts a `kind` server on `listen` with `workers` worker threads.
///
/// # Errors
///
/// The engine or runtime could not start, or binding failed.
pub fn start(kind: ServerKind, listen: &Endpoint, workers: usize) -> Result<Running> {
    match kind {
        ServerKind::Engine => engine(listen, workers),
        ServerKind::TokioOurs | ServerKind::Tokio => tokio_server(kind, listen, workers),
    }
}

fn engine(listen: &Endpoint, workers: usize) -> Result<Running> {
    let engine = Engine::builder()
        .workers(workers)
        .listen_backlog(BACKLOG as u32)
        .build()
        .context("starting the engine server")?;
    let errors = Arc::new(ServerErrors::default());
    let counted = Arc::clone(&errors);
    let http = HttpServer::new().header_timeout(Some(HEADER_TIMEOUT));
    let endpoint = engine
        .listen_async(listen, move |conn: AsyncConn| {
            let (http, counted) = (http.clone(), Arc::clone(&counted));
            async move {
                if let Err(e) = http.serve(conn, BytesService).await {
                    counted.record(&e);
                }
            }
        })
        .context(format!("listening on {listen}"))?;
    Ok(Running {
        endpoint,
        errors,
        stop: Box::new(move || engine.shutdown()),
    })
}

/// hyper-util's auto builder with the settings [`HttpServer`] has.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    b.http2().timer(TokioTimer::new());
    b
}

async fn serve<S>(stream: S, errors: Arc<ServerErrors>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let b = builder();
    if let Err(e) = b.serve_connection(TokioIo::new(stream), BytesService).await {
        errors.record(&e);
    }
}

/// A listener of either tokio server.
enum AnyListener {
    Ours(uring_vsock::tokio::Listener),
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
    Vsock(tokio_vsock::VsockListener),
}

impl AnyListener {
    /// Binds `listen` for `kind`; inside the runtime. Returns the bound endpoint too.
    fn bind(kind: ServerKind, listen: &Endpoint) -> Result<(AnyListener, Endpoint)> {
        if kind == ServerKind::TokioOurs {
            let l = uring_vsock::tokio::Listener::bind_with_backlog(listen, BACKLOG)?;
            let ep = l.local_addr()?;
            return Ok((AnyListener::Ours(l), ep));
        }
        let l = uring_vsock::blocking::Listener::bind_with_backlog(listen, BACKLOG)?;
        let ep = l.local_addr()?;
        l.set_nonblocking(true)?;
        let fd = OwnedFd::from(l);
        let any = match &ep {
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) | Endpoint::Hybrid(_) => {
                AnyListener::Unix(tokio::net::UnixListener::from_std(fd.into())?)
            }
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) => {
                AnyListener::Tcp(tokio::net::TcpListener::from_std(fd.into())?)
            }
            Endpoint::Vsock(_) => AnyListener::Vsock(tokio_vsock::VsockListener::from(fd)),
        };
        Ok((any, ep))
    }

    /// Accepts one connection and spawns its server task.
    async fn accept_one(&self, ep: &Endpoint, errors: &Arc<ServerErrors>) -> Result<()> {
        let errors = Arc::clone(errors);
        let opts = SocketOpts::default();
        match self {
            AnyListener::Ours(l) => {
                let (s, _) = l.accept().await?;
                tune(s.as_fd(), ep, &opts)?;
                tokio::spawn(serve(s, errors));
            }
            AnyListener::Unix(l) => {
                let (s, _) = l.accept().await?;
                tokio::spawn(serve(s, errors));
            }
            AnyListener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                tokio::spawn(serve(s, errors));
            }
            AnyListener::Vsock(l) => {
                let (s, _) = l.accept().await?;
                tokio::spawn(serve(s, errors));
            }
        }
        Ok(())
    }
}

fn runtime(workers: usize, name: &str) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .context("starting a tokio runtime")
}

fn tokio_server(kind: ServerKind, listen: &Endpoint, workers: usize) -> Result<Running> {
    let rt = runtime(workers, &format!("http-{kind}"))?;
    let (listener, endpoint) = {
        let _in_runtime = rt.enter();
        AnyListener::bind(kind, listen).context(format!("listening on {listen}"))?
    };
    let errors = Arc::new(ServerErrors::default());
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let (ep, counted) = (endpoint.clone(), Arc::clone(&errors));
    rt.spawn(async move {
        loop {
            tokio::select! {
                _ = stop_rx.changed() => break,
                r = listener.accept_one(&ep, &counted) => {
                    if let Err(e) = r {
                        // EMFILE and the like: count it, breathe, go on accepting.
                        counted.record(&e);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
    });
    Ok(Running {
        endpoint,
        errors,
        stop: Box::new(move || {
            let _ = stop_tx.send(true);
            rt.shutdown_timeout(STOP_GRACE);
        }),
    })
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::ServerErrors;

    #[test]
    fn server_errors_count_all_and_keep_the_first() {
        let e = ServerErrors::default();
        e.record(&"connection reset");
        e.record(&"header timeout");
        assert_eq!(e.count.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(e.first.lock().unwrap().as_deref(), Some("connection reset"));
    }
}
