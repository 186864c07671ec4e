//! `vsock-tool proxy` on the host (unix and tcp): checksummed transfers both ways with random
//! chunk sizes and half-close, a target that resets mid-stream, a target that refuses.

mod support;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::thread;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

fn tcp() -> Endpoint {
    "tcp:127.0.0.1:0".parse().unwrap()
}

/// Each pair of (client side, target side) transports, several exchanges of different sizes
/// each way on one proxy.
#[test]
fn proxy_transfers_are_intact_both_ways_with_half_close() {
    let dir = TempDir::new();
    let cases = [
        (dir.unix("l1"), tcp()),
        (tcp(), dir.unix("t2")),
        (tcp(), tcp()),
        (dir.unix("l4"), dir.unix("t4")),
    ];
    for (i, (listen, target)) in cases.into_iter().enumerate() {
        let reply_len = 3 << 20;
        let (target, got) = support::duplex_server(&target, reply_len);
        let proxy = Proxy::start(&listen, &target, &["--workers", "2"]);
        for (j, len) in [8, 1_000, 5 << 20].into_iter().enumerate() {
            let seed = (i * 10 + j) as u64;
            support::exchange(&proxy.ep, seed, len, reply_len, &got);
        }
    }
}

/// The target resets the connection after reading some bytes, with more of the client's
/// bytes on their way: the client sees a reset, never a clean EOF.
/// The proxy serves the next client as before.
#[test]
fn proxy_passes_a_target_reset_on_as_a_reset() {
    let l = Listener::bind(&tcp()).unwrap();
    let target = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut buf = vec![0u8; 100_000];
        (&s).read_exact(&mut buf).unwrap();
        (&s).write_all(b"partial reply").unwrap();
        let sock = socket2::SockRef::from(&s);
        sock.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(s); // RST: unread data and linger 0
        l
    });
    let proxy = Proxy::start(&tcp(), &target, &["--workers", "1"]);
    let c = Stream::connect(&proxy.ep).unwrap();
    c.set_read_timeout(Some(WATCHDOG)).unwrap();
    // One thread: the socket reports the reset once, to whichever call comes first. The
    // write fits the buffers along the way, so it normally returns before the reset.
    let err = match (&c).write_all(&vec![7u8; 200_000]) {
        Err(e) => e,
        Ok(()) => {
            let mut got = Vec::new();
            let res = (&c).read_to_end(&mut got);
            res.expect_err("a reset, not a clean EOF")
        }
    };
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    // The next client is proxied as usual.
    let l = server.join().unwrap();
    let next = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        (&s).write_all(b"hello").unwrap();
    });
    let c = Stream::connect(&proxy.ep).unwrap();
    c.set_read_timeout(Some(WATCHDOG)).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut hello = Vec::new();
    (&c).read_to_end(&mut hello).unwrap();
    assert_eq!(hello, b"hello");
    next.join().unwrap();
}

/// Nothing listens at the target: each client is closed at once (EOF before it sent
/// anything), and the proxy logs why.
#[test]
fn proxy_resets_the_client_at_once_when_the_target_refuses() {
    let dir = TempDir::new();
    let dead = dir.unix("nobody");
    let mut proxy = Proxy::start(&tcp(), &dead, &["--log-level", "warn", "--workers", "1"]);
    for _ in 0..3 {
        let c = Stream::connect(&proxy.ep).unwrap();
        c.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut buf = [0u8; 16];
        let err = (&c)
            .read(&mut buf)
            .expect_err("a reset, not an EOF, for a client whose target refused");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
    let line = proxy.wait_line("No such file");
    assert!(line.contains(&dead.to_string()), "{line}");
}
