//! The hand-off of accepted connections to workers, both ways: by ring message
//! (`IORING_OP_MSG_RING`, where the kernel has it) and through the worker's channel (the
//! fallback, forced with `ring_handoff(false)` as on a kernel without it). Many connections
//! accepted across workers echo checksummed bytes; an engine shut down with connections on
//! their way to workers leaves no fd open; min-wait batching serves the same load.

mod engine_support;
mod util;

use std::thread;
use std::time::Duration;

use engine_support::{connect, echo_over, Echo};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{Engine, EngineBuilder};
use util::{bind_endpoint, connect_endpoint, fds_unchanged, TempDir, Transport};

/// The two hand-off modes, as builder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ring,
    Channel,
}

impl Mode {
    fn builder(self) -> EngineBuilder {
        Engine::builder().ring_handoff(self == Mode::Ring)
    }
}

/// Whether this kernel has `IORING_OP_MSG_RING`, asked directly (not through the engine).
fn kernel_has_msg_ring() -> bool {
    let ring = io_uring::IoUring::new(4).expect("io_uring");
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).expect("probe");
    probe.is_supported(io_uring::opcode::MsgRingData::CODE)
}

/// `n` clients connected to an echo engine of `workers` workers built by `b`, all held open
/// (so the least-loaded choice spreads them over every worker), then each echoing
/// `bytes` checksummed bytes at once; returns the engine for its counters.
fn echo_many(b: EngineBuilder, t: Transport, workers: usize, n: usize, bytes: u64) -> Engine {
    let dir = TempDir::new();
    let e = b.workers(workers).build().expect("engine");
    let local = e
        .listen(&bind_endpoint(t, &dir), |_| Echo::new())
        .expect("listen");
    let ep = connect_endpoint(&local);
    let clients: Vec<Stream> = (0..n).map(|_| connect(&ep)).collect();
    engine_support::wait_until("every client accepted", || e.stats().accepted == n as u64);
    let echoes: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| thread::spawn(move || echo_over(c, 7000 + i as u64, bytes)))
        .collect();
    for (i, h) in echoes.into_iter().enumerate() {
        h.join()
            .unwrap_or_else(|_| panic!("echo of client {i} failed"));
    }
    e
}

/// Asserts the connections went the way `mode` says and reached every worker.
fn check_spread(e: &Engine, mode: Mode, n: usize) {
    let s = e.stats();
    assert_eq!(s.accepted, n as u64, "{s:?}");
    for w in 0..e.workers() {
        let ws = e.worker_stats(w).expect("worker");
        assert!(ws.accepted > 0, "worker {w} got no connection: {ws:?}");
    }
    let handed = s.ring_handoffs + s.channel_handoffs;
    // All but the acceptor's own went to other workers, each one way or the other (a
    // refused ring message is served by the acceptor).
    let own = e.worker_stats(0).expect("worker 0").accepted;
    assert_eq!(handed - s.handoffs_refused, n as u64 - own, "{s:?}");
    match mode {
        Mode::Ring if e.features().msg_ring => {
            assert_eq!(s.channel_handoffs, 0, "{s:?}");
            assert!(s.ring_handoffs > 0, "{s:?}");
        }
        _ => {
            assert_eq!(s.ring_handoffs, 0, "{s:?}");
            assert!(s.channel_handoffs > 0, "{s:?}");
        }
    }
}

fn many_connections(mode: Mode, t: Transport) {
    fds_unchanged(|| {
        let n = 48;
        let e = echo_many(mode.builder(), t, 3, n, 256 * 1024);
        check_spread(&e, mode, n);
        e.shutdown();
    });
}

#[test]
fn engine_handoff_features_report_msg_ring() {
    // Counted like the others, so this engine opens no fds under their counts.
    fds_unchanged(|| {
        let e = Engine::builder().workers(1).build().expect("engine");
        let f = e.features();
        // The engine's probe sends a real message; a kernel with the opcode delivers it
        // (every mode since 6.1; this engine needs 6.x for its other opcodes).
        assert_eq!(f.msg_ring, kernel_has_msg_ring(), "{f}");
        let shown = f.to_string();
        assert!(
            shown.contains(&format!("msg_ring {}", f.msg_ring)),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("min wait {}", f.min_wait)),
            "{shown}"
        );
        println!("features: {f}");
    });
}

#[test]
fn engine_handoff_ring_many_connections_unix() {
    many_connections(Mode::Ring, Transport::Unix);
}

#[test]
fn engine_handoff_channel_many_connections_unix() {
    many_connections(Mode::Channel, Transport::Unix);
}

#[test]
fn engine_handoff_ring_many_connections_tcp() {
    many_connections(Mode::Ring, Transport::Tcp);
}

