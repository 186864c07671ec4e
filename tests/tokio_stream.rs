//! The tokio path's streams and listeners beyond the contract suite (which runs on this path
//! through `util::tokio_path`): checksummed transfers both ways in random chunks with a
//! half-close, 1,000 concurrent connections (through `incoming()`), split halves in two tasks, typed connect errors,
//! hybrid vsock, and the ways to make a listener. unix and tcp on the host; vsock in the VM
//! (`tools/vm-test --test tokio_stream`).

#[path = "hybrid_support/mod.rs"]
mod hybrid_support;
mod util;

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uring_vsock::hybrid::HandshakeErrorKind;
use uring_vsock::tokio::{Listener, Stream};
use uring_vsock::{blocking, Endpoint, VsockOptions};
use util::{bind_endpoint, checksum, connect_endpoint, dead_endpoint, pattern, TempDir, Transport};

/// Fails the test after the watchdog instead of hanging.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(util::WATCHDOG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", util::WATCHDOG))
}

/// A listener on `t` with `backlog`, and where clients connect.
fn listen(t: Transport, dir: &TempDir, backlog: i32) -> (Listener, Endpoint) {
    let l = Listener::bind_with_backlog(&bind_endpoint(t, dir), backlog).expect("bind");
    let ep = connect_endpoint(&l.local_addr().unwrap());
    (l, ep)
}

async fn pair(t: Transport, dir: &TempDir) -> (Stream, Stream) {
    let (l, ep) = listen(t, dir, 128);
    let client = within("connect", Stream::connect(&ep))
        .await
        .expect("connect");
    let (server, _) = within("accept", l.accept()).await.expect("accept");
    (client, server)
}

/// xorshift: the chunk sizes of one transfer.
fn sizes(seed: u64) -> impl FnMut() -> usize {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        1 + (x % (64 * 1024)) as usize
    }
}

/// Writes `data` in random chunks, every other one as a two-slice vectored write, then shuts
/// the write side down (the peer reads EOF).
async fn write_chunked(w: &mut (impl AsyncWrite + Unpin), data: &[u8], seed: u64) {
    let mut next = sizes(seed);
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let end = (at + next()).min(data.len());
        let mut chunk = &data[at..end];
        if i % 2 == 1 {
            while !chunk.is_empty() {
                let mid = chunk.len() / 2;
                let bufs = [IoSlice::new(&chunk[..mid]), IoSlice::new(&chunk[mid..])];
                let n = w.write_vectored(&bufs).await.expect("vectored write");
                assert!(n > 0, "a vectored write wrote nothing");
                chunk = &chunk[n..];
            }
        } else {
            w.write_all(chunk).await.expect("write");
        }
        at = end;
        i += 1;
    }
    w.shutdown().await.expect("shutdown(SHUT_WR)");
}

