//! Shutdown while the kernel still holds zero-copy sends of a connection closed locally, to a
//! peer that never reads: `Engine::shutdown` must return (a watchdog fails the test instead of
//! hanging). And an engine dropped from one of its own handlers stops and closes cleanly. (Shutdown with a connect pending is tested in `src/uring/fault_tests.rs`: it
//! needs the engine stopped while another thread is inside `Engine::connect`.)

mod engine_support;
mod util;

use std::sync::mpsc;

use engine_support::{assert_eof, recv_or_hang, shutdown_returns, wait_closed, wait_until};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use uring_vsock::Endpoint;

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

/// Sends nothing, ignores what it receives.
struct Idle;

impl Handler for Idle {
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
        // The peer is held open and never read.
        let (_peer, _) = l.accept().unwrap();
        // Wait until on_open has queued the sends. The first is then submitted before the
        // close is processed (a later loop turn), and 8 MiB cannot drain to this peer, so
        // zero-copy notifications are outstanding when the connection closes.
        wait_until("a zero-copy send", || e.stats().zero_copy_sends > 0);
        h.close();
        // A connect through the same (only) worker: its commands run in order, so once it
        // has connected, the close has been processed. A clean local close waits for the
        // data to drain, which this peer never lets happen: the connection is still open.
        let (other, other_ep) = deaf_peer();
        e.connect(&other_ep, None, || Idle).unwrap();
        assert!(
            h.closed().is_none(),
            "closed before its data drained: {:?}",
            h.closed()
        );
        // Shutdown must not wait for that drain. The graceful close did not finish (its
        // data never went out), so the connection ends as shut down, with a reset: the peer
        // cannot take the cut stream for a complete one.
        shutdown_returns(e);
        let reason = wait_closed(&h, "the closing connection to end at shutdown");
        assert!(matches!(reason, CloseReason::EngineShutdown), "{reason}");
        let mut peer = _peer;
        peer.set_read_timeout(Some(engine_support::WATCHDOG))
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let end = loop {
            match std::io::Read::read(&mut peer, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        let err = end.expect_err("a cut stream ends with a reset, not EOF");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        drop(other);
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
        use std::io::Write;
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
        let mut c = Stream::from(std::os::fd::OwnedFd::from(
            std::net::TcpStream::connect(addr).unwrap(),
        ));
        c.write_all(b"stop").unwrap();
        recv_or_hang(&rx, "dropping the engine on its worker to return");
        // The workers stop after that handler call and close our connection; it had read
        // everything we sent, so the close is clean: EOF.
        assert_eof(&mut c, "the connection of a stopped engine");
    });
}
