//! Engine shutdown with tasks and connections in flight: every task is dropped (its handle
//! says `Shutdown`), connections close, and the process has as many fds as before. Each
//! test here counts fds, so they run one at a time.

mod engine_support;
mod util;

use std::io::{Read, Write};
use std::time::Duration;

use engine_support::{connect, WATCHDOG};
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
