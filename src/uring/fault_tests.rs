//! A worker that fails (its ring errors, or the loop panics) is leaked, not freed under the
//! kernel, and the rest of the engine notices: its handles close with an error, connects and
//! accepted connections go to the other workers, shutdown returns. The leak is observed:
//! after shutdown the failed worker's ring is still open (and mapped), the others' are not.
//! Counting rings is per process, so those tests run alone in a child process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use super::mailbox::Fault;
use super::{CloseReason, Conn, Engine, Handler, RecvBuf, SendError};
use crate::Endpoint;

struct Echo;

impl Handler for Echo {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let _ = conn.send(buf); // small messages: the queue never fills
    }
}

fn echo_once(ep: &Endpoint, msg: &[u8]) {
    let Endpoint::Tcp(addr) = ep else {
        panic!("tcp endpoint expected, got {ep}")
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

fn worker_failure_is_contained(fault: Fault) {
    let e = Engine::builder().workers(2).build().unwrap();
    let ep = e
        .listen(&"tcp:127.0.0.1:0".parse().unwrap(), |_| Echo)
        .unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_ep = Endpoint::Tcp(peer.local_addr().unwrap());
    let on0 = e.connect(&peer_ep, None, || Echo).unwrap();
    let on1 = e.connect(&peer_ep, None, || Echo).unwrap();
    assert_eq!((on0.id().worker(), on1.id().worker()), (0, 1));

    e.inject(1, fault);
    match on1.wait_closed().unwrap() {
        CloseReason::Error(err) => assert!(err.to_string().contains("worker 1"), "{err}"),
        other => panic!("{fault:?}: closed with {other}"),
    }
    assert!(matches!(on1.send(b"x".to_vec()), Err(SendError::Closed(_))));
    assert!(on0.closed().is_none(), "worker 0 is untouched");
    // New work goes to worker 0: connects, and connections its listener accepts.
    for _ in 0..3 {
        let h = e.connect(&peer_ep, None, || Echo).unwrap();
        assert_eq!(h.id().worker(), 0);
    }
    for i in 0..4u8 {
        echo_once(&ep, &[i; 1000]);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        e.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("shutdown hung");
    assert!(matches!(
        on0.wait_closed().unwrap(),
        CloseReason::EngineShutdown
    ));
}

/// This process's io_uring instances: open fds that are rings, and mappings of rings.
fn rings() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy() == "anon_inode:[io_uring]")
        .count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped = maps.lines().filter(|l| l.contains("io_uring")).count();
    (fds, mapped)
}

/// Set in the child that [`alone`] starts: the test's name.
const ALONE: &str = "URING_VSOCK_ALONE";

/// Runs `body` in a child process that runs only the test `name` of this binary, so that
/// nothing else opens or closes rings while it counts them; fails if the child fails, hangs
/// past a watchdog, or did not run that test.
fn alone(name: &str, body: impl FnOnce()) {
    if std::env::var(ALONE).as_deref() == Ok(name) {
        return body();
    }
    let test = format!(
        "{}::{name}",
        module_path!().trim_start_matches("uring_vsock::")
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{test} hung in its own process");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{test} failed alone:\n{text}");
    assert!(
        text.contains("1 passed"),
        "{test} did not run alone:\n{text}"
    );
}

/// A failed worker's ring outlives the engine: after shutdown exactly one ring more is open
/// and mapped than before it was built (the failed worker's; the healthy one's is closed).
fn failed_worker_ring_is_leaked(fault: Fault) {
    let (fds, mapped) = rings();
    worker_failure_is_contained(fault);
    let (fds_after, mapped_after) = rings();
    assert_eq!(
        fds_after,
        fds + 1,
        "{fault:?}: ring fds before {fds}, after {fds_after}"
    );
    assert!(
        mapped_after > mapped,
        "{fault:?}: ring mappings before {mapped}, after {mapped_after}"
    );
}

#[test]
fn ring_error_fails_only_that_worker_and_leaks_its_ring() {
    alone(
        "ring_error_fails_only_that_worker_and_leaks_its_ring",
        || failed_worker_ring_is_leaked(Fault::RingError),
    );
}

#[test]
fn worker_panic_leaks_its_ring_and_tells_its_handles() {
    alone("worker_panic_leaks_its_ring_and_tells_its_handles", || {
        failed_worker_ring_is_leaked(Fault::Panic)
    });
}

#[test]
fn shutdown_with_a_connect_pending_without_timeout() {
    // A full backlog (0: one connection completes, then SYNs are dropped) keeps the next
    // connect pending until it is cancelled.
    let l = crate::blocking::Listener::bind_with_backlog(&"tcp:127.0.0.1:0".parse().unwrap(), 0)
        .unwrap();
    let ep = l.local_addr().unwrap();
    let Endpoint::Tcp(addr) = &ep else {
        panic!("tcp endpoint expected, got {ep}")
    };
    let _held = TcpStream::connect(addr).unwrap();
    let e = std::sync::Arc::new(Engine::builder().workers(1).build().unwrap());
    let (tx, rx) = mpsc::channel();
    {
        let (e, ep) = (std::sync::Arc::clone(&e), ep.clone());
        std::thread::spawn(move || {
            let _ = tx.send(e.connect(&ep, None, || Echo));
        });
    }
    // Wait (bounded) until the connect is on the worker: the engine counts it open.
    let mut waited = 0;
    while e.stats().open == 0 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 6000, "connect never started");
    }
    let (stx, srx) = mpsc::channel();
    {
        let e = std::sync::Arc::clone(&e);
        std::thread::spawn(move || {
            e.stop();
            let _ = stx.send(());
        });
    }
    srx.recv_timeout(Duration::from_secs(60))
        .expect("shutdown hung");
    let res = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("connect never returned");
    let err = res.expect_err("a connect cancelled by shutdown is an error");
    assert_eq!(err.op(), "connect");
    assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "{err}");
    assert_eq!(e.stats().open, 0);
}
