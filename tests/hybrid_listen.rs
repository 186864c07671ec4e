//! Guest → host: a hybrid listen endpoint binds `<uds_path>_<port>`, where the VMM forwards
//! the guest's connects to the host port; each path accepts there and echoes every byte.

mod engine_support;
mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;

use uring_vsock::uring::Engine;
use uring_vsock::{blocking, epoll, Endpoint};
use util::{TempDir, WATCHDOG};

/// `hybrid:<dir>/vm.sock:6000`, and the path a listener on it must bind.
fn endpoint(dir: &TempDir) -> (Endpoint, PathBuf) {
    let uds = dir.0.join("vm.sock");
    let ep = format!("hybrid:{}:6000", uds.display()).parse().unwrap();
    (ep, dir.0.join("vm.sock_6000"))
}

/// Plays the VMM forwarding a guest connect: a plain unix connect to `path`; sends a
/// pattern and checks the echo.
fn guest_echo(path: &PathBuf, seed: u64) {
    let mut s = UnixStream::connect(path).expect("connect to <uds>_<port>");
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    let data = util::pattern(seed, 100_000);
    let mut writer = s.try_clone().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read the echo");
    w.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(util::checksum(&got), util::checksum(&data));
}

/// Echoes one blocking stream until EOF.
fn echo(mut s: blocking::Stream) {
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).expect("server read");
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
}

#[test]
fn hybrid_listen_blocking_accepts_at_uds_port() {
    let dir = TempDir::new();
    let (ep, path) = endpoint(&dir);
    let listener = blocking::Listener::bind(&ep).expect("bind the hybrid listen endpoint");
    assert!(path.exists(), "the listener binds {}", path.display());
    assert_eq!(listener.local_addr().unwrap(), Endpoint::Unix(path.clone()));
    let server = thread::spawn(move || {
        util::wait_readable(&listener, "no guest connection");
        echo(listener.accept().unwrap().0);
    });
    guest_echo(&path, 1);
    server.join().unwrap();
}

#[test]
fn hybrid_listen_epoll_accepts_at_uds_port() {
    let dir = TempDir::new();
    let (ep, path) = endpoint(&dir);
    let listener = epoll::Listener::bind(&ep).expect("bind the hybrid listen endpoint");
    let server = thread::spawn(move || {
        util::wait_readable(&listener, "no guest connection");
        let (s, _) = listener.accept().unwrap();
        let s = blocking::Stream::from(std::os::fd::OwnedFd::from(s));
        s.set_nonblocking(false).unwrap();
        echo(s);
    });
    guest_echo(&path, 2);
    server.join().unwrap();
}

#[test]
fn hybrid_listen_engine_accepts_at_uds_port() {
    let dir = TempDir::new();
    let (ep, path) = endpoint(&dir);
    let engine = Engine::builder().workers(1).build().unwrap();
    let local = engine
        .listen(&ep, |_| engine_support::Echo::new())
        .expect("listen on the hybrid endpoint");
    assert_eq!(local, Endpoint::Unix(path.clone()));
    for seed in 3..6 {
        guest_echo(&path, seed);
    }
    engine.shutdown();
}

#[test]
fn hybrid_listen_path_too_long_is_a_bind_error() {
    // The VMM socket path fits, `<path>_<port>` does not.
    let uds = format!("/tmp/{}", "x".repeat(100));
    let ep: Endpoint = format!("hybrid:{uds}:4294967295").parse().unwrap();
    let err = blocking::Listener::bind(&ep).expect_err("sun_path overflow");
    assert_eq!(err.op(), "bind");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.endpoint(), Some(&ep));
}
