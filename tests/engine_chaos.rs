//! Chaos mode: an echo engine squeezed everywhere at once (tiny socket buffers, a tiny receive
//! ring, one receive buffer and two sends per connection) while connections stream random
//! amounts in random-sized chunks and the test aborts a random few of them mid-stream.
//! Survivors get every byte back (checksummed) and close with `Eof`; aborted ones close with
//! `Aborted` and their peer's writes end in an error, never a clean finish; afterwards no
//! connection is open and no fd is left. Over unix and tcp here, vsock in the VM with the
//! same engine settings; only the test's own vsock writes are coalesced (see [`Coalesce`]).
//!
//! The run is seeded: the seed is printed (shown when the test fails) and `CHAOS_SEED=N`
//! replays it.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{mpsc, Mutex};
use std::thread;

use engine_support::{
    connect, read_stream, recv_or_hang, wait_closed, wait_until, write_stream, Echo, Gen, Rng,
};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendBuf};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

const CONNS: usize = 12;

/// An [`Echo`] that hands the test its connection's handle when it opens.
struct Opened {
    echo: Echo,
    opened: mpsc::Sender<ConnHandle>,
}

impl Handler for Opened {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.opened.send(conn.handle());
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.echo.on_recv(conn, buf);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        self.echo.on_sent(conn, buf, res);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.echo.on_peer_shutdown(conn);
    }
}

/// The seed of this run: `CHAOS_SEED`, or one from the clock.
fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().expect("CHAOS_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// What one connection does, drawn from the seed.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Streams `total` bytes in chunks of at most `chunk`, then takes the echo to EOF.
    Survive { total: u64, chunk: usize },
    /// Streams without end; after `after` bytes of echo (checked) the test aborts it.
    Abort { after: usize },
}

/// Writes of at least `min` bytes (but the last): small writes are gathered until they reach it.
///
/// Over vsock the test's writes are coalesced to [`VSOCK_MIN_WRITE`]: the kernel in the VM
/// (Linux 6.12.94+) bounds a receive queue by its packets as well as its bytes, and resets the
/// connection (`ENOBUFS` on the receiver's next send) when more packets wait unread than its
/// buffer size over ~576 bytes, credit or not (`tests/vsock_rx_overflow.rs` shows it). The
/// engine, squeezed here so it reads a connection only now and then, is such a receiver; the
/// test's writes of a few hundred bytes each got its healthy connections reset. No receiver
/// can prevent that but by reading at once, so the test's sender keeps its packets large
/// instead, and the engine keeps every tiny setting.
struct Coalesce<'a, W: Write> {
    inner: &'a mut W,
    buf: Vec<u8>,
    min: usize,
}

impl<'a, W: Write> Coalesce<'a, W> {
    fn new(inner: &'a mut W, min: usize) -> Self {
        Coalesce {
            inner,
            buf: Vec::with_capacity(2 * min),
            min,
        }
    }
}

impl<W: Write> Write for Coalesce<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.min {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }
}

/// The smallest write the test makes over vsock: well above the ~576 bytes a queued packet
/// costs the receiver (see [`Coalesce`]).
const VSOCK_MIN_WRITE: usize = 2048;

/// A survivor: echo of `total` bytes in random chunks (writes of at least `min_write`),
/// compared end to end. A failure names the connection and the engine's close reason for it.
fn survive(
    c: Stream,
    seed: u64,
    (total, chunk, min_write): (u64, usize, usize),
    h: &ConnHandle,
    what: &str,
) {
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut out = Coalesce::new(&mut w, min_write);
        let s = write_stream(&mut out, seed, total, chunk)?;
        out.flush()?;
        w.shutdown(Shutdown::Write)?;
        Ok::<_, io::Error>(s)
    });
    let mut r = c;
    let got = read_stream(&mut r, seed, chunk);
    let sent = writer.join().expect("writer");
    // On a failure, the engine's close reason for this connection says which side ended it.
    let why = || format!("{what} (engine side closed: {})", wait_closed(h, what));
    let sent = sent.unwrap_or_else(|e| panic!("{}: write: {e}", why()));
    let got = got.unwrap_or_else(|e| panic!("{}: read: {e}", why()));
    assert_eq!(got, sent, "{}: the echo differs (bytes, checksum)", why());
}

