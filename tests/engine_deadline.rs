//! Deadlines of the callback `Handler` API (`Conn::set_read_deadline`, `set_write_deadline`,
//! `Handler::on_deadline`), over unix and tcp: a read deadline cuts a slow client while the
//! fast ones on the same worker finish, an idle deadline moved on in `on_recv` keeps a busy
//! connection and closes an idle one, a write deadline returns the sends to a peer that does
//! not read with `TimedOut`, a handler extends or clears a deadline and keeps the connection,
//! a deadline in the past fires (after the setter returned), a paused receive and the peer's
//! EOF hold the read deadline, and extreme instants do nothing wrong.
//!
//! Outcomes and order are asserted, never durations; every transfer is checksummed.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use engine_support::{connect, echo_client, echo_over, recv_or_hang, Echo, Gen, Sum, MIB};
use uring_vsock::uring::{
    rt, CloseReason, Conn, ConnId, Deadline, Engine, Handler, PartialSend, RecvBuf, SendBuf,
};
use uring_vsock::Endpoint;
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

/// What a connection's handler (or a task it spawned) saw, in order.
#[derive(Debug, Clone)]
enum Ev {
    Open,
    /// `on_deadline`, with whether the deadline read as cleared during the call.
    Deadline(Deadline, bool),
    /// A task of the connection: the point in time it waited for has passed.
    Past,
    /// A task of the connection resumes its receiving (after a pause).
    Resuming,
    /// `on_sent`: the bytes it says went out, or its error's kind.
    Sent(Result<usize, io::ErrorKind>),
    /// `on_close`, with the bytes received.
    Closed(CloseReason, u64),
}

type Events = mpsc::Sender<(ConnId, Ev)>;

/// What a [`Probe`] does with its deadlines.
#[derive(Clone, Copy)]
enum Plan {
    /// A read deadline `within` after open, cleared once `bytes` have come (a header).
    Header { bytes: u64, within: Duration },
    /// A read deadline `idle` after open and after every receive.
    Idle(Duration),
    /// A read deadline `step` after open; `on_deadline` moves it on by `step` until it has
    /// fired `times`, then leaves it cleared.
    Extend { times: u32, step: Duration },
    /// Both deadlines set, moved earlier and later, then cleared; a task reports when the
    /// cleared ones have passed.
    Cleared,
    /// A read deadline at the start of time.
    Past,
    /// Deadlines at the end of time (and `checked_add(Duration::MAX)`'s `None`), on open
    /// and in every receive.
    FarFuture,
    /// Receiving paused on open with a read deadline; a task resumes it once the deadline
    /// has passed.
    Paused,
    /// After the peer's EOF (not shutting down in turn) a read deadline; a task closes the
    /// connection once it has passed.
    AfterEof,
    /// Sends "hi" on open; once it is out, a write deadline of now (no send queued: it
    /// waits); a task queues a send through the connection's handle later.
    LateSend,
}

const SHORT: Duration = Duration::from_millis(50);

/// An echo (every byte back, checksummed by the clients) with deadlines as its plan says.
struct Probe {
    plan: Plan,
    echo: Echo,
    got: u64,
    fired: u32,
    events: Events,
}

impl Probe {
    fn log(&self, conn: &Conn<'_>, ev: Ev) {
        let _ = self.events.send((conn.id(), ev));
    }

    /// A task on the connection's worker that waits until `at`, logs `ev`, then runs `then`.
    fn after(&self, conn: &Conn<'_>, at: Instant, ev: Ev, then: impl FnOnce() + 'static) {
        let (events, id) = (self.events.clone(), conn.id());
        rt::spawn(async move {
            rt::sleep_until(at).await;
            let _ = events.send((id, ev));
            then();
        })
        .expect("on a worker")
        .detach();
    }
}

/// The start and the end of time, as far as `Instant` goes.
fn far_past() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(u64::MAX / 4))
        .or_else(|| now.checked_sub(Duration::from_secs(1)))
        .unwrap_or(now)
}

fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(u64::MAX / 4))
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86400)))
        .expect("an instant a century ahead")
}

