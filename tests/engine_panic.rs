//! Panics in user code that runs on a worker: a handler call, the listener's factory, the
//! closure `Engine::connect` runs, a handler's `Drop`. Each fails or closes just its
//! connection; the worker serves on (other connections on it included) and the engine shuts
//! down cleanly. The handler panic runs over unix here and over vsock in the test VM.

mod engine_support;
mod util;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use engine_support::{
    assert_eof, connect, echo_client, echo_over, listen_reporting_echo, recv_or_hang,
    shutdown_returns, wait_closed, wait_until, Echo, Gen, MIB,
};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

/// Panics on receiving `boom`.
struct Panicky;

impl Handler for Panicky {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        if buf.starts_with(b"boom") {
            panic!("handler panic on purpose (test)");
        }
    }
}

#[test]
fn engine_handler_panic_closes_only_that_connection() {
    handler_panic_closes_only_that_connection(Transport::Unix);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_handler_panic_closes_only_that_connection() {
    util::require_vm();
    handler_panic_closes_only_that_connection(Transport::Vsock);
}

fn handler_panic_closes_only_that_connection(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        // One worker: the panicking connection and the live one share it.
        let e = Engine::builder().workers(1).build().unwrap();
        let (live_local, live_closed) = listen_reporting_echo(&e, &bind_endpoint(t, &dir));
        let local = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
        let ep = connect_endpoint(&local);
        // The live connection is mid-stream when the panic comes: a first message echoed
        // (128 KiB: within vsock's 256 KiB credit, since it is written before it is read).
        let mut live = connect(&connect_endpoint(&live_local));
        let mut first = vec![0u8; 128 * 1024];
        Gen::new(30).fill(&mut first);
        live.write_all(&first).unwrap();
        let mut back = vec![0u8; first.len()];
        live.read_exact(&mut back).expect("the first echo");
        assert!(back == first, "the first echo differs");
        // The echo server sends "boom" back to the client, whose handler panics.
        let h = e.connect(&ep, None, || Panicky).unwrap();
        h.send(b"boom".to_vec()).unwrap();
        let reason = wait_closed(&h, "the panicking connection to close");
        assert!(matches!(reason, CloseReason::Panicked), "{reason}");
        assert_eq!(e.stats().handler_panics, 1);
        assert!(
            live_closed.try_recv().is_err(),
            "the live connection is still open"
        );
        // It is still served: 1 MiB more, echoed to its end, then its clean close.
        echo_over(live, 31, MIB);
        let reason = recv_or_hang(&live_closed, "the live connection's close");
        assert!(matches!(reason, CloseReason::Eof), "{reason}");
        echo_client(&ep, 32, MIB); // and new connections are served
    });
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
        let mut first = connect(&ep);
        // Served by nobody: the engine dropped the accepted socket, with nothing unread in
        // it (we never wrote), so the close is clean.
        assert_eof(&mut first, "the connection whose factory panicked");
        assert_eq!(e.stats().handler_panics, 1);
        echo_client(&ep, 1, MIB); // the next connection is served
                                  // Our EOF can come before the worker frees the connection's slot.
        wait_until("the served connection's slot to be freed", || {
            e.stats().open == 0
        });
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
        let reason = wait_closed(&h, "the connect's close");
        assert!(matches!(reason, CloseReason::Local), "{reason}");
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
        let reason = wait_closed(&bomb, "the bomb's close");
        assert!(matches!(reason, CloseReason::Local), "{reason}");
        // The handler is dropped just after the handle is told: wait for its panic.
        wait_until("the bomb's handler to be dropped", || {
            e.stats().handler_panics > 0
        });
        assert_eq!(e.stats().handler_panics, 1);
        assert!(
            other.closed().is_none(),
            "the other connection is untouched"
        );
        echo_client(&ep, 3, MIB);
        // One more whose handler is dropped at engine shutdown.
        let _late = e.connect(&ep, None, || DropBomb).unwrap();
        shutdown_returns(e);
        let reason = wait_closed(&other, "the other connection's close");
        assert!(matches!(reason, CloseReason::EngineShutdown), "{reason}");
    });
}