/// Reads in random chunk sizes until EOF.
async fn read_chunked(r: &mut (impl AsyncRead + Unpin), seed: u64) -> Vec<u8> {
    let mut next = sizes(seed);
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let want = next();
        match r.read(&mut buf[..want]).await.expect("read") {
            0 => return got,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn transfer_both_ways(t: Transport) {
    let dir = TempDir::new();
    let (mut client, mut server) = pair(t, &dir).await;
    let request = pattern(11, 3 << 20);
    let reply = pattern(12, 2 << 20);
    let served = {
        let reply = reply.clone();
        tokio::spawn(async move {
            // The server reads the whole request (to the client's EOF) before replying: the
            // client's half-close must leave its read side working.
            let got = read_chunked(&mut server, 2).await;
            write_chunked(&mut server, &reply, 3).await;
            got
        })
    };
    write_chunked(&mut client, &request, 1).await;
    let back = within("the reply", read_chunked(&mut client, 4)).await;
    let got = within("the server", served).await.unwrap();
    assert_eq!(got.len(), request.len());
    assert_eq!(checksum(&got), checksum(&request));
    assert_eq!(back.len(), reply.len());
    assert_eq!(checksum(&back), checksum(&reply));
    assert_eq!(client.read(&mut [0; 8]).await.unwrap(), 0, "EOF stays EOF");
}

async fn thousand_concurrent_connections(t: Transport) {
    const CONNS: usize = 1000;
    const BYTES: usize = 16 * 1024;
    util::raise_nofile(3 * CONNS as u64 + 256);
    let dir = TempDir::new();
    let (l, ep) = listen(t, &dir, 1024);
    // The server takes them through `incoming()`, as tonic's `serve_with_incoming` would.
    let server = tokio::spawn(async move {
        let mut incoming = l.incoming();
        let mut echoes = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let mut s = next(&mut incoming)
                .await
                .expect("incoming never ends")
                .expect("accept");
            echoes.push(tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let n = tokio::io::copy(&mut r, &mut w).await.expect("echo");
                w.shutdown().await.expect("echo shutdown");
                n as usize
            }));
        }
        let mut total = 0;
        for e in echoes {
            total += e.await.unwrap();
        }
        total
    });
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            let ep = ep.clone();
            tokio::spawn(async move {
                let s = Stream::connect(&ep).await.expect("connect");
                let data = pattern(1000 + i as u64, BYTES);
                let (mut r, mut w) = s.into_split();
                let sent = data.clone();
                let writer =
                    tokio::spawn(async move { write_chunked(&mut w, &sent, i as u64).await });
                let got = read_chunked(&mut r, i as u64 + 7).await;
                writer.await.unwrap();
                assert_eq!(got.len(), BYTES, "conn {i}");
                assert_eq!(checksum(&got), checksum(&data), "conn {i}");
            })
        })
        .collect();
    within("1,000 clients", async {
        for c in clients {
            c.await.unwrap();
        }
    })
    .await;
    assert_eq!(within("the server", server).await.unwrap(), CONNS * BYTES);
}

async fn split_halves_in_two_tasks(t: Transport) {
    let dir = TempDir::new();
    let (client, mut server) = pair(t, &dir).await;
    let echo = tokio::spawn(async move {
        let (mut r, mut w) = server.split();
        let n = tokio::io::copy(&mut r, &mut w).await.expect("echo");
        w.shutdown().await.unwrap();
        n
    });
    let fd = client.as_raw_fd();
    let (mut r, mut w) = client.into_split();
    assert_eq!(r.peer_addr().unwrap(), w.peer_addr().unwrap());
    let data = pattern(21, 1 << 20);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write_chunked(&mut w, &sent, 5).await;
        w
    });
    let reader = tokio::spawn(async move {
        let got = read_chunked(&mut r, 6).await;
        (r, got)
    });
    let w = within("the writer task", writer).await.unwrap();
    let (r, got) = within("the reader task", reader).await.unwrap();
    assert_eq!(checksum(&got), checksum(&data));
    assert_eq!(within("the echo", echo).await.unwrap(), data.len() as u64);
    // The halves go back together; halves of two streams do not.
    let (other, _keep) = pair(t, &dir).await;
    let (or, ow) = other.into_split();
    let err = r.reunite(ow).unwrap_err();
    let (r, ow) = (err.0, err.1);
    or.reunite(ow).expect("halves of one stream");
    let stream = r.reunite(w).expect("halves of one stream");
    assert_eq!(stream.as_raw_fd(), fd, "the same socket");
}

/// The next item of a `futures_core::Stream` (what `StreamExt::next` does).
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// The server's view of its peer is the client's own address: all of it on tcp, the port on
/// vsock (a client's getsockname reports CID_ANY there); unix clients are unnamed.
fn assert_same_peer(t: Transport, peer: &Endpoint, client: &Endpoint) {
    match (t, peer, client) {
        (Transport::Tcp, _, _) => assert_eq!(peer, client),
        (Transport::Vsock, Endpoint::Vsock(p), Endpoint::Vsock(c)) => {
            assert_eq!(p.port(), c.port(), "{peer} vs {client}")
        }
        (Transport::Vsock, _, _) => panic!("not vsock: {peer}, {client}"),
        (Transport::Unix, _, _) => {}
    }
}