impl Handler for Probe {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.log(conn, Ev::Open);
        let now = Instant::now();
        match self.plan {
            Plan::Header { within, .. } => conn.set_read_deadline(Some(now + within)),
            Plan::Idle(idle) => conn.set_read_deadline(Some(now + idle)),
            Plan::Extend { step, .. } => conn.set_read_deadline(Some(now + step)),
            Plan::Cleared => {
                let at = now + SHORT;
                conn.set_deadline(Some(at));
                conn.set_read_deadline(Some(now + SHORT / 2)); // earlier: the entry moves
                conn.set_write_deadline(Some(now + 10 * SHORT)); // later: nothing moves
                conn.set_deadline(None);
                assert_eq!(conn.read_deadline(), None);
                assert_eq!(conn.write_deadline(), None);
                self.after(conn, now + 3 * SHORT, Ev::Past, || {});
            }
            Plan::Past => {
                let at = far_past();
                conn.set_read_deadline(Some(at));
                // Not fired inside the setter (nor before on_open returns): still set.
                assert_eq!(conn.read_deadline(), Some(at));
            }
            Plan::FarFuture => {
                conn.set_read_deadline(now.checked_add(Duration::MAX)); // None: no deadline
                assert_eq!(conn.read_deadline(), None);
                let far = far_future();
                conn.set_deadline(Some(far));
                assert_eq!(
                    (conn.read_deadline(), conn.write_deadline()),
                    (Some(far), Some(far))
                );
            }
            Plan::Paused => {
                conn.pause_recv();
                let at = now + SHORT;
                conn.set_read_deadline(Some(at));
                let handle = conn.handle();
                self.after(conn, at + 2 * SHORT, Ev::Resuming, move || {
                    handle.resume_recv()
                });
            }
            Plan::LateSend => assert_eq!(conn.send_copy(b"hi"), 2),
            Plan::AfterEof => {}
        }
    }

    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        self.got += buf.len() as u64;
        match self.plan {
            Plan::Header { bytes, .. } if self.got >= bytes => conn.set_read_deadline(None),
            Plan::Idle(idle) => conn.set_read_deadline(Some(Instant::now() + idle)),
            Plan::FarFuture => conn.set_deadline(Some(far_future())),
            _ => {}
        }
        self.echo.on_recv(conn, buf);
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        if let (Plan::LateSend, Ok(n)) = (self.plan, &res) {
            self.log(conn, Ev::Sent(Ok(*n)));
            let now = Instant::now();
            conn.set_write_deadline(Some(now));
            let handle = conn.handle();
            self.after(conn, now + 2 * SHORT, Ev::Past, move || {
                let _ = handle.send(b"late".to_vec());
            });
        }
        self.echo.on_sent(conn, buf, res);
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        if let Plan::AfterEof = self.plan {
            // Half-open: nothing more can come, so the read deadline never fires.
            let at = Instant::now() + SHORT;
            conn.set_read_deadline(Some(at));
            let handle = conn.handle();
            self.after(conn, at + 2 * SHORT, Ev::Past, move || handle.close());
            return;
        }
        self.echo.on_peer_shutdown(conn);
    }

    fn on_deadline(&mut self, conn: &mut Conn<'_>, which: Deadline) {
        let cleared = match which {
            Deadline::Read => conn.read_deadline().is_none(),
            Deadline::Write => conn.write_deadline().is_none(),
        };
        self.log(conn, Ev::Deadline(which, cleared));
        self.fired += 1;
        match self.plan {
            Plan::Extend { times, step } if self.fired < times => {
                conn.set_read_deadline(Some(Instant::now() + step))
            }
            Plan::Extend { .. } => {} // left cleared: the connection stays open
            _ => conn.close_timed_out(which),
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        self.log(conn, Ev::Closed(reason.clone(), self.got));
    }
}

/// Runs `check` over unix and then tcp, each against an engine serving `plan` (shut down
/// after), and checks that no fd is left open.
fn each_transport(plan: Plan, check: impl Fn(Transport, &Engine, &Endpoint, &Receiver)) {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let (e, ep, rx) = serve(t, &dir, plan);
            check(t, &e, &ep, &rx);
            e.shutdown();
        }
    });
}

