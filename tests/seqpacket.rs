//! SOCK_SEQPACKET contract tests, after the kernel's `vsock_test` seqpacket cases, for every
//! path (blocking, epoll, engine) over unix on the host and vsock in the VM: message
//! boundaries over many messages of random sizes, truncation reported, the largest message
//! and an over-size one, a receive timeout, the smallest receive buffer, and a peer that
//! closes. Every message is checked end to end (length and checksum).

mod seqpacket_support;
mod util;

use std::io;
use std::time::Duration;

use seqpacket_support::{
    default_max_message, Client, Event, Report, SeqpacketPath, Summary, REPORT,
};
use util::{TempDir, Transport};

/// How long "nothing arrives" is watched for in the receive-timeout case.
const QUIET: Duration = Duration::from_millis(200);

/// The next message, failing after the watchdog.
fn next(c: &mut dyn Client, what: &str) -> (Vec<u8>, usize, bool) {
    match c.recv_within(util::WATCHDOG) {
        Ok(Event::Msg {
            data,
            message_len,
            truncated,
        }) => (data, message_len, truncated),
        Ok(Event::Eof) => panic!("{what}: EOF instead of a message"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A message of kind `kind` and `len` bytes (at least 1), distinct per `seed`.
fn message(kind: u8, seed: u64, len: usize) -> Vec<u8> {
    let mut m = util::pattern(seed, len.max(1));
    m[0] = kind;
    m
}

/// Checks an `E` reply: the server got all of `sent` as one message, and echoed it.
fn check_echo(sent: &[u8], reply: (Vec<u8>, usize, bool), what: &str) {
    let (data, message_len, truncated) = reply;
    assert!(!truncated, "{what}: the reply was truncated");
    assert_eq!(message_len, data.len(), "{what}");
    let report = Report::decode(&data);
    assert_eq!(
        report,
        Report {
            message_len: sent.len() as u32,
            received: sent.len() as u32,
            truncated: false,
            checksum: util::checksum(sent),
        },
        "{what}: what the server received"
    );
    assert_eq!(data.len(), REPORT + sent.len(), "{what}: reply length");
    assert!(data[REPORT..] == *sent, "{what}: echoed bytes differ");
}

/// A seeded xorshift for message sizes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 500 messages of random sizes (1 B to 8 KiB), up to 8 in flight (well under any buffer,
/// so even vsock's nonblocking sends never find too little credit): each arrives whole and
/// alone, and comes back so.
fn boundaries<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 16 * 1024);
    let mut c = P::connect(&server.ep, 16 * 1024 + REPORT);
    let mut rng = Rng(0x5eed);
    let sent: Vec<Vec<u8>> = (0..500)
        .map(|i| message(b'E', i, 1 + rng.below(8192) as usize))
        .collect();
    let mut acked = 0;
    for (i, m) in sent.iter().enumerate() {
        c.send(m).unwrap_or_else(|e| panic!("send {i}: {e}"));
        if i - acked >= 8 {
            check_echo(
                &sent[acked],
                next(&mut *c, "reply"),
                &format!("message {acked}"),
            );
            acked += 1;
        }
    }
    while acked < sent.len() {
        check_echo(
            &sent[acked],
            next(&mut *c, "reply"),
            &format!("message {acked}"),
        );
        acked += 1;
    }
    c.close();
    let mut want = Summary::default();
    sent.iter().for_each(|m| want.add(m));
    want.eof = true;
    assert_eq!(
        server.summary(),
        want,
        "the server's count of what it received"
    );
}

/// A message longer than the server's 1 KiB buffer: the server gets its first 1 KiB,
/// reported truncated with the full length, and the rest is gone (the next message is
/// whole, not the tail).
fn truncation<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 1024);
    let mut c = P::connect(&server.ep, 4096);
    let long = message(b'E', 1, 3000);
    c.send(&long).unwrap();
    let (data, _, truncated) = next(&mut *c, "truncated reply");
    assert!(!truncated);
    let report = Report::decode(&data);
    assert_eq!(
        report,
        Report {
            message_len: 3000,
            received: 1024,
            truncated: true,
            checksum: util::checksum(&long[..1024]),
        }
    );
    assert!(data[REPORT..] == long[..1024], "the head of the message");
    let short = message(b'E', 2, 100);
    c.send(&short).unwrap();
    check_echo(
        &short,
        next(&mut *c, "next reply"),
        "the message after a truncated one",
    );
    c.close();
}

/// The largest message the connection allows arrives whole; one byte more is the path's
/// typed error and nothing of it arrives.
fn large<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 300 * 1024);
    let mut c = P::connect(&server.ep, 4096);
    let max = default_max_message(&server.ep);
    let big = message(b'R', 3, max);
    c.send(&big).unwrap();
    let (data, _, _) = next(&mut *c, "report of the largest message");
    assert_eq!(
        Report::decode(&data),
        Report {
            message_len: max as u32,
            received: max as u32,
            truncated: false,
            checksum: util::checksum(&big),
        }
    );
    let text = c.send_too_large(&message(b'R', 4, max + 1));
    assert!(
        text.contains("EMSGSIZE") || text.contains("os error 90"),
        "the error names EMSGSIZE: {text}"
    );
    c.close();
    let summary = server.summary();
    assert_eq!(summary.messages, 1, "the over-size message never arrived");
}

