//! Cancelling operations the kernel holds: a receive cancelled by pausing (before any data and
//! mid-stream) loses no byte; closing a connection with sends queued to a peer that does not
//! read cancels them and gives every buffer back. Over unix here, and over vsock in the test
//! VM (`tools/vm-test --test engine_cancel`).

mod engine_support;
mod util;

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::{mpsc, Mutex};
use std::thread;

use engine_support::{connect, recv_or_hang, wait_closed, wait_until, write_stream, Sum, MIB};
use uring_vsock::uring::{
    CloseReason, Conn, ConnHandle, Engine, Handler, PartialSend, RecvBuf, SendBuf,
};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

/// Pauses receiving twice, cancelling the multishot receive in flight each time, and hands the
/// test a handle to resume: first when its greeting has been sent (the peer has sent nothing
/// yet, so the receive armed after `on_open` is still waiting in the kernel), then on the
/// first data after that (mid-stream).
struct Pauser {
    got: Sum,
    pauses: u32,
    paused: mpsc::Sender<ConnHandle>,
    done: mpsc::Sender<(u64, u64)>,
}

impl Pauser {
    fn pause(&mut self, conn: &mut Conn<'_>) {
        self.pauses += 1;
        conn.pause_recv();
        let _ = self.paused.send(conn.handle());
    }
}

impl Handler for Pauser {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        assert_eq!(conn.send_copy(b"go"), 2);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
        res.expect("greeting sent");
        // The receive was armed right after on_open, and the peer sends only once the test
        // has the handle sent below: the receive is in flight, and this pause cancels it.
        if self.pauses == 0 {
            self.pause(conn);
        }
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got.add(&buf);
        if self.pauses == 1 {
            self.pause(conn);
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, _reason: &CloseReason) {
        let _ = self.done.send(self.got.value());
    }
}

#[test]
fn engine_cancel_recv_in_flight_loses_nothing() {
    cancel_recv_in_flight_loses_nothing(Transport::Unix);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_cancel_recv_in_flight_loses_nothing() {
    util::require_vm();
    cancel_recv_in_flight_loses_nothing(Transport::Vsock);
}

fn cancel_recv_in_flight_loses_nothing(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let (ptx, prx) = mpsc::channel();
        let (dtx, drx) = mpsc::channel();
        let (ptx, dtx) = (Mutex::new(ptx), Mutex::new(dtx));
        let local = e
            .listen(&bind_endpoint(t, &dir), move |_| Pauser {
                got: Sum::default(),
                pauses: 0,
                paused: ptx.lock().unwrap().clone(),
                done: dtx.lock().unwrap().clone(),
            })
            .unwrap();
        let ep = connect_endpoint(&local);
        let mut c = connect(&ep);
        // Pause 1: the receive in flight is cancelled before any byte was sent to it. Nothing
        // else can end that receive (no data, no EOF, buffers to spare), so its completion comes
        // back ECANCELED: wait for it to be counted (no event says so; bounded, a hang fails).
        let handle = recv_or_hang(&prx, "the first pause");
        wait_until("the cancelled receive's completion", || {
            e.stats().recvs_cancelled > 0
        });
        assert_eq!(e.stats().recvs_cancelled, 1, "{:?}", e.stats());
        let mut hello = [0u8; 2];
        c.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"go");
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let s = write_stream(&mut w, 9, 4 * MIB, 50_000).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
            s
        });
        handle.resume_recv();
        // Pause 2: on the first data, mid-stream; the writer goes on into the socket meanwhile.
        let handle = recv_or_hang(&prx, "the second pause");
        handle.resume_recv();
        let sent = writer.join().unwrap();
        let got = recv_or_hang(&drx, "the close");
        assert_eq!(got, sent, "bytes lost or changed across the cancels");
        drop(c);
    });
}

/// Queues sends to a peer that does not read, then aborts: every buffer comes back, the
/// cancelled ones saying how much of them went out.
struct Stuffer {
    outcomes: Vec<bool>,
    done: mpsc::Sender<(Vec<bool>, usize, CloseReason)>,
    handle: Option<mpsc::Sender<ConnHandle>>,
}

impl Handler for Stuffer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        while let Some(mut buf) = conn.send_buf() {
            buf.extend_from_slice(&vec![7u8; buf.capacity()]);
            if conn.send(buf).is_err() {
                break;
            }
        }
        if let Some(tx) = self.handle.take() {
            let _ = tx.send(conn.handle());
        }
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_sent(&mut self, _conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        if let Err(e) = &res {
            let p = PartialSend::of(e).expect("a cancelled send says how much went out");
            assert_eq!(p.len, buf.len(), "{e}");
            assert!(p.sent < p.len, "{e}");
        }
        self.outcomes.push(res.is_ok());
    }
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        // Every pooled buffer is back: all can be taken again.
        let mut free = Vec::new();
        while let Some(b) = conn.send_buf() {
            free.push(b);
        }
        let _ = self.done.send((
            std::mem::take(&mut self.outcomes),
            free.len(),
            reason.clone(),
        ));
    }
}

#[test]
fn engine_abort_cancels_sends_and_returns_every_buffer() {
    abort_cancels_sends_and_returns_every_buffer(Transport::Unix);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_abort_cancels_sends_and_returns_every_buffer() {
    util::require_vm();
    abort_cancels_sends_and_returns_every_buffer(Transport::Vsock);
}

/// 16 x 64 KiB = 1 MiB queued against a peer that never reads (unix's socket buffer, vsock's
/// 256 KiB credit): most of it waits in the kernel when the abort comes.
fn abort_cancels_sends_and_returns_every_buffer(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(1)
            .send_buffers(16, 64 * 1024)
            .recv_buffers(16, 4096)
            .sends_per_connection(16)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let (htx, hrx) = mpsc::channel();
        let (tx, htx) = (Mutex::new(tx), Mutex::new(Some(htx)));
        let local = e
            .listen(&bind_endpoint(t, &dir), move |_| Stuffer {
                outcomes: Vec::new(),
                done: tx.lock().unwrap().clone(),
                handle: htx.lock().unwrap().take(),
            })
            .unwrap();
        let ep = connect_endpoint(&local);
        let c = connect(&ep); // never reads: 1 MiB cannot all be written
        let h = recv_or_hang(&hrx, "the handle from on_open");
        h.abort();
        let (outcomes, free, reason) = recv_or_hang(&rx, "the abort");
        assert_eq!(outcomes.len(), 16, "every send's buffer came back");
        assert!(
            outcomes.iter().any(|ok| !ok),
            "some sends were cancelled: {outcomes:?}"
        );
        assert_eq!(free, 16, "all pool buffers free after close");
        assert!(matches!(reason, CloseReason::Aborted), "{reason}");
        let reason = wait_closed(&h, "the handle to see the abort");
        assert!(matches!(reason, CloseReason::Aborted), "{reason}");
        drop(c);
    });
}