/// An engine with one worker serving `Probe`s with `plan` on a listener of `t`.
fn serve(t: Transport, dir: &TempDir, plan: Plan) -> (Engine, Endpoint, Receiver) {
    let e = Engine::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let local = e
        .listen(&bind_endpoint(t, dir), move |_| Probe {
            plan,
            echo: Echo::new(),
            got: 0,
            fired: 0,
            events: tx.lock().unwrap().clone(),
        })
        .unwrap();
    (e, connect_endpoint(&local), rx)
}

type Receiver = mpsc::Receiver<(ConnId, Ev)>;

/// The events of connections until `n` have closed, per connection in order.
fn until_closed(rx: &Receiver, n: usize) -> Vec<(ConnId, Vec<Ev>)> {
    let mut conns: Vec<(ConnId, Vec<Ev>)> = Vec::new();
    let mut closed = 0;
    while closed < n {
        let (id, ev) = recv_or_hang(rx, "a connection's events until it closes");
        closed += usize::from(matches!(ev, Ev::Closed(..)));
        match conns.iter_mut().find(|(i, _)| *i == id) {
            Some((_, evs)) => evs.push(ev),
            None => conns.push((id, vec![ev])),
        }
    }
    conns
}

/// The events of the one connection of a test, until it closed.
fn one_closed(rx: &Receiver) -> Vec<Ev> {
    let mut conns = until_closed(rx, 1);
    assert_eq!(conns.len(), 1, "one connection: {conns:?}");
    conns.pop().expect("one").1
}

fn closed_reason(evs: &[Ev]) -> (&CloseReason, u64) {
    match evs.last() {
        Some(Ev::Closed(r, got)) => (r, *got),
        other => panic!("the last event is the close, not {other:?}: {evs:?}"),
    }
}

fn deadlines(evs: &[Ev]) -> Vec<Deadline> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Deadline(d, cleared) => {
                assert!(
                    *cleared,
                    "a deadline is cleared before on_deadline: {evs:?}"
                );
                Some(*d)
            }
            _ => None,
        })
        .collect()
}

/// Reads until EOF (or an error, returned); every byte read is checked against the client's
/// own bytes `sent`.
fn read_to_end_checked(c: &mut uring_vsock::blocking::Stream, sent: &[u8]) -> io::Result<usize> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
    }
    assert!(
        got.len() <= sent.len() && got == sent[..got.len()],
        "echo differs"
    );
    Ok(got.len())
}

// ---- a slow client beside fast ones ---------------------------------------------------------

const HEADER: u64 = 60;

fn slow_client_is_cut_beside_fast_ones(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        // The header must come within 3 s: the fast clients send it at once; the slow one,
        // a byte per 100 ms, cannot before 6 s.
        let plan = Plan::Header {
            bytes: HEADER,
            within: Duration::from_secs(3),
        };
        let (e, ep, rx) = serve(t, &dir, plan);
        let slow = connect(&ep);
        let mut w = slow.try_clone().unwrap();
        let slow_writer = thread::spawn(move || {
            for i in 0..2 * HEADER {
                if w.write_all(&[i as u8]).is_err() {
                    return i;
                }
                thread::sleep(Duration::from_millis(100));
            }
            2 * HEADER
        });
        let fast: Vec<_> = (0..4u64)
            .map(|i| {
                let ep = ep.clone();
                thread::spawn(move || echo_client(&ep, 100 + i, 2 * MIB))
            })
            .collect();
        for f in fast {
            f.join().expect("a fast client's checksummed echo");
        }
        let wrote = slow_writer.join().unwrap();
        assert!(
            wrote < HEADER,
            "{t:?}: the slow client was cut before its header was in (it wrote {wrote})"
        );
        let conns = until_closed(&rx, 5);
        let mut cut = 0;
        for (id, evs) in &conns {
            let (reason, got) = closed_reason(evs);
            match reason {
                CloseReason::Eof => {
                    assert_eq!(got, 2 * MIB, "{t:?} {id}: a fast client's bytes");
                    assert!(deadlines(evs).is_empty(), "{t:?} {id}: {evs:?}");
                }
                CloseReason::TimedOut(Deadline::Read) => {
                    cut += 1;
                    assert!(got < HEADER, "{t:?} {id}: the slow client's {got} bytes");
                    assert_eq!(deadlines(evs), [Deadline::Read], "{t:?} {id}: {evs:?}");
                    assert!(
                        matches!(evs[evs.len() - 2], Ev::Deadline(..)),
                        "{t:?} {id}: closed by the deadline: {evs:?}"
                    );
                }
                other => panic!("{t:?} {id}: closed with {other}: {evs:?}"),
            }
        }
        assert_eq!(cut, 1, "{t:?}: exactly the slow client was cut: {conns:?}");
        drop(slow);
        e.shutdown();
    });
}

