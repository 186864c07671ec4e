//! Stream contract tests, after the kernel's `tools/testing/vsock/vsock_test`, written once and
//! run for every path (blocking, epoll, the engine, tokio) over every transport: unix and tcp
//! on the host, vsock in the test VM (`tools/vm-test`; ignored on the host, with the reason).

mod util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

use socket2::Socket;
use uring_vsock::uring::CloseReason;
use uring_vsock::{Endpoint, VsockAddr};
use util::engine_path::{close_reason, EnginePath};
use util::path::{Blocking, Epoll, PathUnderTest, SocketPath};
use util::tokio_path::TokioPath;
use util::{
    bind_endpoint, checksum, connect_endpoint, dead_endpoint, pattern, FullBacklog, TempDir,
    Transport, WATCHDOG,
};

/// How long a bounded retry loop waits for the kernel to propagate a close or shutdown before
/// the test gives up. A watchdog, not a speed assertion.
const PROPAGATION_WATCHDOG: Duration = Duration::from_secs(10);

/// A listener of path `P` on transport `t`, and the endpoint clients connect to.
fn listen<P: PathUnderTest>(t: Transport, dir: &TempDir) -> (P::Listener, Endpoint) {
    let l = P::bind(&bind_endpoint(t, dir), 128).expect("bind");
    let ep = connect_endpoint(&P::local_addr(&l));
    (l, ep)
}

/// A connected (client, server) pair over `t`.
fn pair<P: PathUnderTest>(t: Transport, dir: &TempDir) -> (P::Stream, P::Stream) {
    let (l, ep) = listen::<P>(t, dir);
    let client = P::connect(&ep).expect("connect");
    let (server, _) = P::accept(&l).expect("accept");
    (client, server)
}

/// The errno of a connect to [`dead_endpoint`]: vsock resets, tcp refuses, and a unix path
/// with no socket does not exist.
fn no_listener_errno(t: Transport) -> i32 {
    match t {
        Transport::Vsock => libc::ECONNRESET,
        Transport::Tcp => libc::ECONNREFUSED,
        Transport::Unix => libc::ENOENT,
    }
}

/// Asserts that `err` is errno `want`, on every path.
fn assert_errno<P: PathUnderTest>(err: &uring_vsock::Error, want: i32) {
    assert_eq!(err.raw_os_error(), Some(want), "{err}");
}

fn connect_with_no_listener_fails<P: PathUnderTest>(t: Transport) {
    let dir = TempDir::new();
    let ep = dead_endpoint(t, &dir);
    let err = P::connect(&ep).map(drop).unwrap_err();
    assert_errno::<P>(&err, no_listener_errno(t));
    assert_eq!(err.op(), "connect");
    assert_eq!(err.endpoint(), Some(&ep));
}

fn peer_bound_but_not_listening_resets<P: PathUnderTest>(t: Transport) {
    let dir = TempDir::new();
    let bind_ep = bind_endpoint(t, &dir);
    let bound = Socket::new(bind_ep.domain(), socket2::Type::STREAM, None).unwrap();
    bound.bind(&bind_ep.to_sock_addr().unwrap()).unwrap();
    let local = Endpoint::from_sock_addr(&bound.local_addr().unwrap()).unwrap();
    let err = P::connect(&connect_endpoint(&local)).map(drop).unwrap_err();
    let want = match t {
        Transport::Vsock => libc::ECONNRESET,
        Transport::Tcp | Transport::Unix => libc::ECONNREFUSED,
    };
    assert_errno::<P>(&err, want);
}

fn queued_data_is_read_after_peer_close_then_eof<P: PathUnderTest>(t: Transport) {
    let dir = TempDir::new();
    let (mut client, mut server) = pair::<P>(t, &dir);
    // More than the socket buffers hold, so bytes are still queued when the writer closes.
    let data = pattern(1, 4 << 20);
    let sum = checksum(&data);
    let writer = thread::spawn(move || {
        server.write_all(&data).unwrap();
        drop(server);
    });
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), 4 << 20);
    assert_eq!(checksum(&got), sum);
    assert_eq!(client.read(&mut [0; 16]).unwrap(), 0, "EOF stays EOF");
}

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, Ordering::SeqCst);
}

