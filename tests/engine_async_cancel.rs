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

/// A connect future dropped after its connection opened, before its task took the
/// connection, leaves nothing open that no task serves: the peer reads the end of the
/// stream (EOF, or a reset on tcp), not a silent connection.
fn a_connect_dropped_after_it_opened_resets(t: Transport) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = TempDir::new();
    let listener = uring_vsock::blocking::Listener::bind(&bind_endpoint(t, &dir)).unwrap();
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicBool::new(false));
    let server = {
        let accepted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            accepted.store(true, Ordering::SeqCst);
            s.set_read_timeout(Some(util::WATCHDOG)).unwrap();
            let mut buf = [0u8; 16];
            match s.read(&mut buf) {
                Ok(0) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
    };
    let e = Engine::builder().workers(1).build().unwrap();
    e.spawn_on(0, move || async move {
        let mut fut = Box::pin(AsyncConn::connect(&ep, Some(util::WATCHDOG)));
        // Started, then left unpolled while the connection opens.
        let pending = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending()));
        assert!(pending.await, "a connect does not finish in its first poll");
        while !accepted.load(Ordering::SeqCst) {
            rt::sleep(Duration::from_millis(1)).await;
        }
        // A few more turns of the worker: the connect's completion is reaped.
        rt::sleep(Duration::from_millis(20)).await;
        drop(fut);
    })
    .unwrap()
    .wait()
    .unwrap();
    let end = server.join().unwrap();
    end.unwrap_or_else(|got| panic!("{t:?}: the peer read {got} instead of the stream's end"));
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
