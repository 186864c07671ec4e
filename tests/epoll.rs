//! Tests of the epoll path's own API beyond the shared contract: nonblocking from birth,
//! close-on-exec, socket activation, and the connect outcome.

mod util;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use mio::{Events, Interest, Poll, Token};
use uring_vsock::epoll::{Listener, Stream};
use uring_vsock::Endpoint;
use util::activation::{assert_refused, inherited_listener, not_listeners};
use util::{bind_endpoint, is_cloexec, TempDir, Transport};

fn is_nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL reads the fd's status flags; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

/// Polls until `token` is ready, at most `rounds` times (a watchdog).
fn wait_for(poll: &mut Poll, token: Token) {
    let mut events = Events::with_capacity(8);
    for _ in 0..100 {
        poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
            .unwrap();
        if events.iter().any(|e| e.token() == token) {
            return;
        }
    }
    panic!("{token:?} never became ready");
}

#[test]
fn sockets_are_nonblocking_and_close_on_exec_from_birth() {
    let dir = TempDir::new();
    let mut poll = Poll::new().unwrap();
    let mut l = Listener::bind(&bind_endpoint(Transport::Unix, &dir)).unwrap();
    poll.registry()
        .register(&mut l, Token(0), Interest::READABLE)
        .unwrap();
    assert!(is_nonblocking(&l) && is_cloexec(&l));
    assert_eq!(
        l.accept().map(drop).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    let c = Stream::connect(&l.local_addr().unwrap()).unwrap();
    assert!(is_nonblocking(&c) && is_cloexec(&c));
    wait_for(&mut poll, Token(0));
    let (s, _) = l.accept().unwrap();
    assert!(is_nonblocking(&s) && is_cloexec(&s));
    assert_eq!(
        (&s).read(&mut [0; 4]).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
}

#[test]
fn connect_result_reports_progress_then_success_or_the_error() {
    let dir = TempDir::new();
    let mut poll = Poll::new().unwrap();
    // tcp drops a SYN to a full backlog: the connect stays in progress until there is room.
    let full = util::FullBacklog::new(Transport::Tcp, &dir);
    let mut c = Stream::connect(&full.ep).unwrap();
    poll.registry()
        .register(&mut c, Token(1), Interest::WRITABLE)
        .unwrap();
    let err = c.connect_result().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    // Room in the backlog: the retransmitted SYN (after about a second) gets through.
    let (_first, _) = full.listener.accept().unwrap();
    wait_for(&mut poll, Token(1));
    c.connect_result().unwrap();
    (&c).write_all(b"x").unwrap();
    let (mut s, _) = full.listener.accept().unwrap();
    let mut got = [0];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"x");

    // Nothing listens on a port held bound: the refusal arrives asynchronously.
    let ep = util::dead_endpoint(Transport::Tcp, &dir);
    let mut d = Stream::connect(&ep).unwrap();
    poll.registry()
        .register(&mut d, Token(2), Interest::WRITABLE)
        .unwrap();
    wait_for(&mut poll, Token(2));
    let err = d.connect_result().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    assert_eq!(
        err.to_string(),
        format!("connect {ep}: Connection refused (os error 111)")
    );
}

/// Connects to the adopted listener `l` (at `ep`): a readiness event, then an accepted
/// nonblocking stream that gets the client's bytes.
fn accepts_on(mut l: Listener, ep: &Endpoint) {
    assert!(is_nonblocking(&l), "{ep}");
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut l, Token(0), Interest::READABLE)
        .unwrap();
    let mut c = uring_vsock::blocking::Stream::connect(&util::connect_endpoint(ep)).unwrap();
    wait_for(&mut poll, Token(0));
    let (s, _) = l.accept().unwrap();
    assert!(is_nonblocking(&s), "{ep}");
    c.write_all(b"activated").unwrap();
    util::wait_readable(&s, "the client's bytes never arrived");
    let mut buf = [0; 16];
    let n = (&s).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"activated", "{ep}");
}

#[test]
fn from_fd_adopts_unix_tcp_and_vsock_listeners_nonblocking() {
    let dir = TempDir::new();
    for t in [Transport::Unix, Transport::Tcp, Transport::Vsock] {
        let (fd, ep) = inherited_listener(t, &dir);
        let l = Listener::from_fd(fd).unwrap();
        assert_eq!(l.local_addr().unwrap(), ep, "{t:?}");
        assert!(is_nonblocking(&l), "{t:?}");
        // vsock accepts only in the VM: see vsock_adopted_listener_accepts.
        if t != Transport::Vsock {
            accepts_on(l, &ep);
        }
    }
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_adopted_listener_accepts() {
    let dir = TempDir::new();
    let (fd, ep) = inherited_listener(Transport::Vsock, &dir);
    accepts_on(Listener::from_fd(fd).unwrap(), &ep);
}

#[test]
fn from_fd_refuses_what_is_not_a_listening_stream_socket() {
    let dir = TempDir::new();
    for (what, fd, want) in not_listeners(&dir) {
        let err = Listener::from_fd(fd).map(drop).unwrap_err();
        assert_refused(what, &err, want);
    }
}

#[test]
fn connect_timeout_rejects_zero_and_takes_the_longest_deadline() {
    let dir = TempDir::new();
    for t in [Transport::Unix, Transport::Tcp] {
        let l = Listener::bind(&bind_endpoint(t, &dir)).unwrap();
        let ep = l.local_addr().unwrap();
        let err = Stream::connect_timeout(&ep, std::time::Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert_eq!((err.op(), err.endpoint()), ("connect", Some(&ep)));
        // No deadline arithmetic overflows: it connects.
        let c = Stream::connect_timeout(&ep, std::time::Duration::MAX).unwrap();
        assert!(is_nonblocking(&c) && is_cloexec(&c), "{t:?}");
        c.connect_result().unwrap();
    }
}
