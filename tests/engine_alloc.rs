//! No heap allocation per operation in steady state: a counting global allocator counts
//! allocations made on the engine's worker threads (marked through the builder's thread-start
//! hook) during an echo phase after warm-up, for two phases of different lengths: a plain
//! echo, one that moves an idle read deadline on in every receive, one where that deadline
//! also fires (and is moved on from `on_deadline`), and the async path.

mod engine_support;
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use engine_support::{connect, Echo};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::Engine;
use util::{bind_endpoint, TempDir, Transport};

struct Counting;

static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations on the async test's workers: its own counter, so the tests can run at once.
static ASYNC_WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations on the idle-deadline test's workers.
static DEADLINE_WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations on the firing-deadline test's workers.
static FIRING_WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
    static ON_ASYNC_WORKER: Cell<bool> = const { Cell::new(false) };
    static ON_DEADLINE_WORKER: Cell<bool> = const { Cell::new(false) };
    static ON_FIRING_WORKER: Cell<bool> = const { Cell::new(false) };
}

fn count_alloc() {
    if ON_WORKER.try_with(|w| w.get()).unwrap_or(false) {
        WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    if ON_ASYNC_WORKER.try_with(|w| w.get()).unwrap_or(false) {
        ASYNC_WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    if ON_DEADLINE_WORKER.try_with(|w| w.get()).unwrap_or(false) {
        DEADLINE_WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    if ON_FIRING_WORKER.try_with(|w| w.get()).unwrap_or(false) {
        FIRING_WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round_trips(c: &mut Stream, n: usize, msg: &[u8], back: &mut [u8]) {
    for _ in 0..n {
        c.write_all(msg).unwrap();
        c.read_exact(back).unwrap();
        assert!(back == msg);
    }
}

#[test]
fn engine_steady_state_echo_allocates_nothing_on_workers() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder()
                .workers(1)
                .on_thread_start(|_| ON_WORKER.with(|w| w.set(true)))
                .build()
                .unwrap();
            let ep = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
            let mut c = connect(&ep); // with watchdog timeouts
            let msg: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
            let mut back = vec![0u8; msg.len()];
            round_trips(&mut c, 500, &msg, &mut back); // warm-up: slabs and queues at size
            let a = WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 2_000, &msg, &mut back);
            let b = WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 20_000, &msg, &mut back);
            let d = WORKER_ALLOCS.load(Ordering::Relaxed);
            assert!(
                a > 0,
                "{t:?}: the counter must see worker allocations (setup allocates)"
            );
            assert_eq!(b - a, 0, "{t:?}: allocations in 2000 round trips");
            assert_eq!(d - b, 0, "{t:?}: allocations in 20000 round trips");
        }
    });
}

/// An echo that moves an idle read deadline on in every `on_recv` (and a write deadline
/// before every send) allocates nothing per receive or send either: a deadline moved later
/// is a store.
#[test]
fn moving_deadlines_in_every_receive_allocates_nothing_on_workers() {
    use std::time::{Duration, Instant};
    use uring_vsock::uring::{Conn, Handler, RecvBuf, SendBuf};

    struct IdleEcho(Echo);
    impl Handler for IdleEcho {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            conn.set_deadline(Some(Instant::now() + Duration::from_secs(600)));
        }
        fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
            let later = Instant::now() + Duration::from_secs(600);
            conn.set_read_deadline(Some(later));
            conn.set_write_deadline(Some(later));
            self.0.on_recv(conn, buf);
        }
        fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: std::io::Result<usize>) {
            self.0.on_sent(conn, buf, res);
        }
    }

    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder()
                .workers(1)
                .on_thread_start(|_| ON_DEADLINE_WORKER.with(|w| w.set(true)))
                .build()
                .unwrap();
            let ep = e
                .listen(&bind_endpoint(t, &dir), |_| IdleEcho(Echo::new()))
                .unwrap();
            let mut c = connect(&ep);
            let msg: Vec<u8> = (0..4096u32).map(|i| (i * 41 % 251) as u8).collect();
            let mut back = vec![0u8; msg.len()];
            round_trips(&mut c, 500, &msg, &mut back);
            let a = DEADLINE_WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 2_000, &msg, &mut back);
            let b = DEADLINE_WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 20_000, &msg, &mut back);
            let d = DEADLINE_WORKER_ALLOCS.load(Ordering::Relaxed);
            assert!(a > 0, "{t:?}: the counter must see worker allocations");
            assert_eq!(b - a, 0, "{t:?}: allocations in 2000 round trips");
            assert_eq!(d - b, 0, "{t:?}: allocations in 20000 round trips");
        }
    });
}

