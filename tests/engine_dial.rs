//! Dialing from a handler ([`Conn::connect`]) and reaching a connection of the same worker
//! ([`Conn::with_conn`]): the dialed connection lives on the dialer's worker, buffers move
//! between the two without a copy, EOF crosses over, and a failed dial reaches the new
//! handler's `on_close` with the typed error.

mod engine_support;
mod util;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use engine_support::Echo;
use uring_vsock::blocking::Stream;
use uring_vsock::uring::rt::JoinError;
use uring_vsock::uring::{AsyncConn, CloseReason, Conn, ConnId, Engine, Handler, RecvBuf};
use uring_vsock::Endpoint;
use util::{TempDir, Transport};

/// What the test hears from the handlers.
#[derive(Debug)]
enum Event {
    /// The dialed connection opened: (its worker, the front's worker).
    Opened(usize, usize),
    /// The dialed connection closed without ever opening.
    Failed(CloseReason),
    /// `Conn::connect` refused to start.
    Refused(io::ErrorKind),
    /// `with_conn` on the front's own id from the dialed side, after the front closed.
    StaleFound(bool),
    /// `Conn::connect` started a dial.
    Dialing,
}

/// The accepted side: dials `upstream` on open, forwards what it receives to it.
struct Front {
    upstream: Endpoint,
    timeout: Option<Duration>,
    peer: Rc<Cell<Option<ConnId>>>,
    events: mpsc::Sender<Event>,
}

/// The dialed side: forwards what it receives to the front.
struct Back {
    front: ConnId,
    opened: bool,
    peer: Rc<Cell<Option<ConnId>>>,
    events: mpsc::Sender<Event>,
}

impl Handler for Front {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        // Nothing is read until the upstream is there to take it.
        conn.pause_recv();
        let back = Back {
            front: conn.id(),
            opened: false,
            peer: Rc::clone(&self.peer),
            events: self.events.clone(),
        };
        match conn.connect(&self.upstream, self.timeout, back) {
            Ok(id) => self.peer.set(Some(id)),
            Err(e) => {
                let _ = self.events.send(Event::Refused(e.kind()));
                conn.close();
            }
        }
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let Some(up) = self.peer.get() else {
            return conn.abort();
        };
        // Small messages only: the upstream's queue always has room.
        let sent = conn.with_conn(up, |u| u.send(buf).is_ok());
        assert_eq!(sent, Some(true), "the upstream takes the buffer");
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        if let Some(up) = self.peer.get() {
            conn.with_conn(up, |u| u.shutdown_write());
        }
    }
}

impl Handler for Back {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        let _ = self
            .events
            .send(Event::Opened(conn.id().worker(), self.front.worker()));
        conn.with_conn(self.front, |f| f.resume_recv());
    }
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let sent = conn.with_conn(self.front, |f| f.send(buf).is_ok());
        assert_eq!(sent, Some(true), "the front takes the buffer");
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        conn.with_conn(self.front, |f| f.shutdown_write());
    }
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        if !self.opened {
            let _ = self.events.send(Event::Failed(reason.clone()));
            // The dialer closes its client at once.
            let closed = conn.with_conn(self.front, |f| f.close());
            assert!(closed.is_some(), "the front is still there");
            // Its close completes within that call (nothing in flight): the id is stale now.
            let _ = self.events.send(Event::StaleFound(
                conn.with_conn(self.front, |_| ()).is_some(),
            ));
        }
        let _ = self.peer.take();
    }
}

/// An engine of `workers`, an echo listener on it, and a front listener that dials
/// `upstream` (the echo listener when `None`) with `timeout`. Returns the front's endpoint.
fn setup(
    e: &Engine,
    dir: &TempDir,
    upstream: Option<Endpoint>,
    timeout: Option<Duration>,
) -> (Endpoint, mpsc::Receiver<Event>) {
    let upstream = upstream.unwrap_or_else(|| {
        e.listen(&util::bind_endpoint(Transport::Unix, dir), |_| Echo::new())
            .unwrap()
    });
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let front = e
        .listen(&util::bind_endpoint(Transport::Tcp, dir), move |_| Front {
            upstream: upstream.clone(),
            timeout,
            peer: Rc::new(Cell::new(None)),
            events: tx.lock().unwrap().clone(),
        })
        .unwrap();
    (front, rx)
}

