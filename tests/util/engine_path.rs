//! [`EnginePath`]: the engine seen through the contract's blocking-style calls, so the
//! engine passes the same contract as the socket paths.
//!
//! Built on the engine's public API only: [`Engine::listen`] and [`Engine::connect`] make
//! connections; a [`Forward`] handler passes what the worker sees (bytes, EOF, the close
//! reason) to the test thread over a channel; a [`ConnHandle`] sends, shuts down and closes.
//! One engine serves a whole test binary: the engine can stop a listener only by shutting
//! down, so engine listeners live until the test process ends.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf, SendError};
use uring_vsock::{Endpoint, Error, Result};

use super::path::PathUnderTest;
use super::WATCHDOG;

/// The engine every listener and connection of this test binary runs on.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .workers(2)
            .recv_buffers(64, 16 * 1024)
            .send_buffers(16, 64 * 1024)
            .build()
            .expect("the contract tests' engine")
    })
}

/// What a connection's handler tells the test thread, in the order the worker saw it.
enum Event {
    /// The connection is open; the engine's view of the peer.
    Opened(Endpoint),
    Data(Vec<u8>),
    /// The peer shut down its write side.
    Eof,
    Closed(CloseReason),
}

/// How dropping a stream closes it, shared by the stream and its handler: a socket's
/// `close(2)` lets queued bytes go out before the FIN, so the drop shuts down the write side
/// (which waits for queued sends) and the handler closes once that is done. Whichever of
/// the two comes second closes, under the lock, so neither misses the other.
#[derive(Default)]
struct Closing {
    write_shut: bool,
    close_when_shut: bool,
}

/// An accepted connection, handed from the worker (`on_open`) to [`EnginePath::accept`].
struct Accepted {
    handle: ConnHandle,
    events: Receiver<Event>,
    closing: Arc<Mutex<Closing>>,
    peer: Endpoint,
}

/// Forwards a connection's completions to its [`EngineStream`]. Received bytes are copied
/// out and the buffer returned at once, so no test holds the worker's receive ring.
struct Forward {
    events: Sender<Event>,
    closing: Arc<Mutex<Closing>>,
    /// For an accepted connection: where `on_open` hands it over, with its event receiver.
    announce: Option<(Sender<Accepted>, Receiver<Event>)>,
}

impl Handler for Forward {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.events.send(Event::Opened(conn.peer().clone()));
        if let Some((accepted, events)) = self.announce.take() {
            let a = Accepted {
                handle: conn.handle(),
                events,
                closing: Arc::clone(&self.closing),
                peer: conn.peer().clone(),
            };
            if accepted.send(a).is_err() {
                conn.close(); // the listener was dropped: nobody will accept this
            }
        }
    }

    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        let _ = self.events.send(Event::Data(buf.to_vec()));
    }

    fn on_peer_shutdown(&mut self, _conn: &mut Conn<'_>) {
        // Not the default (shut our side too): the contract's half-close keeps writing.
        let _ = self.events.send(Event::Eof);
    }

    fn on_shutdown(&mut self, conn: &mut Conn<'_>) {
        let mut c = self.closing.lock().unwrap();
        c.write_shut = true;
        if c.close_when_shut {
            drop(c);
            conn.close();
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.events.send(Event::Closed(reason.clone()));
    }
}

/// The error of a read or write on a connection the engine closed: it keeps the
/// [`CloseReason`] (see [`close_reason`]); its kind follows the reason.
#[derive(Debug)]
pub struct EngineClosed(pub CloseReason);

impl fmt::Display for EngineClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "engine connection {}", self.0)
    }
}

impl std::error::Error for EngineClosed {}

fn closed_error(reason: CloseReason) -> io::Error {
    let kind = match &reason {
        CloseReason::Reset => io::ErrorKind::ConnectionReset,
        CloseReason::Error(e) => e.kind(),
        CloseReason::Eof => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, EngineClosed(reason))
}

/// Why the engine closed the connection, when `err` came from an [`EngineStream`].
pub fn close_reason(err: &io::Error) -> Option<&CloseReason> {
    err.get_ref()?
        .downcast_ref::<EngineClosed>()
        .map(|EngineClosed(r)| r)
}

/// One engine connection as a blocking stream: reads take the forwarded bytes, writes queue
/// through the [`ConnHandle`]. Dropping it closes the connection after its queued sends.
pub struct EngineStream {
    handle: ConnHandle,
    events: Receiver<Event>,
    closing: Arc<Mutex<Closing>>,
    peer: Endpoint,
    /// Received bytes not read yet, from `pos` on.
    pending: Vec<u8>,
    pos: usize,
    /// What ended the byte stream, once seen: `None` for EOF, or the close reason.
    end: Option<Option<CloseReason>>,
}

impl EngineStream {
    fn next_event(&self) -> Event {
        match self.events.recv_timeout(WATCHDOG) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => {
                panic!("engine connection: no data, EOF or close in {WATCHDOG:?}")
            }
            // The handler was dropped without `on_close`: it panicked.
            Err(RecvTimeoutError::Disconnected) => Event::Closed(CloseReason::Panicked),
        }
    }
}

