//! The engine's host-only stress cases, over real vsock in the test VM (`tools/vm-test
//! --test engine_vsock_parity`; ignored on the host): receive rings run dry (ENOBUFS) and no fd
//! left behind after many connections. The unix and tcp versions are in `engine_buffers.rs`
//! and `engine_fds.rs`; cancels and a handler panic over vsock are in `engine_cancel.rs` and
//! `engine_panic.rs`, beside their unix versions.

mod engine_support;
mod util;

use std::net::Shutdown;
use std::thread;

use engine_support::{
    assert_eof, connect, echo_client, read_stream, wait_until, write_stream, Echo, MIB,
};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{Engine, Handler};
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