/// Counts SIGPIPEs instead of ignoring them (as the test harness does by default), so a write
/// that raised one is seen.
fn count_sigpipes() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        let old = unsafe {
            libc::signal(
                libc::SIGPIPE,
                count_sigpipe as *const () as libc::sighandler_t,
            )
        };
        assert_ne!(old, libc::SIG_ERR);
    });
}

/// Writes small chunks until the write fails (the peer's close or shutdown has arrived).
fn write_until_error(stream: &mut impl Write) -> io::Error {
    let start = Instant::now();
    loop {
        match stream.write(&[0x5a; 1024]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return e,
            Ok(_) => {}
        }
        assert!(
            start.elapsed() < PROPAGATION_WATCHDOG,
            "writes kept succeeding after the peer went away"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn write_after_peer_close_is_epipe_without_sigpipe<P: PathUnderTest>(t: Transport) {
    count_sigpipes();
    let dir = TempDir::new();
    let (mut client, server) = pair::<P>(t, &dir);
    drop(server);
    let before = SIGPIPES.load(Ordering::SeqCst);
    let err = write_until_error(&mut client);
    if P::ENGINE {
        // The engine folds the send's EPIPE (or a tcp peer's RST) into one close reason.
        assert!(
            matches!(close_reason(&err), Some(CloseReason::Reset)),
            "{err}"
        );
    } else {
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
    assert_eq!(
        SIGPIPES.load(Ordering::SeqCst),
        before,
        "a write raised SIGPIPE"
    );
}

fn shutdown_write_gives_peer_eof_and_keeps_the_other_half<P: PathUnderTest>(t: Transport) {
    let dir = TempDir::new();
    let (mut client, mut server) = pair::<P>(t, &dir);
    let request = pattern(2, 100_000);
    client.write_all(&request).unwrap();
    P::shutdown(&client, Shutdown::Write).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(checksum(&got), checksum(&request));
    // The other direction still works after the half-close.
    let reply = pattern(3, 50_000);
    server.write_all(&reply).unwrap();
    drop(server);
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), reply.len());
    assert_eq!(checksum(&back), checksum(&reply));
}

/// Socket paths only: the engine has no read shutdown.
fn shutdown_read_gives_local_eof<P: SocketPath>(t: Transport) {
    let dir = TempDir::new();
    let (mut client, mut server) = pair::<P>(t, &dir);
    P::shutdown(&server, Shutdown::Read).unwrap();
    assert_eq!(server.read(&mut [0; 8]).unwrap(), 0);
    match t {
        // vsock and unix tell the writer: its writes then fail with EPIPE.
        Transport::Vsock | Transport::Unix => {
            let err = write_until_error(&mut client);
            assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err}");
        }
        // tcp does not tell the peer; the write half still works.
        Transport::Tcp => {
            server.write_all(b"still open").unwrap();
            let mut buf = [0; 10];
            client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"still open");
        }
    }
}