/// An aborted one: streams generated bytes until a write fails; reads `after` bytes of echo,
/// checks them against what was sent, aborts the engine's side through `h`, and returns the
/// writer's error.
fn abort_mid_stream(c: Stream, seed: u64, after: usize, h: &ConnHandle, what: &str) -> io::Error {
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let (mut gen, mut block) = (Gen::new(seed), vec![0u8; 8 * 1024]);
        loop {
            gen.fill(&mut block);
            if let Err(e) = w.write_all(&block) {
                return e;
            }
        }
    });
    let mut r = c;
    let (mut want, mut got) = (vec![0u8; after.next_multiple_of(8)], vec![0u8; after]);
    Gen::new(seed).fill(&mut want);
    r.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("{what}: read before the abort: {e}"));
    assert!(
        got[..] == want[..after],
        "{what}: the echo before the abort differs"
    );
    h.abort();
    // Whatever the kernel still had for us, then EOF or a reset; never a hang.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "{what}: reading after the abort hung: {e}"
                );
                break;
            }
        }
    }
    writer.join().expect("writer")
}

fn chaos(t: Transport) {
    let seed = seed();
    println!("chaos seed {seed} over {t:?} (CHAOS_SEED={seed} replays it)");
    util::fds_unchanged_eventually(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(2)
            .socket_buffers(Some(4096), Some(4096))
            .recv_buffers(8, 2048)
            .recv_buffers_per_connection(1)
            .send_buffers(8, 4096)
            .sends_per_connection(2)
            .build()
            .unwrap();
        let (otx, orx) = mpsc::channel();
        let otx = Mutex::new(otx);
        let local = e
            .listen(&bind_endpoint(t, &dir), move |_| Opened {
                echo: Echo::new(),
                opened: otx.lock().unwrap().clone(),
            })
            .unwrap();
        let ep = connect_endpoint(&local);
        let min_write = if t == Transport::Vsock {
            VSOCK_MIN_WRITE
        } else {
            1
        };
        let mut rng = Rng::new(seed);
        let mut plans: Vec<Plan> = (0..CONNS)
            .map(|_| match rng.below(3) {
                0 => Plan::Abort {
                    after: 1 + rng.below(64 * 1024),
                },
                _ => Plan::Survive {
                    total: 1 + rng.below(512 * 1024) as u64,
                    chunk: 1 + rng.below(32 * 1024),
                },
            })
            .collect();
        // At least one of each, whatever the draw.
        plans[0] = Plan::Abort { after: 1000 };
        plans[1] = Plan::Survive {
            total: 300_000,
            chunk: 777,
        };
        // Connected one at a time, so the n-th handle is the n-th connection's.
        let conns: Vec<(Stream, ConnHandle)> = plans
            .iter()
            .map(|_| {
                let c = connect(&ep);
                (c, recv_or_hang(&orx, "a connection to open"))
            })
            .collect();
        let runs: Vec<_> = conns
            .into_iter()
            .zip(plans.clone())
            .enumerate()
            .map(|(i, ((c, h), plan))| {
                let what = format!("seed {seed}, {t:?} connection {i} ({plan:?})");
                let s = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9);
                thread::spawn(move || {
                    let err = match plan {
                        Plan::Survive { total, chunk } => {
                            survive(c, s, (total, chunk, min_write), &h, &what);
                            None
                        }
                        Plan::Abort { after } => Some(abort_mid_stream(c, s, after, &h, &what)),
                    };
                    (h, err, what)
                })
            })
            .collect();
        for (run, plan) in runs.into_iter().zip(&plans) {
            let (h, err, what) = run.join().expect("a connection's thread (see its panic)");
            let reason = wait_closed(&h, &what);
            match plan {
                Plan::Survive { .. } => {
                    assert!(
                        matches!(reason, CloseReason::Eof),
                        "{what}: closed {reason}"
                    )
                }
                Plan::Abort { .. } => {
                    assert!(matches!(reason, CloseReason::Aborted), "{what}: {reason}");
                    let err = err.expect("an aborted connection's writer error");
                    assert!(
                        matches!(
                            err.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ),
                        "{what}: the writer ended with {err} ({:?}), not a reset",
                        err.kind()
                    );
                }
            }
        }
        wait_until("every connection's slot to be freed", || {
            e.stats().open == 0
        });
        let s = e.stats();
        println!("seed {seed} over {t:?}: {s:?}");
        assert_eq!(s.accepted, CONNS as u64, "seed {seed}: {s:?}");
        assert_eq!(s.send_overflow_resets, 0, "seed {seed}: {s:?}");
        e.shutdown();
    });
}

#[test]
fn engine_chaos_unix() {
    chaos(Transport::Unix);
}

#[test]
fn engine_chaos_tcp() {
    chaos(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_chaos_vsock() {
    util::require_vm();
    chaos(Transport::Vsock);
}
