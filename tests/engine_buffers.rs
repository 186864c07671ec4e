//! Receive-buffer pressure: a worker's provided-buffer ring runs dry (`ENOBUFS`), receives wait
//! for buffers and are re-armed as buffers return; nothing is dropped, every byte is checked.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use engine_support::{
    connect, echo_over, read_stream, recv_or_hang, wait_closed, wait_until, write_stream, Echo,
    Gen, Sum, MIB,
};
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendBuf};
use util::{bind_endpoint, TempDir, Transport};

thread_local! {
    /// Receive buffers a worker's [`JailEcho`] handlers hold back from the ring (each worker
    /// thread has its own).
    static JAIL: std::cell::RefCell<Vec<RecvBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives this worker's jailed receive buffers back to its ring.
fn free_jail() {
    drop(JAIL.with(|j| std::mem::take(&mut *j.borrow_mut())));
}

/// An echo that, until `released`, echoes a copy of each received buffer and keeps the
/// buffer itself in its worker's [`JAIL`]: the provided-buffer ring runs dry.
struct JailEcho {
    echo: Echo,
    released: Arc<AtomicBool>,
}

impl Handler for JailEcho {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        if self.released.load(Ordering::Acquire) {
            self.echo.on_recv(conn, buf);
        } else {
            self.echo.queue(conn, SendBuf::from(buf.to_vec()));
            JAIL.with(|j| j.borrow_mut().push(buf));
        }
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        self.echo.on_sent(conn, buf, res);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.echo.on_peer_shutdown(conn);
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, _reason: &CloseReason) {
        free_jail(); // never keep buffers past the test
    }
}

/// Sits on a worker and hands out its handle; closing it frees that worker's [`JAIL`].
struct JailKey(mpsc::Sender<ConnHandle>);

impl Handler for JailKey {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.0.send(conn.handle());
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_close(&mut self, _conn: &mut Conn<'_>, _reason: &CloseReason) {
        free_jail();
    }
}

#[test]
fn engine_fewer_recv_buffers_than_connections() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(2)
            .recv_buffers(8, 4096)
            .build()
            .unwrap();
        // A key on every worker: the way to reach its jail later (a handle's close runs on_close
        // there). Placed first, one at a time, while nothing else loads the workers.
        let (ktx, krx) = mpsc::channel();
        let ktx = Mutex::new(ktx);
        let key_ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), move |_| {
                JailKey(ktx.lock().unwrap().clone())
            })
            .unwrap();
        let (mut keys, mut key_peers) = (Vec::new(), Vec::new());
        let mut on_worker = vec![false; e.workers()];
        while on_worker.contains(&false) {
            assert!(
                keys.len() < 16,
                "no key lands on some worker: {on_worker:?}"
            );
            key_peers.push(connect(&key_ep));
            let key: ConnHandle = recv_or_hang(&krx, "a key's on_open");
            on_worker[key.id().worker()] = true;
            keys.push(key);
        }
        let released = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&released);
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), move |_| JailEcho {
                echo: Echo::new(),
                released: Arc::clone(&r),
            })
            .unwrap();
        // Every client connected (its receive armed while the ring is full) before any
        // sends: otherwise, on a slow machine, the first few connections' receives could take
        // all 8 buffers before the others are armed, and those then get own-buffer receives
        // (no ENOBUFS to wait for).
        let clients: Vec<_> = (0..64).map(|_| connect(&ep)).collect();
        let accepted = keys.len() as u64 + 64;
        wait_until("every client accepted", || e.stats().accepted >= accepted);
        let threads: Vec<_> = clients
            .into_iter()
            .zip(0u64..)
            .map(|(c, i)| thread::spawn(move || echo_over(c, 100 + i, 256 * 1024)))
            .collect();
        // Every receive buffer a worker hands out stays in its jail, and each worker's
        // connections have far more pending (256 KiB each) than its 8 x 4 KiB: its ring runs
        // dry with receives still armed on sockets holding data, and those fail ENOBUFS. No
        // buffer comes back until the keys turn, so this cannot be missed: wait for it (no event
        // says so; bounded, a hang fails the test).
        wait_until("a receive to find the ring empty", || e.stats().enobufs > 0);
        released.store(true, Ordering::Release);
        for key in &keys {
            key.close();
            let reason = wait_closed(key, "a key to close");
            assert!(matches!(reason, CloseReason::Local), "{reason}");
        }
        // The buffers are back: every starved receive is re-armed and every echo completes.
        for t in threads {
            t.join().unwrap();
        }
        drop(key_peers);
        let s = e.stats();
        assert!(s.enobufs > 0 && s.recv_bytes >= 64 * 256 * 1024, "{s:?}");
    });
}