#[test]
fn a_slow_client_is_cut_by_the_read_deadline_while_fast_ones_finish_unix() {
    slow_client_is_cut_beside_fast_ones(Transport::Unix);
}

#[test]
fn a_slow_client_is_cut_by_the_read_deadline_while_fast_ones_finish_tcp() {
    slow_client_is_cut_beside_fast_ones(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn a_slow_client_is_cut_by_the_read_deadline_while_fast_ones_finish_vsock() {
    util::require_vm();
    slow_client_is_cut_beside_fast_ones(Transport::Vsock);
}

// ---- an idle deadline -----------------------------------------------------------------------

fn idle_deadline(t: Transport) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        // The busy client lives longer than the idle time (10 rounds, 200 ms apart, well
        // under it each), so only a deadline moved on by every receive keeps it.
        let idle = Duration::from_millis(1500);
        let (e, ep, rx) = serve(t, &dir, Plan::Idle(idle));
        let busy_ep = ep.clone();
        let busy = thread::spawn(move || {
            let mut c = connect(&busy_ep);
            let mut gen = Gen::new(7);
            let (mut chunk, mut back) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            for _ in 0..10 {
                gen.fill(&mut chunk);
                c.write_all(&chunk).unwrap();
                c.read_exact(&mut back).expect("the echo of a round");
                assert!(back == chunk, "echo differs");
                thread::sleep(Duration::from_millis(200));
            }
            c.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(c.read(&mut back).expect("EOF after the echo"), 0);
        });
        let mut idler = connect(&ep);
        idler.write_all(b"only this").unwrap();
        let n = read_to_end_checked(&mut idler, b"only this").expect("a graceful close");
        assert_eq!(n, 9, "{t:?}: the idle client's echo, then EOF");
        busy.join().expect("the busy client");
        let conns = until_closed(&rx, 2);
        let mut reasons: Vec<String> = Vec::new();
        for (id, evs) in &conns {
            let (reason, got) = closed_reason(evs);
            match reason {
                CloseReason::Eof => {
                    assert_eq!(got, 10 * 64 * 1024, "{t:?} {id}: the busy client's bytes");
                    assert!(deadlines(evs).is_empty(), "{t:?} {id}: {evs:?}");
                }
                CloseReason::TimedOut(Deadline::Read) => {
                    assert_eq!(got, 9, "{t:?} {id}: the idle client's bytes");
                    assert_eq!(deadlines(evs), [Deadline::Read], "{t:?} {id}: {evs:?}");
                }
                other => panic!("{t:?} {id}: closed with {other}: {evs:?}"),
            }
            reasons.push(reason.to_string());
        }
        reasons.sort();
        assert_eq!(
            reasons,
            [
                "closed after EOF both ways",
                "closed: the read deadline passed"
            ],
            "{t:?}: the busy one ended itself, the idle one was cut"
        );
        e.shutdown();
    });
}

#[test]
fn an_idle_deadline_moved_in_on_recv_keeps_a_busy_connection_and_cuts_an_idle_one_unix() {
    idle_deadline(Transport::Unix);
}