/// `incoming()` yields each connection once, in order, as a stream whose peer is the client;
/// an item not yet polled stays queued in the kernel, and `into_inner` gives the listener back.
async fn incoming_yields_every_connection(t: Transport) {
    let dir = TempDir::new();
    let (l, ep) = listen(t, &dir, 128);
    let mut incoming = l.incoming();
    if t != Transport::Vsock {
        // (vsock's is CID_ANY; clients dial loopback)
        assert_eq!(incoming.get_ref().local_addr().unwrap(), ep);
    }
    for i in 0..3u64 {
        let mut client = Stream::connect(&ep).await.expect("connect");
        let mut server = next(&mut incoming)
            .await
            .expect("incoming never ends")
            .expect("accept");
        assert_same_peer(
            t,
            &server.peer_addr().unwrap(),
            &client.local_addr().unwrap(),
        );
        let data = pattern(i, 4096);
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(checksum(&got), checksum(&data), "conn {i}");
    }
    // Connected before anyone polls: the kernel queues it; the listener taken back accepts it.
    let client = Stream::connect(&ep).await.expect("connect");
    let l = incoming.into_inner();
    let (_server, peer) = l.accept().await.expect("accept after into_inner");
    assert_same_peer(t, &peer, &client.local_addr().unwrap());
}

