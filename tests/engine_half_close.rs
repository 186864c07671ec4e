//! Half-close through the engine, over unix and tcp: either side shuts down its write side
//! first and the other direction goes on to its end, every byte checked.

mod engine_support;
mod util;

use std::io::Read;
use std::net::Shutdown;
use std::sync::{mpsc, Mutex};

use engine_support::{
    connect, echo_client, listen_reporting_echo, recv_or_hang, write_stream, Gen, Sum, MIB,
};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use util::{bind_endpoint, TempDir, Transport};

#[test]
fn engine_half_close_client_first_unix_and_tcp() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder().workers(1).build().unwrap();
            let (ep, rx) = listen_reporting_echo(&e, &bind_endpoint(t, &dir));
            // The client shuts down its write side first; the echo goes on to the end.
            echo_client(&ep, 11, 3 * MIB);
            let reason = recv_or_hang(&rx, "the server's close");
            assert!(matches!(reason, CloseReason::Eof), "{t:?}: {reason}");
        }
    });
}

/// Sends a payload, shuts down its write side first, then takes the peer's reply to EOF.
struct ServerFirst {
    payload: Vec<u8>,
    got: Sum,
    shut: bool,
    done: mpsc::Sender<((u64, u64), bool, CloseReason)>,
}

impl Handler for ServerFirst {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        assert_eq!(conn.send_copy(&self.payload), self.payload.len());
        conn.shutdown_write();
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got.add(&buf);
    }
    fn on_shutdown(&mut self, _conn: &mut Conn<'_>) {
        self.shut = true;
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self
            .done
            .send((self.got.value(), self.shut, reason.clone()));
    }
}

#[test]
fn engine_half_close_server_first_unix_and_tcp() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let e = Engine::builder()
                .workers(1)
                .sends_per_connection(64)
                .build()
                .unwrap();
            let mut payload = vec![0u8; 1_000_000];
            Gen::new(5).fill(&mut payload);
            let (tx, rx) = mpsc::channel();
            let (p, tx) = (payload.clone(), Mutex::new(tx));
            let ep = e
                .listen(&bind_endpoint(t, &dir), move |_| ServerFirst {
                    payload: p.clone(),
                    got: Sum::default(),
                    shut: false,
                    done: tx.lock().unwrap().clone(),
                })
                .unwrap();
            let mut c = connect(&ep);
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap(); // EOF: the server shut down first
            assert!(got == payload, "{t:?}: payload differs");
            let sent = write_stream(&mut c, 6, 2 * MIB, 10_000).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let (recv_sum, shut, reason) = recv_or_hang(&rx, "the server's close");
            assert_eq!(recv_sum, sent, "{t:?}: reply differs");
            assert!(shut, "{t:?}: on_shutdown not called");
            assert!(matches!(reason, CloseReason::Eof), "{t:?}: {reason}");
        }
    });
}
