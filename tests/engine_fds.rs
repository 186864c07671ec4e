//! Open fds before and after each engine test are equal: rings, pipes, listeners and
//! connections are all closed. The tests run one at a time (a mutex), since fds are
//! per process.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use engine_support::{assert_eof, connect, echo_client, recv_or_hang, wait_until, Echo, Gen};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendBuf};
use util::{bind_endpoint, fds_unchanged, TempDir, Transport};

#[test]
fn engine_fds_echo_then_shutdown() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        for t in [Transport::Unix, Transport::Tcp] {
            let e = Engine::builder().workers(2).build().unwrap();
            let ep = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
            for i in 0..4 {
                echo_client(&ep, i, 1 << 20);
            }
            e.shutdown();
        }
    });
}

#[test]
fn engine_fds_drop_with_connections_open() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let clients: Vec<Stream> = (0..16).map(|_| connect(&ep)).collect();
        let out = e
            .connect(&ep, Some(Duration::from_secs(5)), Echo::new)
            .unwrap();
        // Two echoes facing each other: these bytes go back and forth until the end.
        out.send(vec![1; 100_000]).unwrap();
        // Every client is accepted (one not yet accepted would see its listener's close as a
        // reset, not the engine's close).
        wait_until("17 connections accepted", || e.stats().accepted == 17);
        drop(e); // closes everything, in flight or not
        for (i, mut c) in clients.into_iter().enumerate() {
            // The engine closed its side, which had nothing unread: EOF.
            assert_eof(&mut c, &format!("client {i}"));
        }
        let reason = out
            .closed()
            .expect("the drop closed the outgoing connection");
        assert!(matches!(reason, CloseReason::EngineShutdown), "{reason}");
    });
}

#[test]
fn engine_fds_failed_connects() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        for _ in 0..10 {
            let dead = util::dead_endpoint(Transport::Tcp, &dir);
            let err = e
                .connect(&dead, Some(Duration::from_secs(5)), Echo::new)
                .expect_err("nothing listens");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
            let dead = util::dead_endpoint(Transport::Unix, &dir);
            let err = e
                .connect(&dead, None, Echo::new)
                .expect_err("no such socket");
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        }
        drop(e);
    });
}

/// An echo that tells the test about its connection (a handle on open, its first data, its
/// close reason) and counts itself alive until dropped.
struct Watched {
    echo: Echo,
    opened: mpsc::Sender<ConnHandle>,
    flowing: Option<mpsc::Sender<()>>,
    closed: Arc<Mutex<Vec<CloseReason>>>,
    alive: Arc<AtomicUsize>,
}

impl Handler for Watched {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.opened.send(conn.handle());
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        if let Some(tx) = self.flowing.take() {
            let _ = tx.send(());
        }
        self.echo.on_recv(conn, buf);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        self.echo.on_sent(conn, buf, res);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.echo.on_peer_shutdown(conn);
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        self.closed.lock().unwrap().push(reason.clone());
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shutdown while 8 tcp connections stream both ways (receives and sends in the kernel) through
/// receive rings so small that receives run out of buffers (`enobufs`, checked) and wait for
/// them: every handler closes with `EngineShutdown` and is dropped, every handle reports the
/// close, and no fd is left behind. A worker that exited with operations still in flight would
/// report a different reason (and leak its ring's fd).
#[test]
fn engine_fds_shutdown_with_operations_in_flight() {
    fds_unchanged(|| {
        const CONNS: usize = 8;
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(2)
            .recv_buffers(4, 4096)
            .build()
            .unwrap();
        let (otx, orx) = mpsc::channel();
        let (ftx, frx) = mpsc::channel();
        let closed = Arc::new(Mutex::new(Vec::new()));
        let alive = Arc::new(AtomicUsize::new(0));
        let (c2, a2) = (Arc::clone(&closed), Arc::clone(&alive));
        let txs = Mutex::new((otx, ftx));
        let ep = e
            .listen(&bind_endpoint(Transport::Tcp, &dir), move |_| {
                a2.fetch_add(1, Ordering::Relaxed);
                let (otx, ftx) = &*txs.lock().unwrap();
                Watched {
                    echo: Echo::new(),
                    opened: otx.clone(),
                    flowing: Some(ftx.clone()),
                    closed: Arc::clone(&c2),
                    alive: Arc::clone(&a2),
                }
            })
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CONNS as u64)
            .map(|i| {
                let (ep, stop) = (ep.clone(), Arc::clone(&stop));
                thread::spawn(move || {
                    let c = connect(&ep);
                    let mut w = c.try_clone().unwrap();
                    let writer = thread::spawn(move || {
                        let mut block = vec![0u8; 32 * 1024];
                        Gen::new(i).fill(&mut block);
                        while !stop.load(Ordering::Relaxed) {
                            if w.write_all(&block).is_err() {
                                break;
                            }
                        }
                    });
                    let mut r = c;
                    let mut buf = vec![0u8; 65536];
                    // Read until the engine closes us (EOF or reset).
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                    writer.join().unwrap();
                })
            })
            .collect();
        let handles: Vec<ConnHandle> = (0..CONNS)
            .map(|_| recv_or_hang(&orx, "a connection to open"))
            .collect();
        // Data flows (not necessarily on every connection yet: under receive-buffer pressure a
        // starved connection can wait seconds for its first receive while the others stream;
        // shutdown must close it all the same).
        recv_or_hang(&frx, "the first data");
        // Four 4 KiB buffers per worker, each held until its echo is sent, against connections
        // that always have more pending: receives find the ring empty.
        wait_until("a receive to run out of buffers", || e.stats().enobufs > 0);
        assert_eq!(e.stats().open, CONNS as u64, "{:?}", e.stats());
        assert_eq!(alive.load(Ordering::Relaxed), CONNS);
        // Shut down with receives, sends and starved receives all in play.
        e.shutdown();
        let reasons = std::mem::take(&mut *closed.lock().unwrap());
        assert_eq!(
            reasons.len(),
            CONNS,
            "on_close once per connection: {reasons:?}"
        );
        for r in &reasons {
            assert!(matches!(r, CloseReason::EngineShutdown), "{r}");
        }
        assert_eq!(alive.load(Ordering::Relaxed), 0, "handlers not dropped");
        for h in &handles {
            let r = h.closed().expect("the handle reports the close");
            assert!(matches!(r, CloseReason::EngineShutdown), "{r}");
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        drop(handles);
    });
}
