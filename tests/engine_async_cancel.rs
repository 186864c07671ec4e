//! The cancellation rule of `AsyncConn`, with random drop points: a dropped `recv()` future
//! loses nothing (the next call gets the buffer), a dropped `send()` future that was polled
//! sends on, whole and in order. Every run checks bytes and checksums end to end. A dropped
//! `AsyncConn::connect` future cuts its dial, or resets the connection it opened.

mod engine_support;
mod util;

use std::future::Future;
use std::net::Shutdown;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use engine_support::{connect, read_stream, write_stream, Rng, Sum};
use uring_vsock::uring::rt;
use uring_vsock::uring::{AsyncConn, Engine};
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

/// Which of two futures finished first; the other is dropped where it stood.
enum Either<A, B> {
    Left(A),
    Right(B),
}

async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Polls `fut` once: its output if that finished it; otherwise it is dropped.
async fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).ready())).await
}

trait Ready<T> {
    fn ready(self) -> Option<T>;
}

impl<T> Ready<T> for Poll<T> {
    fn ready(self) -> Option<T> {
        match self {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}

/// A random short wait: 0 to ~200 µs, or none.
fn jitter(rng: &mut Rng) -> Duration {
    Duration::from_micros(rng.below(200) as u64)
}

/// Receives to EOF, dropping receive futures at random points (a racing timer, a single
/// poll), then replies with the checksum of what it got.
async fn count_with_dropped_recvs(conn: AsyncConn, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut sum = Sum::default();
    let mut dropped = 0u64;
    loop {
        let got = match rng.below(3) {
            0 => match race(conn.recv(), rt::sleep(jitter(&mut rng))).await {
                Either::Left(r) => Some(r),
                Either::Right(()) => None,
            },
            1 => poll_once(conn.recv()).await,
            _ => Some(conn.recv().await),
        };
        match got {
            None => dropped += 1,
            Some(Ok(Some(buf))) => sum.add(&buf),
            Some(Ok(None)) => break,
            Some(Err(e)) => panic!("recv: {e}"),
        }
        if dropped % 64 == 63 {
            rt::sleep(Duration::from_micros(50)).await; // let data pile up now and then
        }
    }
    let (n, s) = sum.value();
    let (res, _) = conn
        .send(format!("{n} {s} {dropped}").into_bytes().into())
        .await;
    res.expect("send the checksum");
    conn.close().await.expect("close");
}

/// Echoes, dropping send futures after their first poll at random (the send runs on).
async fn echo_with_dropped_sends(conn: AsyncConn, seed: u64) {
    let mut rng = Rng::new(seed);
    while let Some(buf) = conn.recv().await.expect("recv") {
        let len = buf.len();
        match rng.below(3) {
            0 => {
                if let Either::Left((res, _)) =
                    race(conn.send(buf.into()), rt::sleep(jitter(&mut rng))).await
                {
                    assert_eq!(res.expect("send"), len);
                }
            }
            1 => {
                if let Some((res, _)) = poll_once(conn.send(buf.into())).await {
                    assert_eq!(res.expect("send"), len);
                }
            }
            _ => {
                let (res, _) = conn.send(buf.into()).await;
                assert_eq!(res.expect("send"), len);
            }
        }
    }
    // Every dropped send is still ahead of the FIN.
    conn.close().await.expect("close");
}

fn dropped_recvs_lose_nothing(t: Transport) {
    let dir = TempDir::new();
    let e = Engine::builder().workers(2).build().unwrap();
    let local = e
        .listen_async(&bind_endpoint(t, &dir), |conn| {
            let seed = u64::from(conn.id().worker() as u32) * 1000 + 17;
            count_with_dropped_recvs(conn, seed)
        })
        .unwrap();
    let ep = connect_endpoint(&local);
    let clients: Vec<_> = (0..3u64)
        .map(|i| {
            let ep = ep.clone();
            std::thread::spawn(move || {
                let mut c = connect(&ep);
                let sent = write_stream(&mut c, 7 + i, 2_000_000 + i * 4099, 9_000).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut reply = String::new();
                std::io::Read::read_to_string(&mut c, &mut reply).unwrap();
                let parts: Vec<u64> = reply.split(' ').map(|p| p.parse().unwrap()).collect();
                assert_eq!(
                    (parts[0], parts[1]),
                    sent,
                    "bytes and checksum the task got"
                );
                parts[2]
            })
        })
        .collect();
    let dropped: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(dropped > 0, "the test must drop receive futures");
}

fn dropped_sends_run_on(t: Transport) {
    let dir = TempDir::new();
    let e = Engine::builder().workers(2).build().unwrap();
    let local = e
        .listen_async(&bind_endpoint(t, &dir), |conn| {
            let seed = conn.id().worker() as u64 + 99;
            echo_with_dropped_sends(conn, seed)
        })
        .unwrap();
    let ep = connect_endpoint(&local);
    let clients: Vec<_> = (0..3u64)
        .map(|i| {
            let ep = ep.clone();
            std::thread::spawn(move || {
                let c = connect(&ep);
                let mut w = c.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    let s = write_stream(&mut w, 31 + i, 3_000_000 + i * 333, 70_000).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                    s
                });
                let mut r = c;
                let got = read_stream(&mut r, 5, 70_000).unwrap();
                let sent = writer.join().unwrap();
                assert_eq!(
                    got, sent,
                    "echo with dropped send futures (bytes, checksum)"
                );
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn dropped_recv_futures_lose_nothing_unix() {
    dropped_recvs_lose_nothing(Transport::Unix);
}

#[test]
fn dropped_recv_futures_lose_nothing_tcp() {
    dropped_recvs_lose_nothing(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn dropped_recv_futures_lose_nothing_vsock() {
    util::require_vm();
    dropped_recvs_lose_nothing(Transport::Vsock);
}

#[test]
fn dropped_send_futures_send_on_in_order_unix() {
    dropped_sends_run_on(Transport::Unix);
}

#[test]
fn dropped_send_futures_send_on_in_order_tcp() {
    dropped_sends_run_on(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn dropped_send_futures_send_on_in_order_vsock() {
    util::require_vm();
    dropped_sends_run_on(Transport::Vsock);
}

/// A connect future dropped while its dial waits (on a listener whose backlog is full, with
/// a deadline far past the watchdog) cuts the dial: the connection's slot is freed, and the
/// worker serves on.
fn a_dropped_connect_cuts_its_dial(t: Transport) {
    let dir = TempDir::new();
    let full = util::FullBacklog::new(t, &dir);
    let e = Engine::builder().workers(1).build().unwrap();
    let ep = full.ep.clone();
    let raced = e
        .spawn_on(0, move || async move {
            let far = Some(Duration::from_secs(24 * 3600));
            match race(
                AsyncConn::connect(&ep, far),
                rt::sleep(Duration::from_millis(50)),
            )
            .await
            {
                Either::Left(r) => Err(format!("the dial finished: {:?}", r.map(|_| ()))),
                Either::Right(()) => Ok(()),
            }
        })
        .unwrap()
        .wait()
        .unwrap();
    raced.unwrap_or_else(|e| panic!("{t:?}: {e}"));
    let start = std::time::Instant::now();
    while e.stats().open > 0 {
        assert!(
            start.elapsed() < util::WATCHDOG,
            "{t:?}: the dial of a dropped connect future still holds its slot"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(e.stats().connected, 0, "{t:?}");
    // The worker still serves: a task's connect to a live listener works.
    let live = uring_vsock::blocking::Listener::bind(&bind_endpoint(t, &dir)).unwrap();
    let ep = connect_endpoint(&live.local_addr().unwrap());
    let ok = e
        .spawn_on(0, move || async move {
            AsyncConn::connect(&ep, Some(util::WATCHDOG))
                .await
                .map(|_| ())
        })
        .unwrap()
        .wait()
        .unwrap();
    ok.unwrap_or_else(|err| panic!("{t:?}: {err}"));
    e.shutdown();
    drop(full);
}

#[test]
fn a_dropped_connect_future_cuts_its_dial_unix() {
    a_dropped_connect_cuts_its_dial(Transport::Unix);
}

#[test]
fn a_dropped_connect_future_cuts_its_dial_tcp() {
    a_dropped_connect_cuts_its_dial(Transport::Tcp);
}

/// Waits, up to the watchdog, until `done`; fails with `what`.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < util::WATCHDOG,
            "{what}: not within the watchdog"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A connect future dropped after its connection opened, before its task took the
/// connection, leaves nothing open that no task serves: the peer reads the end of the
/// stream at once (a reset on tcp, which has one), not a silent connection.
fn a_connect_dropped_after_it_opened_resets(t: Transport) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = TempDir::new();
    let listener = uring_vsock::blocking::Listener::bind(&bind_endpoint(t, &dir)).unwrap();
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    let e = Engine::builder().workers(1).build().unwrap();
    let drop_it = Arc::new(AtomicBool::new(false));
    let task = {
        let drop_it = Arc::clone(&drop_it);
        e.spawn_on(0, move || async move {
            let mut fut = Box::pin(AsyncConn::connect(&ep, Some(util::WATCHDOG)));
            let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending()));
            if !first.await {
                return Err("the connect finished in its first poll".to_owned());
            }
            // Left unpolled while the connection opens, until the test says.
            let start = std::time::Instant::now();
            while !drop_it.load(Ordering::SeqCst) {
                if start.elapsed() > util::WATCHDOG {
                    return Err("never told to drop the future".to_owned());
                }
                rt::sleep(Duration::from_millis(1)).await;
            }
            drop(fut);
            Ok(())
        })
        .unwrap()
    };
    // The core counts a connection as connected as it opens it (and calls `on_open`).
    wait_for("the task's connect opening", || e.stats().connected == 1);
    drop_it.store(true, Ordering::SeqCst);
    task.wait()
        .unwrap()
        .unwrap_or_else(|err| panic!("{t:?}: {err}"));
    util::wait_readable(&listener, "the client's connection never queued");
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(util::WATCHDOG)).unwrap();
    let got = s.read(&mut [0u8; 16]);
    let reset = matches!(&got, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset);
    match t {
        Transport::Tcp => assert!(reset, "{t:?}: the peer read {got:?}, not a reset"),
        _ => assert!(
            reset || matches!(got, Ok(0)),
            "{t:?}: the peer read {got:?}, not the stream's end"
        ),
    }
    assert_eq!(e.stats().connected, 1, "{t:?}");
    e.shutdown();
}

#[test]
fn a_connect_future_dropped_after_it_opened_resets_the_connection_unix() {
    a_connect_dropped_after_it_opened_resets(Transport::Unix);
}

#[test]
fn a_connect_future_dropped_after_it_opened_resets_the_connection_tcp() {
    a_connect_dropped_after_it_opened_resets(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn a_connect_future_dropped_after_it_opened_resets_the_connection_vsock() {
    util::require_vm();
    a_connect_dropped_after_it_opened_resets(Transport::Vsock);
}

/// A connect future dropped in the poll that asked for it (before the worker started the
/// connect) never dials: the listener's one connection is the task's next connect.
fn a_connect_dropped_before_it_started_never_dials(t: Transport) {
    use std::io::Read;

    let dir = TempDir::new();
    let listener = uring_vsock::blocking::Listener::bind(&bind_endpoint(t, &dir)).unwrap();
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    let e = Engine::builder().workers(1).build().unwrap();
    let sent = e
        .spawn_on(0, move || async move {
            let first = poll_once(AsyncConn::connect(&ep, Some(util::WATCHDOG))).await;
            assert!(
                first.is_none(),
                "a connect does not finish in its first poll"
            );
            // Connects start in the order asked for: had the first been dialed, its
            // connection would be the listener's first.
            let conn = AsyncConn::connect(&ep, Some(util::WATCHDOG)).await?;
            let (res, _) = conn.send(b"2".to_vec().into()).await;
            res?;
            conn.close().await
        })
        .unwrap()
        .wait()
        .unwrap();
    sent.unwrap_or_else(|err| panic!("{t:?}: {err}"));
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(util::WATCHDOG)).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(
        got, b"2",
        "{t:?}: the first connection is the second connect's"
    );
    listener.set_nonblocking(true).unwrap();
    let more = listener.accept().map(|_| ());
    assert!(
        matches!(&more, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "{t:?}: a second connection came: {more:?}"
    );
    e.shutdown();
}

#[test]
fn a_connect_future_dropped_before_it_started_never_dials_unix() {
    a_connect_dropped_before_it_started_never_dials(Transport::Unix);
}

#[test]
fn a_connect_future_dropped_before_it_started_never_dials_tcp() {
    a_connect_dropped_before_it_started_never_dials(Transport::Tcp);
}
