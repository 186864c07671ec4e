//! Host ↔ guest over a real virtio-vsock device (`tools/vm-virtio`): the host side is unix
//! sockets only, through the library's hybrid endpoint on every path (`hybrid:<vm.sock>:PORT`
//! connects with the `CONNECT` handshake; host servers listen on `vm.sock_<port>`), the guest
//! side runs on every path in the guest agent (tests/virtio_guest.rs), commanded over a serial
//! port that does not go through the device. Test names say both: `host_<path>` and
//! `virtio_guest_<path>`. Every test is `#[ignore]`d outside the testbed; the runner runs them
//! one at a time (`--test-threads 1`: a test that freezes the device would stall the others),
//! the device-killing test in a run of its own, and `QUIT` last.

mod engine_support;
#[path = "virtio_agent/servers.rs"]
mod servers;
mod util;
#[path = "util/virtio_host.rs"]
mod virtio_host;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use servers::Mode;
use uring_vsock::uring::CloseReason;
use util::engine_path::{close_reason, EnginePath};
use util::path::{Blocking, Epoll};
use util::virtio::{echo_through, field, num, stream_sum, Echoed, Testbed};
use util::virtio_control::control;
use util::WATCHDOG;
use virtio_host::{
    connect, fresh_port, is_refused, serve_in_guest, try_connect, wait_guest_stats, HostPath,
    HostServer,
};

const MIB: u64 = 1 << 20;

/// A full checked echo of `total` bytes from a host client on `P` to the guest server on `port`.
fn host_echo<P: HostPath>(
    port: u32,
    seed: u64,
    total: u64,
    progress: &AtomicU64,
) -> io::Result<Echoed> {
    echo_through(&mut connect::<P>(port), seed, total, 64 * 1024, progress)
}

fn assert_full(e: &Echoed, seed: u64, total: u64) {
    let sum = stream_sum(seed, total);
    assert_eq!((e.sent, e.received), (total, total), "{e:?}");
    assert_eq!((e.sent_sum, e.received_sum), (sum, sum), "{e:?}");
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

// --- host → guest, host client on path P, guest server on `guest` ------------------------

fn echo_16mib<P: HostPath>(guest: &str) {
    let port = serve_in_guest(guest, Mode::Echo);
    let total = 16 * MIB;
    let e = host_echo::<P>(port, 1, total, &AtomicU64::new(0)).expect("16 MiB echo");
    assert_full(&e, 1, total);
    wait_guest_stats(port, "after the echo", |s| {
        num(s, "accepted") == 1 && num(s, "open") == 0 && num(s, "bytes") == total
    });
}

fn hundred_concurrent<P: HostPath>(guest: &str) {
    const CONNS: u64 = 100;
    const EACH: u64 = 256 * 1024;
    let port = serve_in_guest(guest, Mode::Echo);
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            thread::spawn(move || {
                let e = host_echo::<P>(port, 100 + i, EACH, &AtomicU64::new(0));
                (i, e)
            })
        })
        .collect();
    for c in clients {
        let (i, e) = c.join().expect("a client thread panicked");
        let e = e.unwrap_or_else(|err| panic!("client {i}: {err}"));
        assert_full(&e, 100 + i, EACH);
    }
    wait_guest_stats(port, "after 100 echoes", |s| {
        num(s, "accepted") == CONNS && num(s, "open") == 0 && num(s, "bytes") == CONNS * EACH
    });
}

/// The host ends a connection mid-stream (the guest expects more): the guest's connection
/// ends (the device turns a host close into a shutdown), and the server serves the next.
/// The host reads the echo before closing: a close with the echo unread (a unix reset) is
/// not passed on by the device when it has nothing more to write, and the guest's
/// connection stays open (a limit of the device, in the README).
fn host_close_mid_stream<P: HostPath>(guest: &str) {
    let port = serve_in_guest(guest, Mode::Echo);
    {
        let mut s = connect::<P>(port);
        let mut block = vec![0u8; 64 * 1024];
        util::virtio::Bytes::new(7).fill(&mut block);
        s.write_all(&block).expect("write 64 KiB");
        let mut back = vec![0u8; block.len()];
        s.read_exact(&mut back).expect("read the 64 KiB echo");
        assert!(back == block, "the echo differs");
    }
    wait_guest_stats(port, "after the close", |s| {
        num(s, "accepted") == 1 && num(s, "open") == 0
    });
    // The server goes on serving.
    let e = host_echo::<P>(port, 8, MIB, &AtomicU64::new(0)).expect("echo after a close");
    assert_full(&e, 8, MIB);
    wait_guest_stats(port, "after the second connection", |s| {
        num(s, "accepted") == 2 && num(s, "open") == 0
    });
}

