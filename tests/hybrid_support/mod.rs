//! Hybrid vsock test helpers: a fake VMM (a unix listener that plays Firecracker's side of
//! the `CONNECT` handshake, well or badly) and one client per path that connects through it
//! and checks every byte. Every wait is bounded by `util::WATCHDOG`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::hybrid::{HandshakeError, HandshakeErrorKind};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf};
use uring_vsock::{blocking, epoll, Endpoint};

use crate::util::{self, TempDir, WATCHDOG};

/// The guest port the clients ask for.
pub const PORT: u32 = 5000;

/// What the fake VMM does after reading the request line.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `OK 1073\n` and the first bytes of `payload` in one write (in `pieces` writes when
    /// more than one, split inside the reply), then the rest of `payload`, then EOF; it
    /// checksums what the client sends until the client's EOF.
    Ok { payload: Vec<u8>, pieces: usize },
    /// Writes these bytes, then closes.
    Raw(Vec<u8>),
    /// Writes these bytes, then holds the connection open until the test ends.
    RawHold(Vec<u8>),
    /// Closes without reading the request (the client may see a reset).
    CloseUnread,
}

/// What the fake VMM saw.
#[derive(Debug)]
pub struct Served {
    /// The request line, newline included.
    pub request: Vec<u8>,
    /// The checksum of what the client sent after the request (for [`Reply::Ok`]).
    pub received: u64,
}

/// A fake VMM socket at `<dir>/vm.sock` serving one connection.
pub struct FakeVmm {
    pub ep: Endpoint,
    served: Option<thread::JoinHandle<Served>>,
    /// Dropped to release a held connection.
    release: Option<mpsc::Sender<()>>,
    _dir: TempDir,
}

impl FakeVmm {
    pub fn start(reply: Reply) -> FakeVmm {
        let dir = TempDir::new();
        let path = dir.0.join("vm.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake VMM socket");
        let (release, released) = mpsc::channel::<()>();
        let served = thread::spawn(move || serve(listener, reply, released));
        FakeVmm {
            ep: format!("hybrid:{}:{PORT}", path.display()).parse().unwrap(),
            served: Some(served),
            release: Some(release),
            _dir: dir,
        }
    }

    /// Releases a held connection and returns what the VMM saw.
    pub fn finish(mut self) -> Served {
        drop(self.release.take());
        self.served
            .take()
            .unwrap()
            .join()
            .expect("the fake VMM thread panicked")
    }
}

impl Drop for FakeVmm {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.served.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: UnixListener, reply: Reply, released: mpsc::Receiver<()>) -> Served {
    util::wait_readable(&listener, "the fake VMM got no connection");
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s.set_write_timeout(Some(WATCHDOG)).unwrap();
    if let Reply::CloseUnread = reply {
        // Wait for the request, leave it unread, close: the kernel resets the connection.
        util::wait_readable(&s, "the client sent no request");
        return Served {
            request: Vec::new(),
            received: 0,
        };
    }
    let request = read_line(&mut s);
    let mut received = 0;
    match reply {
        Reply::Ok { payload, pieces } => {
            let head = [b"OK 1073\n".as_slice(), &payload[..payload.len().min(1000)]].concat();
            let rest = payload[payload.len().min(1000)..].to_vec();
            let mut writer = s.try_clone().unwrap();
            let w = thread::spawn(move || {
                // Pieces cut inside the reply, so the client sees it arrive in parts.
                let cuts = (1..pieces).map(|i| i * 8 / pieces).collect::<Vec<_>>();
                let mut from = 0;
                for cut in cuts {
                    writer.write_all(&head[from..cut]).unwrap();
                    from = cut;
                    thread::sleep(Duration::from_millis(20)); // a separate arrival, not a bound
                }
                writer.write_all(&head[from..]).unwrap();
                writer.write_all(&rest).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            s.read_to_end(&mut got)
                .expect("the fake VMM reads the client's bytes");
            received = util::checksum(&got);
            w.join().unwrap();
        }
        Reply::Raw(bytes) => s.write_all(&bytes).unwrap(),
        Reply::RawHold(bytes) => {
            s.write_all(&bytes).unwrap();
            let _ = released.recv_timeout(WATCHDOG);
        }
        Reply::CloseUnread => unreachable!(),
    }
    Served { request, received }
}

/// Reads one line, at most 64 bytes, a byte at a time (never past it).
fn read_line(s: &mut UnixStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 64 && line.last() != Some(&b'\n') {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => line.push(b[0]),
            Err(e) => panic!("the fake VMM reads the request: {e}"),
        }
    }
    line
}

/// A client path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `blocking::Stream::connect_timeout`.
    Blocking,
    /// `epoll::Stream::connect_timeout`.
    EpollTimeout,
    /// `epoll::Stream::connect` and `connect_result` in a mio loop.
    EpollPoll,
    /// `Engine::connect` with a timeout.
    Engine,
}

