//! `ConnHandle`: driving a connection from other threads. Sends from several threads each
//! arrive whole and in their thread's order; `try_send` says `Full` while the connection has
//! the most handle sends queued, and `send` waits for room until the peer reads. Every byte is
//! checked.

mod engine_support;
mod util;

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use engine_support::{read_stream, wait_closed, wait_until, watchdog, Gen, Sum, MIB};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendError};
use util::{bind_endpoint, TempDir, Transport};

/// Ignores what it receives: the tests drive the connection through its handle.
struct Quiet;

impl Handler for Quiet {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

/// An engine connection to a blocking listener: its handle, and the peer's end (with watchdog
/// timeouts), not read yet.
fn handle_and_peer(e: &Engine, dir: &TempDir) -> (ConnHandle, Stream) {
    let l = Listener::bind(&bind_endpoint(Transport::Unix, dir)).unwrap();
    let h = e
        .connect(
            &l.local_addr().unwrap(),
            Some(Duration::from_secs(5)),
            || Quiet,
        )
        .unwrap();
    let (peer, _) = l.accept().unwrap(); // connected already: no wait
    watchdog(&peer);
    (h, peer)
}

/// Messages of 1 MiB whose concatenation is the [`Gen`] stream of `seed`, with its checksum.
fn messages(seed: u64, n: usize) -> (Vec<Vec<u8>>, (u64, u64)) {
    let (mut gen, mut sum) = (Gen::new(seed), Sum::default());
    let msgs = (0..n)
        .map(|_| {
            let mut m = vec![0u8; MIB as usize];
            gen.fill(&mut m);
            sum.add(&m);
            m
        })
        .collect();
    (msgs, sum.value())
}

const THREADS: u32 = 4;
const PER_THREAD: u32 = 300;
const HEADER: usize = 12;

/// Message `seq` of sender `thread`: a header (thread, seq, payload length, little-endian u32s)
/// then a payload generated from both.
fn frame(thread: u32, seq: u32) -> Vec<u8> {
    let len = 1 + (seq as usize * 7919 + thread as usize * 101) % 20_000;
    let mut f = Vec::with_capacity(HEADER + len);
    for v in [thread, seq, len as u32] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.resize(HEADER + len, 0);
    Gen::new(u64::from(thread) << 32 | u64::from(seq)).fill(&mut f[HEADER..]);
    f
}

/// Reads `THREADS * PER_THREAD` frames, checking each is whole and each thread's come in
/// order; then EOF. Returns each thread's checksum of its frames.
fn read_frames(peer: &mut Stream) -> Vec<(u64, u64)> {
    let mut next = vec![0u32; THREADS as usize];
    let mut sums = vec![Sum::default(); THREADS as usize];
    for _ in 0..THREADS * PER_THREAD {
        let mut head = [0u8; HEADER];
        peer.read_exact(&mut head).expect("a frame header");
        let word = |i: usize| u32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().unwrap());
        let (thread, seq, len) = (word(0), word(1), word(2) as usize);
        assert!(thread < THREADS, "a header that is no header: {head:?}");
        assert_eq!(seq, next[thread as usize], "thread {thread}: out of order");
        next[thread as usize] += 1;
        let mut f = head.to_vec();
        f.resize(HEADER + len, 0);
        peer.read_exact(&mut f[HEADER..]).expect("a frame payload");
        assert!(f == frame(thread, seq), "frame {thread}/{seq} differs");
        sums[thread as usize].add(&f);
    }
    let mut rest = [0u8; 1];
    assert_eq!(
        peer.read(&mut rest).expect("EOF"),
        0,
        "bytes after the frames"
    );
    sums.iter().map(Sum::value).collect()
}

