//! [`Engine`]: the workers, and the calls that give them work (listen, connect) and stop
//! them.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::core::{Factory, Handler};
use super::handle::ConnHandle;
use super::mailbox::{Command, RingDoor, Waker, WorkerLink};
use super::on_worker::on_worker;
use super::ring::{self, RingFeatures};
use super::settings::Settings;
use super::stats::{EngineStats, WorkerStats};
use super::worker::{self, WorkerInit};
use crate::socket::SocketKind;
use crate::{Endpoint, Error, Result};

/// A thread-per-core io_uring engine for stream connections (vsock, unix, tcp).
///
/// Each worker thread owns one ring, a pool of registered send buffers and a provided-buffer
/// ring for receives; a connection lives on one worker and its [`Handler`] runs there.
/// Dropping the engine shuts it down like [`shutdown`](Self::shutdown).
///
/// # Examples
///
/// An echo server on a unix socket, and a client connection through the same engine:
///
/// ```
/// use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
///         let _ = conn.send(buf); // a full queue drops the bytes: fine for a demo
///     }
/// }
///
/// struct Client(std::sync::mpsc::Sender<Vec<u8>>);
/// impl Handler for Client {
///     fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
///         let _ = self.0.send(buf.to_vec());
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("uv-engine-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}", dir.join("echo").display()).parse()?;
///
/// let engine = Engine::builder().workers(1).build()?;
/// engine.listen(&ep, |_peer| Echo)?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let conn = engine.connect(&ep, Some(std::time::Duration::from_secs(5)), move || Client(tx))?;
/// conn.send(b"ping".to_vec())?;
/// assert_eq!(rx.recv()?, b"ping");
/// engine.shutdown();
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub struct Engine {
    workers: Vec<WorkerRef>,
    links: Arc<Vec<WorkerLink>>,
    loads: Arc<Vec<Arc<AtomicUsize>>>,
    features: RingFeatures,
    cfg: Arc<Settings>,
    stopped: AtomicBool,
}

struct WorkerRef {
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    stats: Arc<WorkerStats>,
}

impl Engine {
    pub(crate) fn start(cfg: Settings) -> Result<Engine> {
        let features = ring::probe(cfg.sq_entries, cfg.cq_entries, cfg.task_run)
            .map_err(|e| Error::new("io_uring setup", None, e))?;
        let cfg = Arc::new(cfg);
        let n = cfg.workers;
        let mut links = Vec::with_capacity(n);
        let mut inits = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (reader, writer) = std::os::unix::net::UnixStream::pair()
                .and_then(|(r, w)| w.set_nonblocking(true).map(|()| (r, w)))
                .map_err(|e| Error::new("socketpair", None, e))?;
            links.push(WorkerLink {
                tx,
                waker: Arc::new(Waker {
                    writer,
                    pending: AtomicBool::new(false),
                }),
                door: Arc::new(RingDoor::new()),
            });
            inits.push((rx, reader));
        }
        let links = Arc::new(links);
        let loads: Arc<Vec<Arc<AtomicUsize>>> =
            Arc::new((0..n).map(|_| Arc::new(AtomicUsize::new(0))).collect());
        let mut engine = Engine {
            workers: Vec::with_capacity(n),
            links: Arc::clone(&links),
            loads: Arc::clone(&loads),
            features: features.clone(),
            cfg: Arc::clone(&cfg),
            stopped: AtomicBool::new(false),
        };
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(n);
        let listeners = Arc::default();
        for (index, (rx, wake_reader)) in inits.into_iter().enumerate() {
            let stats = Arc::new(WorkerStats::default());
            let init = WorkerInit {
                index,
                cfg: Arc::clone(&cfg),
                features: features.clone(),
                rx,
                wake_reader,
                links: Arc::clone(&links),
                loads: Arc::clone(&loads),
                stats: Arc::clone(&stats),
                listeners: Arc::clone(&listeners),
            };
            let ready = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("uring-vsock-w{index}"))
                .spawn(move || worker::run(init, ready))
                .map_err(|e| Error::new("spawn worker", None, e))?;
            engine.workers.push(WorkerRef {
                thread: std::sync::Mutex::new(Some(thread)),
                stats,
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            let res = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a worker exited during setup")));
            if let Err(e) = res {
                engine.stop();
                return Err(Error::new("engine worker setup", None, e));
            }
        }
        Ok(engine)
    }