pub const PATHS: [Path; 4] = [
    Path::Blocking,
    Path::EpollTimeout,
    Path::EpollPoll,
    Path::Engine,
];

/// Connects to `ep` on `path` within `timeout`, sends `send`, shuts down its write side and
/// reads until EOF; returns the checksum of what it read.
pub fn exchange(
    path: Path,
    ep: &Endpoint,
    timeout: Duration,
    send: &[u8],
) -> Result<u64, uring_vsock::Error> {
    let stream = match path {
        Path::Blocking => blocking::Stream::connect_timeout(ep, timeout)?,
        Path::EpollTimeout => {
            let s = epoll::Stream::connect_timeout(ep, timeout)?;
            into_blocking(s)
        }
        Path::EpollPoll => into_blocking(connect_polled(ep, timeout)?),
        Path::Engine => return engine_exchange(ep, timeout, send),
    };
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    stream.set_write_timeout(Some(WATCHDOG)).unwrap();
    (&stream).write_all(send).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    (&stream)
        .read_to_end(&mut got)
        .expect("the client reads to EOF");
    Ok(util::checksum(&got))
}

/// The same connection as a blocking stream: whatever the guest sent after `OK` must still
/// be queued in the socket.
fn into_blocking(s: epoll::Stream) -> blocking::Stream {
    let s = blocking::Stream::from(OwnedFd::from(s));
    s.set_nonblocking(false).unwrap();
    s
}

/// `epoll::Stream::connect`, then `connect_result` after each readiness event until it is
/// no longer `WouldBlock`; the loop's own `TimedOut` error after `timeout`.
pub fn connect_polled(
    ep: &Endpoint,
    timeout: Duration,
) -> Result<epoll::Stream, uring_vsock::Error> {
    use mio::{Events, Interest, Poll, Token};
    let mut stream = epoll::Stream::connect(ep)?;
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    poll.registry()
        .register(
            &mut stream,
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match stream.connect_result() {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(uring_vsock::Error::new(
                "test connect loop",
                Some(ep.clone()),
                io::ErrorKind::TimedOut.into(),
            ));
        }
        poll.poll(&mut events, Some(left)).unwrap();
    }
    poll.registry().deregister(&mut stream).unwrap();
    Ok(stream)
}

/// An engine client: sends `send` when opened, then shuts down its write side; reports the
/// checksum of what it received at the peer's EOF.
struct Collect {
    send: Vec<u8>,
    got: Vec<u8>,
    done: mpsc::Sender<Result<u64, String>>,
}

impl Handler for Collect {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let sent = conn.send_copy(&self.send);
        assert_eq!(
            sent,
            self.send.len(),
            "the test's send fits the engine's buffers"
        );
        conn.shutdown_write();
    }

    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got.extend_from_slice(&buf);
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        let _ = self.done.send(Ok(util::checksum(&self.got)));
        conn.close();
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self
            .done
            .send(Err(format!("closed before EOF: {reason:?}")));
    }
}

fn engine_exchange(
    ep: &Endpoint,
    timeout: Duration,
    send: &[u8],
) -> Result<u64, uring_vsock::Error> {
    let engine = Engine::builder().workers(1).build().expect("engine");
    let (tx, rx) = mpsc::channel();
    let send = send.to_vec();
    let _conn = engine.connect(ep, Some(timeout), move || Collect {
        send,
        got: Vec::new(),
        done: tx,
    })?;
    let sum = rx
        .recv_timeout(WATCHDOG)
        .expect("the engine client got no EOF")
        .expect("the engine client");
    engine.shutdown();
    Ok(sum)
}

/// Asserts that `err` is a handshake error of `kind` on `ep`.
pub fn assert_handshake_error(err: &uring_vsock::Error, ep: &Endpoint, kind: HandshakeErrorKind) {
    assert_eq!(err.op(), "handshake", "{err}");
    assert_eq!(err.endpoint(), Some(ep), "{err}");
    let hs = HandshakeError::of(err.io_error())
        .unwrap_or_else(|| panic!("not a handshake error: {err}"));
    assert_eq!(hs.kind(), kind, "{err}");
    assert_eq!(hs.port(), PORT);
    let io_kind = match kind {
        HandshakeErrorKind::Refused => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::InvalidData,
    };
    assert_eq!(err.kind(), io_kind, "{err}");
    assert!(
        err.to_string().starts_with(&format!("handshake {ep}: ")),
        "{err}"
    );
}