impl Read for EngineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match &self.end {
                Some(None) | Some(Some(CloseReason::Eof)) => return Ok(0),
                Some(Some(reason)) => return Err(closed_error(reason.clone())),
                None => {}
            }
            match self.next_event() {
                Event::Opened(_) => {}
                Event::Data(v) => {
                    self.pending = v;
                    self.pos = 0;
                }
                Event::Eof => self.end = Some(None),
                Event::Closed(reason) => self.end = Some(Some(reason)),
            }
        }
    }
}

impl Write for EngineStream {
    /// Queues all of `buf` (a socket write that fits its buffer). A full queue is retried
    /// with `try_send`, with a watchdog, rather than waited on with `send`, which has none.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = Instant::now();
        let mut data = buf.to_vec();
        loop {
            match self.handle.try_send(data) {
                Ok(()) => return Ok(buf.len()),
                Err(SendError::Full(back)) => {
                    assert!(
                        start.elapsed() < WATCHDOG,
                        "engine send queue stayed full for {WATCHDOG:?}"
                    );
                    data = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(SendError::Closed(_)) => {
                    let reason = self.handle.closed().unwrap_or(CloseReason::EngineShutdown);
                    return Err(closed_error(reason));
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EngineStream {
    fn drop(&mut self) {
        let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        if c.write_shut {
            drop(c);
            self.handle.close();
        } else {
            c.close_when_shut = true;
            drop(c);
            self.handle.shutdown_write();
        }
    }
}

/// An engine listener: [`Engine::listen`], with accepted connections queued for `accept`.
pub struct EngineListener {
    local: Endpoint,
    accepted: Mutex<Receiver<Accepted>>,
}

/// The engine as a [`PathUnderTest`].
pub struct EnginePath;

impl PathUnderTest for EnginePath {
    type Listener = EngineListener;
    type Stream = EngineStream;
    const ENGINE: bool = true;

    /// The engine listens with [`uring_vsock::DEFAULT_BACKLOG`]: another backlog is refused
    /// rather than ignored.
    fn bind(ep: &Endpoint, backlog: i32) -> Result<Self::Listener> {
        if backlog != uring_vsock::DEFAULT_BACKLOG {
            let why = "the engine listens with DEFAULT_BACKLOG only";
            let err = io::Error::new(io::ErrorKind::Unsupported, why);
            return Err(Error::new("listen", Some(ep.clone()), err));
        }
        let (tx, rx) = mpsc::channel();
        let local = engine().listen(ep, move |_peer| {
            let (events, forwarded) = mpsc::channel();
            Forward {
                events,
                closing: Arc::default(),
                announce: Some((tx.clone(), forwarded)),
            }
        })?;
        Ok(EngineListener {
            local,
            accepted: Mutex::new(rx),
        })
    }

    fn local_addr(l: &Self::Listener) -> Endpoint {
        l.local.clone()
    }

    fn accept(l: &Self::Listener) -> Result<(Self::Stream, Endpoint)> {
        let a = l
            .accepted
            .lock()
            .unwrap()
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("engine accepted no connection in {WATCHDOG:?}: {e}"));
        let s = EngineStream {
            handle: a.handle,
            events: a.events,
            closing: a.closing,
            peer: a.peer.clone(),
            pending: Vec::new(),
            pos: 0,
            end: None,
        };
        // The stream's first event is its `Opened`, already read through `Accepted`.
        match s.next_event() {
            Event::Opened(_) => Ok((s, a.peer)),
            _ => panic!("an accepted connection's first event was not its opening"),
        }
    }

    fn connect(ep: &Endpoint) -> Result<Self::Stream> {
        connect(ep, None)
    }

    fn connect_timeout(ep: &Endpoint, timeout: Duration) -> Result<Self::Stream> {
        connect(ep, Some(timeout))
    }

    /// The engine shuts down the write side only; it has no read shutdown.
    fn shutdown(s: &Self::Stream, how: Shutdown) -> io::Result<()> {
        match how {
            Shutdown::Write => {
                s.handle.shutdown_write();
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the engine has no read shutdown",
            )),
        }
    }

    /// The peer as the engine reports it (`Conn::peer`).
    fn peer_addr(s: &Self::Stream) -> Result<Endpoint> {
        Ok(s.peer.clone())
    }
}

fn connect(ep: &Endpoint, timeout: Option<Duration>) -> Result<EngineStream> {
    let (events, rx) = mpsc::channel();
    let closing: Arc<Mutex<Closing>> = Arc::default();
    let handler_closing = Arc::clone(&closing);
    let handle = engine().connect(ep, timeout, move || Forward {
        events,
        closing: handler_closing,
        announce: None,
    })?;
    let mut s = EngineStream {
        handle,
        events: rx,
        closing,
        peer: ep.clone(),
        pending: Vec::new(),
        pos: 0,
        end: None,
    };
    // `on_open` runs just after the connect is reported: its event comes first.
    match s.next_event() {
        Event::Opened(peer) => s.peer = peer,
        Event::Closed(reason) => s.end = Some(Some(reason)),
        _ => panic!("a connection's first event was not its opening"),
    }
    Ok(s)
}
