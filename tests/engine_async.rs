//! The engine as an async runtime: tasks on a worker (`spawn_on`, `rt::spawn`), connections
//! served by tasks (`listen_async`, `AsyncConn`), EOF, close and abort, timers, over unix and
//! tcp on the host and vsock in the VM.

mod engine_support;
mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine_support::{connect, echo_client, recv_or_hang, WATCHDOG};
use uring_vsock::uring::rt::{self, JoinError};
use uring_vsock::uring::{AsyncConn, Engine};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

fn engine(workers: usize) -> Engine {
    Engine::builder().workers(workers).build().expect("engine")
}

/// Echoes every buffer back as it is (no copy), then closes after EOF.
async fn echo(conn: AsyncConn) {
    loop {
        match conn.recv().await {
            Ok(Some(buf)) => {
                let n = buf.len();
                let (res, _buf) = conn.send(buf.into()).await;
                assert_eq!(res.expect("echo send"), n);
            }
            Ok(None) => break,
            Err(e) => panic!("echo recv: {e}"),
        }
    }
    conn.close().await.expect("graceful close");
}

#[test]
fn spawn_on_runs_non_send_futures_on_the_chosen_worker() {
    let e = engine(2);
    for w in 0..2 {
        let h = e
            .spawn_on(w, move || async move {
                let n = Rc::new(Cell::new(w)); // !Send
                let name = std::thread::current().name().map(str::to_owned);
                rt::sleep(Duration::from_millis(1)).await;
                n.set(n.get() + 10);
                (n.get(), name)
            })
            .unwrap();
        let (n, name) = h.wait_timeout(WATCHDOG).unwrap();
        assert_eq!(n, w + 10);
        assert_eq!(name.as_deref(), Some(format!("uring-vsock-w{w}").as_str()));
    }
    let err = e.spawn_on(2, || async {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("worker 2 of 2"), "{err}");
}

#[test]
fn a_panicking_task_fails_its_handle_and_not_the_worker() {
    let e = engine(1);
    let h = e
        .spawn_on(0, || async {
            rt::sleep(Duration::from_millis(1)).await;
            panic!("task panic (expected by the test)");
        })
        .unwrap();
    let err = h.wait_timeout(WATCHDOG).unwrap_err();
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<JoinError>());
    assert_eq!(inner, Some(&JoinError::Panicked), "{err}");
    let h = e.spawn_on(0, || -> std::future::Ready<()> {
        panic!("make panic (expected)")
    });
    assert!(h.unwrap().wait_timeout(WATCHDOG).is_err());
    // The worker still serves tasks.
    assert_eq!(
        e.spawn_on(0, || async { 7 })
            .unwrap()
            .wait_timeout(WATCHDOG)
            .unwrap(),
        7
    );
}

