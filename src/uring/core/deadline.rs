//! Connection deadlines for the callback API: each connection's read and write deadline,
//! when the worker next looks at them (one [`DeadlineHeap`](super::deadline_heap) entry per
//! connection), firing them into [`Handler::on_deadline`](super::Handler::on_deadline), and
//! the worker's [`RingTimer`](super::ring_timer::RingTimer), armed each turn for the
//! earliest of every timer on the worker.
//!
//! Moving a deadline is lazy: a connection's heap entry is only ever moved earlier. A later
//! deadline (an idle deadline pushed on in every `on_recv`) leaves the entry where it is;
//! when that comes due the deadlines are looked at, and what is still ahead gets the entry
//! again. So a moved deadline costs a store, no allocation and no SQE.

use std::io;
use std::time::Instant;

use super::super::conn::{CloseReason, Deadline};
use super::super::send_queue::partial_error;
use super::{ConnState, Core};

/// A connection's deadlines, as its handler set them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deadlines {
    pub(crate) read: Option<Instant>,
    pub(crate) write: Option<Instant>,
}

impl ConnState {
    /// Whether the connection waits for data (so its read deadline applies): open, its
    /// receiving neither paused by the handler nor ended (EOF, closing). A receive stopped
    /// for the connection's buffer share still waits.
    fn waits_for_data(&self) -> bool {
        self.opened
            && self.connecting.is_none()
            && self.closing.is_none()
            && self.close_when_flushed.is_none()
            && self.recv.waits()
    }

    /// Whether sends are queued or in flight (so its write deadline applies), on an open
    /// connection not closing already (a graceful close that still sends counts).
    fn waits_to_send(&self) -> bool {
        self.opened && self.connecting.is_none() && self.closing.is_none() && self.send.len() > 0
    }
}

impl Core {
    pub(crate) fn deadline(&self, index: u32, which: Deadline) -> Option<Instant> {
        let d = &self.conn(index).deadlines;
        match which {
            Deadline::Read => d.read,
            Deadline::Write => d.write,
        }
    }