#[test]
fn an_idle_deadline_moved_in_on_recv_keeps_a_busy_connection_and_cuts_an_idle_one_tcp() {
    idle_deadline(Transport::Tcp);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn an_idle_deadline_moved_in_on_recv_keeps_a_busy_connection_and_cuts_an_idle_one_vsock() {
    util::require_vm();
    idle_deadline(Transport::Vsock);
}

// ---- write deadlines ------------------------------------------------------------------------

/// Keeps its send queue full of generated bytes (refilled as sends finish) with a write
/// deadline `at`; logs every send's outcome and counts the bytes each says went out.
struct Flood {
    at: Instant,
    gen: Gen,
    written: Sum,
    events: Events,
}

impl Flood {
    fn fill(&mut self, conn: &mut Conn<'_>) {
        while conn.can_send() {
            let Some(mut buf) = conn.send_buf() else {
                return;
            };
            let mut block = vec![0u8; buf.capacity()];
            self.gen.fill(&mut block);
            buf.extend_from_slice(&block);
            conn.send(buf).expect("can_send said so");
        }
    }
}

impl Handler for Flood {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.events.send((conn.id(), Ev::Open));
        conn.set_write_deadline(Some(self.at));
        self.fill(conn);
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        let sent = match &res {
            Ok(n) => *n,
            Err(e) => PartialSend::of(e).map_or(0, |p| p.sent),
        };
        self.written.add(&buf[..sent]);
        let _ = self
            .events
            .send((conn.id(), Ev::Sent(res.map_err(|e| e.kind()))));
        self.fill(conn);
    }
    fn on_deadline(&mut self, conn: &mut Conn<'_>, which: Deadline) {
        let cleared = conn.write_deadline().is_none();
        let _ = self.events.send((conn.id(), Ev::Deadline(which, cleared)));
        conn.close_timed_out(which); // what the default does
    }
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self
            .events
            .send((conn.id(), Ev::Closed(reason.clone(), self.written.bytes)));
    }
}

/// A peer that does not read (the engine's socket send buffer small): the write deadline
/// `at` fires, the queued sends come back with `TimedOut`, the connection is aborted; an echo
/// client on the same worker goes on meanwhile and after. What the peer then reads is what
/// the sends said went out (unix: all of it; tcp: the reset may drop the tail).
fn write_deadline(t: Transport, at: impl Fn() -> Instant + Send + Sync + 'static) {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = Engine::builder()
            .workers(1)
            .send_buffers(16, 64 * 1024)
            .sends_per_connection(8)
            .socket_buffers(Some(8192), None)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let flood = e
            .listen(&bind_endpoint(t, &dir), move |_| Flood {
                at: at(),
                gen: Gen::new(5),
                written: Sum::default(),
                events: tx.lock().unwrap().clone(),
            })
            .unwrap();
        let echo = e.listen(&bind_endpoint(t, &dir), |_| Echo::new()).unwrap();
        let mut c = connect(&connect_endpoint(&flood));
        let other = {
            let ep = connect_endpoint(&echo);
            thread::spawn(move || echo_client(&ep, 31, 2 * MIB))
        };
        let evs = one_closed(&rx);
        let (reason, written) = closed_reason(&evs);
        assert!(
            matches!(reason, CloseReason::TimedOut(Deadline::Write)),
            "{t:?}: {reason}: {evs:?}"
        );
        assert!(reason.to_string().contains("write deadline"), "{reason}");
        let fired = evs
            .iter()
            .position(|e| matches!(e, Ev::Deadline(Deadline::Write, true)))
            .unwrap_or_else(|| panic!("{t:?}: the write deadline fired: {evs:?}"));
        let mut timed_out = 0;
        for (i, ev) in evs.iter().enumerate() {
            match ev {
                Ev::Sent(Err(kind)) => {
                    assert_eq!(*kind, io::ErrorKind::TimedOut, "{t:?}: {evs:?}");
                    assert!(i > fired, "{t:?}: cut only by the deadline: {evs:?}");
                    timed_out += 1;
                }
                Ev::Sent(Ok(_)) | Ev::Open | Ev::Deadline(..) | Ev::Closed(..) => {}
                other => panic!("{t:?}: {other:?}"),
            }
        }
        assert!(
            timed_out >= 1,
            "{t:?}: queued sends came back timed out: {evs:?}"
        );
        other.join().expect("the echo beside the stalled one");
        // The worker goes on after it too.
        echo_client(&connect_endpoint(&echo), 32, MIB);
        // What the peer reads is a prefix of the stream, as long as the sends said.
        let mut got = Vec::new();
        let end = c.read_to_end(&mut got);
        let read = got.len() as u64;
        let mut want = vec![0u8; got.len()];
        Gen::new(5).fill(&mut want);
        assert!(
            got == want,
            "{t:?}: the {read} bytes read are the stream's first"
        );
        assert!(read <= written, "{t:?}: read {read} of {written} written");
        if t == Transport::Unix {
            end.expect("unix: the abort ends with EOF after the data");
            assert_eq!(read, written, "unix: every byte the sends said went out");
        }
        e.shutdown();
    });
}

