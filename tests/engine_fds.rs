//! Open fds before and after each engine test are equal: rings, pipes, listeners and
//! connections are all closed. The tests run one at a time (a mutex), since fds are
//! per process.

mod engine_support;
mod util;

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use engine_support::{echo_client, Echo};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::Engine;
use util::{bind_endpoint, open_fds, TempDir, Transport};

static SERIAL: Mutex<()> = Mutex::new(());

fn fds_unchanged(f: impl FnOnce()) {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = open_fds();
    f();
    let after = open_fds();
    assert_eq!(before, after, "fds leaked (before {before}, after {after})");
}

#[test]
fn engine_fds_echo_then_shutdown() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        for t in [Transport::Unix, Transport::Tcp] {
            let e = Engine::builder().workers(2).build().unwrap();
            let ep = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
            for i in 0..4 {
                echo_client(&ep, i, 1 << 20);
            }
            e.shutdown();
        }
    });
}

#[test]
fn engine_fds_drop_with_connections_open() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
            .unwrap();
        let clients: Vec<Stream> = (0..16).map(|_| Stream::connect(&ep).unwrap()).collect();
        let out = e
            .connect(&ep, Some(Duration::from_secs(5)), Echo::new)
            .unwrap();
        out.send(vec![1; 100_000]).unwrap();
        drop(e); // closes everything, in flight or not
        for mut c in clients {
            let mut buf = [0; 16];
            // The engine closed its side: EOF (or a reset).
            assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
        }
        assert!(out.closed().is_some());
    });
}

#[test]
fn engine_fds_failed_connects() {
    fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        for _ in 0..10 {
            let dead = util::dead_endpoint(Transport::Tcp, &dir);
            assert!(e
                .connect(&dead, Some(Duration::from_secs(5)), Echo::new)
                .is_err());
            let dead = util::dead_endpoint(Transport::Unix, &dir);
            assert!(e.connect(&dead, None, Echo::new).is_err());
        }
        drop(e);
    });
}