#[test]
fn engine_handoff_channel_many_connections_tcp() {
    many_connections(Mode::Channel, Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_handoff_many_connections_both_modes() {
    util::require_vm();
    many_connections(Mode::Ring, Transport::Vsock);
    many_connections(Mode::Channel, Transport::Vsock);
}

/// Clients connect in a burst and the engine is dropped while their connections are being
/// accepted and handed to workers (some in a ring message or a channel, some adopted): no
/// fd is left open, whichever way each one went.
fn shutdown_with_handoffs_in_flight(mode: Mode, t: Transport) {
    fds_unchanged(|| {
        for round in 0..24 {
            let dir = TempDir::new();
            let e = mode.builder().workers(4).build().expect("engine");
            let local = e
                .listen(&bind_endpoint(t, &dir), |_| Echo::new())
                .expect("listen");
            let ep = connect_endpoint(&local);
            let burst = thread::spawn(move || -> Vec<Stream> {
                // Connects the listener's backlog takes; after the engine is gone they fail,
                // which is fine.
                (0..64).filter_map(|_| Stream::connect(&ep).ok()).collect()
            });
            // Let some connections through before stopping, a different number each round.
            engine_support::wait_until("the round's first connections accepted", || {
                e.stats().accepted > round % 16
            });
            drop(e);
            let clients = burst.join().expect("connecting thread");
            drop(clients);
        }
    });
}

#[test]
fn engine_handoff_ring_shutdown_in_flight_leaks_no_fd_unix() {
    shutdown_with_handoffs_in_flight(Mode::Ring, Transport::Unix);
}

#[test]
fn engine_handoff_channel_shutdown_in_flight_leaks_no_fd_unix() {
    shutdown_with_handoffs_in_flight(Mode::Channel, Transport::Unix);
}

#[test]
fn engine_handoff_ring_shutdown_in_flight_leaks_no_fd_tcp() {
    shutdown_with_handoffs_in_flight(Mode::Ring, Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_handoff_shutdown_in_flight_leaks_no_fd() {
    util::require_vm();
    shutdown_with_handoffs_in_flight(Mode::Ring, Transport::Vsock);
    shutdown_with_handoffs_in_flight(Mode::Channel, Transport::Vsock);
}

/// Min-wait batching serves many connections as without it, every byte checked; where the
/// kernel has it (6.12+) workers sleep with it.
#[test]
fn engine_min_wait_many_connections_unix() {
    fds_unchanged(|| {
        let b = Engine::builder().min_wait(Duration::from_micros(200));
        let e = echo_many(b, Transport::Unix, 2, 32, 256 * 1024);
        let s = e.stats();
        assert_eq!(s.accepted, 32, "{s:?}");
        println!("min wait {}: {s:?}", e.features().min_wait);
        e.shutdown();
    });
}

/// A worker with min-wait set and only idle connections sleeps until something happens: the
/// kernel would end a min-wait with no overall timeout every `min_wait` (a busy wake-up loop).
/// Counts sleeps over an idle stretch; a worker that kept waking would count thousands.
#[test]
fn engine_min_wait_idle_worker_sleeps_on() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(1)
            .min_wait(Duration::from_micros(100))
            .build()
            .expect("engine");
        if !e.features().min_wait {
            println!("SKIPPED: this kernel has no IORING_FEAT_MIN_TIMEOUT");
            e.shutdown();
            return;
        }
        let local = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .expect("listen");
        let ep = connect_endpoint(&local);
        let idle: Vec<Stream> = (0..4).map(|_| connect(&ep)).collect();
        engine_support::wait_until("every client accepted", || e.stats().accepted == 4);
        // Let the accepts' completions settle, then watch the idle worker.
        thread::sleep(Duration::from_millis(100));
        let before = e.stats().sleeps;
        thread::sleep(Duration::from_millis(500));
        let woke = e.stats().sleeps - before;
        // 500 ms / 100 µs = 5,000 wake-ups with the defect; a handful without.
        assert!(woke < 50, "an idle worker woke {woke} times in 500 ms");
        drop(idle);
        e.shutdown();
    });
}

#[test]
fn engine_min_wait_is_checked() {
    fds_unchanged(min_wait_checks);
}

fn min_wait_checks() {
    for bad in [Duration::from_millis(1001), Duration::MAX] {
        let err = Engine::builder()
            .workers(1)
            .min_wait(bad)
            .build()
            .expect_err("a min_wait above 1 s is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("min_wait"), "{err}");
    }
    // Zero is off; the largest accepted value builds.
    for ok in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_secs(1),
    ] {
        Engine::builder()
            .workers(1)
            .min_wait(ok)
            .build()
            .unwrap_or_else(|e| panic!("min_wait({ok:?}): {e}"));
    }
}
