//! No setting or call kills the process or hangs it: out-of-range builder values are typed
//! errors naming the setting, a huge connect timeout is no timeout, a panicking thread hook
//! fails the build, and blocking handle calls made on a worker thread fail instead of
//! deadlocking it.

mod engine_support;
mod util;

use std::io;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

use engine_support::{connect, recv_or_hang, Echo};
use uring_vsock::uring::{Conn, Engine, EngineBuilder, Handler, RecvBuf, SendError};
use util::{bind_endpoint, TempDir, Transport};

/// Builds on another thread, so a hang fails the test instead of stalling it.
fn build(b: EngineBuilder) -> uring_vsock::Result<Engine> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(b.build());
    });
    recv_or_hang(&rx, "EngineBuilder::build to return")
}

fn rejects(b: EngineBuilder, names: &str) {
    let e = build(b).expect_err("an out-of-range setting must fail the build");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(
        e.to_string().contains(names),
        "the error names {names}: {e}"
    );
}

#[test]
fn engine_builder_rejects_out_of_range_settings_by_name() {
    // Serialized with the fd-counting tests of this binary.
    util::fds_unchanged(|| {
        let b = || Engine::builder().workers(1);
        rejects(b().pin_to_cpus(vec![0, 1024]), "pin_to_cpus: CPU 1024");
        rejects(b().pin_to_cpus(vec![usize::MAX]), "pin_to_cpus");
        rejects(b().sends_per_connection(usize::MAX), "sends_per_connection");
        rejects(b().sends_per_connection(0), "sends_per_connection");
        rejects(b().completion_entries(1), "completion_entries");
        rejects(b().completion_entries(u32::MAX), "completion_entries");
        rejects(b().ring_entries(0), "ring_entries");
        rejects(b().ring_entries(7), "ring_entries");
        rejects(b().ring_entries(u32::MAX), "ring_entries");
        rejects(
            b().recv_buffers_per_connection(0),
            "recv_buffers_per_connection",
        );
        rejects(b().socket_buffers(Some(0), None), "socket_buffers");
        rejects(b().socket_buffers(None, Some(usize::MAX)), "socket_buffers");
        rejects(b().send_buffers(usize::MAX, usize::MAX), "send pool");
        rejects(b().recv_buffers(1 << 15, usize::MAX), "recv buffer size");
        rejects(b().workers(usize::MAX), "workers");
        // At the edges the builder accepts: this is what the kernel takes.
        let e = build(
            b().ring_entries(8)
                .completion_entries(8)
                .pin_to_cpus(vec![0]),
        )
        .unwrap();
        e.shutdown();
    });
}

#[test]
fn engine_extreme_but_valid_settings_run() {
    // Serialized with the fd-counting tests of this binary.
    util::fds_unchanged(|| {
        let e = build(
            Engine::builder()
                .workers(1)
                .spin(Duration::MAX)
                .listen_backlog(u32::MAX)
                .zero_copy_threshold(usize::MAX)
                .recv_buffers_per_connection(1 << 16)
                .vsock_buffer_size(u64::MAX),
        )
        .unwrap();
        let dir = TempDir::new();
        let ep = e
            .listen(&bind_endpoint(Transport::Tcp, &dir), |_| Echo::new())
            .unwrap();
        engine_support::echo_client(&ep, 1, 100_000);
        e.shutdown();
    });
}

#[test]
fn engine_on_thread_start_panic_fails_the_build() {
    // Serialized with the fd-counting tests of this binary.
    util::fds_unchanged(|| {
        let e = build(Engine::builder().workers(2).on_thread_start(|i| {
            if i == 1 {
                panic!("hook panics on worker 1 (test)");
            }
        }))
        .expect_err("the build fails");
        assert!(
            e.to_string().contains("on_thread_start hook panicked"),
            "{e}"
        );
    });
}

#[test]
fn engine_connect_with_the_longest_timeout_is_no_timeout() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Tcp, &dir), |_| Echo::new())
            .unwrap();
        let h = e
            .connect(&ep, Some(Duration::MAX), Echo::new)
            .expect("Duration::MAX connects like no timeout");
        h.close();
        engine_support::wait_closed(&h, "the connection to close");
        e.shutdown();
    });
}

/// From a handler on the connection's own worker: `ConnHandle::send` with a full queue and
/// `wait_closed` must not block the worker (they would wait for it).
struct OnWorker {
    report: Option<mpsc::Sender<(Vec<bool>, io::ErrorKind)>>,
}

impl Handler for OnWorker {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let h = conn.handle();
        // The peer never reads and the limit is 2: sends past it are Full, never a wait.
        let outcomes = (0..4)
            .map(|_| match h.send(vec![1; 4 << 20]) {
                Ok(()) => true,
                Err(SendError::Full(v)) => {
                    assert_eq!(v.len(), 4 << 20, "the bytes come back");
                    false
                }
                Err(e) => panic!("{e}"),
            })
            .collect();
        let kind = h
            .wait_closed()
            .expect_err("wait_closed on the worker")
            .kind();
        if let Some(tx) = self.report.take() {
            let _ = tx.send((outcomes, kind));
        }
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

#[test]
fn engine_blocking_handle_calls_on_the_worker_fail_instead_of_deadlocking() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(1)
            .sends_per_connection(2)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(Some(tx));
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), move |_| OnWorker {
                report: tx.lock().unwrap().take(),
            })
            .unwrap();
        let c = connect(&ep);
        let (outcomes, kind) = recv_or_hang(&rx, "the handler's report");
        assert_eq!(outcomes, [true, true, false, false]);
        assert_eq!(kind, io::ErrorKind::WouldBlock);
        drop(c);
        e.shutdown();
    });
}
