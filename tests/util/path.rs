//! [`PathUnderTest`]: what the contract tests need from an I/O path, so one set of tests runs
//! over every path (blocking, epoll) and every transport.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::time::Duration;

use uring_vsock::{blocking, Endpoint, Result};

/// One I/O path, seen through blocking-style calls.
pub trait PathUnderTest {
    type Listener: Send + Sync + 'static;
    type Stream: Read + Write + Send + 'static;

    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener>;
    fn local_addr(l: &Self::Listener) -> Endpoint;
    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)>;
    fn connect(ep: &Endpoint) -> Result<Self::Stream>;
    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream>;
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()>;
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize>;
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint>;
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
    fn peek(s: &Self::Stream, buf: &mut [u8]) -> io::Result<usize> {
        s.peek(buf)
    }
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint> {
        s.peer_addr()
    }
    fn local_addr_of(s: &Self::Stream) -> Result<Endpoint> {
        s.local_addr()
    }
    fn from_connected_fd(fd: OwnedFd) -> Self::Stream {
        blocking::Stream::from(fd)
    }
}
