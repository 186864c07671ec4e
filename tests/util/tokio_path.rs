//! [`TokioPath`]: the tokio path seen through [`PathUnderTest`], so the contract tests run on
//! it too. One shared multi-thread runtime polls every socket; each blocking-style call is
//! `block_on` of the async call, from the test's own threads, under a watchdog.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use uring_vsock::{tokio as ut, Endpoint, Result};

use super::path::{PathUnderTest, SocketPath};
use super::WATCHDOG;

/// The runtime every tokio-path test socket is registered with.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build the test runtime")
    })
}

/// Runs `fut` on the shared runtime, failing the test after [`WATCHDOG`] instead of hanging.
pub fn block_on<T>(what: &str, fut: impl Future<Output = T>) -> T {
    runtime()
        .block_on(async { tokio::time::timeout(WATCHDOG, fut).await })
        .unwrap_or_else(|_| panic!("{what} did not finish within {WATCHDOG:?}"))
}

/// The tokio path.
pub struct TokioPath;

/// A tokio stream with blocking `Read`/`Write` for the contract tests.
pub struct TokioStream(pub ut::Stream);

impl Read for TokioStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        block_on("read", self.0.read(buf))
    }
}

impl Write for TokioStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        block_on("write", self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        block_on("flush", self.0.flush())
    }
}

impl PathUnderTest for TokioPath {
    type Listener = ut::Listener;
    type Stream = TokioStream;

    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener> {
        let _rt = runtime().enter();
        ut::Listener::bind_with_backlog(ep, backlog)
    }
    fn local_addr(l: &Self::Listener) -> Endpoint {
        l.local_addr().unwrap()
    }
    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)> {
        block_on("accept", l.accept()).map(|(s, peer)| (TokioStream(s), peer))
    }
    fn connect(ep: &Endpoint) -> Result<Self::Stream> {
        block_on("connect", ut::Stream::connect(ep)).map(TokioStream)
    }
    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream> {
        block_on("connect_timeout", ut::Stream::connect_timeout(ep, timeout)).map(TokioStream)
    }
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()> {
        s.0.shutdown_std(how)
    }
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint> {
        s.0.peer_addr()
    }
}

impl SocketPath for TokioPath {
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize> {
        block_on("peek", s.0.peek(buf))
    }
    fn local_addr_of(s: &Self::Stream) -> Result<Endpoint> {
        s.0.local_addr()
    }
    fn from_connected_fd(fd: OwnedFd) -> Self::Stream {
        let _rt = runtime().enter();
        TokioStream(ut::Stream::from_fd(fd).expect("wrap a connected fd"))
    }
}
