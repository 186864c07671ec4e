//! Engine shutdown with tasks and connections in flight: every task is dropped (its handle
//! says `Shutdown`), connections close, and the process has as many fds as before. Each
//! test here counts fds, so they run one at a time.

mod engine_support;
#[path = "../examples/http_engine.rs"]
mod example;
mod util;

use std::io::{Read, Write};
use std::time::Duration;

use engine_support::{connect, recv_or_hang, WATCHDOG};
use uring_vsock::uring::rt::HttpServer;
use uring_vsock::uring::rt::{self, JoinError};
use uring_vsock::uring::{AsyncConn, Engine};
use util::{bind_endpoint, TempDir, Transport};

async fn echo(conn: AsyncConn) {
    while let Ok(Some(buf)) = conn.recv().await {
        let (res, _buf) = conn.send(buf.into()).await;
        if res.is_err() {
            return;
        }
    }
    let _ = conn.close().await;
}

fn engine(workers: usize) -> Engine {
    Engine::builder().workers(workers).build().expect("engine")
}

#[test]
fn engine_shutdown_drops_tasks_and_fails_their_handles() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine(2);
        let local = e
            .listen_async(&bind_endpoint(Transport::Unix, &dir), echo)
            .unwrap();
        let c = connect(&local);
        (&c).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        (&c).read_exact(&mut one).unwrap();
        let forever = e
            .spawn_on(1, || async {
                rt::sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
        e.shutdown();
        let err = forever.wait_timeout(WATCHDOG).unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<JoinError>());
        assert_eq!(inner, Some(&JoinError::Shutdown), "{err}");
        let mut rest = Vec::new();
        let _ = (&c).read_to_end(&mut rest);
        drop(c);
    });
}

#[test]
fn engine_shutdown_with_http_requests_in_flight_closes_cleanly() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine(2);
        let local =
            example::serve(&e, &bind_endpoint(Transport::Unix, &dir), HttpServer::new()).unwrap();
        // Large responses the clients do not read: sends are in flight at shutdown.
        let mut clients: Vec<_> = (0..8)
            .map(|_| {
                let mut c = connect(&local);
                let req = format!(
                    "GET /bytes/{} HTTP/1.1\r\nhost: x\r\n\r\n",
                    example::MAX_BYTES
                );
                c.write_all(req.as_bytes()).unwrap();
                let mut start = [0u8; 12];
                c.read_exact(&mut start).unwrap();
                assert_eq!(&start, b"HTTP/1.1 200");
                c
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let stopper = std::thread::spawn(move || {
            e.shutdown();
            let _ = tx.send(());
        });
        recv_or_hang(&rx, "engine shutdown with requests in flight");
        stopper.join().unwrap();
        for c in &mut clients {
            // The rest ends early: EOF or a reset, never a hang.
            let mut sink = vec![0u8; 1 << 20];
            let mut total = 0usize;
            loop {
                match c.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            assert!(
                total < example::MAX_BYTES,
                "a full body after shutdown ({total} bytes)"
            );
        }
        drop(clients);
    });
}