/// A receive with nothing sent times out (the path's own way: `SO_RCVTIMEO`, no readiness,
/// no completion), and the connection works after it.
fn recv_timeout<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 4096);
    let mut c = P::connect(&server.ep, 4096);
    match c.recv_within(QUIET) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => panic!("nothing was sent, yet: {other:?}"),
    }
    let m = message(b'E', 5, 77);
    c.send(&m).unwrap();
    check_echo(
        &m,
        next(&mut *c, "reply after a timeout"),
        "after a timeout",
    );
    c.close();
}

/// The smallest receive buffer (zero bytes; one on the engine): each receive still takes
/// exactly one message, reports it truncated with its full length, and panics nothing.
fn smallest_buffer<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 4096);
    let mut c = P::connect(&server.ep, P::SMALLEST_RECV_BUF);
    for (seed, len) in [(6, 500), (7, 700)] {
        let m = message(b'E', seed, len);
        c.send(&m).unwrap();
        let (data, message_len, truncated) = next(&mut *c, "reply into the smallest buffer");
        assert!(
            truncated,
            "a {}-byte reply in a {}-byte buffer",
            REPORT + len,
            P::SMALLEST_RECV_BUF
        );
        assert_eq!(message_len, REPORT + len, "the reply's full length");
        assert_eq!(data.len(), P::SMALLEST_RECV_BUF);
        let head = Report {
            message_len: len as u32,
            received: len as u32,
            truncated: false,
            checksum: util::checksum(&m),
        }
        .encode();
        assert!(data[..] == head[..data.len()], "the reply's first bytes");
    }
    c.close();
}

/// The client sends 100 messages (no replies) and closes: the server receives every one,
/// then EOF. Then the other way: the server replies to 5 messages and a last one, closes,
/// and the client gets all 6 replies, then EOF.
fn peer_closes<P: SeqpacketPath>(t: Transport) {
    let dir = TempDir::new();
    let server = P::serve(t, &dir, 16 * 1024);
    let mut c = P::connect(&server.ep, 16 * 1024 + REPORT);
    let mut rng = Rng(0xc105e);
    let mut want = Summary::default();
    for i in 0..100 {
        let m = message(b'Q', 100 + i, 1 + rng.below(4096) as usize);
        c.send(&m).unwrap();
        want.add(&m);
    }
    c.close();
    want.eof = true;
    assert_eq!(server.summary(), want, "every message, then EOF");

    let server = P::serve(t, &dir, 16 * 1024);
    let mut c = P::connect(&server.ep, 16 * 1024 + REPORT);
    let sent: Vec<Vec<u8>> = (0..5)
        .map(|i| message(b'E', 200 + i, 10 + i as usize * 300))
        .collect();
    for m in &sent {
        c.send(m).unwrap();
    }
    let last = message(b'C', 300, 42);
    c.send(&last).unwrap();
    for (i, m) in sent.iter().enumerate() {
        check_echo(
            m,
            next(&mut *c, "reply before the close"),
            &format!("message {i}"),
        );
    }
    let (data, _, _) = next(&mut *c, "the last reply");
    assert_eq!(Report::decode(&data).checksum, util::checksum(&last));
    match c.recv_within(util::WATCHDOG) {
        Ok(Event::Eof) => {}
        other => panic!("EOF after the server's last message, not {other:?}"),
    }
    assert!(!server.summary().eof, "the server closed first");
    c.close();
}

/// tcp (and hybrid) have no seqpacket: listen and connect are `Unsupported`, naming the
/// endpoint.
fn unsupported<P: SeqpacketPath>() {
    for ep in ["tcp:127.0.0.1:9", "hybrid:/nonexistent/vm.sock:5000"] {
        let ep: uring_vsock::Endpoint = ep.parse().unwrap();
        let (listen, connect) = P::unsupported(&ep);
        for err in [listen, connect] {
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
            assert_eq!(err.endpoint(), Some(&ep), "{err}");
            assert!(err.to_string().contains("SOCK_SEQPACKET"), "{err}");
        }
    }
}

macro_rules! contract {
    ($module:ident, $path:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn unsupported_families() {
                unsupported::<$path>();
            }

            contract!(@each $path, boundaries, truncation, large, recv_timeout, smallest_buffer, peer_closes);
        }
    };
    (@each $path:ty, $($case:ident),*) => {
        $(
            mod $case {
                use super::*;

                #[test]
                fn unix() {
                    super::super::$case::<$path>(Transport::Unix);
                }

                #[test]
                #[ignore = "vsock traffic: runs in the test VM (tools/vm-test)"]
                fn vsock() {
                    util::require_vm();
                    super::super::$case::<$path>(Transport::Vsock);
                }
            }
        )*
    };
}

contract!(seqpacket_blocking, seqpacket_support::blocking::Blocking);
contract!(seqpacket_epoll, seqpacket_support::epoll::Epoll);
contract!(seqpacket_engine, seqpacket_support::engine::EnginePath);
