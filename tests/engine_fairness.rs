//! Fairness: peers that stop reading must never stall the other connections of their worker.
//! An echo server's handler keeps what it cannot send yet (the documented backlog pattern),
//! so a peer that sends without reading makes its connection hold received buffers; each
//! connection's bounded share of the worker's receive buffers, and receives into a buffer of
//! the connection's own when the shared ring is empty, keep every other connection served.
//!
//! Each test fails on the engine before the share (commit 0fecd04): there the stalled peers'
//! connections held every buffer of the ring and the live clients' echoes never came (the
//! watchdog fired).

mod engine_support;
mod util;

use std::io::Write;
use std::net::Shutdown;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use engine_support::{connect, echo_client, recv_or_hang, Echo, Gen, Sum, MIB};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::Endpoint;
use util::{bind_endpoint, TempDir, Transport};

/// A peer that sends `total` bytes and never reads: its writes block once the echo backs up.
/// Returns its stream (to end it) and the writer thread.
fn stalled_peer(
    ep: &Endpoint,
    seed: u64,
    total: usize,
) -> (uring_vsock::blocking::Stream, thread::JoinHandle<()>) {
    let s = connect(ep);
    let mut w = s.try_clone().unwrap();
    let t = thread::spawn(move || {
        let mut gen = Gen::new(seed);
        let mut block = vec![0u8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            gen.fill(&mut block[..n]);
            // Blocks when the echo backs up; fails (ending the thread) once the test resets
            // the stream at the end.
            if w.write_all(&block[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    (s, t)
}

/// Waits (bounded) until the engine's stats satisfy `cond`.
fn wait_stats(e: &Engine, what: &str, cond: impl Fn(&uring_vsock::uring::EngineStats) -> bool) {
    engine_support::wait_until(what, || cond(&e.stats()));
}

/// `n` clients at once, each echoing `bytes` checksummed; fails (as `what`) if one does not
/// get its echo.
fn live_clients(ep: &Endpoint, n: u64, bytes: u64, what: &str) {
    let live: Vec<_> = (0..n)
        .map(|i| {
            let ep = ep.clone();
            thread::spawn(move || echo_client(&ep, i, bytes))
        })
        .collect();
    for c in live {
        c.join().expect(what);
    }
}

fn end(peers: Vec<(uring_vsock::blocking::Stream, thread::JoinHandle<()>)>) {
    for (s, t) in peers {
        let _ = s.shutdown(Shutdown::Both);
        t.join().unwrap();
    }
}

/// One peer that stops reading holds its share; 20 clients beside it on the same (only)
/// worker each get their checksummed echo.
fn one_stalled_peer_beside_live_ones(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
        let ep = util::connect_endpoint(&ep);
        let stalled = stalled_peer(&ep, 99, 8 << 20);
        // The stalled connection has filled its share: it holds buffers it cannot send back.
        wait_stats(&e, "the stalled peer's connection to fill its share", |s| {
            s.recv_share_pauses > 0
        });
        live_clients(&ep, 20, MIB / 2, "a live client beside the stalled peer");
        end(vec![stalled]);
        e.shutdown();
    });
}

#[test]
fn engine_one_stalled_peer_never_stalls_the_others_unix() {
    one_stalled_peer_beside_live_ones(Transport::Unix);
}

#[test]
fn engine_one_stalled_peer_never_stalls_the_others_tcp() {
    one_stalled_peer_beside_live_ones(Transport::Tcp);
}

/// More stalled peers than the ring has shares for (128 buffers, 32 a connection: 4 fill
/// it): the ring runs dry, and receives of live connections go into buffers of their own.
#[test]
fn engine_many_stalled_peers_never_stall_the_others() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let stalled: Vec<_> = (0..12)
            .map(|i| stalled_peer(&ep, 1000 + i, 4 << 20))
            .collect();
        wait_stats(
            &e,
            "several stalled connections to fill their shares",
            |s| s.recv_share_pauses >= 4,
        );
        live_clients(&ep, 16, MIB / 4, "a live client beside many stalled peers");
        assert!(
            e.stats().own_buffer_recvs > 0,
            "the ring ran dry and receives went into own buffers: {:?}",
            e.stats()
        );
        end(stalled);
        e.shutdown();
    });
}

/// An engine client streaming 8 MiB to an engine echo server on the same single worker,
/// reading the echo as it goes: the server's connection must not take every buffer from the
/// client's (which deadlocked both before).
struct Streamer {
    gen: Gen,
    left: u64,
    sent: Sum,
    got: Sum,
    done: Option<mpsc::Sender<(Sum, Sum, CloseReason)>>,
}

impl Streamer {
    fn pump(&mut self, conn: &mut Conn<'_>) {
        while self.left > 0 && conn.can_send() {
            let Some(mut buf) = conn.send_buf() else {
                return;
            };
            let n = (buf.capacity() as u64).min(self.left) as usize;
            let mut block = vec![0u8; n];
            self.gen.fill(&mut block);
            buf.extend_from_slice(&block);
            self.sent.add(&block);
            self.left -= n as u64;
            if conn.send(buf).is_err() {
                unreachable!("can_send said yes");
            }
        }
        if self.left == 0 {
            conn.shutdown_write();
        }
    }
}

impl Handler for Streamer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.pump(conn);
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got.add(&buf);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: std::io::Result<usize>) {
        res.expect("a send of the stream");
        self.pump(conn);
    }
    fn on_peer_shutdown(&mut self, _conn: &mut Conn<'_>) {}
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send((self.sent, self.got, reason.clone()));
        }
    }
}

#[test]
fn engine_client_and_echo_server_on_one_worker_do_not_deadlock() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let h = e
            .connect(&ep, None, move || Streamer {
                gen: Gen::new(5),
                left: 8 * MIB,
                sent: Sum::default(),
                got: Sum::default(),
                done: tx.lock().unwrap().take(),
            })
            .unwrap();
        assert_eq!(h.id().worker(), 0);
        let (sent, got, reason) =
            recv_or_hang(&rx, "the 8 MiB echo between two connections of one worker");
        assert_eq!(sent.bytes, 8 * MIB);
        assert_eq!(got.value(), sent.value(), "echo differs (bytes, checksum)");
        assert!(matches!(reason, CloseReason::Eof), "{reason}");
        e.shutdown();
    });
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn engine_one_stalled_peer_never_stalls_the_others_vsock() {
    util::require_vm();
    one_stalled_peer_beside_live_ones(Transport::Vsock);
}
