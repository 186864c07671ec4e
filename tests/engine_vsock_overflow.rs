//! An engine connection whose socket the kernel resets for holding too many small packets
//! unread (vsock, Linux 6.12.92+: see `vsock_rx_overflow.rs`) ends with that error once it
//! receives again, instead of taking the receive's `ENOBUFS` for an empty buffer ring and
//! re-arming forever.
//!
//! Over vsock in the test VM only (`tools/vm-test --test engine_vsock_overflow`).

mod engine_support;
mod util;

use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use engine_support::{recv_or_hang, wait_closed};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf};
use util::{bind_endpoint, connect_endpoint, require_vm, TempDir, Transport};

/// Bytes per write: above the 128 B the kernel merges into the last packet, below the ~576 B
/// a packet costs; ~680 of them pass the ~455 packets the default buffer allows queued.
const PIECE: usize = 300;
const PIECES: usize = 683;

/// Stops receiving as soon as the connection opens and hands its handle out.
struct Paused(Option<mpsc::Sender<ConnHandle>>);

impl Handler for Paused {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pause_recv();
        if let Some(tx) = self.0.take() {
            let _ = tx.send(conn.handle());
        }
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn vsock_engine_recv_after_a_packet_overflow_reset_closes_with_the_error() {
    require_vm();
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let ep = e
        .listen(&bind_endpoint(Transport::Vsock, &dir), move |_| {
            Paused(tx.lock().unwrap().take())
        })
        .unwrap();
    let mut client = Stream::connect(&connect_endpoint(&ep)).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let h = recv_or_hang(&rx, "the server connection to open");
    let piece = [0x5au8; PIECE];
    let werr = (0..PIECES).find_map(|_| client.write_all(&piece).err());
    // Loopback delivers asynchronously: let its worker queue the last packets.
    thread::sleep(Duration::from_millis(500));
    drop(client);
    h.resume_recv();
    let reason = wait_closed(&h, "the reset connection to close after receiving again");
    let s = e.stats();
    println!("client write error: {werr:?}; close: {reason}; {s:?}");
    match &reason {
        // The kernel bounded the queue's packets (6.12.92+): the stream was reset, and the
        // engine says so after what was queued.
        CloseReason::Error(err) => {
            let text = err.to_string();
            assert!(
                text.contains("reset the connection") && text.contains("socket error"),
                "{text}"
            );
            assert!(s.enobufs <= 2, "ENOBUFS taken for an empty ring: {s:?}");
        }
        // An older kernel: no reset; the client's close after the flood is a clean end.
        CloseReason::Eof => assert!(werr.is_none(), "{werr:?}"),
        other => panic!("unexpected close: {other}"),
    }
    e.shutdown();
}
