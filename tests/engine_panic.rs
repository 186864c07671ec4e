//! Panics in user code that runs on a worker outside handler calls: the listener's factory,
//! the closure `Engine::connect` runs, a handler's `Drop`. Each fails or closes just its
//! connection; the worker serves on and the engine shuts down cleanly.

mod engine_support;
mod util;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use engine_support::{echo_client, Echo};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use util::{bind_endpoint, TempDir, Transport};

const MIB: u64 = 1 << 20;

/// Shuts `e` down on another thread; fails (instead of hanging) if that never returns.
fn shutdown_returns(e: Engine) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        e.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("Engine::shutdown hung");
}

#[test]
fn engine_panicking_factory_closes_only_that_connection() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let made = AtomicUsize::new(0);
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), move |_| {
                if made.fetch_add(1, Ordering::Relaxed) == 0 {
                    panic!("factory panic on purpose (test)");
                }
                Echo::new()
            })
            .unwrap();
        let mut first = Stream::connect(&ep).unwrap();
        let mut buf = [0u8; 16];
        // Served by nobody: the engine closed it (EOF, or a reset).
        assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!(e.stats().handler_panics, 1);
        echo_client(&ep, 1, MIB); // the next connection is served
        assert_eq!(e.stats().open, 0);
        shutdown_returns(e);
    });
}

#[test]
fn engine_panicking_connect_closure_fails_that_connect() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let err = e
            .connect(&ep, None, || -> Echo {
                panic!("connect closure panic on purpose (test)")
            })
            .expect_err("a panicking closure fails the connect");
        assert_eq!(err.op(), "connect");
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(e.stats().handler_panics, 1);
        // The worker serves on: a connect through it, and an accepted connection.
        let h = e.connect(&ep, None, Echo::new).unwrap();
        echo_client(&ep, 2, MIB);
        h.close();
        assert!(matches!(h.wait_closed().unwrap(), CloseReason::Local));
        shutdown_returns(e);
    });
}

/// A handler whose `Drop` panics.
struct DropBomb;

impl Handler for DropBomb {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("handler Drop panic on purpose (test)");
    }
}

#[test]
fn engine_panicking_handler_drop_is_contained() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let bomb = e.connect(&ep, None, || DropBomb).unwrap();
        let other = e.connect(&ep, None, Echo::new).unwrap();
        bomb.close();
        assert!(matches!(bomb.wait_closed().unwrap(), CloseReason::Local));
        // The handler is dropped just after the handle is told: wait (bounded) for its panic.
        let mut waited = 0;
        while e.stats().handler_panics == 0 {
            std::thread::sleep(Duration::from_millis(5));
            waited += 1;
            assert!(waited < 6000, "the handler was never dropped");
        }
        assert_eq!(e.stats().handler_panics, 1);
        assert!(
            other.closed().is_none(),
            "the other connection is untouched"
        );
        echo_client(&ep, 3, MIB);
        // One more whose handler is dropped at engine shutdown.
        let _late = e.connect(&ep, None, || DropBomb).unwrap();
        shutdown_returns(e);
        assert!(matches!(
            other.wait_closed().unwrap(),
            CloseReason::EngineShutdown
        ));
    });
}