    /// Sets or clears a deadline. A clear or a later time touches only the connection; an
    /// earlier one moves its heap entry.
    pub(crate) fn set_deadline(&mut self, index: u32, which: Deadline, at: Option<Instant>) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        match which {
            Deadline::Read => c.deadlines.read = at,
            Deadline::Write => c.deadlines.write = at,
        }
        if let Some(at) = at {
            self.deadline_heap.due_by(index, at);
        }
    }

    /// The connection may wait for data again (resumed): a read deadline that passed while
    /// it did not is looked at on the next turn.
    pub(super) fn recheck_read_deadline(&mut self, index: u32) {
        if let Some(at) = self.conn_mut(index).and_then(|c| c.deadlines.read) {
            self.deadline_heap.due_by(index, at);
        }
    }

    /// [`recheck_read_deadline`](Self::recheck_read_deadline) with the connection's
    /// deadline in hand (no second slot lookup when none is set).
    pub(super) fn recheck_read_deadline_at(&mut self, index: u32, at: Option<Instant>) {
        if let Some(at) = at {
            self.deadline_heap.due_by(index, at);
        }
    }

    /// A send was queued: a write deadline that passed while none was is looked at on the
    /// next turn. `at`: the connection's write deadline, read by the caller from the
    /// connection in hand (with none set this is a branch; with an entry due by then
    /// already, as in steady state, a comparison).
    pub(super) fn recheck_write_deadline(&mut self, index: u32, at: Option<Instant>) {
        if let Some(at) = at {
            self.deadline_heap.due_by(index, at);
        }
    }

    /// The connection opened: deadlines set before (or passed while connecting) apply now.
    pub(super) fn recheck_deadlines(&mut self, index: u32) {
        let write = self.conn_mut(index).and_then(|c| c.deadlines.write);
        self.recheck_read_deadline(index);
        self.recheck_write_deadline(index, write);
    }

    /// Fires the deadlines that are due: the connections whose heap entries were due when
    /// this call read the clock get `on_deadline` for each deadline that had passed by then
    /// and applies. Entries added or moved during the calls (a handler setting a deadline in
    /// the past, or one passed since the clock was read) wait for the next turn. Returns
    /// whether any came due.
    pub(crate) fn fire_deadlines(&mut self) -> bool {
        if self.deadline_heap.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut due = std::mem::take(&mut self.due_scratch);
        while let Some((at, index)) = self.deadline_heap.peek() {
            if at > now {
                break;
            }
            self.deadline_heap.pop();
            due.push((index, self.gen(index)));
        }
        let any = !due.is_empty();
        for &(index, gen) in &due {
            // A handler call before may have closed this one and reused its slot.
            if self.gen(index) == gen {
                self.fire_deadlines_of(index, now);
            }
        }
        due.clear();
        self.due_scratch = due;
        any
    }

    fn fire_deadlines_of(&mut self, index: u32, now: Instant) {
        for which in [Deadline::Write, Deadline::Read] {
            let Some(c) = self.conn_mut(index) else {
                return;
            };
            let (at, applies) = match which {
                Deadline::Read => (c.deadlines.read, c.waits_for_data()),
                Deadline::Write => (c.deadlines.write, c.waits_to_send()),
            };
            if applies && at.is_some_and(|at| at <= now) {
                // Cleared first: it fires once; the handler sets a new one to extend it.
                match which {
                    Deadline::Read => c.deadlines.read = None,
                    Deadline::Write => c.deadlines.write = None,
                }
                self.call(index, |h, conn| h.on_deadline(conn, which));
            }
        }
        // What is still ahead gets the entry back; one that passed while it did not apply
        // waits for the connection to resume receiving or queue a send.
        if let Some(c) = self.conn_mut(index) {
            let d = c.deadlines;
            if let Some(next) = [d.read, d.write]
                .into_iter()
                .flatten()
                .filter(|&at| at > now)
                .min()
            {
                self.deadline_heap.due_by(index, next);
            }
        }
        self.maybe_finish(index);
    }

    /// Closes a connection for a passed deadline ([`Conn::close_timed_out`]).
    ///
    /// [`Conn::close_timed_out`]: super::Conn::close_timed_out
    pub(crate) fn close_timed_out(&mut self, index: u32, which: Deadline) {
        let reason = CloseReason::TimedOut(which);
        match which {
            Deadline::Read => self.close_gracefully_for(index, reason),
            Deadline::Write => {
                if let Some(c) = self.conn_mut(index) {
                    if c.closing.is_some() {
                        return;
                    }
                    c.abort = true;
                }
                self.begin_close(index, reason);
            }
        }
    }

    /// Arms the worker's ring timeout for the earliest timer (the executor's wants are in
    /// already); while stopping, cancels the ring timeouts in flight instead. Returns
    /// whether it staged anything.
    pub(crate) fn arm_timer(&mut self) -> bool {
        if self.stopping {
            return self.ring_timer.cancel_all(&mut self.sub);
        }
        if let Some((at, _)) = self.deadline_heap.peek() {
            self.ring_timer.want(at);
        }
        self.ring_timer.arm(&mut self.sub)
    }

    /// A completion with a `user_data` no op has: frees its ring timeout's slot when it is
    /// one (see [`RingTimer::completed`]).
    ///
    /// [`RingTimer::completed`]: super::ring_timer::RingTimer::completed
    pub(crate) fn ring_timer_completed(&mut self, user_data: u64) {
        self.ring_timer.completed(user_data);
    }

    /// Asks the ring timer to wake the worker at `at` (the executor's earliest sleep).
    pub(crate) fn wake_at(&mut self, at: Instant) {
        self.ring_timer.want(at);
    }

    /// Cancels the ring timeouts in flight (the executor is stopping).
    pub(crate) fn cancel_ring_timers(&mut self) {
        let _ = self.ring_timer.cancel_all(&mut self.sub);
    }
}

/// Whether a connection closes for its write deadline (its sends come back saying so).
pub(super) fn write_timed_out(closing: Option<&CloseReason>) -> bool {
    matches!(closing, Some(CloseReason::TimedOut(Deadline::Write)))
}

/// The error a send comes back with when the write deadline closed its connection: kind
/// `TimedOut`, with how much of it went out (`sent` of `len` bytes, a [`PartialSend`]).
///
/// [`PartialSend`]: super::super::send_queue::PartialSend
pub(super) fn send_timed_out(sent: usize, len: usize) -> io::Error {
    let e = io::Error::new(
        io::ErrorKind::TimedOut,
        "send: the write deadline passed (the connection was aborted)",
    );
    partial_error(e, sent, len)
}
