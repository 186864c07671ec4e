//! Deadlines on `AsyncConn` (as Go's `net.Conn`): a receive past the read deadline fails
//! with `TimedOut` and loses nothing; a send past the write deadline to a peer that does not
//! read fails with `TimedOut`, gives its buffer back and aborts the connection.

mod engine_support;
mod util;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine_support::{connect, recv_or_hang};
use uring_vsock::uring::{rt, AsyncConn, Engine};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

fn read_deadline(t: Transport) {
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let local = e
        .listen_async(&bind_endpoint(t, &dir), move |conn: AsyncConn| {
            let tx = tx.clone();
            async move {
                let start = Instant::now();
                conn.set_read_deadline(Some(start + Duration::from_millis(30)));
                let first = conn.recv().await.map(|b| b.map(|b| b.len()));
                let waited = start.elapsed();
                // Still past the deadline: fails at once, again.
                let again = conn.recv().await.map(|b| b.map(|b| b.len()));
                let _ = tx.send(Step::TimedOut(
                    first.map_err(|e| e.kind()),
                    waited,
                    again.is_err(),
                ));
                // Moved: data sent meanwhile is all there.
                conn.set_read_deadline(None);
                let mut got = Vec::new();
                while let Some(buf) = conn.recv().await.expect("recv after clearing") {
                    got.extend_from_slice(&buf);
                }
                let _ = tx.send(Step::Got(got));
                let _ = conn.close().await;
            }
        })
        .unwrap();
    let mut c = connect(&connect_endpoint(&local));
    match recv_or_hang(&rx, "the timed-out receive") {
        Step::TimedOut(first, waited, again) => {
            assert_eq!(first, Err(std::io::ErrorKind::TimedOut));
            assert!(
                waited >= Duration::from_millis(30),
                "timed out early: {waited:?}"
            );
            assert!(again, "a receive past the deadline must fail too");
        }
        Step::Got(_) => panic!("data before the deadline passed"),
    }
    c.write_all(b"after the deadline").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    match recv_or_hang(&rx, "the data after clearing the deadline") {
        Step::Got(got) => assert_eq!(got, b"after the deadline"),
        Step::TimedOut(..) => panic!("timed out twice"),
    }
}

enum Step {
    TimedOut(Result<Option<usize>, std::io::ErrorKind>, Duration, bool),
    Got(Vec<u8>),
}

#[test]
fn read_deadline_times_out_and_loses_nothing_unix() {
    read_deadline(Transport::Unix);
}

#[test]
fn read_deadline_times_out_and_loses_nothing_tcp() {
    read_deadline(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn read_deadline_times_out_and_loses_nothing_vsock() {
    util::require_vm();
    read_deadline(Transport::Vsock);
}

fn write_deadline(t: Transport) {
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let local = e
        .listen_async(&bind_endpoint(t, &dir), move |conn: AsyncConn| {
            let tx = tx.clone();
            async move {
                conn.set_write_deadline(Some(Instant::now() + Duration::from_millis(100)));
                let mut sent = 0usize;
                // The peer never reads: the socket fills, then the deadline passes.
                let outcome = loop {
                    let buf = vec![0x5a; 256 * 1024];
                    let (res, back) = conn.send(buf.into()).await;
                    assert_eq!(back.len(), 256 * 1024, "the buffer comes back whole");
                    match res {
                        Ok(n) => sent += n,
                        Err(e) => break e.kind(),
                    }
                    if sent > 1 << 30 {
                        panic!("1 GiB went to a peer that does not read");
                    }
                };
                // The connection was aborted for it.
                let after = conn.recv().await.map(|b| b.map(|b| b.len()));
                rt::sleep(Duration::from_millis(1)).await;
                let _ = tx.send((
                    outcome,
                    after.is_err(),
                    conn.closed().map(|r| r.to_string()),
                ));
            }
        })
        .unwrap();
    let c = connect(&connect_endpoint(&local));
    let (outcome, recv_failed, closed) = recv_or_hang(&rx, "the timed-out send");
    assert_eq!(outcome, std::io::ErrorKind::TimedOut);
    assert!(
        recv_failed,
        "after an aborting write timeout, receives fail"
    );
    assert!(
        closed.as_ref().is_some_and(|r| r.contains("aborted")),
        "closed: {closed:?}"
    );
    // The peer sees the end (reset, or EOF for vsock) after what was written.
    let mut sink = vec![0u8; 1 << 20];
    let mut c = c;
    loop {
        match c.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn write_deadline_aborts_a_send_to_a_peer_that_does_not_read_unix() {
    write_deadline(Transport::Unix);
}

#[test]
fn write_deadline_aborts_a_send_to_a_peer_that_does_not_read_tcp() {
    write_deadline(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn write_deadline_aborts_a_send_to_a_peer_that_does_not_read_vsock() {
    util::require_vm();
    write_deadline(Transport::Vsock);
}

/// A deadline for a callback `Handler` connection, from the worker's timers: `on_open`
/// spawns a task that aborts the connection unless it finished in time (data keeps
/// flowing until then).
#[test]
fn a_handler_connection_gets_a_deadline_from_a_worker_timer() {
    use uring_vsock::uring::{Conn, Handler, RecvBuf};

    struct Deadlined(Duration);
    impl Handler for Deadlined {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            let handle = conn.handle();
            let d = self.0;
            rt::spawn(async move {
                rt::sleep(d).await;
                handle.abort(); // a no-op once the connection has closed
            })
            .expect("on a worker")
            .detach();
        }
        fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
            let _ = conn.send(buf);
        }
    }

    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let local = e
        .listen(&bind_endpoint(Transport::Tcp, &dir), |_| {
            Deadlined(Duration::from_secs(2))
        })
        .unwrap();
    let mut c = connect(&local);
    c.write_all(b"before").unwrap();
    let mut back = [0u8; 6];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"before");
    // Then idle: the deadline cuts the connection (a reset: abort).
    let mut rest = [0u8; 16];
    let err = c
        .read(&mut rest)
        .expect_err("the deadline aborts the connection");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}
