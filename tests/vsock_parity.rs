//! The kernel's `vsock_test` cases that concern a stream's flow, on every path they apply to,
//! over real vsock in the test VM (`tools/vm-test --test vsock_parity`; ignored on the host):
//! credit flow with a small `SO_VM_SOCKETS_BUFFER_SIZE`, `SO_RCVLOWAT` with poll,
//! `SIOCOUTQ`, and a peer that aborts mid-stream. The engine has no fd to poll or ask
//! `SIOCOUTQ` of, so those two run on the socket paths only.
//!
//! What the 6.12 loopback transport does, as asserted here: a writer may have exactly the
//! receiver's buffer size outstanding (its credit); `SIOCOUTQ` counts bytes the transport has
//! not yet moved, and loopback moves them into the peer's receive queue whether or not it
//! reads; an abort (`SO_LINGER` 0, or the engine's `abort()`) reaches the peer as a shutdown,
//! so its writes fail with `EPIPE`.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use engine_support::{recv_or_hang, watchdog, Gen, Sum};
use mio::{Events, Interest, Poll, Token};
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::{blocking, epoll, Endpoint, VsockOptions};
use util::sockopt::{fill_until_would_block, outq, peek_len, poll_once, set_rcvlowat};
use util::{bind_endpoint, connect_endpoint, require_vm, TempDir, Transport, WATCHDOG};

/// The receiver's `SO_VM_SOCKETS_BUFFER_SIZE` in the credit tests: far below the 256 KiB
/// default, above the 128 B minimum.
const SMALL_BUF: usize = 16 * 1024;

/// A vsock listener on the blocking path and where to connect to it.
fn vsock_listener(dir: &TempDir) -> (blocking::Listener, Endpoint) {
    require_vm();
    let l = blocking::Listener::bind(&bind_endpoint(Transport::Vsock, dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    (l, ep)
}

/// A connected blocking pair: (client, accepted), both with watchdog timeouts.
fn blocking_pair(dir: &TempDir) -> (blocking::Stream, blocking::Stream) {
    let (l, ep) = vsock_listener(dir);
    let c = blocking::Stream::connect(&ep).unwrap();
    let (s, _) = l.accept().unwrap();
    watchdog(&c);
    watchdog(&s);
    (c, s)
}

/// One epoll-path stream registered with its own `mio::Poll`, waited on with a watchdog.
struct Polled {
    stream: epoll::Stream,
    poll: Poll,
    events: Events,
}

impl Polled {
    fn new(mut stream: epoll::Stream, interest: Interest) -> Polled {
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut stream, Token(0), interest)
            .unwrap();
        Polled {
            stream,
            poll,
            events: Events::with_capacity(8),
        }
    }

    /// Whether the next poll (waiting at most `timeout`) reports the stream ready.
    fn ready_within(&mut self, timeout: Duration) -> bool {
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        self.events.iter().any(|e| e.token() == Token(0))
    }

    /// Waits until the stream is reported ready, failing with `what` after [`WATCHDOG`].
    fn wait(&mut self, what: &str) {
        wait_ready(&mut self.poll, &mut self.events, what);
    }
}

/// [`Polled::wait`] on the poll alone, for a closure that waits while the stream is lent out.
fn wait_ready(poll: &mut Poll, events: &mut Events, what: &str) {
    let start = Instant::now();
    loop {
        poll.poll(events, Some(Duration::from_millis(100))).unwrap();
        if events.iter().any(|e| e.token() == Token(0)) {
            return;
        }
        assert!(start.elapsed() < WATCHDOG, "{what} (waited {WATCHDOG:?})");
    }
}

/// An epoll-path client connected (the connect's outcome awaited through mio) to a blocking
/// listener, and the accepted blocking end.
fn epoll_client(dir: &TempDir, interest: Interest) -> (Polled, blocking::Stream) {
    let (l, ep) = vsock_listener(dir);
    let mut c = Polled::new(epoll::Stream::connect(&ep).unwrap(), Interest::WRITABLE);
    c.wait("the epoll connect to finish");
    c.stream.connect_result().expect("the epoll connect");
    c.poll
        .registry()
        .reregister(&mut c.stream, Token(0), interest)
        .unwrap();
    let (s, _) = l.accept().unwrap();
    watchdog(&s);
    (c, s)
}

/// Waits (bounded) until `fd` is readable for `poll(2)`.
fn wait_pollin(fd: &impl AsFd, what: &str) {
    let start = Instant::now();
    while poll_once(fd, libc::POLLIN, 100) & libc::POLLIN == 0 {
        assert!(start.elapsed() < WATCHDOG, "{what} (waited {WATCHDOG:?})");
    }
}

// --- credit flow -------------------------------------------------------------------------

/// Gives the reader `r` a small vsock buffer and makes sure the writer knows it: every vsock
/// packet carries its sender's buffer size, so one byte from `r`, read by the writer, brings
/// the new credit before any data is written.
fn shrink_and_sync(r: &blocking::Stream, writer_fd: &impl AsFd, mut writer: impl Read) {
    r.set_vsock_buffer_size(SMALL_BUF as u64).unwrap();
    (&*r).write_all(b"s").unwrap();
    util::sockopt::wait_peek_len(writer_fd, 1, "the sync byte");
    let mut b = [0u8; 1];
    writer.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"s");
}