#[test]
fn a_write_deadline_returns_the_sends_to_a_peer_that_does_not_read_unix() {
    write_deadline(Transport::Unix, || {
        Instant::now() + Duration::from_millis(300)
    });
}

#[test]
fn a_write_deadline_returns_the_sends_to_a_peer_that_does_not_read_tcp() {
    write_deadline(Transport::Tcp, || {
        Instant::now() + Duration::from_millis(300)
    });
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn a_write_deadline_returns_the_sends_to_a_peer_that_does_not_read_vsock() {
    util::require_vm();
    write_deadline(Transport::Vsock, || {
        Instant::now() + Duration::from_millis(300)
    });
}

/// A write deadline already past when the sends are queued (in `on_open`) fires too.
#[test]
fn a_write_deadline_in_the_past_fires_unix_and_tcp() {
    for t in [Transport::Unix, Transport::Tcp] {
        write_deadline(t, far_past);
    }
}

// ---- extended, cleared, past, far, paused, after EOF ----------------------------------------

/// `on_deadline` moves the deadline on twice, then leaves it cleared: the connection stays
/// and later echoes 1 MiB, checked, to a clean end.
#[test]
fn extending_the_deadline_from_on_deadline_keeps_the_connection_unix_and_tcp() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let plan = Plan::Extend {
                times: 3,
                step: SHORT,
            };
            let (e, ep, rx) = serve(t, &dir, plan);
            let c = connect(&ep);
            // The client sends nothing until the deadline has fired three times.
            let mut evs = Vec::new();
            while deadlines(&evs).len() < 3 {
                let (_, ev) = recv_or_hang(&rx, "the deadline firing three times");
                assert!(
                    !matches!(ev, Ev::Closed(..)),
                    "{t:?}: closed early: {evs:?}"
                );
                evs.push(ev);
            }
            echo_over(c, 41, MIB);
            evs.extend(one_closed(&rx));
            let (reason, got) = closed_reason(&evs);
            assert!(
                matches!(reason, CloseReason::Eof),
                "{t:?}: {reason}: {evs:?}"
            );
            assert_eq!(got, MIB, "{t:?}");
            assert_eq!(deadlines(&evs), [Deadline::Read; 3], "{t:?}: {evs:?}");
            e.shutdown();
        }
    });
}

/// Deadlines set, moved and cleared never fire: the connection is still there once their
/// time has passed, and echoes 1 MiB, checked.
#[test]
fn a_cleared_deadline_never_fires_unix_and_tcp() {
    each_transport(Plan::Cleared, |t, _, ep, rx| {
        let c = connect(ep);
        let mut evs = Vec::new();
        while !matches!(evs.last(), Some(Ev::Past)) {
            evs.push(recv_or_hang(rx, "the cleared deadlines' time passing").1);
        }
        echo_over(c, 42, MIB);
        evs.extend(one_closed(rx));
        let (reason, got) = closed_reason(&evs);
        assert!(
            matches!(reason, CloseReason::Eof),
            "{t:?}: {reason}: {evs:?}"
        );
        assert_eq!(got, MIB, "{t:?}");
        assert!(deadlines(&evs).is_empty(), "{t:?}: {evs:?}");
    });
}

/// A read deadline at the start of time fires after `on_open` returned (the handler checked
/// it was still set after the setter), and closes the connection gracefully: EOF.
#[test]
fn a_read_deadline_in_the_past_fires_after_the_setter_returns_unix_and_tcp() {
    each_transport(Plan::Past, |t, _, ep, rx| {
        let mut c = connect(ep);
        assert_eq!(read_to_end_checked(&mut c, b"").expect("EOF"), 0);
        let evs = one_closed(rx);
        assert!(matches!(evs[0], Ev::Open), "{t:?}: {evs:?}");
        assert_eq!(deadlines(&evs), [Deadline::Read], "{t:?}: {evs:?}");
        let (reason, _) = closed_reason(&evs);
        assert!(
            matches!(reason, CloseReason::TimedOut(Deadline::Read)),
            "{t:?}: {reason}"
        );
    });
}