#[test]
fn engine_dial_forwards_on_the_same_worker_with_half_close() {
    let dir = TempDir::new();
    let e = Engine::builder().workers(2).build().unwrap();
    let (front, events) = setup(&e, &dir, None, Some(Duration::from_secs(10)));
    // Two clients: the second lands on the other worker (least loaded), and still dials there.
    for seed in 0..2u64 {
        let mut c = Stream::connect(&front).unwrap();
        c.set_read_timeout(Some(util::WATCHDOG)).unwrap();
        let data = util::pattern(seed, 1000);
        c.write_all(&data).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back)
            .expect("echo, then EOF, before the watchdog");
        assert_eq!(back.len(), data.len());
        assert_eq!(util::checksum(&back), util::checksum(&data));
        match events
            .recv_timeout(util::WATCHDOG)
            .expect("the dial opened")
        {
            Event::Opened(dialed, dialer) => assert_eq!(dialed, dialer, "same worker"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(e.stats().connected >= 2, "{:?}", e.stats());
}

#[test]
fn engine_dial_refused_reaches_on_close_and_the_dialer_closes_its_client() {
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let dead = util::dead_endpoint(Transport::Unix, &dir);
    let (front, events) = setup(&e, &dir, Some(dead.clone()), Some(Duration::from_secs(10)));
    let mut c = Stream::connect(&front).unwrap();
    c.set_read_timeout(Some(util::WATCHDOG)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).expect("EOF before the watchdog"), 0);
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the dial failed")
    {
        Event::Failed(CloseReason::Error(err)) => {
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            assert_eq!(err.op(), "connect");
            assert_eq!(err.endpoint(), Some(&dead));
        }
        other => panic!("unexpected {other:?}"),
    }
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the stale check")
    {
        Event::StaleFound(found) => assert!(!found, "a closed connection's id finds nothing"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn engine_dial_with_zero_timeout_is_refused_at_once() {
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let (front, events) = setup(&e, &dir, None, Some(Duration::ZERO));
    let mut c = Stream::connect(&front).unwrap();
    c.set_read_timeout(Some(util::WATCHDOG)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).expect("EOF before the watchdog"), 0);
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the dial refused")
    {
        Event::Refused(kind) => assert_eq!(kind, io::ErrorKind::InvalidInput),
        other => panic!("unexpected {other:?}"),
    }
}

/// Dials `upstream` (with `timeout`) on open and reports the dial's fate: started, then its
/// close reason.
struct Dialer {
    upstream: Endpoint,
    timeout: Duration,
    events: mpsc::Sender<Event>,
    panic_on_close: bool,
}

/// The dialed side of a [`Dialer`]: reports how it closed (and, if `panic_on_close`,
/// panics there, as a buggy handler would).
struct Dialed {
    events: mpsc::Sender<Event>,
    panic_on_close: bool,
}

impl Handler for Dialed {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.events.send(Event::Failed(reason.clone()));
        assert!(!self.panic_on_close, "a handler that panics in on_close");
    }
}

impl Handler for Dialer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let back = Dialed {
            events: self.events.clone(),
            panic_on_close: self.panic_on_close,
        };
        match conn.connect(&self.upstream, Some(self.timeout), back) {
            Ok(_) => {
                let _ = self.events.send(Event::Dialing);
            }
            Err(e) => {
                let _ = self.events.send(Event::Refused(e.kind()));
            }
        }
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
}

/// A front listener on `e` whose connections each dial `upstream` with `timeout`.
fn dialer_front(
    e: &Engine,
    dir: &TempDir,
    upstream: &Endpoint,
    timeout: Duration,
    panic_on_close: bool,
) -> (Endpoint, mpsc::Receiver<Event>) {
    let (tx, events) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let upstream = upstream.clone();
    let front = e
        .listen(&util::bind_endpoint(Transport::Tcp, dir), move |_| Dialer {
            upstream: upstream.clone(),
            timeout,
            events: tx.lock().unwrap().clone(),
            panic_on_close,
        })
        .unwrap();
    (front, events)
}

/// How a test stops the engine.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Shutdown,
    Drop,
}

/// Stops `e` on another thread and waits for it, failing after the watchdog (a hang).
fn stop_within_watchdog(e: Engine, how: Stop) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        match how {
            Stop::Shutdown => e.shutdown(),
            Stop::Drop => drop(e),
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(util::WATCHDOG)
        .unwrap_or_else(|_| panic!("the engine's {how:?} returned before the watchdog"));
}

/// A dial still connecting when the engine shuts down (its upstream's backlog is full, so
/// the connect waits) ends with `EngineShutdown` as its handler's close reason, not an
/// error, and shutdown does not wait for it. On tcp the pending connect is a poll.
#[test]
fn engine_dial_cut_by_shutdown_closes_with_engine_shutdown() {
    dial_cut_by_shutdown(Transport::Tcp, false, Stop::Shutdown);
}

/// The same with a dialed handler that panics in `on_close`: shutdown still completes.
#[test]
fn engine_dial_cut_by_shutdown_with_a_panicking_on_close_still_shuts_down() {
    dial_cut_by_shutdown(Transport::Tcp, true, Stop::Shutdown);
}

/// On unix the connect to a full backlog bounces between inline tries and polls, then
/// blocks in io-wq, where one cancel can miss it (see `src/uring/core/connect_cancel.rs`):
/// shutdown aims again until it ends, so it neither waits for the dial's 120 s deadline
/// nor reports anything but `EngineShutdown`.
#[test]
fn engine_unix_dial_to_a_full_backlog_cut_by_shutdown_closes_with_engine_shutdown() {
    dial_cut_by_shutdown(Transport::Unix, false, Stop::Shutdown);
}

/// Dropping the engine takes the same path as `shutdown`.
#[test]
fn engine_unix_dial_to_a_full_backlog_cut_by_dropping_the_engine() {
    dial_cut_by_shutdown(Transport::Unix, false, Stop::Drop);
}