#[test]
fn engine_handle_sends_from_several_threads_keep_each_threads_order() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let (h, mut peer) = handle_and_peer(&e, &dir);
        let reader = thread::spawn(move || (read_frames(&mut peer), peer));
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = h.clone();
                thread::spawn(move || {
                    let mut sum = Sum::default();
                    for seq in 0..PER_THREAD {
                        let f = frame(t, seq);
                        sum.add(&f);
                        h.send(f)
                            .unwrap_or_else(|e| panic!("thread {t}, send {seq}: {e}"));
                    }
                    sum.value()
                })
            })
            .collect();
        let sent: Vec<_> = senders
            .into_iter()
            .map(|s| s.join().expect("sender thread"))
            .collect();
        h.shutdown_write(); // after every send: the reader sees EOF after the last frame
        let (got, _peer) = reader.join().expect("reader thread"); // kept open: we close
        assert_eq!(got, sent, "per-thread (bytes, checksum) differ");
        h.close();
        let reason = wait_closed(&h, "the handle to see its close");
        assert!(matches!(reason, CloseReason::Local), "{reason}");
        let err = h.send(b"late".to_vec()).unwrap_err();
        assert!(matches!(err, SendError::Closed(_)), "{err}");
        assert_eq!(err.into_inner(), b"late", "the bytes come back");
    });
}

#[test]
fn engine_handle_try_send_is_full_while_the_peer_does_not_read() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        const QUEUED: usize = 4;
        let e = Engine::builder()
            .workers(1)
            .sends_per_connection(QUEUED)
            .build()
            .unwrap();
        let (h, mut peer) = handle_and_peer(&e, &dir);
        // Each message is far larger than a unix socket's send buffer: with the peer not
        // reading, not even the first can complete, so all stay queued.
        let (mut msgs, sum) = messages(3, QUEUED + 1);
        let last = msgs.pop().expect("one more than fits");
        for (i, m) in msgs.into_iter().enumerate() {
            h.try_send(m)
                .unwrap_or_else(|e| panic!("try_send {i} of {QUEUED}: {e}"));
        }
        let back = match h.try_send(last.clone()) {
            Err(SendError::Full(back)) => back,
            other => panic!("try_send past {QUEUED} queued: {other:?}"),
        };
        assert!(back == last, "Full gives the bytes back unchanged");
        assert!(h.closed().is_none(), "Full is not a close");
        // The peer reads: room comes, and the message that did not fit goes after the others.
        let reader = thread::spawn(move || (read_stream(&mut peer, 3, 70_000), peer));
        h.send(back).expect("send once the peer reads");
        h.shutdown_write();
        let (got, _peer) = reader.join().expect("reader thread");
        assert_eq!(got.expect("read to EOF"), sum, "bytes or order differ");
    });
}

#[test]
fn engine_handle_send_waits_for_room_until_the_peer_reads() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        const QUEUED: usize = 2;
        let e = Engine::builder()
            .workers(1)
            .sends_per_connection(QUEUED)
            .build()
            .unwrap();
        let (h, mut peer) = handle_and_peer(&e, &dir);
        let (msgs, sum) = messages(4, 8);
        let returned = Arc::new(AtomicUsize::new(0));
        let reading = Arc::new(AtomicBool::new(false));
        let sender = {
            let (h, returned, reading) = (h.clone(), Arc::clone(&returned), Arc::clone(&reading));
            thread::spawn(move || {
                for (i, m) in msgs.into_iter().enumerate() {
                    h.send(m).unwrap_or_else(|e| panic!("send {i}: {e}"));
                    // No send completes before the peer reads (each is larger than the socket
                    // holds), so a send past the limit can only have returned once it does.
                    assert!(
                        i < QUEUED || reading.load(Ordering::Acquire),
                        "send {i} returned with {QUEUED} queued and the peer not reading"
                    );
                    returned.store(i + 1, Ordering::Release);
                }
            })
        };
        wait_until("the sender to queue as many as allowed", || {
            returned.load(Ordering::Acquire) == QUEUED
        });
        // Set before the first read: every send that returns after it may have had room.
        reading.store(true, Ordering::Release);
        let reader = thread::spawn(move || (read_stream(&mut peer, 4, 70_000), peer));
        sender.join().expect("sender thread");
        h.shutdown_write();
        let (got, _peer) = reader.join().expect("reader thread");
        assert_eq!(got.expect("read to EOF"), sum, "bytes or order differ");
        assert_eq!(returned.load(Ordering::Acquire), 8);
    });
}
