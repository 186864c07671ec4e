//! The engine over real vsock, in the test VM only (`tools/vm-test`: vsock_loopback, CID 1
//! reaches the same guest). Each test first checks it is in the VM and refuses otherwise,
//! before touching any socket: on the host a vsock connect leaves the machine.

mod engine_support;
#[path = "../examples/http.rs"]
mod http;
mod util;

use std::io::{self, BufReader};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use engine_support::{
    connect, echo_client, listen_reporting_echo, read_stream, recv_or_hang, write_stream, Echo,
    Sum, MIB,
};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use uring_vsock::Endpoint;
use util::{bind_endpoint, connect_endpoint, require_vm, TempDir, Transport};

fn vsock_echo_server() -> (Engine, Endpoint, TempDir) {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(2).build().unwrap();
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), |_| Echo::new())
        .unwrap();
    (e, connect_endpoint(&local), dir)
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_echo_32mib_checksummed() {
    let (e, ep, _dir) = vsock_echo_server();
    echo_client(&ep, 1, 32 * MIB);
    assert!(e.stats().recv_bytes >= 32 * MIB);
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_half_close() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let (local, rx) = listen_reporting_echo(&e, &bind_endpoint(Transport::Vsock, &dir));
    let ep = connect_endpoint(&local);
    let mut c = connect(&ep);
    // Written from a thread while this one reads: the echo's buffering per connection is
    // bounded (its share of receive buffers), so a peer that wrote 1 MiB before reading
    // anything would wait for itself.
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let sent = write_stream(&mut w, 3, MIB, 20_000).unwrap();
        w.shutdown(Shutdown::Write).unwrap(); // our half closed; the echo still comes back
        sent
    });
    let got = read_stream(&mut c, 3, 50_000).expect("read the echo");
    let sent = writer.join().unwrap();
    assert_eq!(got, sent);
    let reason = recv_or_hang(&rx, "the server's close");
    assert!(matches!(reason, CloseReason::Eof), "{reason}");
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_connect_no_listener_is_typed() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let dead = util::dead_endpoint(Transport::Vsock, &dir);
    let err = e
        .connect(&dead, Some(Duration::from_secs(5)), Echo::new)
        .unwrap_err();
    // vsock answers a connect to a port nobody listens on with a reset.
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(err.op(), "connect");
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_http_our_client() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), |_| {
            http::Http::default()
        })
        .unwrap();
    let mut s = BufReader::new(connect(&connect_endpoint(&local)));
    for n in [0usize, 1, 1000, 100_000] {
        let (code, body) = http::get(&mut s, &format!("/bytes/{n}")).unwrap();
        assert_eq!(code, 200);
        assert_eq!(body.len(), n);
        assert!(body
            .iter()
            .enumerate()
            .all(|(j, &b)| b == b'0' + (j % 10) as u8));
    }
    let (code, body) = http::get(&mut s, "/").unwrap();
    assert_eq!((code, &body[..]), (200, &b"hello from uring-vsock\n"[..]));
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_64_connections() {
    let (e, ep, _dir) = vsock_echo_server();
    let threads: Vec<_> = (0..64u64)
        .map(|i| {
            let ep = ep.clone();
            thread::spawn(move || echo_client(&ep, 500 + i, 64 * 1024))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.stats().accepted, 64);
}

/// What a [`Sender1`] got back (bytes, checksum), and why it closed.
type Sender1Report = ((u64, u64), CloseReason);

/// An engine client over vsock: sends `data` from pooled (registered) buffers, so sends of a
/// full buffer go zero-copy, then shuts down its write side and takes the echo to EOF.
struct Sender1 {
    data: Vec<u8>,
    got: Sum,
    done: mpsc::Sender<Sender1Report>,
}

impl Handler for Sender1 {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        assert_eq!(conn.send_copy(&self.data), self.data.len());
        conn.shutdown_write();
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got.add(&buf);
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.done.send((self.got.value(), reason.clone()));
    }
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_engine_client_to_engine_server() {
    let (e, ep, _dir) = vsock_echo_server();
    let data: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut want = Sum::default();
    want.add(&data);
    let (tx, rx) = mpsc::channel();
    let d = data.clone();
    e.connect(&ep, Some(Duration::from_secs(5)), move || Sender1 {
        data: d,
        got: Sum::default(),
        done: tx,
    })
    .unwrap();
    let (got, reason) = recv_or_hang(&rx, "the client's close");
    assert_eq!(got, want.value(), "echo differs");
    assert!(matches!(reason, CloseReason::Eof), "{reason}");
    // 512 KiB in eight full 64 KiB pool buffers, each at the zero-copy threshold: all eight go
    // SEND_ZC, and vsock (6.7+) takes them (a refusal would count a fallback).
    let s = e.stats();
    assert!(e.features().send_zc, "{}", e.features());
    assert!(s.zero_copy_sends >= 8, "{s:?}");
    assert_eq!(s.zero_copy_fallbacks, 0, "{s:?}");
}

/// Many engine connects in a row, with and without a deadline: vsock can leave a ring connect
/// under way (`EALREADY`), which the engine must finish by polling rather than fail.
#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_vsock_many_sequential_engine_connects_all_succeed() {
    let (e, ep, _dir) = vsock_echo_server();
    let client = Engine::builder().workers(2).build().unwrap();
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let mut want = Sum::default();
    want.add(&data);
    for i in 0..200 {
        let (tx, rx) = mpsc::channel();
        let d = data.clone();
        let timeout = (i % 2 == 0).then(|| Duration::from_secs(10));
        client
            .connect(&ep, timeout, move || Sender1 {
                data: d,
                got: Sum::default(),
                done: tx,
            })
            .unwrap_or_else(|err| panic!("connect {i}: {err}"));
        let (got, reason) = recv_or_hang(&rx, "a client's close");
        assert_eq!(got, want.value(), "connection {i}");
        assert!(
            matches!(reason, CloseReason::Eof),
            "connection {i}: {reason}"
        );
    }
    assert_eq!(client.stats().connected, 200);
    eprintln!(
        "connects finished by polling: {}",
        client.stats().connect_polls
    );
    drop(e);
}
