//! One proxied connection: the accepted client and the target connection it dials on the
//! same worker, as two [`Side`] handlers sharing a [`Pair`].
//!
//! Each direction forwards the [`RecvBuf`]s it receives to the other connection as they are
//! (no copy). A buffer the other side's send queue refuses waits in the direction's backlog,
//! and the source's receiving pauses until the other side's `on_sent` drains it: per
//! direction, at most one connection's send queue and the few buffers received around the
//! pause are held, so a slow side never makes memory grow. EOF is passed on once the backlog
//! is out; a reset or failure on one side aborts the other, so neither peer mistakes a cut
//! stream for a whole one.
//!
//! While the target is being dialed the client is read as usual: what it sends waits in the
//! target's send queue (the engine queues sends to a connection until it opens, and the
//! backlog above bounds it), and its EOF, reset or close is seen at once. A client that is
//! gone both ways (it reset, or a unix client closed) before the target answered, having
//! sent nothing, ends the pair there: the dial is cancelled and its `--max-conns` slot
//! freed. One that sent something, or only shut its write side (tcp and vsock show a close
//! that way too), keeps its dial: what it sent, and its EOF, reach the target once
//! connected, and the answer may still reach it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uring_vsock::uring::{CloseReason, Conn, ConnId, Handler, RecvBuf, SendBuf};
use uring_vsock::Endpoint;

use super::live::Live;
use super::turned_away::TurnedAway;

/// The accepted side.
const CLIENT: usize = 0;
/// The dialed side.
const TARGET: usize = 1;
const NAMES: [&str; 2] = ["client", "target"];

/// What every connection of one proxy shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub target: Endpoint,
    pub connect_timeout: Duration,
    pub level: log::Level,
    pub max_conns: usize,
    pub live: Arc<Live>,
    /// SIGTERM came: new clients are turned away.
    pub draining: AtomicBool,
    /// The warning for turned-away clients, at most one line a second.
    pub turned_away: TurnedAway,
}

/// One direction: bytes from one side to the other.
#[derive(Default)]
struct Dir {
    /// Received, not yet taken by the other side's send queue.
    backlog: VecDeque<SendBuf>,
    /// The source's receiving is paused for the backlog.
    paused: bool,
    /// The source sent EOF.
    eof: bool,
    /// EOF was passed on (the other side's write side shut down).
    shut: bool,
    bytes: u64,
    /// Times the source's receiving was paused for the backlog (in the close line).
    pauses: u64,
}

/// A client and its target connection.
struct Pair {
    ids: [Option<ConnId>; 2],
    peer: Endpoint,
    /// `dirs[s]`: from side `s` to side `1 - s`.
    dirs: [Dir; 2],
    opened: [bool; 2],
    closed: [Option<CloseReason>; 2],
    started: Instant,
    shared: Arc<Shared>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shared.live.leave();
        let reason = |s: usize| {
            self.closed[s]
                .as_ref()
                .map_or_else(|| "not closed".to_owned(), ToString::to_string)
        };
        log::log!(
            self.shared.level,
            "{} -> {}: {} bytes up, {} bytes down, {:.3}s, paused {}/{}; client {}; target {}",
            self.peer,
            self.shared.target,
            self.dirs[CLIENT].bytes,
            self.dirs[TARGET].bytes,
            self.started.elapsed().as_secs_f64(),
            self.dirs[CLIENT].pauses,
            self.dirs[TARGET].pauses,
            reason(CLIENT),
            reason(TARGET),
        );
    }
}

/// The handler of either side of a [`Pair`]; `None` for a client turned away (draining,
/// over `--max-conns`), which is reset at once.
pub(super) struct Side {
    pair: Option<Rc<RefCell<Pair>>>,
    me: usize,
}

impl Side {
    /// The handler for a client from `peer`, or one that turns it away.
    pub(super) fn client(shared: &Arc<Shared>, peer: &Endpoint) -> Side {
        let refuse = if shared.draining.load(Ordering::Relaxed) {
            Some("draining")
        } else if !shared.live.try_enter(shared.max_conns) {
            Some("at --max-conns")
        } else {
            None
        };
        if let Some(why) = refuse {
            shared.turned_away.warn(peer, why);
            return Side {
                pair: None,
                me: CLIENT,
            };
        }
        let pair = Pair {
            ids: [None; 2],
            peer: peer.clone(),
            dirs: Default::default(),
            opened: [false; 2],
            closed: [None, None],
            started: Instant::now(),
            shared: Arc::clone(shared),
        };
        Side {
            pair: Some(Rc::new(RefCell::new(pair))),
            me: CLIENT,
        }
    }

    fn pair(&self) -> &Rc<RefCell<Pair>> {
        self.pair
            .as_ref()
            .expect("only a turned-away client has no pair")
    }