#[test]
fn local_spawn_and_join_between_tasks_and_a_remote_wake() {
    let e = engine(2);
    // A task on worker 0 waits for one on worker 1: the wake crosses threads through the
    // mailbox.
    let other = e
        .spawn_on(1, || async {
            rt::sleep(Duration::from_millis(5)).await;
            41
        })
        .unwrap();
    let h = e
        .spawn_on(0, move || async move {
            let local = rt::spawn(async { 1 }).expect("spawn on a worker");
            other.await.expect("other worker's task") + local.await.expect("local task")
        })
        .unwrap();
    assert_eq!(h.wait_timeout(WATCHDOG).unwrap(), 42);
    // Off a worker, rt::spawn says so.
    let err = rt::spawn(async {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn timeout_elapses_and_sleep_orders_wakeups() {
    let e = engine(1);
    let h = e
        .spawn_on(0, || async {
            let order = Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut joins = Vec::new();
            for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
                let o = Rc::clone(&order);
                joins.push(
                    rt::spawn(async move {
                        rt::sleep(Duration::from_millis(ms)).await;
                        o.borrow_mut().push(i);
                    })
                    .unwrap(),
                );
            }
            for j in joins {
                j.await.unwrap();
            }
            let start = Instant::now();
            let t = rt::timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
            let waited = start.elapsed();
            let quick = rt::timeout(Duration::from_secs(60), async { 5 }).await;
            (order.take(), t.is_err(), waited, quick)
        })
        .unwrap();
    let (order, elapsed, waited, quick) = h.wait_timeout(WATCHDOG).unwrap();
    assert_eq!(order, vec![1, 2, 0], "sleeps woke out of order");
    assert!(elapsed, "a pending future must time out");
    assert!(
        waited >= Duration::from_millis(10),
        "timed out early: {waited:?}"
    );
    assert_eq!(quick, Ok(5));
}

fn echo_over(t: Transport) {
    let dir = TempDir::new();
    let e = engine(2);
    let local = e.listen_async(&bind_endpoint(t, &dir), echo).unwrap();
    let ep = connect_endpoint(&local);
    let clients: Vec<_> = (0..4u64)
        .map(|i| {
            let ep = ep.clone();
            std::thread::spawn(move || echo_client(&ep, 100 + i, 3_000_000 + i * 7777))
        })
        .collect();
    for c in clients {
        c.join().expect("echo client");
    }
}

#[test]
fn listen_async_echoes_with_checksums_unix() {
    echo_over(Transport::Unix);
}

#[test]
fn listen_async_echoes_with_checksums_tcp() {
    echo_over(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn listen_async_echoes_with_checksums_vsock() {
    util::require_vm();
    echo_over(Transport::Vsock);
}

fn eof_and_close(t: Transport) {
    let dir = TempDir::new();
    let e = engine(1);
    let (tx, rx) = mpsc::channel();
    let local = e
        .listen_async(&bind_endpoint(t, &dir), move |conn: AsyncConn| {
            let tx = tx.clone();
            async move {
                let mut total = 0;
                // EOF is Ok(None), distinct from data and errors.
                while let Some(buf) = conn.recv().await.expect("recv") {
                    total += buf.len();
                }
                let (res, _) = conn.send(format!("{total}").into_bytes().into()).await;
                res.expect("send the count");
                conn.shutdown_write().await.expect("shutdown");
                // After our shutdown, sends are refused with the buffer back.
                let (res, back) = conn.send(b"late".to_vec().into()).await;
                assert!(res.is_err());
                assert_eq!(&back[..], b"late");
                let _ = tx.send(conn.peer().clone());
                let _ = conn.close().await;
            }
        })
        .unwrap();
    let mut c = connect(&connect_endpoint(&local));
    c.write_all(&vec![7u8; 123_457]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "123457");
    recv_or_hang(&rx, "the task's peer");
}

#[test]
fn eof_is_distinct_and_shutdown_then_close_unix() {
    eof_and_close(Transport::Unix);
}

#[test]
fn eof_is_distinct_and_shutdown_then_close_tcp() {
    eof_and_close(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn eof_is_distinct_and_shutdown_then_close_vsock() {
    util::require_vm();
    eof_and_close(Transport::Vsock);
}

#[test]
fn abort_resets_the_peer_and_reset_reaches_the_task() {
    let dir = TempDir::new();
    let e = engine(1);
    let (tx, rx) = mpsc::channel();
    let local = e
        .listen_async(
            &bind_endpoint(Transport::Tcp, &dir),
            move |conn: AsyncConn| {
                let tx = tx.clone();
                async move {
                    let first = conn.recv().await.expect("recv").expect("data");
                    if &first[..] == b"abort" {
                        conn.abort();
                        return;
                    }
                    // The peer resets: the next receive says so.
                    let res = conn.recv().await;
                    let _ = tx.send(res.map(|b| b.map(|b| b.len())).map_err(|e| e.kind()));
                }
            },
        )
        .unwrap();
    let mut a = connect(&local);
    a.write_all(b"abort").unwrap();
    let mut buf = [0u8; 8];
    let err = a
        .read(&mut buf)
        .expect_err("an aborted connection is reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    let b = connect(&local);
    (&b).write_all(b"hello").unwrap();
    let s = socket2::SockRef::from(&b);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let the first bytes be read first
    drop(b);
    let res = recv_or_hang(&rx, "the task's receive after the peer's reset");
    assert_eq!(res, Err(std::io::ErrorKind::ConnectionReset));
}

/// `ConnIo` as tokio's `AsyncRead`/`AsyncWrite`: an echo written against tokio's traits
/// runs on the worker (no tokio runtime), bytes checked end to end.
fn tokio_io_echo(t: Transport) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new();
    let e = engine(2);
    let local = e
        .listen_async(&bind_endpoint(t, &dir), |conn: AsyncConn| async move {
            let mut io = rt::ConnIo::new(conn);
            let mut buf = vec![0u8; 50_000];
            loop {
                let n = io.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                io.write_all(&buf[..n]).await.expect("write");
            }
            io.shutdown().await.expect("flush and shut down");
        })
        .unwrap();
    let ep = connect_endpoint(&local);
    let clients: Vec<_> = (0..3u64)
        .map(|i| {
            let ep = ep.clone();
            std::thread::spawn(move || echo_client(&ep, 500 + i, 2_500_000 + i * 1234))
        })
        .collect();
    for c in clients {
        c.join().expect("echo client");
    }
}

#[test]
fn tokio_io_traits_echo_unix() {
    tokio_io_echo(Transport::Unix);
}

#[test]
fn tokio_io_traits_echo_tcp() {
    tokio_io_echo(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn tokio_io_traits_echo_vsock() {
    util::require_vm();
    tokio_io_echo(Transport::Vsock);
}

/// A task connects out through its worker's ring (`AsyncConn::connect`) to a task-served
/// echo: a writer task and the reading task share the connection; bytes checked.
fn connect_from_a_task(t: Transport) {
    use engine_support::{Gen, Sum};
    let dir = TempDir::new();
    let e = engine(2);
    let local = e.listen_async(&bind_endpoint(t, &dir), echo).unwrap();
    let ep = connect_endpoint(&local);
    let total = 1_500_000usize;
    let h = e
        .spawn_on(1, move || async move {
            let conn = Rc::new(
                AsyncConn::connect(&ep, Some(Duration::from_secs(30)))
                    .await
                    .expect("connect from a task"),
            );
            let w = Rc::clone(&conn);
            let writer = rt::spawn(async move {
                let (mut gen, mut sum, mut left) = (Gen::new(3), Sum::default(), total);
                while left > 0 {
                    let mut chunk = vec![0u8; left.min(40_000)];
                    gen.fill(&mut chunk);
                    sum.add(&chunk);
                    left -= chunk.len();
                    let (res, _) = w.send(chunk.into()).await;
                    res.expect("send");
                }
                w.shutdown_write().await.expect("shutdown");
                sum.value()
            })
            .unwrap();
            let mut got = Sum::default();
            while let Some(buf) = conn.recv().await.expect("recv the echo") {
                got.add(&buf);
            }
            (writer.await.expect("writer"), got.value())
        })
        .unwrap();
    let (sent, got) = h.wait_timeout(WATCHDOG).unwrap();
    assert_eq!(sent.0, total as u64);
    assert_eq!(
        got, sent,
        "echo through an engine-side client (bytes, checksum)"
    );
}

#[test]
fn connect_from_a_task_unix() {
    connect_from_a_task(Transport::Unix);
}

#[test]
fn connect_from_a_task_tcp() {
    connect_from_a_task(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn connect_from_a_task_vsock() {
    util::require_vm();
    connect_from_a_task(Transport::Vsock);
}

#[test]
fn connect_from_a_task_reports_refusal_and_host_names() {
    let dir = TempDir::new();
    let e = engine(1);
    let dead = util::dead_endpoint(Transport::Unix, &dir);
    let h = e
        .spawn_on(0, move || async move {
            let refused = AsyncConn::connect(&dead, None)
                .await
                .map(|_| ())
                .map_err(|e| (e.kind(), e.to_string()));
            let host: uring_vsock::Endpoint = "tcp:localhost:80".parse().unwrap();
            let named = AsyncConn::connect(&host, None)
                .await
                .map(|_| ())
                .map_err(|e| e.kind());
            (refused, named)
        })
        .unwrap();
    let (refused, named) = h.wait_timeout(WATCHDOG).unwrap();
    let (kind, msg) = refused.unwrap_err();
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
        ),
        "{kind:?}: {msg}"
    );
    assert!(
        msg.contains("connect") && msg.contains("nobody.sock"),
        "{msg}"
    );
    assert_eq!(named, Err(std::io::ErrorKind::InvalidInput));
}

#[test]
fn a_wake_from_a_plain_thread_reaches_the_task() {
    let e = engine(1);
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let h = e
        .spawn_on(0, move || async move { rx.await.expect("the value") + 1 })
        .unwrap();
    std::thread::sleep(Duration::from_millis(10)); // the task is waiting by now, or not: either way
    tx.send(41).unwrap();
    assert_eq!(h.wait_timeout(WATCHDOG).unwrap(), 42);
}

/// Yields once: wakes itself and returns `Pending`.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

#[test]
fn tasks_that_keep_yielding_share_the_worker_with_connections() {
    let dir = TempDir::new();
    let e = engine(1);
    let local = e
        .listen_async(&bind_endpoint(Transport::Unix, &dir), echo)
        .unwrap();
    // More polls than one turn's budget, from several tasks, while a connection is served.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            e.spawn_on(0, || async {
                for _ in 0..20_000 {
                    yield_now().await;
                }
            })
            .unwrap()
        })
        .collect();
    echo_client(&local, 9, 500_000);
    for s in spinners {
        s.wait_timeout(WATCHDOG).unwrap();
    }
}
