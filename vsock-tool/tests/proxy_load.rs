//! `vsock-tool proxy` under load: 1,000 connections at once, SIGTERM with transfers in
//! flight (they finish intact; new clients are turned away), the drain timeout, and a slow
//! reader that must not make the proxy's memory grow.

mod support;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::Endpoint;

fn tcp() -> Endpoint {
    "tcp:127.0.0.1:0".parse().unwrap()
}

/// Raises this process's soft open-file limit to at least `n`.
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(
            lim.rlim_max >= n,
            "hard RLIMIT_NOFILE {} < {n}",
            lim.rlim_max
        );
        lim.rlim_cur = lim.rlim_cur.max(n);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// An echo target on the engine: what arrives goes back; EOF is passed on once all is out.
#[derive(Default)]
struct Echo {
    backlog: VecDeque<SendBuf>,
    eof: bool,
}

impl Echo {
    fn pump(&mut self, conn: &mut Conn<'_>) {
        while let Some(b) = self.backlog.pop_front() {
            if let Err(b) = conn.send(b) {
                self.backlog.push_front(b);
                conn.pause_recv();
                return;
            }
        }
        conn.resume_recv();
        if self.eof {
            conn.shutdown_write();
        }
    }
}

impl Handler for Echo {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.backlog.push_back(buf.into());
        self.pump(conn);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, _res: io::Result<usize>) {
        self.pump(conn);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.eof = true;
        self.pump(conn);
    }
}

#[test]
fn proxy_serves_1000_connections_at_once() {
    const N: usize = 1000;
    raise_nofile(4 * N as u64 + 256);
    let dir = TempDir::new();
    let engine = Engine::builder().workers(1).build().unwrap();
    let target = engine
        .listen(&dir.unix("echo"), |_| Echo::default())
        .unwrap();
    let proxy = Proxy::start(&tcp(), &target, &["--workers", "2"]);
    // All open at once, each with its own data in flight before any is read.
    let conns: Vec<(Stream, Vec<u8>)> = (0..N)
        .map(|i| {
            let s = Stream::connect(&proxy.ep).expect("connect to the proxy");
            s.set_read_timeout(Some(WATCHDOG)).unwrap();
            let data = support::pattern(i as u64, 4096);
            (&s).write_all(&data).unwrap();
            (s, data)
        })
        .collect();
    for (s, data) in &conns {
        let mut back = vec![0u8; data.len()];
        s.read_exact_timeout(&mut back);
        assert_eq!(support::checksum(&back), support::checksum(data));
    }
    for (s, _) in &conns {
        s.shutdown(Shutdown::Write).unwrap();
    }
    for (s, _) in &conns {
        let mut rest = Vec::new();
        let mut r: &Stream = s;
        r.read_to_end(&mut rest).expect("EOF after the half-close");
        assert!(rest.is_empty(), "nothing after the echo");
    }
}

/// `read_exact` that names the failure.
trait ReadExact {
    fn read_exact_timeout(&self, buf: &mut [u8]);
}

impl ReadExact for Stream {
    fn read_exact_timeout(&self, buf: &mut [u8]) {
        let mut r: &Stream = self;
        r.read_exact(buf).expect("the echo within the watchdog");
    }
}

#[test]
fn proxy_drains_on_sigterm_and_transfers_in_flight_finish_intact() {
    let dir = TempDir::new();
    let reply_len = 4 << 20;
    let (target, got) = support::duplex_server(&dir.unix("t"), reply_len);
    let mut proxy = Proxy::start(&tcp(), &target, &["--log-level", "info", "--workers", "2"]);
    let half = 2 << 20;
    // Four transfers, each half sent when SIGTERM comes.
    let transfers: Vec<(Stream, Vec<u8>, u64)> = (0..4u64)
        .map(|seed| {
            let s = Stream::connect(&proxy.ep).unwrap();
            s.set_read_timeout(Some(WATCHDOG)).unwrap();
            let mut data = support::pattern(seed + 100, 2 * half);
            data[..8].copy_from_slice(&seed.to_le_bytes());
            (&s).write_all(&data[..half]).unwrap();
            (s, data, seed)
        })
        .collect();
    proxy.terminate();
    proxy.wait_line("draining 4 connections");
    // A new client is turned away: no reply, a reset (or at most an EOF), at once.
    let late = Stream::connect(&proxy.ep).unwrap();
    late.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut buf = [0u8; 64];
    match (&late).read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("a client after SIGTERM got {n} bytes"),
    }
    for (s, data, seed) in transfers {
        let writer = s.try_clone().unwrap();
        let w = thread::spawn(move || {
            (&writer).write_all(&data[half..]).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
            data
        });
        let mut reply = Vec::new();
        (&s).read_to_end(&mut reply)
            .expect("the whole reply, then EOF");
        let data = w.join().unwrap();
        assert_eq!(reply.len(), reply_len);
        assert_eq!(
            support::checksum(&reply),
            support::checksum(&support::pattern(seed, reply_len))
        );
        let r = got.recv_timeout(WATCHDOG).expect("the server's report");
        assert_eq!(r.len, data.len());
        assert_eq!(r.sum, support::checksum(&data), "what the server received");
    }
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(0), "drained in time: {status}");
}