/// A writer whose reader does not read may have exactly the reader's buffer size outstanding:
/// its credit is the peer's buffer minus what it sent and the peer has not consumed.
fn assert_bounded_by_credit(queued: usize, what: &str) {
    assert_eq!(
        queued, SMALL_BUF,
        "{what}: a nonblocking writer queued {queued} bytes before WouldBlock, against a \
         reader whose vsock buffer is {SMALL_BUF}"
    );
}

/// The slow reader: reads `zeros` zero bytes, then `total` more, in reads of at most 1000
/// bytes with a pause after each, publishing its progress in `progress` after each read;
/// returns the checksum of the part after the zeros.
fn slow_reader(
    mut r: blocking::Stream,
    zeros: usize,
    total: usize,
    progress: Arc<AtomicUsize>,
) -> thread::JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        let (mut sum, mut got, mut buf) = (Sum::default(), 0, [0u8; 1000]);
        while got < zeros + total {
            let want = if got < zeros {
                zeros - got
            } else {
                zeros + total - got
            };
            let n = r.read(&mut buf[..want.min(1000)]).expect("slow read");
            assert!(n > 0, "EOF after {got} of {} bytes", zeros + total);
            if got < zeros {
                assert!(buf[..n].iter().all(|&b| b == 0), "the zeros changed");
            } else {
                sum.add(&buf[..n]);
            }
            got += n;
            progress.store(got, Ordering::Release);
            thread::sleep(Duration::from_micros(200));
        }
        sum.value()
    })
}

/// Writes `data` to the nonblocking `w`, calling `wait` on each `WouldBlock`; returns how many
/// times it waited and the most it had outstanding (written minus what the reader reported
/// consumed, which lags the reader by at most one of its reads) when it did.
fn write_against_credit(
    mut w: impl Write,
    data: &[u8],
    base: usize,
    progress: &AtomicUsize,
    mut wait: impl FnMut(),
) -> (usize, usize) {
    let (mut off, mut waits, mut most) = (0, 0, 0);
    while off < data.len() {
        match w.write(&data[off..(off + 4096).min(data.len())]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                waits += 1;
                most = most.max(base + off - progress.load(Ordering::Acquire));
                wait();
            }
            Err(e) => panic!("write at {off}: {e}"),
        }
    }
    (waits, most)
}