/// Deadlines at the end of time (set on open and in every receive) neither fire nor
/// panic: the connection echoes 4 MiB, checked, and the worker serves a second one.
#[test]
fn far_future_deadlines_do_nothing_unix_and_tcp() {
    each_transport(Plan::FarFuture, |t, e, ep, rx| {
        echo_client(ep, 43, 4 * MIB);
        echo_client(ep, 44, MIB);
        for (id, evs) in until_closed(rx, 2) {
            let (reason, _) = closed_reason(&evs);
            assert!(matches!(reason, CloseReason::Eof), "{t:?} {id}: {reason}");
            assert!(deadlines(&evs).is_empty(), "{t:?} {id}: {evs:?}");
        }
        assert_eq!(e.stats().handler_panics, 0);
    });
}

/// A read deadline that passes while receiving is paused waits: it fires only after the
/// connection resumes (then closes it), never before.
#[test]
fn a_paused_receive_holds_the_read_deadline_until_resumed_unix_and_tcp() {
    each_transport(Plan::Paused, |t, _, ep, rx| {
        let mut c = connect(ep);
        assert_eq!(read_to_end_checked(&mut c, b"").expect("EOF"), 0);
        let evs = one_closed(rx);
        let resumed = evs.iter().position(|e| matches!(e, Ev::Resuming));
        let fired = evs.iter().position(|e| matches!(e, Ev::Deadline(..)));
        assert!(
            matches!((resumed, fired), (Some(r), Some(f)) if r < f),
            "{t:?}: resumed, then fired: {evs:?}"
        );
        let (reason, _) = closed_reason(&evs);
        assert!(
            matches!(reason, CloseReason::TimedOut(Deadline::Read)),
            "{t:?}: {reason}"
        );
    });
}

/// After the peer's EOF nothing more can come: a read deadline set then never fires; the
/// handler's own close ends the connection.
#[test]
fn a_read_deadline_after_the_peers_eof_never_fires_unix_and_tcp() {
    each_transport(Plan::AfterEof, |t, _, ep, rx| {
        let mut c = connect(ep);
        c.write_all(b"then EOF").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_to_end_checked(&mut c, b"then EOF").expect("EOF"), 8);
        let evs = one_closed(rx);
        assert!(
            evs.iter().any(|e| matches!(e, Ev::Past)),
            "{t:?}: the deadline's time passed before the close: {evs:?}"
        );
        assert!(deadlines(&evs).is_empty(), "{t:?}: {evs:?}");
        let (reason, got) = closed_reason(&evs);
        assert!(matches!(reason, CloseReason::Local), "{t:?}: {reason}");
        assert_eq!(got, 8);
    });
}

/// A write deadline that passes with no send queued waits for the next send (here one from
/// the connection's handle), then fires: it applies to sends, not to idle time.
#[test]
fn a_passed_write_deadline_fires_when_the_next_send_is_queued_unix_and_tcp() {
    each_transport(Plan::LateSend, |t, _, ep, rx| {
        let mut c = connect(ep);
        let mut hi = [0u8; 2];
        c.read_exact(&mut hi).expect("the first send");
        assert_eq!(&hi, b"hi");
        let evs = one_closed(rx);
        let at = |f: fn(&Ev) -> bool| evs.iter().position(f);
        let (sent, past, fired) = (
            at(|e| matches!(e, Ev::Sent(Ok(2)))),
            at(|e| matches!(e, Ev::Past)),
            at(|e| matches!(e, Ev::Deadline(Deadline::Write, true))),
        );
        assert!(
            matches!((sent, past, fired), (Some(s), Some(p), Some(f)) if s < p && p < f),
            "{t:?}: sent, the late send queued, then fired: {evs:?}"
        );
        let (reason, _) = closed_reason(&evs);
        assert!(
            matches!(reason, CloseReason::TimedOut(Deadline::Write)),
            "{t:?}: {reason}"
        );
        // The peer sees the end after at most the late bytes.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(b"late".starts_with(&rest), "{t:?}: {rest:?}");
    });
}

/// Read deadlines in the order connections open: the first `long`, every later one `short`;
/// logs opens, deadlines and closes. Echoes nothing (the clients send nothing, or only EOF).
struct Ordered {
    long: Duration,
    short: Duration,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    events: Events,
}

