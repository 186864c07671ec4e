//! Connects through the engine that fail: a timeout against a full backlog, and a refused
//! connect; each a typed error with its operation and endpoint.

mod engine_support;
mod util;

use std::io;
use std::time::Duration;

use engine_support::Echo;
use uring_vsock::blocking::Listener;
use uring_vsock::uring::Engine;
use uring_vsock::Endpoint;
use util::{TempDir, Transport};

fn engine() -> Engine {
    Engine::builder().workers(1).build().expect("engine")
}

#[test]
fn engine_connect_timeout_tcp_is_typed() {
    util::fds_unchanged(|| {
        // A listener with backlog 0 takes one connection into its queue (nobody accepts), then
        // drops SYNs: the next connect hangs until its timeout. Filled with a blocking connect,
        // so no timeout decides what "full" is.
        let l = Listener::bind_with_backlog(&"tcp:127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let ep = l.local_addr().unwrap();
        let Endpoint::Tcp(addr) = &ep else {
            unreachable!()
        };
        let _held = std::net::TcpStream::connect(addr).unwrap();
        let e = engine();
        let err = e
            .connect(&ep, Some(Duration::from_millis(300)), Echo::new)
            .expect_err("connect to a full backlog must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(err.op(), "connect");
        assert!(err.to_string().contains("timed out"), "{err}");
    });
}

#[test]
fn engine_connect_refused_has_context() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine();
        let dead = util::dead_endpoint(Transport::Tcp, &dir);
        let err = e
            .connect(&dead, Some(Duration::from_secs(5)), Echo::new)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert_eq!(err.endpoint(), Some(&dead));
        let dead = util::dead_endpoint(Transport::Unix, &dir);
        let err = e.connect(&dead, None, Echo::new).unwrap_err();
        assert!(err.to_string().starts_with("connect unix:"), "{err}");
    });
}