    /// Sends direction `d`'s backlog to its destination, pausing or resuming its source and
    /// passing EOF on as the backlog says. No borrow of the pair is held across `with_conn`
    /// (the other side's handler may run inside it).
    fn flush(&self, conn: &mut Conn<'_>, d: usize) {
        let pair = self.pair();
        let (src, dst) = {
            let p = pair.borrow();
            (p.ids[d], p.ids[1 - d])
        };
        let Some(dst) = dst else { return };
        loop {
            let Some(buf) = pair.borrow_mut().dirs[d].backlog.pop_front() else {
                break;
            };
            match conn.with_conn(dst, |c| c.send(buf)) {
                Some(Ok(())) => {}
                Some(Err(buf)) => {
                    pair.borrow_mut().dirs[d].backlog.push_front(buf);
                    break;
                }
                None => {
                    // The destination is gone; its on_close has dealt with the source.
                    pair.borrow_mut().dirs[d].backlog.clear();
                    return;
                }
            }
        }
        let (pending, paused, eof, shut) = {
            let p = pair.borrow();
            let dir = &p.dirs[d];
            (!dir.backlog.is_empty(), dir.paused, dir.eof, dir.shut)
        };
        let Some(src) = src else { return };
        if pending && !paused {
            let mut p = pair.borrow_mut();
            p.dirs[d].paused = true;
            p.dirs[d].pauses += 1;
            drop(p);
            conn.with_conn(src, |c| c.pause_recv());
        } else if !pending && paused {
            pair.borrow_mut().dirs[d].paused = false;
            if !eof {
                conn.with_conn(src, |c| c.resume_recv());
            }
        }
        if !pending && eof && !shut {
            pair.borrow_mut().dirs[d].shut = true;
            conn.with_conn(dst, |c| c.shutdown_write());
        }
    }
}

impl Handler for Side {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let Some(pair) = self.pair.clone() else {
            conn.abort();
            return;
        };
        let me = self.me;
        pair.borrow_mut().opened[me] = true;
        if me == TARGET {
            // What the client sent so far goes out now; its on_sent resumes the client if
            // the backlog paused it.
            log::debug!("{}: target connected", pair.borrow().peer);
            return;
        }
        let (target, timeout) = {
            let mut p = pair.borrow_mut();
            p.ids[CLIENT] = Some(conn.id());
            (p.shared.target.clone(), p.shared.connect_timeout)
        };
        let side = Side {
            pair: Some(Rc::clone(&pair)),
            me: TARGET,
        };
        log::debug!("{}: dialing {target}", conn.peer());
        match conn.connect(&target, Some(timeout), side) {
            Ok(id) => pair.borrow_mut().ids[TARGET] = Some(id),
            Err(e) => {
                log::warn!("{}: {e}", conn.peer());
                pair.borrow_mut().closed[TARGET] = Some(CloseReason::Error(Arc::new(e)));
                // As for a refused target: a reset, so the client can tell it from an answer.
                conn.abort();
            }
        }
    }

    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let Some(pair) = &self.pair else { return };
        {
            let mut p = pair.borrow_mut();
            let dir = &mut p.dirs[self.me];
            dir.bytes += buf.len() as u64;
            dir.backlog.push_back(buf.into());
        }
        self.flush(conn, self.me);
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, _res: std::io::Result<usize>) {
        // A failed send closes this connection; its on_close tells the other side.
        if self.pair.is_some() {
            self.flush(conn, 1 - self.me);
        }
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        let Some(pair) = &self.pair else { return };
        let (waiting, sent) = {
            let p = pair.borrow();
            (!p.opened[TARGET], p.dirs[CLIENT].bytes)
        };
        if self.me == CLIENT && waiting && sent == 0 && conn.peer_hung_up() {
            // Gone before the target answered, with nothing for it: its on_close aborts
            // the dial (see the module docs).
            log::log!(
                pair.borrow().shared.level,
                "{}: client gone before the target answered: dial cancelled",
                conn.peer()
            );
            conn.abort();
            return;
        }
        log::debug!("{} {}: EOF", pair.borrow().peer, NAMES[self.me]);
        pair.borrow_mut().dirs[self.me].eof = true;
        self.flush(conn, self.me);
    }

    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        let Some(pair) = &self.pair else { return };
        let me = self.me;
        let (other, other_open, opened) = {
            let mut p = pair.borrow_mut();
            p.closed[me] = Some(reason.clone());
            // What is still held for or from this side is of no use now.
            if !reason.is_clean() {
                p.dirs[0].backlog.clear();
                p.dirs[1].backlog.clear();
            }
            (p.ids[1 - me], p.closed[1 - me].is_none(), p.opened[me])
        };
        log::debug!("{} {}: {reason}", pair.borrow().peer, NAMES[me]);
        // A dial the client's end cut short (aborted) is no failure of the target's.
        if me == TARGET && !opened && !matches!(reason, CloseReason::Aborted) {
            log::warn!("{}: {reason}", pair.borrow().peer);
        }
        let Some(other) = other.filter(|_| other_open) else {
            return;
        };
        if me == TARGET && !opened {
            // The target refused (or timed out): the client is reset at once (what it sent
            // is dropped), so it can tell "no backend" from a backend that said nothing and
            // closed (on vsock, which has no reset, it reads EOF either way).
            conn.with_conn(other, |c| c.abort());
        } else if !reason.is_clean() {
            conn.with_conn(other, |c| c.abort());
        }
    }
}
