//! Host ↔ guest over a real virtio-vsock device (`tools/vm-virtio`): the host side is unix
//! sockets only (the device's `vm.sock` and `vm.sock_<port>`), the guest side runs on every
//! path in the guest agent (tests/virtio_guest.rs), commanded over a serial port that does
//! not go through the device. Every test is `#[ignore]`d outside the testbed; the runner
//! runs them one at a time (`--test-threads 1`: a test that freezes the device would stall
//! the others), the device-killing test in a run of its own, and `QUIT` last.

mod util;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::{blocking, Endpoint};
use util::virtio::{echo_through, hybrid_connect, num, stream_sum, Echoed, Fnv, Testbed};
use util::virtio_control::control;
use util::WATCHDOG;

const MIB: u64 = 1 << 20;
/// Generous: an answer is expected, under TCG.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// A guest port no earlier run of this binary (in the same testbed) has used: the runner
/// starts several processes against one guest.
fn guest_port() -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 64, "more than 64 ports in one run");
    1_000_000 + (std::process::id() % 60_000_000) * 64 + n as u32
}

/// Starts an echo server on `path` in the guest; returns its port.
fn serve(path: &str) -> u32 {
    let port = guest_port();
    control().ok(&format!("SERVE {path} {port}"));
    port
}

/// Waits until the guest server on `port` reports stats for which `cond` holds.
fn wait_stats(port: u32, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = control().ok(&format!("STATS {port}"));
        if cond(&s) {
            return s;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "{what}: guest server stats stay `{s}`"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A host client through the device to guest `port`, with watchdog timeouts on its I/O.
fn connect(port: u32) -> blocking::Stream {
    let s = hybrid_connect(&Testbed::from_env().vm_sock(), port, HANDSHAKE)
        .unwrap_or_else(|e| panic!("hybrid connect to guest port {port}: {e}"));
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s.set_write_timeout(Some(WATCHDOG)).unwrap();
    s
}

/// A full checked echo of `total` bytes from the host to the guest server on `port`.
fn host_echo(port: u32, seed: u64, total: u64, progress: &AtomicU64) -> io::Result<Echoed> {
    echo_through(&mut connect(port), seed, total, 64 * 1024, progress)
}

fn assert_full(e: &Echoed, seed: u64, total: u64) {
    let sum = stream_sum(seed, total);
    assert_eq!((e.sent, e.received), (total, total), "{e:?}");
    assert_eq!((e.sent_sum, e.received_sum), (sum, sum), "{e:?}");
}

/// One connection a [`HostServer`] served: bytes echoed, their checksum, how it ended.
#[derive(Debug, Clone, Copy)]
struct HostConn {
    bytes: u64,
    sum: u64,
    clean: bool,
}

/// An echo server on the host for guest clients: a unix listener at `vm.sock_<port>`.
struct HostServer {
    port: u32,
    conns: Arc<Mutex<Vec<HostConn>>>,
    /// Bytes echoed so far, over all connections.
    progress: Arc<AtomicU64>,
}

impl HostServer {
    fn start() -> HostServer {
        let bed = Testbed::from_env();
        // A port whose socket file is free (earlier runs' files may remain).
        let (port, l) = (0..64)
            .find_map(|_| {
                let port = guest_port();
                let ep = Endpoint::Unix(bed.host_port_sock(port));
                blocking::Listener::bind(&ep).ok().map(|l| (port, l))
            })
            .expect("no free host port socket");
        let conns = Arc::new(Mutex::new(Vec::new()));
        let progress = Arc::new(AtomicU64::new(0));
        let (c, p) = (Arc::clone(&conns), Arc::clone(&progress));
        thread::spawn(move || {
            while let Ok((s, _)) = l.accept() {
                let (c, p) = (Arc::clone(&c), Arc::clone(&p));
                thread::spawn(move || {
                    let conn = host_echo_conn(s, &p);
                    c.lock().unwrap().push(conn);
                });
            }
        });
        HostServer {
            port,
            conns,
            progress,
        }
    }

    /// Waits for a finished connection for which `cond` holds.
    fn wait_conn(&self, what: &str, cond: impl Fn(&HostConn) -> bool) -> HostConn {
        let start = Instant::now();
        loop {
            if let Some(c) = self.conns.lock().unwrap().iter().find(|c| cond(c)) {
                return *c;
            }
            let seen = self.conns.lock().unwrap().clone();
            assert!(
                start.elapsed() < WATCHDOG,
                "{what}: host connections {seen:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Testbed::from_env().host_port_sock(self.port));
    }
}

fn host_echo_conn(mut s: blocking::Stream, progress: &AtomicU64) -> HostConn {
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s.set_write_timeout(Some(WATCHDOG)).unwrap();
    let mut sum = Fnv::default();
    let mut bytes = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let clean = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                sum.add(&buf[..n]);
                if s.write_all(&buf[..n]).is_err() {
                    break false;
                }
                bytes += n as u64;
                progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => break false,
        }
    };
    HostConn {
        bytes,
        sum: sum.0,
        clean,
    }
}

/// Asks the guest to connect to host `port` on `path` and echo `bytes`; returns the reply.
fn guest_echo(path: &str, port: u32, bytes: u64, seed: u64, connect_ms: u64) -> String {
    control().ok(&format!("ECHO {path} {port} {bytes} {seed} {connect_ms} 0"))
}

/// The device stopped (`SIGSTOP`) for as long as this lives.
struct Frozen(Testbed);

impl Frozen {
    fn new() -> Frozen {
        // The guest must be up first: QEMU waits on a frozen device while the guest's driver
        // sets it up, which would hold the boot (and the agent's first answer) until thawed.
        control();
        let bed = Testbed::from_env();
        bed.signal_device(libc::SIGSTOP);
        Frozen(bed)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.0.signal_device(libc::SIGCONT);
    }
}

fn echo_16mib(path: &str) {
    let port = serve(path);
    let total = 16 * MIB;
    let e = host_echo(port, 1, total, &AtomicU64::new(0)).expect("16 MiB echo");
    assert_full(&e, 1, total);
    wait_stats(port, "after the echo", |s| {
        num(s, "accepted") == 1 && num(s, "open") == 0 && num(s, "bytes") == total
    });
}

fn hundred_concurrent(path: &str) {
    const CONNS: u64 = 100;
    const EACH: u64 = 256 * 1024;
    let port = serve(path);
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            thread::spawn(move || {
                let e = host_echo(port, 100 + i, EACH, &AtomicU64::new(0));
                (i, e)
            })
        })
        .collect();
    for c in clients {
        let (i, e) = c.join().expect("a client thread panicked");
        let e = e.unwrap_or_else(|err| panic!("client {i}: {err}"));
        assert_full(&e, 100 + i, EACH);
    }
    wait_stats(port, "after 100 echoes", |s| {
        num(s, "accepted") == CONNS && num(s, "open") == 0 && num(s, "bytes") == CONNS * EACH
    });
}

