//! A connection's receive direction as a state machine, and its share of the worker's
//! receive buffers.
//!
//! Fairness: every connection of a worker receives into the same provided-buffer ring, and
//! a handler may keep what it received (an echo waiting for its peer to read, say). So each
//! connection may hold at most `limit` received buffers at once ([`RecvShare`]): when it
//! reaches that, its receive is stopped (for it alone; the rest stays in its socket) and
//! re-armed once it has given back half. And when the ring is empty anyway (many connections
//! each holding their share), a receive goes into a buffer of its own instead of waiting for
//! the ring, so no connection ever waits on what others hold.
//!
//! The state machine does no I/O: [`RecvSide::arm`] says which receive to submit, the
//! completion methods say what follows.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Connections whose share freed up, to re-arm: (slot, generation).
pub(crate) type ResumeList = Rc<RefCell<Vec<(u32, u32)>>>;

/// The received buffers one connection holds, and its limit. Shared by the connection and
/// every buffer it was given; a buffer's drop gives its place back.
pub(crate) struct RecvShare {
    held: Cell<u32>,
    limit: u32,
    /// Receiving stopped because `held` reached `limit`.
    throttled: Cell<bool>,
    slot: (u32, u32),
    resume: ResumeList,
}

impl RecvShare {
    pub(crate) fn new(limit: u32, slot: (u32, u32), resume: ResumeList) -> Rc<RecvShare> {
        Rc::new(RecvShare {
            held: Cell::new(0),
            limit: limit.max(1),
            throttled: Cell::new(false),
            slot,
            resume,
        })
    }

    /// A buffer was given to the connection; returns whether that filled its share (it
    /// must stop receiving now).
    pub(crate) fn take(&self) -> bool {
        let held = self.held.get() + 1;
        self.held.set(held);
        let fills = held >= self.limit && !self.throttled.get();
        if fills {
            self.throttled.set(true);
        }
        fills
    }

    /// A buffer came back. Once half the share is free again, the connection is listed to
    /// receive again (half, so a connection near its limit is not stopped and re-armed for
    /// every buffer).
    pub(crate) fn give_back(&self) {
        let held = self.held.get().saturating_sub(1);
        self.held.set(held);
        if self.throttled.get() && held <= self.limit / 2 {
            self.throttled.set(false);
            self.resume.borrow_mut().push(self.slot);
        }
    }

    /// Whether receiving is stopped for the share.
    pub(crate) fn throttled(&self) -> bool {
        self.throttled.get()
    }
}

/// The receive the kernel has for this connection.
pub(crate) enum Armed {
    /// A multishot receive picking buffers from the worker's ring.
    Ring,
    /// A single receive into this buffer of the connection's own (the ring was empty); the
    /// buffer stays here, untouched, until the receive's completion.
    Own(Box<[u8]>),
}

/// Which receive to submit.
pub(crate) enum Arm {
    /// A multishot receive from the ring.
    Ring,
    /// A receive into the connection's own buffer at `ptr`, `len` bytes (held in the state
    /// until the completion).
    Own { ptr: *mut u8, len: usize },
}

/// The receive direction of one connection.
pub(crate) struct RecvSide {
    armed: Option<Armed>,
    /// A cancel of the armed receive has been submitted.
    cancelling: bool,
    /// The handler paused receiving.
    paused: bool,
    /// The peer shut down its write side.
    eof: bool,
    /// Receiving is over for good (closing).
    closed: bool,
    pub(crate) share: Rc<RecvShare>,
}

impl RecvSide {
    pub(crate) fn new(share: Rc<RecvShare>) -> RecvSide {
        RecvSide {
            armed: None,
            cancelling: false,
            paused: false,
            eof: false,
            closed: false,
            share,
        }
    }

    /// Whether a receive is in the kernel.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Whether the peer's EOF has been seen.
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// The receive to submit now, if one should be: none while one is in the kernel, paused,
    /// throttled, after EOF or when closing. `ring_free` is how many buffers the ring has;
    /// with none, the receive goes into a new buffer of `own_size` bytes.
    pub(crate) fn arm(&mut self, ring_free: u32, own_size: usize) -> Option<Arm> {
        if self.armed.is_some() || self.paused || self.eof || self.closed || self.share.throttled()
        {
            return None;
        }
        self.cancelling = false;
        if ring_free > 0 {
            self.armed = Some(Armed::Ring);
            return Some(Arm::Ring);
        }
        let mut own = vec![0u8; own_size.max(1)].into_boxed_slice();
        let (ptr, len) = (own.as_mut_ptr(), own.len());
        self.armed = Some(Armed::Own(own));
        Some(Arm::Own { ptr, len })
    }