/// The guest server aborts each connection mid-stream (engine `abort()`, `SO_LINGER` 0 on
/// the socket paths) once it has the whole request, without echoing its last read. What
/// the host sees through the device: an end of stream (EOF) after a correct prefix of the
/// echo, never a read error, and then its writes fail with `EPIPE`: the same as a vsock peer
/// sees from a kernel-to-kernel abort (tests/vsock_parity.rs), since a vsock abort is a
/// shutdown, which the device turns into a close of the unix connection. The host sends
/// only what the guest reads, so the device has nothing unread when it closes (unread data
/// can make that close a unix reset, `ECONNRESET`, instead).
fn guest_abort_mid_stream<P: HostPath>(guest: &str) {
    const REQUEST: u64 = 256 * 1024;
    let port = serve_in_guest(guest, Mode::AbortAfter(REQUEST));
    let mut s = connect::<P>(port);
    let progress = AtomicU64::new(0);
    let err = echo_through(&mut s, 12, REQUEST, 16 * 1024, &progress)
        .expect_err("a full echo from a server that aborts");
    let echoed = progress.load(Ordering::Relaxed);
    assert!(echoed < REQUEST, "{err}");
    assert_eq!(
        err.kind(),
        io::ErrorKind::UnexpectedEof,
        "{} host after {echoed} bytes of echo: {err} ({:?})",
        P::NAME,
        close_reason(&err)
    );
    let after = write_until_error(&mut s);
    if P::ENGINE {
        // The engine's send fails with `EPIPE`, which closes the connection as a reset.
        assert!(
            matches!(close_reason(&after), Some(CloseReason::Reset)),
            "engine host write after the abort: {after}"
        );
    } else {
        assert_eq!(
            after.raw_os_error(),
            Some(libc::EPIPE),
            "{} host write after the abort: {after}",
            P::NAME
        );
    }
    wait_guest_stats(port, "after the abort", |s| {
        num(s, "accepted") == 1 && num(s, "aborted") == 1 && num(s, "open") == 0
    });
}

