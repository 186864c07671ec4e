//! What the test VM's kernel does to a vsock stream whose receiver stops reading while its peer
//! sends small packets: the reason an engine send can fail with `ENOBUFS` (errno 105).
//!
//! Credit bounds the bytes a peer may have queued (the receiver's buffer size, 256 KiB by
//! default), not the packets. Since Linux 6.12.92/6.12.94 (`059b7dbd20a6`, `a4f0b001782b`,
//! `c6087c5aaad6`: the mitigation of CVE-2026-23086) the virtio transports also bound the
//! receive queue to `buffer size / SKB_TRUESIZE(0)` packets (about 455 at the default), and a
//! packet past that resets the connection: the receiver's socket gets `sk_err = ENOBUFS`
//! (its next send fails with it) and the sender an RST. Packets of 128 bytes or less are merged
//! into the queue's last one, so it takes packets of 129 to ~575 bytes to get there with bytes
//! of credit left. That is no transient backpressure: the packet is dropped and the stream is
//! over, so a send that fails with it must not be retried.
//!
//! Over vsock in the test VM only (`tools/vm-test --test vsock_rx_overflow`).

mod util;

use std::io::{self, Read, Write};
use std::thread;
use std::time::Duration;

use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::VsockOptions;
use util::{bind_endpoint, connect_endpoint, require_vm, TempDir, Transport};

/// Bytes per write: above the 128 B the kernel merges, below the ~576 B an skb costs.
const PIECE: usize = 300;
/// Writes: ~680 packets, past the ~455 the default buffer allows queued, in 200 KiB, well
/// under the 256 KiB credit (no write ever waits for it).
const PIECES: usize = 683;
const TOTAL: usize = PIECE * PIECES;

/// A connected pair whose server has had `TOTAL` bytes sent to it in `PIECE`-byte writes
/// without reading, both ends with `SO_VM_SOCKETS_BUFFER_SIZE` `buffer` if given; returns
/// (client, server, the client's write error).
fn flood_unread_with(buffer: Option<u64>) -> (Stream, Stream, Option<io::Error>) {
    require_vm();
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    let mut client = Stream::connect(&ep).unwrap();
    let (server, _) = l.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        if let Some(bytes) = buffer {
            s.set_vsock_buffer_max_size(bytes).unwrap();
            s.set_vsock_buffer_size(bytes).unwrap();
        }
    }
    let piece = [0x5au8; PIECE];
    let werr = (0..PIECES).find_map(|_| client.write_all(&piece).err());
    // Loopback delivers asynchronously: give its worker time to queue the last packets.
    thread::sleep(Duration::from_millis(500));
    (client, server, werr)
}

fn flood_unread() -> (Stream, Stream, Option<io::Error>) {
    flood_unread_with(None)
}

/// Reads until EOF, an error (kept, with how often it repeats), or every byte sent.
fn drain(server: &mut Stream) -> (usize, Vec<io::Error>) {
    let (mut got, mut errs) = (0, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while errs.len() < 3 {
        match server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got >= TOTAL {
                    break;
                }
            }
            Err(e) => errs.push(e),
        }
    }
    (got, errs)
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_small_packets_to_a_reader_that_waits_reset_the_stream() {
    let (_client, mut server, werr) = flood_unread();
    let serr = server.write_all(b"x").err();
    let (got, rerrs) = drain(&mut server);
    println!(
        "client write error: {werr:?}; server send error: {serr:?}; \
         server read {got} of {TOTAL} bytes, then errors {rerrs:?}"
    );
    match serr {
        // The kernel bounds the receive queue's packets (6.12.94+): the stream was reset.
        Some(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "server send: {e}");
            assert!(got < TOTAL, "a reset stream delivered every byte ({got})");
        }
        // An older kernel: credit alone bounds the queue, every byte arrives.
        None => {
            assert!(werr.is_none(), "client write: {werr:?}");
            assert_eq!(got, TOTAL, "bytes lost without a reset");
        }
    }
}

/// The same reset seen by a receive first: what a reader gets (the engine's receive sees it).
#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_small_packets_reset_seen_by_a_read() {
    let (_client, mut server, werr) = flood_unread();
    let (got, rerrs) = drain(&mut server);
    let serr = server.write_all(b"x").err();
    println!(
        "client write error: {werr:?}; server read {got} of {TOTAL} bytes, then errors \
         {rerrs:?}; server send error then: {serr:?}"
    );
    if got < TOTAL {
        // Reset: after what was queued, every read fails with ENOBUFS (a read does not clear
        // the socket's error, so a reader that takes it for "no buffers, try again" spins),
        // and so does the next send.
        assert_eq!(rerrs.len(), 3, "reads after the reset: {rerrs:?}");
        for e in rerrs.iter().chain(&serr) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "{e}");
        }
        assert!(serr.is_some(), "a send on a reset stream succeeded");
    } else {
        assert!(rerrs.is_empty() && serr.is_none(), "{rerrs:?} {serr:?}");
    }
}