    /// Whether the receive in the kernel must be cancelled to stop receiving (once per
    /// receive; a single receive into an own buffer ends by itself).
    pub(crate) fn cancel_armed(&mut self) -> bool {
        matches!(self.armed, Some(Armed::Ring)) && !std::mem::replace(&mut self.cancelling, true)
    }

    /// The receive's final completion is in: returns the connection's own buffer if it was
    /// a receive into one (the kernel is done with it).
    pub(crate) fn ended(&mut self) -> Option<Box<[u8]>> {
        self.cancelling = false;
        match self.armed.take() {
            Some(Armed::Own(b)) => Some(b),
            _ => None,
        }
    }

    /// Whether the receive in the kernel writes into the connection's own buffer.
    #[cfg(test)]
    pub(crate) fn armed_own(&self) -> bool {
        matches!(self.armed, Some(Armed::Own(_)))
    }

    /// The peer's EOF: no receive after it.
    pub(crate) fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Pauses receiving; returns whether the receive in the kernel must be cancelled.
    pub(crate) fn pause(&mut self) -> bool {
        self.paused = true;
        self.want_cancel()
    }

    /// Resumes after [`pause`](Self::pause).
    pub(crate) fn resume(&mut self) {
        self.paused = false;
    }

    /// No more receiving (closing); returns whether the receive in the kernel must be
    /// cancelled.
    pub(crate) fn close(&mut self) -> bool {
        self.closed = true;
        self.want_cancel()
    }

    fn want_cancel(&mut self) -> bool {
        self.armed.is_some() && !std::mem::replace(&mut self.cancelling, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(limit: u32) -> (RecvSide, ResumeList) {
        let list: ResumeList = Rc::default();
        let share = RecvShare::new(limit, (7, 1), Rc::clone(&list));
        (RecvSide::new(share), list)
    }

    #[test]
    fn share_throttles_at_limit_and_resumes_at_half() {
        let (mut r, list) = side(4);
        assert!(matches!(r.arm(10, 64), Some(Arm::Ring)));
        for i in 1..=4 {
            assert_eq!(r.share.take(), i == 4, "fills at the limit");
        }
        assert!(r.cancel_armed(), "the multishot receive is cancelled");
        assert!(!r.share.take(), "a late buffer: already throttled");
        assert!(!r.cancel_armed(), "cancel only once");
        assert!(r.ended().is_none());
        assert!(r.arm(10, 64).is_none(), "throttled: no receive");
        for _ in 0..2 {
            r.share.give_back();
        }
        assert!(list.borrow().is_empty(), "5 -> 3 held: above half of 4");
        r.share.give_back();
        assert_eq!(*list.borrow(), vec![(7, 1)], "listed once at half");
        assert!(matches!(r.arm(10, 64), Some(Arm::Ring)));
    }

    #[test]
    fn an_empty_ring_arms_a_receive_into_an_own_buffer() {
        let (mut r, _) = side(4);
        let Some(Arm::Own { len, .. }) = r.arm(0, 4096) else {
            panic!("expected an own-buffer receive");
        };
        assert_eq!(len, 4096);
        assert!(r.armed_own());
        assert!(r.arm(0, 4096).is_none(), "one receive at a time");
        assert_eq!(r.ended().map(|b| b.len()), Some(4096));
        assert!(!r.is_armed());
    }

    #[test]
    fn pause_eof_and_close_stop_arming() {
        let (mut r, _) = side(4);
        assert!(r.arm(1, 64).is_some());
        assert!(r.pause(), "armed: cancel");
        assert!(!r.pause(), "cancel only once");
        r.ended();
        assert!(r.arm(1, 64).is_none());
        r.resume();
        assert!(r.arm(1, 64).is_some());
        r.ended();
        r.set_eof();
        assert!(r.arm(1, 64).is_none());
        assert!(!r.close(), "nothing armed: nothing to cancel");
    }
}
