//! The guest's echo servers, one per path, each counting what it served so the host can ask
//! (`STATS`): connections accepted and ended, bytes echoed. They echo until the peer ends the
//! connection (the device has no half-close), and keep serving after any one connection
//! fails, which is what the host's reset and vanished-client tests check.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use mio::{Events, Interest, Poll, Token};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::{blocking, epoll, Endpoint, VsockAddr};

use crate::engine_support::Echo;

/// What one server has served.
#[derive(Default)]
pub struct ServerStats {
    pub accepted: AtomicU64,
    pub ended_eof: AtomicU64,
    pub ended_err: AtomicU64,
    /// Bytes echoed (the engine counts them as they arrive).
    pub bytes: AtomicU64,
    /// Handler panics and accept failures: none is expected.
    pub failures: AtomicU64,
}

impl ServerStats {
    fn ended(&self, clean: bool) {
        let c = if clean {
            &self.ended_eof
        } else {
            &self.ended_err
        };
        c.fetch_add(1, Ordering::SeqCst);
    }

    /// The `STATS` reply's fields.
    pub fn line(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let (acc, eof, err) = (
            get(&self.accepted),
            get(&self.ended_eof),
            get(&self.ended_err),
        );
        format!(
            "accepted={acc} open={} ended_eof={eof} ended_err={err} bytes={} failures={}",
            acc - eof - err,
            get(&self.bytes),
            get(&self.failures)
        )
    }
}

fn any(port: u32) -> Endpoint {
    Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, port))
}

/// Serves echo on `port` with `path` (`blocking`, `epoll` or `engine`) until the process ends.
///
/// # Errors
/// An unknown path, or the bind's error.
pub fn serve(path: &str, port: u32, stats: Arc<ServerStats>) -> Result<(), String> {
    let ep = any(port);
    match path {
        "blocking" => {
            let l = blocking::Listener::bind(&ep).map_err(|e| e.to_string())?;
            thread::spawn(move || blocking_accept(l, stats));
        }
        "epoll" => {
            let l = epoll::Listener::bind(&ep).map_err(|e| e.to_string())?;
            thread::spawn(move || epoll_loop(l, stats));
        }
        "engine" => {
            engine()
                .listen(&ep, move |_| Counted {
                    echo: Echo::new(),
                    stats: Arc::clone(&stats),
                })
                .map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown path {other}")),
    }
    Ok(())
}

fn blocking_accept(l: blocking::Listener, stats: Arc<ServerStats>) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                let stats = Arc::clone(&stats);
                thread::spawn(move || {
                    let clean = blocking_echo(s, &stats).is_ok();
                    stats.ended(clean);
                });
            }
            Err(e) => {
                eprintln!("virtio agent: blocking accept: {e}");
                stats.failures.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn blocking_echo(mut s: blocking::Stream, stats: &ServerStats) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
        stats.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// One epoll connection: bytes read and not yet written back.
struct EpollConn {
    s: epoll::Stream,
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

/// Echoes what it can: writes what is pending, then reads, until a call would block.
/// `Some(clean)` once the connection has ended.
fn epoll_drive(c: &mut EpollConn, stats: &ServerStats) -> Option<bool> {
    loop {
        while c.at < c.len {
            match (&c.s).write(&c.buf[c.at..c.len]) {
                Ok(n) => {
                    c.at += n;
                    stats.bytes.fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(false),
            }
        }
        match (&c.s).read(&mut c.buf) {
            Ok(0) => return Some(true),
            Ok(n) => (c.at, c.len) = (0, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(false),
        }
    }
}

fn epoll_loop(mut l: epoll::Listener, stats: Arc<ServerStats>) {
    const LISTENER: Token = Token(0);
    let mut poll = Poll::new().expect("mio poll");
    poll.registry()
        .register(&mut l, LISTENER, Interest::READABLE)
        .expect("register the listener");
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<usize, EpollConn> = HashMap::new();
    let mut next = 1usize;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("virtio agent: epoll: {e}");
            stats.failures.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut ready = VecDeque::new();
        for ev in events.iter() {
            if ev.token() != LISTENER {
                ready.push_back(ev.token().0);
                continue;
            }
            loop {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let token = next;
                        next += 1;
                        let both = Interest::READABLE | Interest::WRITABLE;
                        poll.registry()
                            .register(&mut s, Token(token), both)
                            .expect("register a connection");
                        stats.accepted.fetch_add(1, Ordering::SeqCst);
                        let c = EpollConn {
                            s,
                            buf: vec![0; 64 * 1024],
                            at: 0,
                            len: 0,
                        };
                        conns.insert(token, c);
                        ready.push_back(token);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("virtio agent: epoll accept: {e}");
                        stats.failures.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        for token in ready {
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            if let Some(clean) = epoll_drive(c, &stats) {
                let mut c = conns.remove(&token).expect("present");
                let _ = poll.registry().deregister(&mut c.s);
                stats.ended(clean);
            }
        }
    }
}

/// The engine every engine server of the agent runs on (default settings, two workers).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .workers(2)
            .build()
            .expect("the agent's engine")
    })
}

/// The engine tests' echo handler, counting for [`ServerStats`].
struct Counted {
    echo: Echo,
    stats: Arc<ServerStats>,
}

impl Handler for Counted {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.stats.accepted.fetch_add(1, Ordering::SeqCst);
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.echo.on_recv(conn, buf);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        self.echo.on_sent(conn, buf, res);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.echo.on_peer_shutdown(conn);
    }
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        if matches!(reason, CloseReason::Panicked) {
            self.stats.failures.fetch_add(1, Ordering::SeqCst);
        }
        self.stats
            .ended(matches!(reason, CloseReason::Eof | CloseReason::Local));
        self.echo.on_close(conn, reason);
    }
}