/// The writer on a path: filled to WouldBlock against a reader that does not read, then a
/// transfer to the slow reader. The bytes arrive intact, and the writer waited with never
/// more than the credit (plus one read of lag) outstanding.
fn credit_flow(
    w: impl Write + Copy,
    r: blocking::Stream,
    what: &str,
    mut wait_writable: impl FnMut(),
) {
    let queued = fill_until_would_block(w, 4096);
    assert_bounded_by_credit(queued, what);
    const TOTAL: usize = 512 * 1024;
    let mut data = vec![0u8; TOTAL];
    Gen::new(7).fill(&mut data);
    let mut want = Sum::default();
    want.add(&data);
    let progress = Arc::new(AtomicUsize::new(0));
    let reader = slow_reader(r, queued, TOTAL, Arc::clone(&progress));
    let (waits, most) = write_against_credit(w, &data, queued, &progress, &mut wait_writable);
    let got = reader.join().expect("the slow reader");
    assert_eq!(got, want.value(), "{what}: bytes lost or changed");
    assert!(waits > 0, "{what}: the writer never waited for credit");
    assert!(
        most <= SMALL_BUF + 1000,
        "{what}: {most} bytes outstanding at a WouldBlock, over the {SMALL_BUF} B credit"
    );
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_credit_flow_bounds_the_blocking_path_writer() {
    let dir = TempDir::new();
    let (c, s) = blocking_pair(&dir);
    shrink_and_sync(&s, &c, &c);
    c.set_nonblocking(true).unwrap();
    credit_flow(&c, s, "blocking", || {
        assert_ne!(
            poll_once(&c, libc::POLLOUT, 60_000) & libc::POLLOUT,
            0,
            "never writable"
        );
    });
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_credit_flow_bounds_the_epoll_path_writer() {
    let dir = TempDir::new();
    let (c, s) = epoll_client(&dir, Interest::WRITABLE);
    shrink_and_sync(&s, &c.stream, &c.stream);
    let Polled {
        stream,
        mut poll,
        mut events,
    } = c;
    credit_flow(&stream, s, "epoll", || {
        wait_ready(&mut poll, &mut events, "credit for the epoll writer")
    });
}

/// Receives into a running checksum; pauses receiving when opened (after a sync byte to the
/// peer), hands the test its handle, and reports the checksum at the peer's EOF.
struct CreditReader {
    sum: Sum,
    opened: mpsc::Sender<ConnHandle>,
    done: mpsc::Sender<(u64, u64)>,
}

impl Handler for CreditReader {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pause_recv();
        assert_eq!(conn.send_copy(b"s"), 1);
        let _ = self.opened.send(conn.handle());
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        self.sum.add(&buf);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        let _ = self.done.send(self.sum.value());
        conn.shutdown_write();
    }
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_credit_flow_engine_buffer_size_bounds_its_peer() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder()
        .workers(1)
        .vsock_buffer_size(SMALL_BUF as u64)
        .build()
        .unwrap();
    let (otx, orx) = mpsc::channel();
    let (dtx, drx) = mpsc::channel();
    let txs = Mutex::new((otx, dtx));
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), move |_| {
            let (o, d) = &*txs.lock().unwrap();
            CreditReader {
                sum: Sum::default(),
                opened: o.clone(),
                done: d.clone(),
            }
        })
        .unwrap();
    let mut c = engine_support::connect(&connect_endpoint(&local));
    let handle = recv_or_hang(&orx, "the engine connection's open");
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap(); // its credit (the engine's buffer size) is known now
    c.set_nonblocking(true).unwrap();
    let queued = fill_until_would_block(&c, 4096);
    assert_bounded_by_credit(queued, "engine (receiving paused)");
    handle.resume_recv();
    c.set_nonblocking(false).unwrap();
    let mut data = vec![0u8; 1 << 20];
    Gen::new(8).fill(&mut data);
    c.write_all(&data).expect("write to the engine");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut want = Sum::default();
    want.add(&vec![0u8; queued]);
    want.add(&data);
    let got = recv_or_hang(&drx, "the engine's checksum at EOF");
    assert_eq!(
        got,
        want.value(),
        "bytes lost or changed through the engine"
    );
}

// --- SO_RCVLOWAT with poll ---------------------------------------------------------------

const LOWAT: usize = 4096;