/// The same flood with a 1 MiB `SO_VM_SOCKETS_BUFFER_SIZE` on both ends (the queue's packet
/// bound grows with it, to ~1,800): nothing is reset, every byte arrives.
#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_raised_buffer_size_lets_the_same_flood_through() {
    let (client, mut server, werr) = flood_unread_with(Some(1 << 20));
    assert!(werr.is_none(), "client write: {werr:?}");
    drop(client);
    let (got, rerrs) = drain(&mut server);
    assert!(rerrs.is_empty(), "reads failed: {rerrs:?}");
    assert_eq!(got, TOTAL, "bytes lost");
}

// --- the epoll path: the same flood through mio readiness -------------------------------

/// Reads `server` (an epoll-path stream) with mio readiness until EOF, `TOTAL` bytes, or an
/// error; returns the bytes (checked against `0x5a`) and the first error.
fn drain_epoll(server: &mut uring_vsock::epoll::Stream) -> (usize, Option<io::Error>) {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(server, Token(0), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let deadline = std::time::Instant::now() + util::WATCHDOG;
    loop {
        match server.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => {
                assert!(buf[..n].iter().all(|&b| b == 0x5a), "bytes corrupted");
                got += n;
                if got >= TOTAL {
                    return (got, None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no readiness after {got} bytes within {:?}",
                    util::WATCHDOG
                );
                poll.poll(&mut events, Some(Duration::from_millis(200)))
                    .unwrap();
            }
            Err(e) => return (got, Some(e)),
        }
    }
}

/// The flood from an epoll-path client to an epoll-path server that does not read yet;
/// both ends' `SO_VM_SOCKETS_BUFFER_SIZE` is `buffer` if given.
fn flood_epoll(
    buffer: Option<u64>,
) -> (
    uring_vsock::epoll::Stream,
    uring_vsock::epoll::Stream,
    Option<io::Error>,
) {
    use uring_vsock::epoll;
    require_vm();
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    let mut client = epoll::Stream::connect_timeout(&ep, Duration::from_secs(10)).unwrap();
    let (server, _) = l.accept().unwrap();
    let server = epoll::Stream::from_connected(server.into()).unwrap();
    for s in [&client, &server] {
        if let Some(bytes) = buffer {
            s.set_vsock_buffer_max_size(bytes).unwrap();
            s.set_vsock_buffer_size(bytes).unwrap();
        }
    }
    let piece = [0x5au8; PIECE];
    // Under the credit: no write waits, so a WouldBlock here would be a finding of its own.
    let werr = (0..PIECES).find_map(|_| match client.write(&piece) {
        Ok(n) if n == PIECE => None,
        Ok(n) => Some(io::Error::other(format!("short write of {n}"))),
        Err(e) => Some(e),
    });
    thread::sleep(Duration::from_millis(500));
    (client, server, werr)
}

/// The epoll path gets the reset as an error from its read (`ENOBUFS`, not `WouldBlock`):
/// after what was queued, never a hang waiting for readiness and never a silent short EOF.
#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_small_packet_flood_reset_is_an_epoll_read_error() {
    let (_client, mut server, werr) = flood_epoll(None);
    let (got, rerr) = drain_epoll(&mut server);
    println!("client write error: {werr:?}; server read {got} of {TOTAL}, then {rerr:?}");
    if got < TOTAL {
        let e = rerr.expect("a reset stream ended without an error");
        assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "{e}");
    } else {
        assert!(werr.is_none() && rerr.is_none(), "{werr:?} {rerr:?}");
    }
}

/// With 1 MiB buffers on both ends the same epoll-path flood passes, every byte intact.
#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_raised_buffer_size_lets_the_epoll_flood_through() {
    let (client, mut server, werr) = flood_epoll(Some(1 << 20));
    assert!(werr.is_none(), "client write: {werr:?}");
    drop(client);
    let (got, rerr) = drain_epoll(&mut server);
    assert!(rerr.is_none(), "read failed: {rerr:?}");
    assert_eq!(got, TOTAL, "bytes lost");
}