impl Handler for Ordered {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let n = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = if n == 0 { self.long } else { self.short };
        conn.set_read_deadline(Some(Instant::now() + d));
        let _ = self.events.send((conn.id(), Ev::Open));
    }

    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}

    fn on_deadline(&mut self, conn: &mut Conn<'_>, which: Deadline) {
        let _ = self.events.send((conn.id(), Ev::Deadline(which, true)));
        conn.close_timed_out(which);
    }

    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.events.send((conn.id(), Ev::Closed(reason.clone(), 0)));
    }
}

fn serve_ordered(
    t: Transport,
    dir: &TempDir,
    long: Duration,
    short: Duration,
) -> (Engine, Endpoint, Receiver) {
    let e = Engine::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let opened = std::sync::Arc::default();
    let local = e
        .listen(&bind_endpoint(t, dir), move |_| Ordered {
            long,
            short,
            opened: std::sync::Arc::clone(&opened),
            events: tx.lock().unwrap().clone(),
        })
        .unwrap();
    (e, connect_endpoint(&local), rx)
}

/// A worker asleep with only a 10 s deadline's ring timeout in the kernel wakes for a
/// 50 ms deadline set later on another connection (no other I/O on the worker): the second
/// connection is closed by its deadline first, the first one still open.
#[test]
fn an_earlier_deadline_set_later_wakes_a_sleeping_worker_unix_and_tcp() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            let (e, ep, rx) = serve_ordered(t, &dir, Duration::from_secs(10), SHORT);
            let _first = connect(&ep);
            let (first, ev) = recv_or_hang(&rx, "the first connection opens");
            assert!(matches!(ev, Ev::Open), "{t:?}: {ev:?}");
            let _second = connect(&ep);
            let (second, ev) = recv_or_hang(&rx, "the second connection opens");
            assert!(matches!(ev, Ev::Open), "{t:?}: {ev:?}");
            assert_ne!(first, second);
            let (id, ev) = recv_or_hang(&rx, "a deadline fires");
            assert_eq!(id, second, "{t:?}: the 50 ms deadline fires first: {ev:?}");
            assert!(
                matches!(ev, Ev::Deadline(Deadline::Read, _)),
                "{t:?}: {ev:?}"
            );
            let (id, ev) = recv_or_hang(&rx, "the second connection closes");
            assert_eq!(id, second, "{t:?}: {ev:?}");
            assert!(
                matches!(ev, Ev::Closed(CloseReason::TimedOut(Deadline::Read), _)),
                "{t:?}: {ev:?}"
            );
            e.shutdown();
        }
    });
}

/// A connection closed with a short deadline still set frees its slot; the next
/// connection takes the slot with a long deadline, and the old one's time passing does not
/// fire on it: it closes by its client's EOF, with no `on_deadline`.
#[test]
fn a_closed_connections_deadline_does_not_fire_on_its_reused_slot_unix_and_tcp() {
    util::fds_unchanged(|| {
        for t in [Transport::Unix, Transport::Tcp] {
            let dir = TempDir::new();
            // The first connection's deadline is the short one here: it closes first.
            let (e, ep, rx) = serve_ordered(t, &dir, SHORT, Duration::from_secs(3600));
            let first = connect(&ep);
            let (a, ev) = recv_or_hang(&rx, "the first connection opens");
            assert!(matches!(ev, Ev::Open), "{t:?}: {ev:?}");
            drop(first);
            let (id, ev) = recv_or_hang(&rx, "the first connection closes");
            assert_eq!(id, a);
            assert!(
                matches!(ev, Ev::Closed(CloseReason::Eof, _)),
                "{t:?}: closed by EOF before its deadline: {ev:?}"
            );
            let second = connect(&ep);
            let (b, ev) = recv_or_hang(&rx, "the second connection opens");
            assert!(matches!(ev, Ev::Open), "{t:?}: {ev:?}");
            assert_ne!(a, b);
            // Let the first connection's deadline pass (not a timed assertion: whatever the
            // delay, nothing may fire), then end the second.
            thread::sleep(SHORT * 4);
            drop(second);
            let (id, ev) = recv_or_hang(&rx, "the second connection closes");
            assert_eq!(id, b, "{t:?}: {ev:?}");
            assert!(
                matches!(ev, Ev::Closed(CloseReason::Eof, _)),
                "{t:?}: no deadline fired on the reused slot: {ev:?}"
            );
            e.shutdown();
        }
    });
}