#[test]
fn engine_enobufs_is_backpressure_not_a_drop() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        // Multishot receives (no bundles): one runs on after its connection's share is full
        // until its cancel lands, so a lone connection can drain the ring. (A bundle receive
        // takes at most what is left of the share, and an empty ring gets an own-buffer
        // receive instead, so there a lone connection never sees ENOBUFS; the jail test
        // above starves many.)
        let e = Engine::builder()
            .workers(1)
            .recv_buffers(4, 4096)
            .recv_bundles(false)
            .build()
            .unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let c = connect(&ep);
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let s = write_stream(&mut w, 21, 8 * MIB, 65536).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
            s
        });
        // Nobody reads the echo yet: the server's sends stall, its 4 receive buffers stay held,
        // and the ring runs dry. Wait for that (bounded: a hang here is a failure).
        wait_until("a receive to find the ring empty", || e.stats().enobufs > 0);
        let mut r = c;
        let got = read_stream(&mut r, 21, 70_000).expect("read the echo");
        let sent = writer.join().unwrap();
        assert_eq!(got, sent);
    });
}

/// Eight connections stream both ways at once through one echo engine on its default ring:
/// each gets its first 8 MiB echoed back intact while the others keep streaming. (It shows
/// concurrent echoes complete; that a stalled peer starves no one is `engine_fairness.rs`,
/// whose tests fail on the engine before the receive share.)
#[test]
fn engine_eight_concurrent_echoes_each_get_their_8mib_back() {
    util::fds_unchanged(|| {
        const CONNS: u64 = 8;
        const CHECKED: usize = 8 << 20;
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Tcp, &dir), |_| Echo::new())
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let clients: Vec<_> = (0..CONNS)
            .map(|i| {
                let (ep, stop, done) = (ep.clone(), Arc::clone(&stop), done_tx.clone());
                thread::spawn(move || {
                    let c = connect(&ep);
                    let mut w = c.try_clone().unwrap();
                    let writer = thread::spawn(move || {
                        let (mut gen, mut sent, mut written) = (Gen::new(i), Sum::default(), 0);
                        let mut block = vec![0u8; 32 * 1024];
                        while !stop.load(Ordering::Relaxed) {
                            gen.fill(&mut block);
                            if written < CHECKED {
                                let n = block.len().min(CHECKED - written);
                                sent.add(&block[..n]);
                                written += n;
                            }
                            if w.write_all(&block).is_err() {
                                break;
                            }
                        }
                        sent
                    });
                    let mut r = c;
                    let (mut got, mut buf) = (Sum::default(), vec![0u8; 65536]);
                    while (got.bytes as usize) < CHECKED {
                        let n = r
                            .read(&mut buf)
                            .unwrap_or_else(|e| panic!("connection {i}: read the echo: {e}"));
                        assert_ne!(n, 0, "connection {i}: EOF before {CHECKED} bytes came back");
                        got.add(&buf[..n.min(CHECKED - got.bytes as usize)]);
                    }
                    done.send(i).unwrap();
                    // Keep reading so the echo never blocks the others, until we stop.
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                    let sent = writer.join().unwrap();
                    assert_eq!(got.value(), sent.value(), "connection {i}: echo differs");
                })
            })
            .collect();
        let mut finished: Vec<u64> = (0..CONNS)
            .map(|_| recv_or_hang(&done_rx, "every connection's first 8 MiB"))
            .collect();
        finished.sort();
        assert_eq!(finished, (0..CONNS).collect::<Vec<_>>());
        stop.store(true, Ordering::Relaxed);
        e.shutdown(); // closes the connections: readers see EOF or a reset, writers an error
        for c in clients {
            c.join().unwrap();
        }
    });
}