/// The async path (a task per connection, `AsyncConn::recv`/`send` futures, wakers) in
/// steady state allocates nothing on the worker either.
#[test]
fn async_steady_state_echo_allocates_nothing_on_workers() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder()
                .workers(1)
                .on_thread_start(|_| ON_ASYNC_WORKER.with(|w| w.set(true)))
                .build()
                .unwrap();
            let ep = e
                .listen_async(&bind_endpoint(t, &dir), |conn| async move {
                    while let Ok(Some(buf)) = conn.recv().await {
                        let (res, _buf) = conn.send(buf.into()).await;
                        if res.is_err() {
                            return;
                        }
                    }
                })
                .unwrap();
            let mut c = connect(&ep);
            let msg: Vec<u8> = (0..4096u32).map(|i| (i * 37 % 251) as u8).collect();
            let mut back = vec![0u8; msg.len()];
            round_trips(&mut c, 500, &msg, &mut back);
            let a = ASYNC_WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 2_000, &msg, &mut back);
            let b = ASYNC_WORKER_ALLOCS.load(Ordering::Relaxed);
            round_trips(&mut c, 20_000, &msg, &mut back);
            let d = ASYNC_WORKER_ALLOCS.load(Ordering::Relaxed);
            assert!(a > 0, "{t:?}: the counter must see worker allocations");
            assert_eq!(b - a, 0, "{t:?}: async allocations in 2000 round trips");
            assert_eq!(d - b, 0, "{t:?}: async allocations in 20000 round trips");
        }
    });
}

/// Times the idle deadline below fired.
static FIRED: AtomicU64 = AtomicU64::new(0);

/// A ~20 ms read deadline pushed on in every `on_recv` that also fires (the client waits for
/// it between bursts; `on_deadline` moves it on and keeps the connection): the heap's
/// pop, re-add and fire and the ring timer's pool allocate nothing in steady state.
#[test]
fn a_deadline_that_fires_and_is_moved_on_allocates_nothing_on_workers() {
    use engine_support::wait_until;
    use std::time::{Duration, Instant};
    use uring_vsock::uring::{Conn, Deadline, Handler, RecvBuf, SendBuf};

    const IDLE: Duration = Duration::from_millis(20);
    struct FiringEcho(Echo);
    impl Handler for FiringEcho {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            conn.set_read_deadline(Some(Instant::now() + IDLE));
        }
        fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
            conn.set_read_deadline(Some(Instant::now() + IDLE));
            self.0.on_recv(conn, buf);
        }
        fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: std::io::Result<usize>) {
            self.0.on_sent(conn, buf, res);
        }
        fn on_deadline(&mut self, conn: &mut Conn<'_>, _which: Deadline) {
            FIRED.fetch_add(1, Ordering::Relaxed);
            conn.set_read_deadline(Some(Instant::now() + IDLE));
        }
    }

    /// `bursts` times: `n` round trips, then waits for the deadline to fire.
    fn phase(c: &mut Stream, bursts: usize, n: usize, msg: &[u8], back: &mut [u8]) {
        for _ in 0..bursts {
            round_trips(c, n, msg, back);
            let before = FIRED.load(Ordering::Relaxed);
            wait_until("the idle deadline fires", || {
                FIRED.load(Ordering::Relaxed) > before
            });
        }
    }

    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder()
                .workers(1)
                .on_thread_start(|_| ON_FIRING_WORKER.with(|w| w.set(true)))
                .build()
                .unwrap();
            let ep = e
                .listen(&bind_endpoint(t, &dir), |_| FiringEcho(Echo::new()))
                .unwrap();
            let mut c = connect(&ep);
            let msg: Vec<u8> = (0..4096u32).map(|i| (i * 43 % 251) as u8).collect();
            let mut back = vec![0u8; msg.len()];
            phase(&mut c, 5, 100, &msg, &mut back);
            let a = FIRING_WORKER_ALLOCS.load(Ordering::Relaxed);
            phase(&mut c, 10, 100, &msg, &mut back);
            let b = FIRING_WORKER_ALLOCS.load(Ordering::Relaxed);
            phase(&mut c, 20, 200, &msg, &mut back);
            let d = FIRING_WORKER_ALLOCS.load(Ordering::Relaxed);
            assert!(a > 0, "{t:?}: the counter must see worker allocations");
            assert_eq!(b - a, 0, "{t:?}: allocations in 10 bursts and fires");
            assert_eq!(d - b, 0, "{t:?}: allocations in 20 bursts and fires");
            e.shutdown();
        }
    });
}