/// Writes up to `limit` bytes without reading, stopping at the first error (a full path
/// backs up: the write timeout ends it), then drops the stream with the echo unread.
fn vanish(port: u32, seed: u64, limit: u64) {
    let mut s = connect(port);
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut gen = util::virtio::Bytes::new(seed);
    let mut block = vec![0u8; 32 * 1024];
    let mut sent = 0;
    while sent < limit {
        gen.fill(&mut block);
        match s.write(&block) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    assert!(sent > 0, "a vanishing client sent nothing");
}

/// The host ends a connection mid-stream (the guest expects more): the guest's connection
/// ends (the device turns a host close into a shutdown), and the server serves the next.
/// The host reads the echo before closing: a close with the echo unread (a unix reset) is
/// not passed on by the device when it has nothing more to write, and the guest's
/// connection stays open (a limit of the device, in the README).
fn host_close_mid_stream(path: &str) {
    let port = serve(path);
    {
        let mut s = connect(port);
        let mut block = vec![0u8; 64 * 1024];
        util::virtio::Bytes::new(7).fill(&mut block);
        s.write_all(&block).expect("write 64 KiB");
        let mut back = vec![0u8; block.len()];
        s.read_exact(&mut back).expect("read the 64 KiB echo");
        assert!(back == block, "the echo differs");
    }
    wait_stats(port, "after the reset", |s| {
        num(s, "accepted") == 1 && num(s, "open") == 0
    });
    // The server goes on serving.
    let e = host_echo(port, 8, MIB, &AtomicU64::new(0)).expect("echo after a reset");
    assert_full(&e, 8, MIB);
    wait_stats(port, "after the second connection", |s| {
        num(s, "accepted") == 2 && num(s, "open") == 0
    });
}

fn guest_to_host_echo(path: &str) {
    let server = HostServer::start();
    let total = 4 * MIB;
    let r = guest_echo(path, server.port, total, 3, 30_000);
    assert_eq!(util::virtio::field(&r, "result"), Some("echoed"), "{r}");
    let sum = stream_sum(3, total);
    assert_eq!(
        (num(&r, "sent"), num(&r, "received")),
        (total, total),
        "{r}"
    );
    assert_eq!(
        (num(&r, "sent_sum"), num(&r, "received_sum")),
        (sum, sum),
        "{r}"
    );
    // The host saw the same bytes (its connection ends when the guest closes).
    let c = server.wait_conn("the guest's connection", |c| c.bytes == total);
    assert_eq!(c.sum, sum, "{c:?}");
    assert!(
        c.clean,
        "the guest's close reached the host as an error: {c:?}"
    );
}

fn connect_deadline_while_frozen(path: &str) {
    const DEADLINE_MS: u64 = 1_000; // below the kernel's own 2 s vsock connect timeout
    let server = HostServer::start();
    {
        let _frozen = Frozen::new();
        let r = guest_echo(path, server.port, 64 * 1024, 4, DEADLINE_MS);
        assert_eq!(
            util::virtio::field(&r, "result"),
            Some("connect_err"),
            "{r}"
        );
        assert_eq!(util::virtio::field(&r, "kind"), Some("TimedOut"), "{r}");
        // The deadline really waited: the frozen device never answered.
        assert!(num(&r, "after_ms") >= DEADLINE_MS - 10, "{r}");
    }
    // Thawed: the same connect works (the stale request may reach the host server too).
    let r = guest_echo(path, server.port, MIB, 5, 30_000);
    assert_eq!(util::virtio::field(&r, "result"), Some("echoed"), "{r}");
    assert_eq!(num(&r, "received_sum"), stream_sum(5, MIB), "{r}");
    server.wait_conn("the connect after thawing", |c| c.bytes == MIB);
}

macro_rules! per_path {
    ($($name:ident => $body:ident;)*) => {
        $(mod $name {
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_blocking() { super::$body("blocking") }
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_epoll() { super::$body("epoll") }
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_engine() { super::$body("engine") }
        })*
    };
}

per_path! {
    host_to_guest_echo_16mib => echo_16mib;
    host_to_guest_100_concurrent => hundred_concurrent;
    host_close_mid_stream => host_close_mid_stream;
    guest_to_host_echo => guest_to_host_echo;
    connect_deadline_fires_while_device_frozen => connect_deadline_while_frozen;
}

#[test]
#[ignore = "virtio testbed only: tools/vm-virtio"]
fn virtio_connect_to_a_guest_port_without_listener_is_refused() {
    let port = guest_port(); // nothing serves it
    let err = hybrid_connect(&Testbed::from_env().vm_sock(), port, HANDSHAKE).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

/// Issue 7's defect over the real device: the engine's echo server stopped answering new
/// connections after ~25 clients vanished mid-transfer.
#[test]
#[ignore = "virtio testbed only: tools/vm-virtio"]
fn virtio_engine_keeps_serving_after_vanished_clients() {
    const VANISHED: u64 = 30;
    const LIVE: u64 = 10;
    let port = serve("engine");
    let gone: Vec<_> = (0..VANISHED)
        .map(|i| thread::spawn(move || vanish(port, 200 + i, 512 * 1024)))
        .collect();
    for g in gone {
        g.join().expect("a vanishing client panicked");
    }
    wait_stats(port, "after the vanished clients", |s| {
        num(s, "accepted") == VANISHED && num(s, "open") == 0
    });
    let live: Vec<_> = (0..LIVE)
        .map(|i| thread::spawn(move || (i, host_echo(port, 300 + i, MIB, &AtomicU64::new(0)))))
        .collect();
    for l in live {
        let (i, e) = l.join().expect("a live client panicked");
        let e = e.unwrap_or_else(|err| panic!("live client {i} after the vanished ones: {err}"));
        assert_full(&e, 300 + i, MIB);
    }
    wait_stats(port, "after the live clients", |s| {
        num(s, "accepted") == VANISHED + LIVE && num(s, "open") == 0
    });
}

/// A transfer across a device freeze: it waits, then completes intact.
#[test]
#[ignore = "virtio testbed only: tools/vm-virtio"]
fn virtio_transfer_resumes_after_a_device_freeze() {
    let port = serve("engine");
    let total = 8 * MIB;
    let progress = Arc::new(AtomicU64::new(0));
    let p = Arc::clone(&progress);
    let client = thread::spawn(move || host_echo(port, 9, total, &p));
    util::virtio::wait_until("1 MiB echoed before the freeze", || {
        progress.load(Ordering::Relaxed) >= MIB
    });
    {
        let _frozen = Frozen::new();
        thread::sleep(Duration::from_secs(2)); // let the client run into the stall
    }
    let e = client
        .join()
        .expect("the client panicked")
        .expect("echo across a freeze");
    assert_full(&e, 9, total);
}

/// The device killed mid-stream (run alone, after the others: the guest's vsock is gone
/// afterwards): the host client, the host server and the guest client each get an error
/// or an early end, and nothing hangs.
#[test]
#[ignore = "virtio testbed only, and last: tools/vm-virtio"]
fn virtio_device_killed_mid_stream() {
    let total = 256 * MIB;
    let port = serve("blocking");
    let progress = Arc::new(AtomicU64::new(0));
    let p = Arc::clone(&progress);
    let client = thread::spawn(move || host_echo(port, 10, total, &p));
    let server = HostServer::start();
    let guest = control().send(&format!(
        "ECHO blocking {} {total} 11 30000 5000",
        server.port
    ));
    util::virtio::wait_until("both transfers under way", || {
        progress.load(Ordering::Relaxed) >= MIB && server.progress.load(Ordering::Relaxed) >= MIB
    });
    Testbed::from_env().signal_device(libc::SIGKILL);
    let host = client.join().expect("the host client panicked");
    assert!(
        host.is_err(),
        "the host client finished despite the kill: {host:?}"
    );
    let r = control().wait(guest, WATCHDOG);
    assert_eq!(util::virtio::field(&r, "result"), Some("io_err"), "{r}");
    let c = server.wait_conn("the host server's connection", |_| true);
    assert!(c.bytes < total, "{c:?}");
}

/// Last: the agent quits and reports no failure of its own (panics, server errors).
#[test]
#[ignore = "virtio testbed only, and last: tools/vm-virtio"]
fn virtio_agent_quits_without_failures() {
    let r = control().request("QUIT", WATCHDOG);
    assert_eq!(r, "OK failures=0");
}