fn dial_cut_by_shutdown(t: Transport, panic_on_close: bool, how: Stop) {
    let dir = TempDir::new();
    let full = util::FullBacklog::new(t, &dir);
    let e = Engine::builder().workers(1).build().unwrap();
    let long = Duration::from_secs(120);
    let (front, events) = dialer_front(&e, &dir, &full.ep, long, panic_on_close);
    let _client = Stream::connect(&front).unwrap();
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the dial started")
    {
        Event::Dialing => {}
        other => panic!("unexpected {other:?}"),
    }
    stop_within_watchdog(e, how);
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the dial's close")
    {
        Event::Failed(CloseReason::EngineShutdown) => {}
        other => panic!("a dial cut by shutdown closed with {other:?}"),
    }
}

/// The async API's connect (`AsyncConn::connect` in a task) to a full unix backlog takes
/// the same path: shutdown cuts it and returns; the task hears an error, or is dropped.
#[test]
fn engine_async_unix_connect_to_a_full_backlog_is_cut_by_shutdown() {
    let dir = TempDir::new();
    let full = util::FullBacklog::new(Transport::Unix, &dir);
    let e = Engine::builder().workers(1).build().unwrap();
    let ep = full.ep.clone();
    let task = e
        .spawn_on(0, move || async move {
            AsyncConn::connect(&ep, Some(Duration::from_secs(120)))
                .await
                .map(drop)
        })
        .unwrap();
    // The connect's socket is in a slot: the dial is under way.
    engine_support::wait_until("the connect started", || e.stats().open >= 1);
    stop_within_watchdog(e, Stop::Shutdown);
    match task.wait_timeout(util::WATCHDOG) {
        Ok(Err(err)) => assert_eq!(err.endpoint(), Some(&full.ep), "{err}"),
        Ok(Ok(())) => panic!("a connect to a full backlog succeeded"),
        Err(err) => {
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<JoinError>());
            assert_eq!(inner, Some(&JoinError::Shutdown), "{err}");
        }
    }
}

/// Unix dials to a full backlog with short deadlines each fail with `TimedOut`: the
/// deadline's linked timeout can miss the connect as a shutdown's cancel can, and is
/// followed up the same way, so none waits for room that never comes.
#[test]
fn engine_unix_dials_to_a_full_backlog_time_out() {
    let dir = TempDir::new();
    let full = util::FullBacklog::new(Transport::Unix, &dir);
    let e = Engine::builder().workers(1).build().unwrap();
    for ms in [1, 2, 5, 10, 20, 50] {
        let deadline = Duration::from_millis(ms);
        let (front, events) = dialer_front(&e, &dir, &full.ep, deadline, false);
        let _client = Stream::connect(&front).unwrap();
        match events
            .recv_timeout(util::WATCHDOG)
            .expect("the dial started")
        {
            Event::Dialing => {}
            other => panic!("unexpected {other:?}"),
        }
        match events
            .recv_timeout(util::WATCHDOG)
            .unwrap_or_else(|_| panic!("a dial with a {ms} ms deadline never ended"))
        {
            Event::Failed(CloseReason::Error(err)) => {
                assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{ms} ms: {err}");
                assert_eq!(err.endpoint(), Some(&full.ep));
            }
            other => panic!("a dial with a {ms} ms deadline closed with {other:?}"),
        }
    }
    stop_within_watchdog(e, Stop::Shutdown);
}

/// Redials from `on_close` (a reconnecting client): during shutdown that dial is refused
/// (`NotConnected`), so it cannot outlive the close and hold the engine's shutdown.
struct Redial {
    upstream: Endpoint,
    events: mpsc::Sender<Event>,
}

impl Handler for Redial {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_close(&mut self, conn: &mut Conn<'_>, _reason: &CloseReason) {
        let again = Redial {
            upstream: self.upstream.clone(),
            events: self.events.clone(),
        };
        let outcome = match conn.connect(&self.upstream, None, again) {
            Ok(_) => Event::Dialing,
            Err(e) => Event::Refused(e.kind()),
        };
        let _ = self.events.send(outcome);
    }
}

#[test]
fn engine_dial_from_on_close_during_shutdown_is_refused() {
    let dir = TempDir::new();
    let e = Engine::builder().workers(1).build().unwrap();
    let echo = e
        .listen(&util::bind_endpoint(Transport::Unix, &dir), |_| Echo::new())
        .unwrap();
    let (tx, events) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let upstream = echo.clone();
    let front = e
        .listen(&util::bind_endpoint(Transport::Tcp, &dir), move |_| {
            Redial {
                upstream: upstream.clone(),
                events: tx.lock().unwrap().clone(),
            }
        })
        .unwrap();
    let _client = Stream::connect(&front).unwrap();
    engine_support::wait_until("the client accepted", || e.stats().accepted >= 1);
    stop_within_watchdog(e, Stop::Shutdown);
    match events
        .recv_timeout(util::WATCHDOG)
        .expect("the redial's outcome")
    {
        Event::Refused(kind) => assert_eq!(kind, io::ErrorKind::NotConnected),
        other => panic!("a dial during shutdown was {other:?}"),
    }
}
