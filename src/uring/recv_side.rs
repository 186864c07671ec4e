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

    /// Buffers the connection may still take before its share is full (at least one).
    pub(crate) fn room(&self) -> u32 {
        self.limit.saturating_sub(self.held.get()).max(1)
    }

    /// Whether receiving is stopped for the share.
    pub(crate) fn throttled(&self) -> bool {
        self.throttled.get()
    }
}

/// The receive the kernel has for this connection.
pub(crate) enum Armed {
    /// A receive picking buffers from the worker's ring: multishot (one buffer per
    /// completion), or a single bundle receive (several).
    Ring,
    /// A single receive into this buffer of the connection's own (the ring was empty); the
    /// buffer stays here, untouched, until the receive's completion.
    Own(Box<[u8]>),
}

/// Which receive to submit.
pub(crate) enum Arm {
    /// A receive from the ring (multishot, or a single bundle receive).
    Ring,
    /// A receive into the connection's own buffer at `ptr`, `len` bytes (held in the state
    /// until the completion).
    Own { ptr: *mut u8, len: usize },
}

/// What a receive completion was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvEvent {
    /// `n` bytes arrived.
    Data(usize),
    /// The peer shut down its write side; `first`: not seen before.
    Eof { first: bool },
    /// The ring was empty (`ENOBUFS`); the receive ended and is re-armed.
    NoBuffers,
    /// The receive was cancelled (pause, share full, close).
    Cancelled,
    /// The receive failed with this errno: the connection closes.
    Failed(i32),
}

/// What follows a receive completion.
#[derive(Debug)]
pub(crate) struct RecvStep {
    pub(crate) event: RecvEvent,
    /// The completion filled the connection's share (counted once per throttle).
    pub(crate) share_filled: bool,
    /// Cancel the armed multishot receive (the share is full): once per receive.
    pub(crate) cancel: bool,
    /// The connection's own buffer, back from the kernel (it holds the `Data` bytes).
    pub(crate) own: Option<Box<[u8]>>,
    /// The receive is over (no `F_MORE`): arm the next one if [`RecvSide::arm`] allows.
    pub(crate) ended: bool,
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
    /// Ring receives are bundle receives (several buffers per completion).
    bundle: bool,
    /// A seqpacket connection: every receive is a single one of one message into one
    /// buffer, never multishot nor a bundle (either could hand over several messages'
    /// bytes without their boundaries), with `MSG_TRUNC` to learn the message's length.
    messages: bool,
    pub(crate) share: Rc<RecvShare>,
}

impl RecvSide {
    /// A receive side whose ring receives are bundle receives if `bundle`.
    pub(crate) fn new(share: Rc<RecvShare>, bundle: bool) -> RecvSide {
        RecvSide {
            armed: None,
            cancelling: false,
            paused: false,
            eof: false,
            closed: false,
            bundle,
            messages: false,
            share,
        }
    }

    /// The receive side of a seqpacket connection: one message per receive (no bundles).
    pub(crate) fn messages(mut self) -> RecvSide {
        self.messages = true;
        self.bundle = false;
        self
    }

    /// Whether receives are of one message each (a seqpacket connection).
    pub(crate) fn is_messages(&self) -> bool {
        self.messages
    }