fn hundred_concurrent_connections_echo_checksummed<P: PathUnderTest>(t: Transport) {
    const CONNS: usize = 100;
    const BYTES: usize = 64 * 1024;
    let dir = TempDir::new();
    let (l, ep) = listen::<P>(t, &dir);
    let l = Arc::new(l);
    let server = {
        let l = Arc::clone(&l);
        thread::spawn(move || {
            let echoes: Vec<_> = (0..CONNS)
                .map(|_| {
                    let (mut s, _) = P::accept(&l).unwrap();
                    thread::spawn(move || {
                        let mut buf = vec![0; 8192];
                        let mut echoed = 0;
                        loop {
                            let n = s.read(&mut buf).unwrap();
                            if n == 0 {
                                return echoed;
                            }
                            s.write_all(&buf[..n]).unwrap();
                            echoed += n;
                        }
                    })
                })
                .collect();
            echoes.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        })
    };
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            let ep = ep.clone();
            thread::spawn(move || {
                let mut s = P::connect(&ep).unwrap();
                let data = pattern(100 + i as u64, BYTES);
                let mut got = vec![0; BYTES];
                // Write in slices and read back as we go, so neither side's buffer fills up.
                let mut read = 0;
                for chunk in data.chunks(16 * 1024) {
                    s.write_all(chunk).unwrap();
                    let end = read + chunk.len();
                    s.read_exact(&mut got[read..end]).unwrap();
                    read = end;
                }
                P::shutdown(&s, Shutdown::Write).unwrap();
                assert_eq!(s.read(&mut [0; 1]).unwrap(), 0, "echo sent extra bytes");
                assert_eq!(checksum(&got), checksum(&data), "conn {i}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(server.join().unwrap(), CONNS * BYTES);
}

/// Socket paths only: the engine has no peek (it hands received bytes over, leaving none in
/// the socket).
fn peek_returns_what_a_later_read_returns<P: SocketPath>(t: Transport) {
    let dir = TempDir::new();
    let (mut client, mut server) = pair::<P>(t, &dir);
    let msg = b"peek at me, then read me";
    client.write_all(msg).unwrap();
    let mut peeked = [0; 24];
    let start = Instant::now();
    let mut n = 0;
    while n < msg.len() {
        n = P::peek(&server, &mut peeked).unwrap();
        assert!(start.elapsed() < PROPAGATION_WATCHDOG, "data never arrived");
    }
    assert_eq!(&peeked, msg);
    // Peeking consumed nothing.
    let mut read = [0; 24];
    server.read_exact(&mut read).unwrap();
    assert_eq!(read, peeked);
}

/// Socket paths only: the engine cannot adopt a connected fd.
fn second_connect_after_a_failed_one_works<P: SocketPath>(t: Transport) {
    let dir = TempDir::new();
    let (l, ep) = listen::<P>(t, &dir);
    let dead = dead_endpoint(t, &dir);
    let socket = Socket::new(ep.domain(), socket2::Type::STREAM, None).unwrap();
    socket
        .connect(&dead.to_sock_addr().unwrap())
        .expect_err("nothing listens there");
    socket.connect(&ep.to_sock_addr().unwrap()).unwrap();
    let mut client = P::from_connected_fd(socket.into());
    let (mut server, _) = P::accept(&l).unwrap();
    client.write_all(b"second time").unwrap();
    let mut buf = [0; 11];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"second time");
}

/// Runs `f` on a thread and returns its result, failing the test if it has not returned
/// within the watchdog: a call that should give up by itself must not hang the test.
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|e| panic!("{what} did not return within {WATCHDOG:?}: {e}"))
}

