//! [`PathUnderTest`]: what the contract tests need from an I/O path, so one set of tests runs
//! over every path (blocking, epoll, the engine: see [`super::engine_path`]) and every
//! transport. [`SocketPath`] adds what only the socket paths have (peek, the local address,
//! wrapping an fd).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::time::Duration;

use uring_vsock::{blocking, epoll, Endpoint, Result};

/// One I/O path, seen through blocking-style calls.
pub trait PathUnderTest: 'static {
    type Listener: Send + Sync + 'static;
    type Stream: Read + Write + Send + 'static;

    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener>;
    fn local_addr(l: &Self::Listener) -> Endpoint;
    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)>;
    fn connect(ep: &Endpoint) -> Result<Self::Stream>;
    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream>;
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()>;
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint>;

    /// Whether streams are engine connections, whose read and write errors carry the
    /// engine's close reason ([`super::engine_path::close_reason`]) rather than an errno.
    const ENGINE: bool = false;
}

/// What the socket paths (blocking, epoll) have beyond [`PathUnderTest`] and the engine has
/// not: a stream is a socket the test can peek at, ask its address, or make from an fd.
pub trait SocketPath: PathUnderTest {
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize>;
    fn local_addr_of(s: &Self::Stream) -> Result<Endpoint>;
    /// Wraps an already connected blocking socket.
    fn from_connected_fd(fd: OwnedFd) -> Self::Stream;
}

/// The blocking path, as is.
pub struct Blocking;

impl PathUnderTest for Blocking {
    type Listener = blocking::Listener;
    type Stream = blocking::Stream;

    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener> {
        blocking::Listener::bind_with_backlog(ep, backlog)
    }
    fn local_addr(l: &Self::Listener) -> Endpoint {
        l.local_addr().unwrap()
    }
    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)> {
        l.accept()
    }
    fn connect(ep: &Endpoint) -> Result<Self::Stream> {
        blocking::Stream::connect(ep)
    }
    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream> {
        blocking::Stream::connect_timeout(ep, timeout)
    }
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()> {
        s.shutdown(how)
    }
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint> {
        s.peer_addr()
    }
}

impl SocketPath for Blocking {
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize> {
        s.peek(buf)
    }
    fn local_addr_of(s: &Self::Stream) -> Result<Endpoint> {
        s.local_addr()
    }
    fn from_connected_fd(fd: OwnedFd) -> Self::Stream {
        blocking::Stream::from(fd)
    }
}

/// The epoll path, made blocking for the contract tests: each socket has its own `mio::Poll`
/// and every call retries after a readiness event until it stops returning `WouldBlock`.
pub struct Epoll;

/// One socket's poller. Registered for both directions, edge-triggered; a call is always
/// tried before waiting, so an edge consumed by the other direction is never needed.
pub struct Waiter(std::sync::Mutex<(mio::Poll, mio::Events)>);

/// How long a test waits for readiness before failing instead of hanging.
const READINESS_WATCHDOG: Duration = Duration::from_secs(60);

impl Waiter {
    fn new(source: &mut impl mio::event::Source) -> Waiter {
        let poll = mio::Poll::new().unwrap();
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        poll.registry()
            .register(source, mio::Token(0), interest)
            .unwrap();
        Waiter(std::sync::Mutex::new((poll, mio::Events::with_capacity(4))))
    }

    /// Waits for any readiness event; false when `timeout` passed without one.
    fn wait(&self, timeout: Duration) -> bool {
        let mut guard = self.0.lock().unwrap();
        let (poll, events) = &mut *guard;
        loop {
            match poll.poll(events, Some(timeout)) {
                Ok(()) => return !events.is_empty(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
        }
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for readiness in between.
    fn retry<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(self.wait(READINESS_WATCHDOG), "no readiness event in 60 s");
                }
                other => return other,
            }
        }
    }
}

pub struct EpollListener(epoll::Listener, Waiter);
pub struct EpollStream(epoll::Stream, Waiter);

impl EpollStream {
    fn new(mut s: epoll::Stream) -> EpollStream {
        let w = Waiter::new(&mut s);
        EpollStream(s, w)
    }

    /// Waits until the nonblocking connect finishes (succeeds or fails); fails the test after
    /// the watchdog instead of hanging.
    fn finish_connect(self) -> Result<EpollStream> {
        loop {
            match self.0.connect_result() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
                Ok(()) => return Ok(self),
            }
            assert!(
                self.1.wait(READINESS_WATCHDOG),
                "a connect neither finished nor failed in 60 s"
            );
        }
    }
}

impl Read for EpollStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &self.0;
        self.1.retry(|| (&*s).read(buf))
    }
}

impl Write for EpollStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s = &self.0;
        self.1.retry(|| (&*s).write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PathUnderTest for Epoll {
    type Listener = EpollListener;
    type Stream = EpollStream;

    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener> {
        let mut l = epoll::Listener::bind_with_backlog(ep, backlog)?;
        let w = Waiter::new(&mut l);
        Ok(EpollListener(l, w))
    }
    fn local_addr(l: &Self::Listener) -> Endpoint {
        l.0.local_addr().unwrap()
    }
    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)> {
        loop {
            match l.0.accept() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(l.1.wait(READINESS_WATCHDOG), "no connection in 60 s");
                }
                Err(e) => return Err(e),
                Ok((s, peer)) => return Ok((EpollStream::new(s), peer)),
            }
        }
    }
    fn connect(ep: &Endpoint) -> Result<Self::Stream> {
        EpollStream::new(epoll::Stream::connect(ep)?).finish_connect()
    }
    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream> {
        // The path's own deadline: connected (or failed) when it returns.
        Ok(EpollStream::new(epoll::Stream::connect_timeout(
            ep, timeout,
        )?))
    }
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()> {
        s.0.shutdown(how)
    }
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint> {
        s.0.peer_addr()
    }
}

impl SocketPath for Epoll {
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize> {
        s.1.retry(|| s.0.peek(buf))
    }
    fn local_addr_of(s: &Self::Stream) -> Result<Endpoint> {
        s.0.local_addr()
    }
    fn from_connected_fd(fd: OwnedFd) -> Self::Stream {
        EpollStream::new(epoll::Stream::from_connected(fd).unwrap())
    }
}