    /// Whether ring receives are bundle receives: a completion's buffers are the ring entries
    /// from the one it names, and one without data took none.
    pub(crate) fn bundle(&self) -> bool {
        self.bundle
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

    /// Takes a completion of the armed receive: `res` and `more` (`IORING_CQE_F_MORE`) as the
    /// kernel gave them, and `ring_bufs`, how many ring buffers it handed over (the caller
    /// took them; each counts against the share, and goes back to it on drop).
    pub(crate) fn complete(&mut self, res: i32, more: bool, ring_bufs: u32) -> RecvStep {
        // A receive into the connection's own buffer gives it back with its completion.
        let own = if more { None } else { self.ended() };
        let given = ring_bufs + u32::from(own.is_some() && res > 0);
        let mut share_filled = false;
        for _ in 0..given {
            share_filled |= self.share.take();
        }
        // The connection holds its whole share: it stops receiving (alone) until it gives
        // half back; the rest waits in its socket.
        let cancel = share_filled && self.cancel_armed();
        let event = match res {
            0 => RecvEvent::Eof {
                first: !std::mem::replace(&mut self.eof, true),
            },
            n if n > 0 => RecvEvent::Data(n as usize),
            e if e == -libc::ENOBUFS => RecvEvent::NoBuffers,
            e if e == -libc::ECANCELED => RecvEvent::Cancelled,
            e => RecvEvent::Failed(-e),
        };
        RecvStep {
            event,
            share_filled,
            cancel,
            own,
            ended: !more,
        }
    }

    /// The receive's final completion is in: returns the connection's own buffer if it was
    /// a receive into one (the kernel is done with it).
    fn ended(&mut self) -> Option<Box<[u8]>> {
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

    /// Whether data may still come (so a read deadline applies): not paused by the handler,
    /// no EOF, not closed. A receive stopped for the share still waits.
    pub(crate) fn waits(&self) -> bool {
        !self.paused && !self.eof && !self.closed
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
#[path = "recv_side_model_tests.rs"]
mod model_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_mode_never_bundles() {
        let (r, _) = side(4);
        let r = RecvSide::new(Rc::clone(&r.share), true).messages();
        assert!(r.is_messages());
        assert!(!r.bundle(), "a bundle could merge messages");
    }

    fn side(limit: u32) -> (RecvSide, ResumeList) {
        let list: ResumeList = Rc::default();
        let share = RecvShare::new(limit, (7, 1), Rc::clone(&list));
        (RecvSide::new(share, false), list)
    }

    #[test]
    fn share_throttles_at_limit_and_resumes_at_half() {
        let (mut r, list) = side(4);
        assert!(matches!(r.arm(10, 64), Some(Arm::Ring)));
        for i in 1..=4 {
            let step = r.complete(64, true, 1);
            assert_eq!(step.share_filled, i == 4, "fills at the limit");
            assert_eq!(
                step.cancel,
                i == 4,
                "the multishot receive is cancelled at the limit"
            );
        }
        let late = r.complete(64, true, 1);
        assert!(
            !late.share_filled && !late.cancel,
            "a late buffer: already throttled, cancel once"
        );
        let end = r.complete(-libc::ECANCELED, false, 0);
        assert_eq!(end.event, RecvEvent::Cancelled);
        assert!(end.ended && end.own.is_none());
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
        let Some(Arm::Own { ptr, len }) = r.arm(0, 4096) else {
            panic!("expected an own-buffer receive");
        };
        assert_eq!(len, 4096);
        assert!(r.armed_own());
        assert!(r.arm(0, 4096).is_none(), "one receive at a time");
        let step = r.complete(100, false, 0);
        assert_eq!(step.event, RecvEvent::Data(100));
        let own = step
            .own
            .expect("the own buffer comes back with the completion");
        assert_eq!((own.as_ptr(), own.len()), (ptr.cast_const(), 4096));
        assert_eq!(
            r.share.held.get(),
            1,
            "the own buffer counts against the share"
        );
        assert!(!r.is_armed());
    }

    #[test]
    fn pause_eof_and_close_stop_arming() {
        let (mut r, _) = side(4);
        assert!(r.arm(1, 64).is_some());
        assert!(r.pause(), "armed: cancel");
        assert!(!r.pause(), "cancel only once");
        r.complete(-libc::ECANCELED, false, 0);
        assert!(r.arm(1, 64).is_none());
        r.resume();
        assert!(r.arm(1, 64).is_some());
        let eof = r.complete(0, false, 0);
        assert_eq!(eof.event, RecvEvent::Eof { first: true });
        assert!(r.arm(1, 64).is_none());
        assert!(!r.close(), "nothing armed: nothing to cancel");
    }
}