/// Instantiates an async test body for each transport; vsock only in the VM.
macro_rules! per_transport {
    ($($name:ident),*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unix() {
                within(stringify!($name), super::$name(Transport::Unix)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tcp() {
                within(stringify!($name), super::$name(Transport::Tcp)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs vsock loopback; run tools/vm-test"]
            async fn vsock() {
                util::require_vm();
                within(stringify!($name), super::$name(Transport::Vsock)).await
            }
        }
    )*};
}

per_transport!(
    transfer_both_ways,
    thousand_concurrent_connections,
    incoming_yields_every_connection,
    split_halves_in_two_tasks,
    connect_to_nothing_is_a_typed_error
);

async fn connect_to_nothing_is_a_typed_error(t: Transport) {
    let dir = TempDir::new();
    let ep = dead_endpoint(t, &dir);
    let want = match t {
        Transport::Vsock => libc::ECONNRESET,
        Transport::Tcp => libc::ECONNREFUSED,
        Transport::Unix => libc::ENOENT,
    };
    for err in [
        Stream::connect(&ep).await.unwrap_err(),
        Stream::connect_timeout(&ep, util::WATCHDOG)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.raw_os_error(), Some(want), "{err}");
        assert_eq!(err.op(), "connect");
        assert_eq!(err.endpoint(), Some(&ep));
        assert!(err.to_string().starts_with("connect "), "{err}");
    }
    let zero = Stream::connect_timeout(&ep, std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(zero.kind(), io::ErrorKind::InvalidInput, "{zero}");
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let dir = TempDir::new();
    let err = Listener::bind(&bind_endpoint(Transport::Unix, &dir)).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = Stream::from_fd(OwnedFd::from(a)).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[tokio::test]
async fn listeners_from_blocking_from_fd_and_abstract_names() {
    let dir = TempDir::new();
    // A blocking listener, taken over.
    let bl = blocking::Listener::bind(&bind_endpoint(Transport::Tcp, &dir)).unwrap();
    let l = Listener::try_from(bl).unwrap();
    let ep = l.local_addr().unwrap();
    let client = blocking::Stream::connect(&ep).unwrap();
    let (mut s, peer) = within("accept", l.accept()).await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    std::io::Write::write_all(&mut &client, b"adopted").unwrap();
    let mut buf = [0; 7];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"adopted");
    // An inherited fd: a listener is adopted; anything else is InvalidInput, saying what.
    let bl = blocking::Listener::bind(&bind_endpoint(Transport::Unix, &dir)).unwrap();
    let want = bl.local_addr().unwrap();
    let l = Listener::from_fd(OwnedFd::from(bl)).unwrap();
    assert_eq!(l.local_addr().unwrap(), want);
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = Listener::from_fd(OwnedFd::from(a)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not listening"), "{err}");
    // An abstract unix name, and a blocking stream taken over.
    let ep: Endpoint = format!("unix:@uring-vsock-tokio-{}", std::process::id())
        .parse()
        .unwrap();
    let l = Listener::bind(&ep).unwrap();
    assert_eq!(l.local_addr().unwrap(), ep);
    let c = Stream::from_std(blocking::Stream::connect(&ep).unwrap()).unwrap();
    let (_s, _) = within("accept", l.accept()).await.unwrap();
    assert_eq!(c.peer_addr().unwrap(), ep);
    // vsock options on a unix socket fail with the kernel's error, never a panic.
    assert!(c.vsock_buffer_size().is_err());
}

#[tokio::test]
async fn hybrid_connect_keeps_the_first_bytes_and_checksums_both_ways() {
    use hybrid_support::{FakeVmm, Reply};
    let payload = pattern(31, 200_000);
    let vmm = FakeVmm::start(Reply::Ok {
        payload: payload.clone(),
        pieces: 3,
    });
    let mut s = within(
        "the hybrid connect",
        Stream::connect_timeout(&vmm.ep, util::WATCHDOG),
    )
    .await
    .expect("hybrid connect");
    let send = pattern(32, 100_000);
    write_chunked(&mut s, &send, 9).await;
    let got = within("the guest's bytes", read_chunked(&mut s, 10)).await;
    assert_eq!(
        checksum(&got),
        checksum(&payload),
        "the bytes after OK are the stream's"
    );
    let served = vmm.finish();
    assert_eq!(served.request, b"CONNECT 5000\n");
    assert_eq!(served.received, checksum(&send));
}

/// Endpoint strings a user may mistype are typed parse errors that quote the input (a tokio
/// `Listener` or `Stream` takes only a parsed `Endpoint`, so this is where bad text stops).
#[test]
fn unknown_endpoint_strings_are_typed_parse_errors() {
    use uring_vsock::AddrParseErrorKind as K;
    /// Whether the error kind is the one a case expects.
    type Want = fn(&K) -> bool;
    let bad_endpoint: Want = |e| matches!(e, K::BadEndpoint(_));
    let cases: [(&str, Want); 11] = [
        ("", bad_endpoint),
        ("localhost:80", bad_endpoint),
        ("vsok:3:5000", bad_endpoint),
        ("vsock:3", |e| *e == K::MissingPort),
        ("vsock:three:5000", |e| matches!(e, K::BadCid(_))),
        ("vsock:3:99999999999", |e| matches!(e, K::BadPort(_))),
        ("unix:", bad_endpoint),
        ("unix:@", bad_endpoint),
        ("tcp:127.0.0.1", bad_endpoint),
        ("tcp:127.0.0.1:70000", bad_endpoint),
        ("hybrid:/run/vm.sock:x", |e| matches!(e, K::BadPort(_))),
    ];
    for (input, want) in cases {
        let err = input.parse::<Endpoint>().unwrap_err();
        assert!(want(err.kind()), "{input:?}: {err} ({:?})", err.kind());
        assert_eq!(err.input(), input);
        assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
    }
}

#[tokio::test]
async fn hybrid_refusal_and_missing_socket_are_typed() {
    use hybrid_support::{assert_handshake_error, FakeVmm, Reply};
    let vmm = FakeVmm::start(Reply::Raw(Vec::new()));
    let err = Stream::connect_timeout(&vmm.ep, util::WATCHDOG)
        .await
        .unwrap_err();
    assert_handshake_error(&err, &vmm.ep, HandshakeErrorKind::Refused);
    let vmm = FakeVmm::start(Reply::Raw(b"NOPE\n".to_vec()));
    let err = Stream::connect(&vmm.ep).await.unwrap_err();
    assert_handshake_error(&err, &vmm.ep, HandshakeErrorKind::Malformed);
    // A VMM that never answers: the deadline covers the handshake.
    let vmm = FakeVmm::start(Reply::RawHold(Vec::new()));
    let err = Stream::connect_timeout(&vmm.ep, std::time::Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert_eq!(err.op(), "handshake");
    drop(vmm);
    let dir = TempDir::new();
    let ep: Endpoint = format!("hybrid:{}/none.sock:5000", dir.0.display())
        .parse()
        .unwrap();
    let err = Stream::connect(&ep).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    assert_eq!(err.op(), "connect");
}

#[tokio::test]
async fn hybrid_listener_takes_the_guests_connects() {
    let dir = TempDir::new();
    let ep: Endpoint = format!("hybrid:{}/vm.sock:1234", dir.0.display())
        .parse()
        .unwrap();
    let l = Listener::bind(&ep).unwrap();
    // The VMM forwards a guest's connect to host port 1234 to `<uds_path>_1234`.
    let path = dir.0.join("vm.sock_1234");
    let mut guest =
        std::os::unix::net::UnixStream::connect(&path).expect("connect the listen path");
    let (mut s, _) = within("accept", l.accept()).await.unwrap();
    std::io::Write::write_all(&mut guest, b"from the guest").unwrap();
    guest.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"from the guest");
}

#[tokio::test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn vsock_options_on_a_vsock_stream() {
    util::require_vm();
    let dir = TempDir::new();
    let (client, _server) = pair(Transport::Vsock, &dir).await;
    client.set_vsock_buffer_size(128 * 1024).unwrap();
    assert_eq!(client.vsock_buffer_size().unwrap(), 128 * 1024);
    let (r, _w) = client.into_split();
    assert_eq!(r.vsock_buffer_size().unwrap(), 128 * 1024);
}

/// A tokio stream that does not read while its peer sends ~680 writes of 300 bytes (past the
/// ~455 packets the default buffer allows queued: `vsock_rx_overflow.rs`) is reset by the
/// kernel (Linux 6.12.92+); its next write fails at once instead of waiting out an
/// `ENOBUFS` that never clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn vsock_small_packet_reset_fails_a_tokio_write() {
    util::require_vm();
    let dir = TempDir::new();
    let (mut client, mut server) = pair(Transport::Vsock, &dir).await;
    let piece = [0x5au8; 300];
    let mut werr = None;
    for _ in 0..683 {
        if let Err(e) = within("a flood write", client.write_all(&piece)).await {
            werr = Some(e);
            break;
        }
    }
    // Loopback delivers asynchronously: let its worker queue the last packets.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let res = within("the reset side's write", server.write_all(b"x")).await;
    println!("client write error: {werr:?}; server write: {res:?}");
    match res {
        // The reset reaches the write as the peer's shutdown (EPIPE) or, where the socket's
        // pending error comes first, as the reset explained: an error either way, at once.
        Err(e) => assert!(
            e.raw_os_error() == Some(libc::EPIPE)
                || e.raw_os_error() == Some(libc::ECONNRESET)
                || e.to_string().contains("reset the connection"),
            "{e}"
        ),
        // An older kernel: credit alone bounds the queue; nothing was reset.
        Ok(()) => assert!(werr.is_none(), "{werr:?}"),
    }
}

/// The same flood with `SO_VM_SOCKETS_BUFFER_SIZE` raised to 1 MiB on both ends (the
/// kernel's bound on queued packets grows with it): nothing is reset, and every byte arrives
/// intact once the reader reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn vsock_raised_buffer_size_lets_a_tokio_small_packet_flood_through() {
    util::require_vm();
    let dir = TempDir::new();
    let (mut client, mut server) = pair(Transport::Vsock, &dir).await;
    for s in [&client, &server] {
        s.set_vsock_buffer_max_size(1 << 20).unwrap();
        s.set_vsock_buffer_size(1 << 20).unwrap();
    }
    let data = pattern(41, 683 * 300);
    for piece in data.chunks(300) {
        within("a flood write", client.write_all(piece))
            .await
            .expect("a flood write with a raised buffer");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    within("the writer's shutdown", client.shutdown())
        .await
        .unwrap();
    let mut got = Vec::new();
    within("the reader", server.read_to_end(&mut got))
        .await
        .expect("reads after the flood");
    assert_eq!(got.len(), data.len(), "bytes lost");
    assert_eq!(checksum(&got), checksum(&data));
}

/// A connect deadline past the kernel's 2 s vsock connect timeout raises
/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` to it (the kernel bounds nonblocking connects by it too); a
/// shorter one leaves the kernel's default.
#[tokio::test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn vsock_connect_timeout_raises_the_kernel_connect_timeout() {
    util::require_vm();
    let dir = TempDir::new();
    let (l, ep) = listen(Transport::Vsock, &dir, 128);
    let secs = std::time::Duration::from_secs;
    for (deadline, want) in [(secs(30), secs(30)), (secs(1), secs(2))] {
        let c = within("connect", Stream::connect_timeout(&ep, deadline))
            .await
            .expect("connect");
        assert_eq!(c.vsock_connect_timeout().unwrap(), want, "{deadline:?}");
        let _server = within("accept", l.accept()).await.expect("accept");
    }
}
