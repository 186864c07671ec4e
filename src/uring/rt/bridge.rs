//! The bridge between the callback core and an [`AsyncConn`](super::AsyncConn): a
//! [`Handler`] that puts each completion into the connection's shared state and wakes the
//! task waiting for it, and the requests (sends, shutdown, close, abort) that the state
//! hands to the core when the executor flushes it, or from the handler's own calls.
//!
//! Received buffers wait in a queue. They count against the connection's receive share, as
//! any buffer a handler keeps does, so the engine stops receiving for a connection whose
//! task does not read: the queue holds at most the share.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use super::super::buf_ring::RecvBuf;
use super::super::conn::{CloseReason, ConnId};
use super::super::core::{Conn, Core, Handler};
use super::super::send_buf::SendBuf;
use super::executor::{self, Flush};
use super::AsyncConn;

/// An `AsyncConn`'s state, shared by its handler (the core's side) and its futures.
pub(crate) struct ConnShared {
    pub(crate) id: Cell<Option<ConnId>>,
    pub(crate) st: RefCell<State>,
}

/// Requests asked for and not yet handed to the core.
#[derive(Default)]
pub(crate) struct Want {
    pub(crate) shutdown: bool,
    pub(crate) close: bool,
    pub(crate) abort: bool,
}

pub(crate) struct State {
    pub(crate) recv_q: VecDeque<RecvBuf>,
    /// The peer shut down its write side.
    pub(crate) eof: bool,
    pub(crate) closed: Option<CloseReason>,
    pub(crate) recv_waker: Option<Waker>,
    /// Sends waiting for room in the core's send queue, in order, with their numbers.
    pub(crate) outbox: VecDeque<(u64, SendBuf)>,
    /// Numbers of the sends the core has, in order (its `on_sent`s come in that order).
    pub(crate) in_core: VecDeque<u64>,
    /// Finished sends whose futures have not taken them yet.
    pub(crate) done: VecDeque<(u64, io::Result<usize>, SendBuf)>,
    /// Sends whose futures were dropped: their buffers are dropped when they finish.
    pub(crate) abandoned: Vec<u64>,
    pub(crate) send_wakers: Vec<(u64, Waker)>,
    pub(crate) next_seq: u64,
    pub(crate) want: Want,
    /// Asked for already: shutdown, close, abort (each handed to the core once).
    pub(crate) asked: Want,
    /// Our write side is shut (all sends out, FIN sent).
    pub(crate) shut: bool,
    /// Tasks waiting for `shut` or `closed`.
    pub(crate) state_wakers: Vec<Waker>,
    /// In the executor's list of connections to flush.
    pub(crate) dirty: bool,
    pub(crate) read_deadline: Option<Instant>,
    pub(crate) write_deadline: Option<Instant>,
    /// The write deadline passed with sends unfinished: the connection was aborted.
    pub(crate) write_timed_out: bool,
}

impl ConnShared {
    pub(crate) fn new() -> Rc<ConnShared> {
        Rc::new(ConnShared {
            id: Cell::new(None),
            st: RefCell::new(State {
                recv_q: VecDeque::with_capacity(16),
                eof: false,
                closed: None,
                recv_waker: None,
                outbox: VecDeque::with_capacity(16),
                in_core: VecDeque::with_capacity(16),
                done: VecDeque::with_capacity(16),
                abandoned: Vec::with_capacity(4),
                send_wakers: Vec::with_capacity(4),
                next_seq: 0,
                want: Want::default(),
                asked: Want::default(),
                shut: false,
                state_wakers: Vec::with_capacity(2),
                dirty: false,
                read_deadline: None,
                write_deadline: None,
                write_timed_out: false,
            }),
        })
    }

