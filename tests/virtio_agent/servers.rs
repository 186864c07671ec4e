//! Echo servers, one per path, each counting what it served: connections accepted and ended,
//! bytes echoed. The guest agent runs them on `vsock:any:<port>` (the host asks with
//! `STATS`); the host tests run them on the hybrid listen form (`vm.sock_<port>`) for guest
//! clients. They echo until the peer ends the connection (the device has no half-close), and
//! keep serving after any one connection fails, which is what the host's reset and
//! vanished-client tests check. With [`Mode::AbortAfter`] each connection is aborted mid-stream
//! instead (`SO_LINGER` 0 and close on the socket paths, `abort()` on the engine).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf, SendBuf};
use uring_vsock::{blocking, epoll, Endpoint};

use crate::engine_support::Echo;

/// What one server has served.
#[derive(Default)]
pub struct ServerStats {
    pub accepted: AtomicU64,
    pub ended_eof: AtomicU64,
    pub ended_err: AtomicU64,
    /// Connections this server aborted ([`Mode::AbortAfter`]).
    pub aborted: AtomicU64,
    /// Bytes echoed (the engine counts them as they arrive).
    pub bytes: AtomicU64,
    /// Handler panics and accept failures: none is expected.
    pub failures: AtomicU64,
}

impl ServerStats {
    fn ended(&self, end: End) {
        let c = match end {
            End::Eof => &self.ended_eof,
            End::Err => &self.ended_err,
            End::Aborted => &self.aborted,
        };
        c.fetch_add(1, Ordering::SeqCst);
    }

    /// The `STATS` reply's fields.
    pub fn line(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let (acc, eof, err, aborted) = (
            get(&self.accepted),
            get(&self.ended_eof),
            get(&self.ended_err),
            get(&self.aborted),
        );
        format!(
            "accepted={acc} open={} ended_eof={eof} ended_err={err} aborted={aborted} bytes={} \
             failures={}",
            acc - eof - err - aborted,
            get(&self.bytes),
            get(&self.failures)
        )
    }
}

/// How a connection ended, for [`ServerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Err,
    Aborted,
}

/// What a server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Echo until the peer ends it.
    Echo,
    /// Echo, but once this many bytes have arrived, abort the connection without echoing
    /// the last read (the peer is owed an echo: mid-stream).
    AbortAfter(u64),
}

/// Serves `mode` on `ep` with `path` (`blocking`, `epoll` or `engine`) until the process ends.
///
/// # Errors
/// An unknown path, or the bind's error.
pub fn serve(path: &str, ep: &Endpoint, mode: Mode, stats: Arc<ServerStats>) -> Result<(), String> {
    match path {
        "blocking" => {
            let l = blocking::Listener::bind(ep).map_err(|e| e.to_string())?;
            thread::spawn(move || blocking_accept(l, mode, stats));
        }
        "epoll" => {
            let l = epoll::Listener::bind(ep).map_err(|e| e.to_string())?;
            thread::spawn(move || epoll_loop(l, mode, stats));
        }
        "engine" => {
            engine()
                .listen(ep, move |_| Counted {
                    echo: Echo::new(),
                    stats: Arc::clone(&stats),
                    abort_after: match mode {
                        Mode::Echo => None,
                        Mode::AbortAfter(n) => Some(n),
                    },
                    got: 0,
                })
                .map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown path {other}")),
    }
    Ok(())
}

fn blocking_accept(l: blocking::Listener, mode: Mode, stats: Arc<ServerStats>) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                let stats = Arc::clone(&stats);
                thread::spawn(move || {
                    let end = blocking_echo(s, mode, &stats).unwrap_or(End::Err);
                    stats.ended(end);
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

/// Closes `s` with `SO_LINGER` 0: the socket paths' abort.
fn abort(s: impl std::os::fd::AsFd) -> End {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    End::Aborted
}

fn blocking_echo(mut s: blocking::Stream, mode: Mode, stats: &ServerStats) -> io::Result<End> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(End::Eof);
        }
        got += n as u64;
        if matches!(mode, Mode::AbortAfter(limit) if got >= limit) {
            return Ok(abort(&s)); // dropped on return: the close
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
    /// Bytes read so far.
    got: u64,
}

/// Echoes what it can: writes what is pending, then reads, until a call would block.
/// `Some(end)` once the connection has ended (it is closed when dropped).
fn epoll_drive(c: &mut EpollConn, mode: Mode, stats: &ServerStats) -> Option<End> {
    loop {
        while c.at < c.len {
            match (&c.s).write(&c.buf[c.at..c.len]) {
                Ok(n) => {
                    c.at += n;
                    stats.bytes.fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(End::Err),
            }
        }
        match (&c.s).read(&mut c.buf) {
            Ok(0) => return Some(End::Eof),
            Ok(n) => {
                c.got += n as u64;
                if matches!(mode, Mode::AbortAfter(limit) if c.got >= limit) {
                    return Some(abort(&c.s));
                }
                (c.at, c.len) = (0, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(End::Err),
        }
    }
}

fn epoll_loop(mut l: epoll::Listener, mode: Mode, stats: Arc<ServerStats>) {
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
                            got: 0,
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
            if let Some(end) = epoll_drive(c, mode, &stats) {
                let mut c = conns.remove(&token).expect("present");
                let _ = poll.registry().deregister(&mut c.s);
                stats.ended(end);
            }
        }
    }
}

/// The engine every engine server of this process runs on (default settings, two workers).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .workers(2)
            .build()
            .expect("the agent's engine")
    })
}

/// The engine tests' echo handler, counting for [`ServerStats`], aborting after
/// `abort_after` bytes when set.
struct Counted {
    echo: Echo,
    stats: Arc<ServerStats>,
    abort_after: Option<u64>,
    got: u64,
}

impl Handler for Counted {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.stats.accepted.fetch_add(1, Ordering::SeqCst);
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.got += buf.len() as u64;
        if self.abort_after.is_some_and(|limit| self.got >= limit) {
            conn.abort(); // with the echo of `buf` and whatever is queued unsent
            return;
        }
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
        self.stats.ended(match reason {
            CloseReason::Eof | CloseReason::Local => End::Eof,
            CloseReason::Aborted => End::Aborted,
            _ => End::Err,
        });
        self.echo.on_close(conn, reason);
    }
}
