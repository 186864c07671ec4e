//! The engine's host-only stress cases, over real vsock in the test VM (`tools/vm-test
//! --test engine_vsock_parity`; ignored on the host): receive rings run dry (ENOBUFS), receives
//! and sends cancelled in the kernel, a handler panic beside a live connection, and no fd left
//! behind after many connections. The unix and tcp versions are in `engine_buffers.rs`,
//! `engine_cancel.rs`, `engine_panic.rs` and `engine_fds.rs`.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{mpsc, Mutex};
use std::thread;

use engine_support::{
    assert_eof, connect, echo_client, echo_over, listen_reporting_echo, read_stream, recv_or_hang,
    wait_closed, wait_until, write_stream, Echo, Gen, Sum, MIB,
};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::Endpoint;
use util::{bind_endpoint, connect_endpoint, require_vm, TempDir, Transport};

/// Listens on vsock with `factory`; returns where clients connect.
fn listen_vsock<H: Handler>(
    e: &Engine,
    dir: &TempDir,
    factory: impl Fn(&Endpoint) -> H + Send + Sync + 'static,
) -> Endpoint {
    require_vm();
    let local = e
        .listen(&bind_endpoint(Transport::Vsock, dir), factory)
        .unwrap();
    connect_endpoint(&local)
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_enobufs_with_many_connections_loses_nothing() {
    const CONNS: u64 = 8;
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(1)
            .recv_buffers(4, 4096)
            .build()
            .unwrap();
        let ep = listen_vsock(&e, &dir, |_| Echo::new());
        // Every client writes 1 MiB before reading anything: the echoes stall on the peers'
        // full vsock buffers, the four receive buffers stay held, and receives armed on
        // sockets with data pending find the ring empty.
        let clients: Vec<(Stream, thread::JoinHandle<(u64, u64)>)> = (0..CONNS)
            .map(|i| {
                let c = connect(&ep);
                let mut w = c.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let s = write_stream(&mut w, 40 + i, MIB, 65536).expect("write");
                    w.shutdown(Shutdown::Write).unwrap();
                    s
                });
                (c, writer)
            })
            .collect();
        wait_until("a receive to find the ring empty", || e.stats().enobufs > 0);
        for (i, (mut c, writer)) in clients.into_iter().enumerate() {
            let got = read_stream(&mut c, 40 + i as u64, 70_000).expect("read the echo");
            let sent = writer.join().unwrap();
            assert_eq!(got, sent, "connection {i}: the echo differs");
        }
        let s = e.stats();
        assert!(s.enobufs > 0 && s.recv_bytes >= CONNS * MIB, "{s:?}");
    });
}

/// Pauses receiving on open (the receive armed after `on_open` is then in the kernel, with
/// nothing sent yet: the pause cancels it) and again on its first data, handing the test a
/// handle to resume each time; reports the checksum of everything at the close.
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
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_cancel_recv_in_flight_loses_nothing() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let (ptx, prx) = mpsc::channel();
        let (dtx, drx) = mpsc::channel();
        let txs = Mutex::new((ptx, dtx));
        let ep = listen_vsock(&e, &dir, move |_| {
            let (p, d) = &*txs.lock().unwrap();
            Pauser {
                got: Sum::default(),
                pauses: 0,
                paused: p.clone(),
                done: d.clone(),
            }
        });
        let mut c = connect(&ep);
        // The first pause cancels a receive nothing else can end (no data yet): its
        // completion comes back ECANCELED and is counted.
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
        // The second pause comes mid-stream, with the writer going on into the socket.
        let handle = recv_or_hang(&prx, "the second pause");
        handle.resume_recv();
        let sent = writer.join().unwrap();
        let got = recv_or_hang(&drx, "the close");
        assert_eq!(got, sent, "bytes lost or changed across the cancels");
        drop(c);
    });
}

/// Fills its send queue towards a peer that does not read, hands the test its handle, and
/// reports at the close each send's outcome and how many pool buffers are free again.
struct Stuffer {
    outcomes: Vec<bool>,
    done: mpsc::Sender<(Vec<bool>, usize, CloseReason)>,
    handle: mpsc::Sender<ConnHandle>,
}