/// Writes until a write fails (within [`WATCHDOG`]); returns the error.
fn write_until_error(s: &mut impl Write) -> io::Error {
    let start = Instant::now();
    let block = [0x5au8; 4096];
    loop {
        if let Err(e) = s.write(&block) {
            return e;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "writes kept succeeding after the peer's end"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

// --- guest → host: guest client on `guest`, host server on path P ------------------------

fn guest_to_host_echo<P: HostPath>(guest: &str) {
    let server = HostServer::start(P::NAME);
    let total = 4 * MIB;
    let r = guest_echo(guest, server.port, total, 3, 30_000);
    assert_eq!(field(&r, "result"), Some("echoed"), "{r}");
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
    // The host server echoed the same bytes, and the guest's close reached it as an EOF.
    server.wait_stats("the guest's connection", |s| {
        num(s, "accepted") == 1 && num(s, "ended_eof") == 1 && num(s, "bytes") == total
    });
}

// --- per host path only ------------------------------------------------------------------

fn no_listener_is_refused<P: HostPath>() {
    let port = fresh_port(); // nothing serves it
    let start = Instant::now();
    let err = try_connect::<P>(port, Duration::from_secs(30))
        .err()
        .unwrap_or_else(|| panic!("{} connected to a port nobody serves", P::NAME));
    assert!(is_refused(&err), "{err}");
    // Refused by the device, not cut by the deadline.
    assert!(start.elapsed() < Duration::from_secs(30), "{err}");
}

/// A host connect while the device is frozen: the unix connect is queued in the device's
/// backlog and the `CONNECT` is never answered, so the deadline ends the handshake. Thawed,
/// the device serves the same port.
fn connect_deadline_while_frozen<P: HostPath>(guest: &str) {
    const DEADLINE: Duration = Duration::from_secs(1);
    let port = serve_in_guest(guest, Mode::Echo);
    {
        let _frozen = Frozen::new();
        let start = Instant::now();
        let err = try_connect::<P>(port, DEADLINE)
            .err()
            .unwrap_or_else(|| panic!("{} connected through a frozen device", P::NAME));
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The deadline really waited: the frozen device never answered.
        assert!(start.elapsed() >= DEADLINE, "{err}");
    }
    // Thawed: the stale request may reach the guest server too; this one echoes.
    let e = host_echo::<P>(port, 5, MIB, &AtomicU64::new(0)).expect("echo after thawing");
    assert_full(&e, 5, MIB);
}

/// Generates `mod $case { mod host_<path> { fn virtio_guest_<path>() } }` for every pair.
macro_rules! host_by_guest {
    ($($case:ident => $body:ident;)*) => {
        $(mod $case {
            host_by_guest!(@host $body, host_blocking, crate::util::path::Blocking);
            host_by_guest!(@host $body, host_epoll, crate::util::path::Epoll);
            host_by_guest!(@host $body, host_engine, crate::util::engine_path::EnginePath);
        })*
    };
    (@host $body:ident, $host:ident, $path:ty) => {
        mod $host {
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_guest_blocking() { crate::$body::<$path>("blocking") }
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_guest_epoll() { crate::$body::<$path>("epoll") }
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn virtio_guest_engine() { crate::$body::<$path>("engine") }
        }
    };
}

host_by_guest! {
    host_to_guest_echo_16mib => echo_16mib;
    host_to_guest_100_concurrent => hundred_concurrent;
    host_close_mid_stream => host_close_mid_stream;
    guest_abort_mid_stream => guest_abort_mid_stream;
    guest_to_host_echo => guest_to_host_echo;
}

/// One test per host path (the guest side is fixed or absent).
macro_rules! per_host {
    ($($name:ident => $call:expr;)*) => {
        $(
            #[test]
            #[ignore = "virtio testbed only: tools/vm-virtio"]
            fn $name() { $call }
        )*
    };
}

per_host! {
    virtio_host_blocking_connect_without_guest_listener_is_refused => no_listener_is_refused::<Blocking>();
    virtio_host_epoll_connect_without_guest_listener_is_refused => no_listener_is_refused::<Epoll>();
    virtio_host_engine_connect_without_guest_listener_is_refused => no_listener_is_refused::<EnginePath>();
    virtio_host_blocking_connect_deadline_fires_while_device_frozen => connect_deadline_while_frozen::<Blocking>("blocking");
    virtio_host_epoll_connect_deadline_fires_while_device_frozen => connect_deadline_while_frozen::<Epoll>("epoll");
    virtio_host_engine_connect_deadline_fires_while_device_frozen => connect_deadline_while_frozen::<EnginePath>("engine");
}

/// A guest connect while the device is frozen: the guest's deadline fires (`TimedOut`);
/// thawed, the same connect works.
fn guest_connect_deadline_while_frozen(guest: &str) {
    const DEADLINE_MS: u64 = 1_000; // below the kernel's own 2 s vsock connect timeout
    let server = HostServer::start("blocking");
    {
        let _frozen = Frozen::new();
        let r = guest_echo(guest, server.port, 64 * 1024, 4, DEADLINE_MS);
        assert_eq!(field(&r, "result"), Some("connect_err"), "{r}");
        assert_eq!(field(&r, "kind"), Some("TimedOut"), "{r}");
        // The deadline really waited: the frozen device never answered.
        assert!(num(&r, "after_ms") >= DEADLINE_MS - 10, "{r}");
    }
    // Thawed: the same connect works (the stale request may reach the host server too).
    let r = guest_echo(guest, server.port, MIB, 5, 30_000);
    assert_eq!(field(&r, "result"), Some("echoed"), "{r}");
    assert_eq!(num(&r, "received_sum"), stream_sum(5, MIB), "{r}");
    server.wait_stats("the connect after thawing", |s| num(s, "bytes") >= MIB);
}

/// A guest connect whose deadline is past the kernel's own 2 s vsock connect timeout
/// (`SO_VM_SOCKETS_CONNECT_TIMEOUT`, which bounds nonblocking and io_uring connects too):
/// every path raises the option, so the caller's deadline decides and the connect is not
/// cut at 2 s. A lower bound only: the wait can be longer under load, never shorter.
fn guest_connect_deadline_past_the_kernel_default(guest: &str) {
    const DEADLINE_MS: u64 = 3_500;
    const KERNEL_DEFAULT_MS: u64 = 2_000;
    let server = HostServer::start("blocking");
    let _frozen = Frozen::new();
    let r = guest_echo(guest, server.port, 64 * 1024, 6, DEADLINE_MS);
    assert_eq!(field(&r, "result"), Some("connect_err"), "{r}");
    assert_eq!(field(&r, "kind"), Some("TimedOut"), "{r}");
    let waited = num(&r, "after_ms");
    assert!(
        waited >= DEADLINE_MS - 10,
        "cut after {waited} ms, before the {DEADLINE_MS} ms deadline (the kernel's \
         {KERNEL_DEFAULT_MS} ms default was not raised): {r}"
    );
}

per_host! {
    virtio_guest_blocking_connect_deadline_past_the_kernel_default_is_kept => guest_connect_deadline_past_the_kernel_default("blocking");
    virtio_guest_epoll_connect_deadline_past_the_kernel_default_is_kept => guest_connect_deadline_past_the_kernel_default("epoll");
    virtio_guest_engine_connect_deadline_past_the_kernel_default_is_kept => guest_connect_deadline_past_the_kernel_default("engine");
}

per_host! {
    virtio_guest_blocking_connect_deadline_fires_while_device_frozen => guest_connect_deadline_while_frozen("blocking");
    virtio_guest_epoll_connect_deadline_fires_while_device_frozen => guest_connect_deadline_while_frozen("epoll");
    virtio_guest_engine_connect_deadline_fires_while_device_frozen => guest_connect_deadline_while_frozen("engine");
}

/// Writes up to `limit` bytes without reading, stopping at the first error (a full path
/// backs up: the write timeout ends it), then drops the stream with the echo unread.
fn vanish(port: u32, seed: u64, limit: u64) {
    let mut s = connect::<Blocking>(port);
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

/// Issue 7's defect over the real device: the engine's echo server stopped answering new
/// connections after ~25 clients vanished mid-transfer.
#[test]
#[ignore = "virtio testbed only: tools/vm-virtio"]
fn virtio_guest_engine_keeps_serving_after_vanished_clients() {
    const VANISHED: u64 = 30;
    const LIVE: u64 = 10;
    let port = serve_in_guest("engine", Mode::Echo);
    let gone: Vec<_> = (0..VANISHED)
        .map(|i| thread::spawn(move || vanish(port, 200 + i, 512 * 1024)))
        .collect();
    for g in gone {
        g.join().expect("a vanishing client panicked");
    }
    wait_guest_stats(port, "after the vanished clients", |s| {
        num(s, "accepted") == VANISHED
    });
    let live: Vec<_> = (0..LIVE)
        .map(|i| {
            thread::spawn(move || {
                (
                    i,
                    host_echo::<Blocking>(port, 300 + i, MIB, &AtomicU64::new(0)),
                )
            })
        })
        .collect();
    for l in live {
        let (i, e) = l.join().expect("a live client panicked");
        let e = e.unwrap_or_else(|err| panic!("live client {i} after the vanished ones: {err}"));
        assert_full(&e, 300 + i, MIB);
    }
    // Each live connection ends with an EOF (the echo was read, then the host closed). A
    // vanished one ends with an error, or stays open: the device does not pass on a host
    // close with unread data when it has nothing more to write (a limit in the README).
    wait_guest_stats(port, "after the live clients", |s| {
        num(s, "accepted") == VANISHED + LIVE && num(s, "ended_eof") >= LIVE
    });
}

/// A transfer across a device freeze: it waits, then completes intact.
#[test]
#[ignore = "virtio testbed only: tools/vm-virtio"]
fn virtio_host_engine_transfer_resumes_after_a_device_freeze() {
    let port = serve_in_guest("engine", Mode::Echo);
    let total = 8 * MIB;
    let progress = Arc::new(AtomicU64::new(0));
    let p = Arc::clone(&progress);
    let client = thread::spawn(move || host_echo::<EnginePath>(port, 9, total, &p));
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
    let port = serve_in_guest("blocking", Mode::Echo);
    let progress = Arc::new(AtomicU64::new(0));
    let p = Arc::clone(&progress);
    let client = thread::spawn(move || host_echo::<Blocking>(port, 10, total, &p));
    let server = HostServer::start("blocking");
    let guest = control().send(&format!(
        "ECHO blocking {} {total} 11 30000 5000",
        server.port
    ));
    util::virtio::wait_until("both transfers under way", || {
        progress.load(Ordering::Relaxed) >= MIB && server.progress() >= MIB
    });
    Testbed::from_env().signal_device(libc::SIGKILL);
    let host = client.join().expect("the host client panicked");
    assert!(
        host.is_err(),
        "the host client finished despite the kill: {host:?}"
    );
    let r = control().wait(guest, WATCHDOG);
    assert_eq!(field(&r, "result"), Some("io_err"), "{r}");
    let s = server.wait_stats("the host server's connection", |s| num(s, "open") == 0);
    assert!(num(&s, "bytes") < total, "{s}");
}

/// Last: the agent quits and reports no failure of its own (panics, server errors).
#[test]
#[ignore = "virtio testbed only, and last: tools/vm-virtio"]
fn virtio_agent_quits_without_failures() {
    let r = control().request("QUIT", WATCHDOG);
    assert_eq!(r, "OK failures=0");
}