    /// Listens on `ep` and serves each accepted connection with `factory(&peer)`'s handler,
    /// made on the worker the connection is given to. Returns the bound endpoint (with the
    /// real port for `tcp:…:0`). The first worker accepts (multishot) and hands connections
    /// to the least-loaded worker, itself included: by ring message where the kernel has
    /// it ([`RingFeatures::msg_ring`]), otherwise through that worker's channel.
    ///
    /// # Errors
    ///
    /// The bind or listen error, with the endpoint.
    pub fn listen<F, H>(&self, ep: &Endpoint, factory: F) -> Result<Endpoint>
    where
        F: Fn(&Endpoint) -> H + Send + Sync + 'static,
        H: Handler,
    {
        self.listen_kind(ep, SocketKind::Stream, factory)
    }

    pub(super) fn listen_kind<F, H>(
        &self,
        ep: &Endpoint,
        kind: SocketKind,
        factory: F,
    ) -> Result<Endpoint>
    where
        F: Fn(&Endpoint) -> H + Send + Sync + 'static,
        H: Handler,
    {
        let ep = &*crate::socket::resolve("bind", ep)?;
        let backlog = self.cfg.socket.backlog;
        let socket = crate::socket::listen_kind_with(ep, kind, backlog, false, |s| {
            // Accepted sockets inherit these from the listener.
            self.cfg.socket.apply(s, ep, "listen")
        })?;
        let local = crate::socket::local_endpoint(&socket)?;
        self.serve(("listen", ep), socket, local, factory)
    }