/// Sends `LOWAT - 1` bytes and waits until all are readable at `r` (a peek that consumes
/// nothing), so "not readable" below means the low-water mark, not bytes in flight.
fn below_lowat(w: &mut blocking::Stream, r: &impl AsFd, data: &[u8]) {
    set_rcvlowat(r, LOWAT as i32);
    w.write_all(&data[..LOWAT - 1]).unwrap();
    util::sockopt::wait_peek_len(r, LOWAT - 1, "the bytes below the low-water mark");
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_rcvlowat_poll_blocking_path() {
    let dir = TempDir::new();
    let (mut c, mut s) = blocking_pair(&dir);
    let data = util::pattern(11, LOWAT);
    below_lowat(&mut c, &s, &data);
    assert_eq!(
        poll_once(&s, libc::POLLIN, 0) & libc::POLLIN,
        0,
        "poll reports readable with {} bytes queued, below SO_RCVLOWAT {LOWAT}",
        LOWAT - 1
    );
    c.write_all(&data[LOWAT - 1..]).unwrap();
    wait_pollin(&s, "readable at the low-water mark");
    let mut got = vec![0u8; LOWAT];
    s.read_exact(&mut got).unwrap();
    assert_eq!(util::checksum(&got), util::checksum(&data));
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_rcvlowat_poll_epoll_path() {
    let dir = TempDir::new();
    let (l, ep) = vsock_listener(&dir);
    let mut c = blocking::Stream::connect(&ep).unwrap();
    watchdog(&c);
    let (s, _) = l.accept().unwrap();
    let mut s = Polled::new(
        epoll::Stream::from_connected(OwnedFd::from(s)).unwrap(),
        Interest::READABLE,
    );
    let data = util::pattern(12, LOWAT);
    below_lowat(&mut c, &s.stream, &data);
    assert!(
        !s.ready_within(Duration::ZERO),
        "epoll reports readable with {} bytes queued, below SO_RCVLOWAT {LOWAT}",
        LOWAT - 1
    );
    c.write_all(&data[LOWAT - 1..]).unwrap();
    s.wait("readable at the low-water mark");
    let mut got = vec![0u8; LOWAT];
    (&s.stream).read_exact(&mut got).unwrap();
    assert_eq!(util::checksum(&got), util::checksum(&data));
}

// --- SIOCOUTQ ----------------------------------------------------------------------------

/// Writes 64 KiB (within the default credit) to `r`, which does not read: `SIOCOUTQ` never
/// counts more than was written, and falls to 0 while those bytes wait unread in `r` (on vsock
/// it counts what the transport has not moved yet, not what the peer has not read). After
/// the read it stays 0.
fn siocoutq_vsock(mut w: impl Write + AsFd, mut r: impl Read + AsFd, what: &str) {
    const N: usize = 64 * 1024;
    let data = util::pattern(13, N);
    w.write_all(&data).unwrap();
    let start = Instant::now();
    loop {
        let q = outq(&w).unwrap_or_else(|e| panic!("{what}: SIOCOUTQ on vsock: {e}"));
        assert!(q <= N, "{what}: SIOCOUTQ {q} > the {N} bytes written");
        if q == 0 {
            break;
        }
        assert!(start.elapsed() < WATCHDOG, "{what}: SIOCOUTQ stuck at {q}");
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(peek_len(&r), N, "{what}: the bytes wait unread at the peer");
    let mut got = vec![0u8; N];
    r.read_exact(&mut got).unwrap();
    assert_eq!(util::checksum(&got), util::checksum(&data), "{what}");
    assert_eq!(outq(&w).unwrap(), 0, "{what}");
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_siocoutq_blocking_and_epoll_paths() {
    let dir = TempDir::new();
    let (c, s) = blocking_pair(&dir);
    siocoutq_vsock(c, s, "blocking");
    let (c, s) = blocking_pair(&dir);
    let e = epoll::Stream::from_connected(OwnedFd::from(c)).unwrap();
    // A 64 KiB nonblocking write fits the credit at once; write_all on WouldBlock would fail.
    siocoutq_vsock(&e, s, "epoll");
}

/// The contrast that shows what `SIOCOUTQ` can report: a unix stream charges written bytes to
/// the writer until the reader consumes them, so it counts them while the peer does not read.
#[test]
fn siocoutq_on_unix_counts_bytes_until_the_peer_reads() {
    let dir = TempDir::new();
    let l = blocking::Listener::bind(&bind_endpoint(Transport::Unix, &dir)).unwrap();
    let mut c = blocking::Stream::connect(&l.local_addr().unwrap()).unwrap();
    let (mut s, _) = l.accept().unwrap();
    const N: usize = 64 * 1024;
    let data = util::pattern(14, N);
    c.write_all(&data).unwrap();
    let q = outq(&c).unwrap();
    assert!(q >= N, "SIOCOUTQ {q} with {N} bytes unread at the peer");
    let mut got = vec![0u8; N];
    s.read_exact(&mut got).unwrap();
    assert_eq!(util::checksum(&got), util::checksum(&data));
    let start = Instant::now();
    while outq(&c).unwrap() != 0 {
        assert!(
            start.elapsed() < WATCHDOG,
            "SIOCOUTQ stays {}",
            outq(&c).unwrap()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

// --- reset mid-stream --------------------------------------------------------------------

/// What bytes the aborting reader takes before it aborts: mid-stream.
const BEFORE_ABORT: usize = 64 * 1024;

/// Reads `BEFORE_ABORT` bytes from `r`, then closes it with `SO_LINGER` 0.
fn abort_after_reading(mut r: blocking::Stream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; BEFORE_ABORT];
        r.read_exact(&mut buf).expect("read before the abort");
        socket2::SockRef::from(&r)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(r);
    })
}

/// Writes an endless stream to `w` (waiting with `wait` on WouldBlock) until a write fails;
/// returns the error and how much was written. Fails if writes succeed past [`WATCHDOG`].
fn write_until_error(mut w: impl Write, mut wait: impl FnMut()) -> (io::Error, usize) {
    let (start, mut total, block) = (Instant::now(), 0, vec![0x5a; 4096]);
    loop {
        match w.write(&block) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(),
            Err(e) => return (e, total),
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "writes kept succeeding after the peer aborted ({total} bytes)"
        );
    }
}

/// The writer's side of a peer's abort on vsock: `EPIPE` (the abort arrives as the peer's
/// shutdown), after more than the peer read, never a write that succeeds on and on.
fn assert_abort_seen(err: &io::Error, total: usize, what: &str) {
    assert!(
        total >= BEFORE_ABORT,
        "{what}: failed before the abort: {err}"
    );
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EPIPE),
        "{what}: after {total} bytes: {err}"
    );
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_reset_mid_stream_blocking_path() {
    let dir = TempDir::new();
    let (c, s) = blocking_pair(&dir);
    let aborter = abort_after_reading(c);
    let (err, total) = write_until_error(&s, || {
        panic!("a blocking write outlived its watchdog timeout")
    });
    aborter.join().unwrap();
    assert_abort_seen(&err, total, "blocking");
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_reset_mid_stream_epoll_path() {
    let dir = TempDir::new();
    let (c, s) = epoll_client(&dir, Interest::WRITABLE);
    let aborter = abort_after_reading(s);
    let Polled {
        stream,
        mut poll,
        mut events,
    } = c;
    let (err, total) = write_until_error(&stream, || {
        wait_ready(&mut poll, &mut events, "the epoll writer")
    });
    aborter.join().unwrap();
    assert_abort_seen(&err, total, "epoll");
}

/// Streams to its peer for as long as it can, reporting its close reason.
struct Streamer {
    block: Vec<u8>,
    closed: mpsc::Sender<CloseReason>,
}

impl Streamer {
    fn fill(&mut self, conn: &mut Conn<'_>) {
        while conn.can_send() && conn.send_copy(&self.block) > 0 {}
    }
}

impl Handler for Streamer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.fill(conn);
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
        if res.is_ok() {
            self.fill(conn);
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.closed.send(reason.clone());
    }
}

/// Counts what it receives and aborts once it has `BEFORE_ABORT` bytes.
struct Aborter {
    got: usize,
    closed: mpsc::Sender<CloseReason>,
}

impl Handler for Aborter {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got += buf.len();
        if self.got >= BEFORE_ABORT {
            conn.abort();
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.closed.send(reason.clone());
    }
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_reset_mid_stream_engine_both_ways() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    // The engine writes; its peer aborts: the engine's send fails, never a clean close.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), move |_| Streamer {
            block: vec![0x33; 64 * 1024],
            closed: tx.lock().unwrap().clone(),
        })
        .unwrap();
    abort_after_reading(engine_support::connect(&connect_endpoint(&local)))
        .join()
        .unwrap();
    let reason = recv_or_hang(&rx, "the streaming engine connection's close");
    assert!(
        matches!(reason, CloseReason::Reset),
        "engine writer: {reason}"
    );
    // The engine reads and aborts: its peer's writes fail.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), move |_| Aborter {
            got: 0,
            closed: tx.lock().unwrap().clone(),
        })
        .unwrap();
    let c = engine_support::connect(&connect_endpoint(&local));
    let (err, total) = write_until_error(&c, || {
        panic!("a blocking write outlived its watchdog timeout")
    });
    assert_abort_seen(&err, total, "writer to an aborting engine");
    let reason = recv_or_hang(&rx, "the aborting engine connection's close");
    assert!(matches!(reason, CloseReason::Aborted), "{reason}");
}