impl Handler for Stuffer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        while let Some(mut buf) = conn.send_buf() {
            buf.extend_from_slice(&vec![7u8; buf.capacity()]);
            if conn.send(buf).is_err() {
                break;
            }
        }
        let _ = self.handle.send(conn.handle());
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_sent(&mut self, _conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
        self.outcomes.push(res.is_ok());
    }
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        let mut free = Vec::new();
        while let Some(b) = conn.send_buf() {
            free.push(b);
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        let _ = self.done.send((outcomes, free.len(), reason.clone()));
    }
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_abort_cancels_sends_and_returns_every_buffer() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        // 16 x 64 KiB = 1 MiB queued against the peer's 256 KiB vsock credit: most of it
        // waits in the kernel when the abort comes.
        let e = Engine::builder()
            .workers(1)
            .send_buffers(16, 64 * 1024)
            .sends_per_connection(16)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let (htx, hrx) = mpsc::channel();
        let txs = Mutex::new((tx, htx));
        let ep = listen_vsock(&e, &dir, move |_| {
            let (d, h) = &*txs.lock().unwrap();
            Stuffer {
                outcomes: Vec::new(),
                done: d.clone(),
                handle: h.clone(),
            }
        });
        let c = connect(&ep); // never reads
        let h = recv_or_hang(&hrx, "the handle from on_open");
        h.abort();
        let (outcomes, free, reason) = recv_or_hang(&rx, "the abort");
        assert_eq!(outcomes.len(), 16, "every send's buffer came back");
        assert!(
            outcomes.iter().any(|ok| !ok),
            "none cancelled: {outcomes:?}"
        );
        assert_eq!(free, 16, "all pool buffers free after close");
        assert!(matches!(reason, CloseReason::Aborted), "{reason}");
        drop(c);
    });
}

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
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_handler_panic_closes_only_that_connection() {
    util::fds_unchanged(|| {
        require_vm();
        let dir = TempDir::new();
        // One worker: the panicking connection and the live one share it.
        let e = Engine::builder().workers(1).build().unwrap();
        let (live_local, live_closed) =
            listen_reporting_echo(&e, &bind_endpoint(Transport::Vsock, &dir));
        let ep = listen_vsock(&e, &dir, |_| Echo::new());
        let mut live = connect(&connect_endpoint(&live_local));
        let mut first = vec![0u8; 128 * 1024];
        Gen::new(30).fill(&mut first);
        live.write_all(&first).unwrap();
        let mut back = vec![0u8; first.len()];
        live.read_exact(&mut back).expect("the first echo");
        assert!(back == first, "the first echo differs");
        // The echo server sends "boom" back to this engine client, whose handler panics.
        let h = e.connect(&ep, None, || Panicky).unwrap();
        h.send(b"boom".to_vec()).unwrap();
        let reason = wait_closed(&h, "the panicking connection to close");
        assert!(matches!(reason, CloseReason::Panicked), "{reason}");
        assert_eq!(e.stats().handler_panics, 1);
        assert!(
            live_closed.try_recv().is_err(),
            "the live connection closed"
        );
        echo_over(live, 31, MIB);
        let reason = recv_or_hang(&live_closed, "the live connection's close");
        assert!(matches!(reason, CloseReason::Eof), "{reason}");
        echo_client(&ep, 32, MIB);
    });
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn engine_vsock_fds_after_many_connections_and_a_drop() {
    util::fds_unchanged_eventually(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let ep = listen_vsock(&e, &dir, |_| Echo::new());
        for i in 0..50 {
            echo_client(&ep, 100 + i, 16 * 1024);
        }
        wait_until("the 50 connections' slots to be freed", || {
            e.stats().open == 0
        });
        assert_eq!(e.stats().accepted, 50);
        // Then a drop with connections open: each peer reads the engine's EOF.
        let clients: Vec<Stream> = (0..16).map(|_| connect(&ep)).collect();
        wait_until("16 more connections accepted", || e.stats().accepted == 66);
        drop(e);
        for (i, mut c) in clients.into_iter().enumerate() {
            assert_eof(&mut c, &format!("client {i}"));
        }
    });
}