    /// Serves an inherited listening socket (socket activation: systemd's `LISTEN_FDS`, or
    /// any listener made elsewhere) as [`listen`](Self::listen) serves one it binds: the
    /// first worker accepts on it through its ring and each connection gets
    /// `factory(&peer)`'s handler. Returns the endpoint the socket is bound to.
    ///
    /// The fd must be a listening stream socket of the vsock, unix or tcp (IPv4 or IPv6)
    /// family. It is made close-on-exec (a per-descriptor flag: whoever passed it keeps its
    /// own copy as it was); its blocking mode, a flag shared with every copy, is left as it
    /// is, since the ring accepts either way. The engine's socket options
    /// ([`tcp_nodelay`](crate::uring::EngineBuilder::tcp_nodelay),
    /// [`socket_buffers`](crate::uring::EngineBuilder::socket_buffers),
    /// [`vsock_buffer_size`](crate::uring::EngineBuilder::vsock_buffer_size)) are set on it
    /// for accepted sockets to inherit; its backlog is the one it was given
    /// ([`listen_backlog`](crate::uring::EngineBuilder::listen_backlog) does not apply).
    ///
    /// # Errors
    ///
    /// `adopt listener: …` with `InvalidInput` saying what the fd is instead when it is not
    /// a listening stream socket of a served family (another family, a datagram or
    /// seqpacket socket, a socket that is not listening), or the errno of a failed check
    /// (`ENOTSOCK` for a file); a socket option the engine sets that fails, named;
    /// `NotConnected` once the engine has shut down. The fd is closed on error.
    ///
    /// # Examples
    ///
    /// A listener bound elsewhere (here by std, as a service manager would pass it), served
    /// by the engine:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::OwnedFd;
    /// use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
    ///         let _ = conn.send(buf); // a full queue drops the bytes: fine for a demo
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let inherited = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let engine = Engine::builder().workers(1).build()?;
    /// let local = engine.listen_fd(OwnedFd::from(inherited), |_peer| Echo)?;
    ///
    /// let mut client = uring_vsock::blocking::Stream::connect(&local)?;
    /// client.write_all(b"ping")?;
    /// let mut echo = [0; 4];
    /// client.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ping");
    ///
    /// // A socket that is not listening is refused, saying so.
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let err = engine.listen_fd(OwnedFd::from(a), |_peer| Echo).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(err.to_string().contains("not listening"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn listen_fd<F, H>(&self, fd: OwnedFd, factory: F) -> Result<Endpoint>
    where
        F: Fn(&Endpoint) -> H + Send + Sync + 'static,
        H: Handler,
    {
        const OP: &str = "adopt listener";
        let socket = crate::socket::adopt_listener(fd)?;
        socket
            .set_cloexec(true)
            .map_err(|e| Error::new(OP, None, e))?;
        let local = crate::socket::local_endpoint(&socket)?;
        self.cfg.socket.apply(&socket, &local, OP)?;
        self.serve((OP, &local.clone()), socket, local, factory)
    }

    /// Gives `socket`, listening on `local`, to the first worker to accept on; `failed` names
    /// the operation and endpoint for the error when the engine has shut down.
    fn serve<F, H>(
        &self,
        failed: (&'static str, &Endpoint),
        socket: socket2::Socket,
        local: Endpoint,
        factory: F,
    ) -> Result<Endpoint>
    where
        F: Fn(&Endpoint) -> H + Send + Sync + 'static,
        H: Handler,
    {
        let factory: Factory =
            Arc::new(move |peer: &Endpoint| Box::new(factory(peer)) as Box<dyn Handler>);
        self.links[0]
            .send(Command::Listen {
                socket,
                local: local.clone(),
                factory,
            })
            .map_err(|_| stopped_error(failed.0, failed.1))?;
        Ok(local)
    }

    /// Connects to `ep` through the ring of the least-loaded worker, giving up after
    /// `timeout` (a linked timeout: no hang), and runs the handler `make()` returns (called
    /// on that worker, so the handler need not be `Send`). Blocks the calling thread until
    /// connected; do not call it from a handler.
    ///
    /// # Errors
    ///
    /// `connect ENDPOINT: …` with the kernel's error (`ConnectionRefused`, or
    /// `ConnectionReset` for a vsock port with no listener), `TimedOut` after `timeout`,
    /// `WouldBlock` when called on a worker thread, `NotConnected` once shut down.
    pub fn connect<F, H>(
        &self,
        ep: &Endpoint,
        timeout: Option<Duration>,
        make: F,
    ) -> Result<ConnHandle>
    where
        F: FnOnce() -> H + Send + 'static,
        H: Handler,
    {
        self.connect_kind(ep, SocketKind::Stream, timeout, make)
    }

    pub(super) fn connect_kind<F, H>(
        &self,
        ep: &Endpoint,
        kind: SocketKind,
        timeout: Option<Duration>,
        make: F,
    ) -> Result<ConnHandle>
    where
        F: FnOnce() -> H + Send + 'static,
        H: Handler,
    {
        if on_worker() {
            return Err(Error::new(
                "connect",
                Some(ep.clone()),
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "Engine::connect blocks: not callable from a handler",
                ),
            ));
        }
        // On the caller's thread: a lookup on a worker would stall its connections.
        let ep = &*crate::socket::resolve("connect", ep)?;
        let target = self.least_loaded();
        if self.loads[target].load(Ordering::Relaxed) == usize::MAX {
            // The least-loaded worker has failed, so all have (see worker::Exit).
            return Err(Error::new(
                "connect",
                Some(ep.clone()),
                io::Error::other("every engine worker has failed (the log says why)"),
            ));
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.links[target]
            .send(Command::Connect {
                ep: ep.clone(),
                kind,
                timeout,
                make: Box::new(move || Box::new(make()) as Box<dyn Handler>),
                reply,
            })
            .map_err(|_| stopped_error("connect", ep))?;
        rx.recv()
            .unwrap_or_else(|_| Err(stopped_error("connect", ep)))
    }

    /// Runs `f` on worker `index`'s thread (the async runtime's entry); `Err` once the
    /// worker is gone.
    pub(crate) fn run_on(
        &self,
        index: usize,
        f: Box<dyn FnOnce() + Send>,
    ) -> std::result::Result<(), ()> {
        self.links[index].send(Command::Run(f)).map_err(|_| ())
    }

    /// Tests only: makes worker `index` fail.
    #[cfg(test)]
    pub(crate) fn inject(&self, index: usize, fault: super::mailbox::Fault) {
        let _ = self.links[index].send(Command::Fault(fault));
    }

    fn least_loaded(&self) -> usize {
        (0..self.loads.len())
            .min_by_key(|&i| self.loads[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// What the rings run with (task-run mode, zero-copy support, ...).
    pub fn features(&self) -> &RingFeatures {
        &self.features
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> EngineStats {
        self.workers.iter().map(|w| w.stats.snapshot()).sum()
    }

    /// Counters of worker `index`, if it exists.
    pub fn worker_stats(&self, index: usize) -> Option<EngineStats> {
        self.workers.get(index).map(|w| w.stats.snapshot())
    }

    /// Stops accepting, closes every connection (cancelling and draining operations in
    /// flight: handlers get `on_close` with [`CloseReason::EngineShutdown`]), closes every fd
    /// and joins the workers. Dropping the engine does the same.
    ///
    /// [`CloseReason::EngineShutdown`]: crate::uring::CloseReason::EngineShutdown
    pub fn shutdown(self) {
        self.stop();
    }

    pub(super) fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        for link in self.links.iter() {
            let _ = link.send(Command::Shutdown);
        }
        if on_worker() {
            // Dropped in a handler (it held the last Engine): a worker cannot join itself,
            // nor wait for itself to stop. The workers stop once the handler returns; their
            // threads are detached.
            for w in &self.workers {
                drop(w.thread.lock().unwrap_or_else(|p| p.into_inner()).take());
            }
            return;
        }
        for w in &self.workers {
            let thread = w.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.workers.len())
            .field("features", &self.features)
            .finish()
    }
}

fn stopped_error(op: &'static str, ep: &Endpoint) -> Error {
    Error::new(
        op,
        Some(ep.clone()),
        io::Error::new(io::ErrorKind::NotConnected, "the engine has shut down"),
    )
}
