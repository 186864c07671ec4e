//! The cancellation rule of `AsyncConn`, with random drop points: a dropped `recv()` future
//! loses nothing (the next call gets the buffer), a dropped `send()` future that was polled
//! sends on, whole and in order. Every run checks bytes and checksums end to end.

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
