//! Shutdown while the kernel still holds zero-copy sends of a connection closed locally, to a
//! peer that never reads: `Engine::shutdown` must return (a watchdog fails the test instead of
//! hanging). (Shutdown with a connect pending is tested in `src/uring/fault_tests.rs`: it
//! needs the engine stopped while another thread is inside `Engine::connect`.)

mod util;

use std::sync::mpsc;
use std::time::Duration;

use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use uring_vsock::Endpoint;

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

/// Sends every pool buffer, full, on open (each far above the zero-copy threshold).
struct Flood;

impl Handler for Flood {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        while let Some(mut buf) = conn.send_buf() {
            buf.extend_from_slice(&vec![0x5a; buf.capacity()]);
            if conn.send(buf).is_err() {
                break;
            }
        }
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

/// A tcp listener with a small receive buffer whose connections are never read.
fn deaf_peer() -> (std::net::TcpListener, Endpoint) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(16 * 1024).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(16).unwrap();
    let l: std::net::TcpListener = s.into();
    let ep = Endpoint::Tcp(l.local_addr().unwrap());
    (l, ep)
}

#[test]
fn engine_shutdown_after_local_close_with_zero_copy_pending() {
    util::fds_unchanged(|| {
        let (l, ep) = deaf_peer();
        // 8 MiB in flight can never fit in the peer's receive and our send buffers.
        let e = Engine::builder()
            .workers(1)
            .send_buffers(8, 1 << 20)
            .build()
            .unwrap();
        assert!(
            e.features().send_zc,
            "this test needs SEND_ZC (kernel 6.0+)"
        );
        let h = e.connect(&ep, None, || Flood).unwrap();
        let (_peer, _) = l.accept().unwrap(); // held open, never read
                                              // Wait (bounded) until on_open has queued the sends. The first is then submitted before
                                              // the close is processed (a later loop turn), and 8 MiB cannot drain to this peer, so
                                              // zero-copy notifications are outstanding when the connection closes.
        let mut waited = 0;
        while e.stats().zero_copy_sends == 0 {
            std::thread::sleep(Duration::from_millis(5));
            waited += 1;
            assert!(waited < 6000, "no zero-copy send: {:?}", e.stats());
        }
        h.close();
        // A clean local close waits for the data to drain; shutdown must not.
        assert!(h.closed().is_none() || matches!(h.closed(), Some(CloseReason::Local)));
        shutdown_returns(e);
        assert!(matches!(h.wait_closed().unwrap(), CloseReason::Local));
        assert!(matches!(h.wait_closed().unwrap(), CloseReason::Local));
    });
}

/// Holds the last `Engine` and drops it from a handler call on the first bytes.
struct DropsEngine {
    engine: std::sync::Arc<std::sync::Mutex<Option<Engine>>>,
    done: mpsc::Sender<()>,
}

impl Handler for DropsEngine {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {
        let e = self.engine.lock().unwrap().take();
        drop(e); // on the worker: must not join itself
        let _ = self.done.send(());
    }
}

#[test]
fn engine_dropped_on_its_worker_stops_without_panicking() {
    // The workers detach and finish closing after the handler returns: the fds are checked
    // once they are done.
    util::fds_unchanged_eventually(|| {
        use std::io::{Read, Write};
        let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
        let e = Engine::builder().workers(2).build().unwrap();
        let (tx, rx) = mpsc::channel();
        let (s, tx) = (std::sync::Arc::clone(&slot), std::sync::Mutex::new(tx));
        let ep = e
            .listen(&"tcp:127.0.0.1:0".parse().unwrap(), move |_| DropsEngine {
                engine: std::sync::Arc::clone(&s),
                done: tx.lock().unwrap().clone(),
            })
            .unwrap();
        *slot.lock().unwrap() = Some(e);
        let Endpoint::Tcp(addr) = &ep else {
            unreachable!()
        };
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"stop").unwrap();
        rx.recv_timeout(Duration::from_secs(60))
            .expect("dropping the engine on its worker returned");
        // The workers stop after that handler call: our connection is closed.
        let mut buf = [0u8; 8];
        assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    });
}