#[test]
fn proxy_cuts_what_is_left_at_the_drain_timeout() {
    let dir = TempDir::new();
    let (target, _got) = support::duplex_server(&dir.unix("t"), 0);
    let mut proxy = Proxy::start(&tcp(), &target, &["--drain-timeout", "200ms"]);
    // A client that never finishes. The server's EOF (it sends nothing) says the
    // connection is through the proxy, so the drain has it to wait for.
    let s = Stream::connect(&proxy.ep).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&s).write_all(&7u64.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    (&s).read_to_end(&mut rest).expect("the server's EOF");
    assert!(rest.is_empty());
    proxy.terminate();
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(5), "connections were cut: {status}");
    // The proxy is gone: the client's write side is dead too.
    let mut dead = false;
    for _ in 0..100 {
        if (&s).write_all(&[0u8; 65536]).is_err() {
            dead = true;
            break;
        }
    }
    assert!(dead, "the cut connection still takes writes");
}

#[test]
fn proxy_memory_stays_bounded_with_a_slow_reader() {
    const BLOCK: usize = 1 << 20;
    const BLOCKS: usize = 256;
    const BOUND_KIB: u64 = 64 * 1024;
    let dir = TempDir::new();
    let l = Listener::bind(&dir.unix("slow")).unwrap();
    let target = l.local_addr().unwrap();
    let block = Arc::new(support::pattern(42, BLOCK));
    let expected = {
        let block = Arc::clone(&block);
        move |i: usize| {
            let mut b = block.to_vec();
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            b
        }
    };
    let expected2 = expected.clone();
    let reader = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut got = vec![0u8; BLOCK];
        for i in 0..BLOCKS {
            let mut filled = 0;
            while filled < BLOCK {
                let end = (filled + 256 * 1024).min(BLOCK);
                let n = (&s)
                    .read(&mut got[filled..end])
                    .expect("read within the watchdog");
                assert!(n > 0, "EOF after {i} blocks");
                filled += n;
                // Pacing, not a measurement: slower than the writer, so the proxy holds back.
                thread::sleep(Duration::from_millis(2));
            }
            assert!(got == expected2(i), "block {i} differs");
        }
        let mut tail = Vec::new();
        (&s).read_to_end(&mut tail).unwrap();
        assert!(tail.is_empty(), "bytes after the last block");
    });
    let proxy = Proxy::start(&dir.unix("front"), &target, &["--workers", "2"]);
    let baseline = proxy.rss_kib();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (ep, done) = (proxy.ep.clone(), Arc::clone(&done));
        thread::spawn(move || {
            let s = Stream::connect(&ep).unwrap();
            for i in 0..BLOCKS {
                (&s).write_all(&expected(i))
                    .expect("write through the proxy");
            }
            s.shutdown(Shutdown::Write).unwrap();
            done.store(true, Ordering::Release);
            s
        })
    };
    let mut max = baseline;
    let mut samples = 0u32;
    while !done.load(Ordering::Acquire) {
        max = max.max(proxy.rss_kib());
        samples += 1;
        assert!(
            max - baseline < BOUND_KIB,
            "proxy RSS grew by {} KiB (bound {BOUND_KIB} KiB)",
            max - baseline
        );
        assert!(
            !writer.is_finished() || done.load(Ordering::Acquire),
            "writer failed"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let _s = writer.join().unwrap();
    reader.join().expect("every byte in order");
    assert!(samples > 0);
    eprintln!("proxy RSS: baseline {baseline} KiB, max {max} KiB over {samples} samples");
}

#[test]
fn proxy_turns_away_clients_over_max_conns() {
    let dir = TempDir::new();
    let (target, _got) = support::duplex_server(&dir.unix("t"), 0);
    let proxy = Proxy::start(&tcp(), &target, &["--max-conns", "1"]);
    // The first client is through (the server's EOF says so) and stays open.
    let first = Stream::connect(&proxy.ep).unwrap();
    first.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&first).write_all(&1u64.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    (&first).read_to_end(&mut rest).expect("the server's EOF");
    // The second is reset at once.
    let second = Stream::connect(&proxy.ep).unwrap();
    second.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut buf = [0u8; 8];
    match (&second).read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("over --max-conns, a client read {n} bytes instead of a reset"),
    }
    // Once the first is done, a new one is served.
    first.shutdown(Shutdown::Write).unwrap();
    drop(first);
    let deadline = std::time::Instant::now() + WATCHDOG;
    loop {
        let c = Stream::connect(&proxy.ep).unwrap();
        c.set_read_timeout(Some(WATCHDOG)).unwrap();
        (&c).write_all(&2u64.to_le_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        // The slot frees when the first pair has closed on the proxy's side: until then a
        // new client may still be turned away.
        if (&c).read_to_end(&mut rest).is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never freed");
        thread::sleep(Duration::from_millis(10));
    }
}