    /// Queues this connection for the executor's next flush (once).
    pub(crate) fn mark_dirty(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.dirty {
                return;
            }
            st.dirty = true;
        }
        match executor::current() {
            Some(ex) => ex.mark_dirty(Rc::clone(self) as Rc<dyn Flush>),
            None => self.st.borrow_mut().dirty = false,
        }
    }

    /// Hands what is asked to the core, in order: sends while there is room, then the
    /// shutdown or close once every send is with the core; an abort at once.
    pub(crate) fn flush_conn(&self, conn: &mut Conn<'_>) {
        let mut wake = Vec::new();
        {
            let mut st = self.st.borrow_mut();
            if st.want.abort && !st.asked.abort {
                st.asked.abort = true;
                st.fail_outbox(&CloseReason::Aborted, &mut wake);
                drop(st);
                conn.abort();
                return;
            }
            while let Some((seq, buf)) = st.outbox.pop_front() {
                match conn.send(buf) {
                    Ok(()) => st.in_core.push_back(seq),
                    Err(buf) => {
                        let full = conn.sends_queued() >= conn.core.cfg.sends_per_conn;
                        if full {
                            // on_sent flushes again once a send is out.
                            st.outbox.push_front((seq, buf));
                        } else {
                            let err = io::Error::new(
                                io::ErrorKind::NotConnected,
                                "send: the connection is closing or its write side is shut",
                            );
                            wake.extend(st.complete(seq, Err(err), buf));
                        }
                        break;
                    }
                }
            }
            if st.outbox.is_empty() {
                if st.want.close && !st.asked.close {
                    st.asked.close = true;
                    drop(st);
                    conn.close();
                } else if st.want.shutdown && !st.asked.shutdown {
                    st.asked.shutdown = true;
                    drop(st);
                    conn.shutdown_write();
                }
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Flush for ConnShared {
    fn flush(&self, core: &mut Core) {
        self.st.borrow_mut().dirty = false;
        let Some(id) = self.id.get() else { return };
        let index = id.index;
        // The slot must still be this connection (slots are reused; the generation says).
        if core.conn_mut(index).is_none() || core.gen(index) != id.gen {
            let mut wake = Vec::new();
            let mut st = self.st.borrow_mut();
            let reason = st.closed.clone().unwrap_or(CloseReason::Local);
            st.fail_outbox(&reason, &mut wake);
            drop(st);
            wake.into_iter().for_each(Waker::wake);
            return;
        }
        self.flush_conn(&mut Conn { core, index });
        // As after a handle's request: deliver what is due, end the connection if done.
        core.maybe_finish(index);
    }
}

impl State {
    /// A send finished: its future gets the result, or (dropped) its buffer is dropped.
    /// Returns the waker to wake (after the state is released).
    pub(crate) fn complete(
        &mut self,
        seq: u64,
        res: io::Result<usize>,
        buf: SendBuf,
    ) -> Option<Waker> {
        if let Some(i) = self.abandoned.iter().position(|&s| s == seq) {
            self.abandoned.swap_remove(i);
            return None;
        }
        self.done.push_back((seq, res, buf));
        let i = self.send_wakers.iter().position(|(s, _)| *s == seq)?;
        Some(self.send_wakers.swap_remove(i).1)
    }

    /// Sends the core never got end with the connection.
    fn fail_outbox(&mut self, reason: &CloseReason, wake: &mut Vec<Waker>) {
        while let Some((seq, buf)) = self.outbox.pop_front() {
            let res = Err(close_error("send", reason));
            wake.extend(self.complete(seq, res, buf));
        }
    }

    fn wake_all(&mut self, wake: &mut Vec<Waker>) {
        wake.extend(self.recv_waker.take());
        wake.append(&mut self.state_wakers);
        wake.extend(self.send_wakers.drain(..).map(|(_, w)| w));
    }
}

/// The `io::Error` an operation gets on a connection that ended with `reason`.
pub(crate) fn close_error(op: &str, reason: &CloseReason) -> io::Error {
    let kind = match reason {
        CloseReason::Reset => io::ErrorKind::ConnectionReset,
        CloseReason::Aborted => io::ErrorKind::ConnectionAborted,
        CloseReason::TimedOut(_) => io::ErrorKind::TimedOut,
        CloseReason::Error(e) => e.kind(),
        _ => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, format!("{op}: connection {reason}"))
}

/// What a connection does when it opens: serve it with a new task.
pub(crate) type Start = Box<dyn FnOnce(AsyncConn)>;

/// The handler of an `AsyncConn`'s connection.
pub(crate) struct Bridge {
    shared: Rc<ConnShared>,
    start: Option<Start>,
}

impl Bridge {
    /// A connection served by the task `serve` makes (spawned when it opens).
    pub(crate) fn serving<F, Fut>(serve: Arc<F>) -> Bridge
    where
        F: Fn(AsyncConn) -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        Bridge {
            shared: ConnShared::new(),
            start: Some(Box::new(move |conn| {
                if let Err(e) = executor::spawn_local(serve(conn)) {
                    log::warn!("uring-vsock: serving a connection: {e}");
                }
            })),
        }
    }

    /// An outgoing connection, whose task awaits its opening.
    pub(crate) fn client(shared: Rc<ConnShared>) -> Bridge {
        Bridge {
            shared,
            start: None,
        }
    }

    fn wake(&self, f: impl FnOnce(&mut State, &mut Vec<Waker>)) {
        let mut wake = Vec::new();
        f(&mut self.shared.st.borrow_mut(), &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Handler for Bridge {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.shared.id.set(Some(conn.id()));
        if let Some(start) = self.start.take() {
            let peer = conn.peer().clone();
            start(AsyncConn::new(Rc::clone(&self.shared), conn.id(), peer));
        }
        // A connecting task waits for this; one that gave up left the connection to abort.
        self.wake(|st, wake| wake.append(&mut st.state_wakers));
        let orphaned = {
            let mut st = self.shared.st.borrow_mut();
            let orphaned = st.want.abort && !st.asked.abort;
            st.asked.abort |= orphaned;
            orphaned
        };
        if orphaned {
            conn.abort();
        }
    }

    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        let mut st = self.shared.st.borrow_mut();
        st.recv_q.push_back(buf);
        let w = st.recv_waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        let mut st = self.shared.st.borrow_mut();
        let waker = st
            .in_core
            .pop_front()
            .and_then(|seq| st.complete(seq, res, buf));
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        // A send is out, so there is room for the next.
        self.shared.flush_conn(conn);
    }

    fn on_peer_shutdown(&mut self, _conn: &mut Conn<'_>) {
        // Not the default (shut our side too): the task decides, with `shutdown_write`.
        self.wake(|st, wake| {
            st.eof = true;
            wake.extend(st.recv_waker.take());
        });
    }

    fn on_shutdown(&mut self, _conn: &mut Conn<'_>) {
        self.wake(|st, wake| {
            st.shut = true;
            wake.append(&mut st.state_wakers);
        });
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        self.wake(|st, wake| {
            st.closed = Some(reason.clone());
            st.fail_outbox(reason, wake);
            st.wake_all(wake);
        });
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Without `on_close` only after a panic in a handler call (or the task's start).
        if let Ok(mut st) = self.shared.st.try_borrow_mut() {
            if st.closed.is_none() {
                let mut wake = Vec::new();
                st.closed = Some(CloseReason::Panicked);
                st.fail_outbox(&CloseReason::Panicked, &mut wake);
                st.wake_all(&mut wake);
                drop(st);
                wake.into_iter().for_each(Waker::wake);
            }
        }
    }
}