fn connect_timeout_gives_up_on_a_full_backlog_instead_of_hanging<P: PathUnderTest>(t: Transport) {
    // Deadlines for connects that are answered: generous, since an answer is expected.
    const ANSWERED: Duration = Duration::from_secs(30);
    let dir = TempDir::new();
    // A listener accepts within the timeout.
    let (l, ep) = listen::<P>(t, &dir);
    let mut c = P::connect_timeout(&ep, ANSWERED).unwrap();
    let (mut s, _) = P::accept(&l).unwrap();
    c.write_all(b"ok").unwrap();
    let mut buf = [0; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
    // No listener: the refusal, not a timeout.
    let dead = dead_endpoint(t, &dir);
    let err = P::connect_timeout(&dead, ANSWERED).map(drop).unwrap_err();
    assert_errno::<P>(&err, no_listener_errno(t));
    // A full backlog (a plain listener: the connect is what is tested, and the engine's
    // listeners take no backlog). tcp drops the SYN and unix makes the connect wait for room:
    // nothing answers, so only the deadline ends the connect, whatever its length. vsock
    // answers with a reset instead.
    let full = FullBacklog::new(t, &dir);
    let deadline = match t {
        Transport::Vsock => ANSWERED,
        Transport::Tcp | Transport::Unix => Duration::from_millis(500),
    };
    let full_ep = full.ep.clone();
    let err = returns("connect_timeout to a full backlog", move || {
        P::connect_timeout(&full_ep, deadline)
            .map(drop)
            .unwrap_err()
    });
    if t == Transport::Vsock {
        assert_errno::<P>(&err, libc::ECONNRESET);
    } else {
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }
    assert_eq!(err.op(), "connect");
    assert_eq!(err.endpoint(), Some(&full.ep));
}

/// Each end names the other as a plain socket at that end sees itself: the path's accepted
/// peer is a blocking client's local address, and the path's connected peer is the
/// listener's endpoint.
fn peers_are_named_as_a_socket_peer_sees_itself<P: PathUnderTest>(t: Transport) {
    use uring_vsock::blocking;
    let dir = TempDir::new();
    let (l, ep) = listen::<P>(t, &dir);
    let client = blocking::Stream::connect(&ep).unwrap();
    let (server, peer) = P::accept(&l).unwrap();
    assert_eq!(P::peer_addr(&server).unwrap(), peer);
    let client_local = client.local_addr().unwrap();
    match (t, &peer, &client_local) {
        (Transport::Vsock, Endpoint::Vsock(p), Endpoint::Vsock(c)) => {
            assert_eq!(p.cid(), VsockAddr::CID_LOCAL);
            assert_eq!(p.port(), c.port());
        }
        (Transport::Tcp, _, _) => assert_eq!(peer, client_local),
        (Transport::Unix, Endpoint::Unix(p), _) => assert!(p.as_os_str().is_empty(), "{peer}"),
        other => panic!("unexpected addresses {other:?}"),
    }
    let bl = blocking::Listener::bind(&bind_endpoint(t, &dir)).unwrap();
    let bep = connect_endpoint(&bl.local_addr().unwrap());
    let out = P::connect(&bep).unwrap();
    let _accepted = bl.accept().unwrap();
    assert_eq!(P::peer_addr(&out).unwrap(), bep);
}

/// Socket paths only: the engine does not report a connection's local address.
fn addresses_name_both_ends<P: SocketPath>(t: Transport) {
    let dir = TempDir::new();
    let (l, ep) = listen::<P>(t, &dir);
    let client = P::connect(&ep).unwrap();
    let (server, peer) = P::accept(&l).unwrap();
    assert_eq!(P::peer_addr(&client).unwrap(), ep);
    assert_eq!(P::peer_addr(&server).unwrap(), peer);
    let client_local = P::local_addr_of(&client).unwrap();
    match (t, &peer, &client_local) {
        (Transport::Vsock, Endpoint::Vsock(p), Endpoint::Vsock(c)) => {
            // Linux 6.12 loopback reports CID_ANY for a connected client; the port is real.
            assert_eq!(p.cid(), VsockAddr::CID_LOCAL);
            assert_eq!(p.port(), c.port());
        }
        (Transport::Tcp, _, _) => assert_eq!(peer, client_local),
        (Transport::Unix, Endpoint::Unix(p), _) => assert!(p.as_os_str().is_empty()),
        other => panic!("unexpected addresses {other:?}"),
    }
}

/// Instantiates contract tests for one path over one transport. `$attr` is applied to each
/// test (`ignore` for vsock on the host). `sockets` are the socket paths, which pass every
/// test; `engine` skips those the engine has no API for (read shutdown, peek, fd adoption,
/// local address) and takes its own attribute for the connect deadline test.
macro_rules! contract_tests {
    ($module:ident, $path:ty, $transport:expr, #[$attr:meta], sockets) => {
        mod $module {
            use super::*;
            contract_tests!(@common $path, $transport, $attr);
            contract_tests!(@each $path, $transport, $attr;
                connect_timeout_gives_up_on_a_full_backlog_instead_of_hanging,
                shutdown_read_gives_local_eof,
                peek_returns_what_a_later_read_returns,
                second_connect_after_a_failed_one_works,
                addresses_name_both_ends
            );
        }
    };
    ($module:ident, $path:ty, $transport:expr, #[$attr:meta], engine, #[$timeout_attr:meta]) => {
        mod $module {
            use super::*;
            contract_tests!(@common $path, $transport, $attr);
            contract_tests!(@each $path, $transport, $timeout_attr;
                connect_timeout_gives_up_on_a_full_backlog_instead_of_hanging
            );
        }
    };
    (@common $path:ty, $transport:expr, $attr:meta) => {
        contract_tests!(@each $path, $transport, $attr;
            connect_with_no_listener_fails,
            peer_bound_but_not_listening_resets,
            queued_data_is_read_after_peer_close_then_eof,
            write_after_peer_close_is_epipe_without_sigpipe,
            shutdown_write_gives_peer_eof_and_keeps_the_other_half,
            hundred_concurrent_connections_echo_checksummed,
            peers_are_named_as_a_socket_peer_sees_itself
        );
    };
    (@each $path:ty, $transport:expr, $attr:meta; $($name:ident),*) => {
        $(
            #[test]
            #[$attr]
            fn $name() {
                super::$name::<$path>($transport)
            }
        )*
    };
}

// `cfg_attr(any(), ignore)` applies nothing: host transports always run.
contract_tests!(blocking_unix, Blocking, Transport::Unix, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(blocking_tcp, Blocking, Transport::Tcp, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(
    blocking_vsock,
    Blocking,
    Transport::Vsock,
    #[ignore = "needs vsock loopback; run tools/vm-test"],
    sockets
);
contract_tests!(epoll_unix, Epoll, Transport::Unix, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(epoll_tcp, Epoll, Transport::Tcp, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(
    epoll_vsock,
    Epoll,
    Transport::Vsock,
    #[ignore = "needs vsock loopback; run tools/vm-test"],
    sockets
);
contract_tests!(
    engine_unix,
    EnginePath,
    Transport::Unix,
    #[cfg_attr(any(), ignore)],
    engine,
    #[cfg_attr(any(), ignore)]
);
contract_tests!(
    engine_tcp,
    EnginePath,
    Transport::Tcp,
    #[cfg_attr(any(), ignore)],
    engine,
    #[cfg_attr(any(), ignore)]
);
contract_tests!(
    engine_vsock,
    EnginePath,
    Transport::Vsock,
    #[ignore = "needs vsock loopback; run tools/vm-test"],
    engine,
    #[ignore = "needs vsock loopback; run tools/vm-test"]
);
contract_tests!(tokio_unix, TokioPath, Transport::Unix, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(tokio_tcp, TokioPath, Transport::Tcp, #[cfg_attr(any(), ignore)], sockets);
contract_tests!(
    tokio_vsock,
    TokioPath,
    Transport::Vsock,
    #[ignore = "needs vsock loopback; run tools/vm-test"],
    sockets
);

/// `tcp:localhost:PORT` is a name until a bind or connect resolves it (parsing does no I/O):
/// every path binds and connects by name, with and without a deadline, and bytes go through.
fn tcp_host_names_are_resolved_by_bind_and_connect<P: PathUnderTest>() {
    let named: Endpoint = "tcp:localhost:0".parse().unwrap();
    assert!(matches!(named, Endpoint::TcpHost(..)), "{named:?}");
    let l = P::bind(&named, uring_vsock::DEFAULT_BACKLOG).expect("bind by name");
    let Endpoint::Tcp(bound) = P::local_addr(&l) else {
        panic!("bound to {:?}", P::local_addr(&l));
    };
    assert!(bound.ip().is_loopback(), "{bound}");
    let by_name: Endpoint = format!("tcp:localhost:{}", bound.port()).parse().unwrap();
    for (i, client) in [
        P::connect(&by_name),
        P::connect_timeout(&by_name, Duration::from_secs(10)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = client.expect("connect by name");
        let (mut server, _) = P::accept(&l).expect("accept");
        let data = pattern(i as u64 + 7, 4096);
        client.write_all(&data).unwrap();
        let mut got = vec![0; data.len()];
        server.read_exact(&mut got).unwrap();
        assert_eq!(checksum(&got), checksum(&data), "connect {i}");
    }
}

#[test]
fn blocking_tcp_host_names_are_resolved_by_bind_and_connect() {
    tcp_host_names_are_resolved_by_bind_and_connect::<Blocking>()
}

#[test]
fn epoll_tcp_host_names_are_resolved_by_bind_and_connect() {
    tcp_host_names_are_resolved_by_bind_and_connect::<Epoll>()
}

#[test]
fn engine_tcp_host_names_are_resolved_by_bind_and_connect() {
    tcp_host_names_are_resolved_by_bind_and_connect::<EnginePath>()
}

#[test]
fn tokio_tcp_host_names_are_resolved_by_bind_and_connect() {
    tcp_host_names_are_resolved_by_bind_and_connect::<TokioPath>()
}
