//! [`RingTimer`]: the worker's ring timeouts, shared by everything on the worker that waits
//! for a point in time (the executor's sleeps, the connections' deadlines). During a turn
//! each says when it next needs the worker ([`RingTimer::want`]); at the end of the turn an
//! `IORING_OP_TIMEOUT` is armed for the earliest, unless one in flight fires by then, so a
//! worker asleep in the kernel wakes for it. Several can be in flight: an earlier want never
//! waits behind a later timeout (it gets one of its own).
//!
//! Each timeout's `user_data` is kind byte 0xEE (which `Op::decode` does not know) and its
//! slot in the pool; its completion frees the slot and does nothing else: whoever waits
//! reads the clock each turn instead.

use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::super::op::{Kind, Op};
use super::super::submit::Submission;

/// The kind byte of the ring timeouts' `user_data`.
const KIND: u64 = 0xEE;

/// The longest a ring timeout waits: a due time further out (up to `Instant`'s end of time)
/// is waited for in steps of this, so no duration or timespec arithmetic overflows.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Timeouts in flight (not being cancelled) at most: arming past this cancels the one that
/// fires last, so ever earlier wants cannot grow the pool without bound.
const MAX_LIVE: usize = 4;

/// One ring timeout's place in the pool.
struct Slot {
    /// The timeout's duration, read by the kernel through the SQE's pointer (boxed: it stays
    /// put while the pool grows).
    ts: Box<types::Timespec>,
    /// When the timeout fires (as of staging); `None`: the slot is free.
    fires: Option<Instant>,
    /// A cancel for it is staged: it no longer counts as a wake-up.
    cancelled: bool,
}

/// The worker's ring timeouts: a pool of slots reused across turns (no allocation in
/// steady state), one per timeout until its completion.
///
/// Soundness: the kernel reads a timeout's timespec when it consumes the SQE, which may be
/// any enter after staging (one returning `EBUSY`/`EAGAIN` can leave SQEs in the ring
/// unread). Only the timeout's completion proves the SQE consumed, so a slot's timespec is
/// neither rewritten nor freed before it: a slot is free only once its completion came.
pub(crate) struct RingTimer {
    slots: Vec<Slot>,
    /// The earliest time asked for this turn.
    want: Option<Instant>,
}

/// The `user_data` of the timeout in `slot`.
fn user_data(slot: usize) -> u64 {
    (KIND << 56) | slot as u64
}

impl RingTimer {
    pub(crate) fn new() -> RingTimer {
        RingTimer {
            slots: Vec::with_capacity(MAX_LIVE + 1),
            want: None,
        }
    }

    /// A completion with a `user_data` `Op::decode` does not know: when it is a ring
    /// timeout's (fired or cancelled), frees its slot. Returns whether it was one.
    pub(crate) fn completed(&mut self, user_data: u64) -> bool {
        if user_data >> 56 != KIND {
            return false;
        }
        if let Some(s) = self.slots.get_mut((user_data as u32) as usize) {
            s.fires = None;
            s.cancelled = false;
        }
        true
    }

    /// Asks for the worker to wake at `at` (or now, if it has passed): kept until the turn's
    /// [`arm`](Self::arm), the earliest of the turn's wants winning.
    pub(crate) fn want(&mut self, at: Instant) {
        if self.want.is_none_or(|w| at < w) {
            self.want = Some(at);
        }
    }

    /// At the end of a turn: arms a ring timeout for the earliest want unless one in flight
    /// fires by then (one that has fired and whose completion is not reaped yet counts: the
    /// completion wakes the worker); returns whether it staged anything.
    ///
    /// `fires` counts from staging, the kernel from submission; the worker submits before
    /// it sleeps, so a timeout staged in a turn runs from that turn's enter at the latest.
    pub(crate) fn arm(&mut self, sub: &mut Submission) -> bool {
        let Some(at) = self.want.take() else {
            return false;
        };
        let live = |s: &Slot| if s.cancelled { None } else { s.fires };
        if self.slots.iter().filter_map(live).any(|f| f <= at) {
            return false;
        }
        if self.slots.iter().filter_map(live).count() >= MAX_LIVE {
            // Every live one fires after `at`: the last is the least useful.
            let last = (0..self.slots.len()).max_by_key(|&i| live(&self.slots[i]));
            if let Some(i) = last {
                self.cancel(i, sub);
            }
        }
        let now = Instant::now();
        let wait = at.saturating_duration_since(now);
        // Far off: wake after MAX_WAIT and arm again from there.
        let (wait, fires) = if wait > MAX_WAIT {
            (MAX_WAIT, now.checked_add(MAX_WAIT).unwrap_or(at))
        } else {
            (wait, at)
        };
        // Rounded up to a microsecond: the worker wakes at or after the due time. At most
        // MAX_WAIT, so the microseconds fit.
        let wait = Duration::from_micros(wait.as_micros() as u64 + 1);
        let i = match self.slots.iter().position(|s| s.fires.is_none()) {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    ts: Box::new(types::Timespec::new()),
                    fires: None,
                    cancelled: false,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        // A free slot's timespec: its last timeout completed, so the kernel is done with it.
        *slot.ts = types::Timespec::from(wait);
        let entry = opcode::Timeout::new(&*slot.ts as *const types::Timespec)
            .build()
            .user_data(user_data(i));
        sub.stage_group([entry]);
        slot.fires = Some(fires);
        true
    }

    /// Stages a cancel for the timeout in slot `i` (its slot stays taken until the
    /// timeout's completion).
    fn cancel(&mut self, i: usize, sub: &mut Submission) {
        let entry = opcode::AsyncCancel::new(user_data(i)).build();
        sub.stage(entry, Op::new(Kind::Cancel, 0, u32::MAX));
        self.slots[i].cancelled = true;
    }

    /// Cancels the ring timeouts in flight (the worker is shutting down and waits for every
    /// op's completion); returns whether it staged any cancel.
    pub(crate) fn cancel_all(&mut self, sub: &mut Submission) -> bool {
        self.want = None;
        let mut any = false;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.fires.is_some() && !s.cancelled {
                self.cancel(i, sub);
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The SQ-full case: a timeout staged and not yet taken by the kernel does not hold
    /// back an earlier want, which gets a timeout (and timespec) of its own; a later want
    /// rides on what is in flight; a completion frees its slot for reuse.
    #[test]
    fn an_earlier_want_arms_while_a_later_timeout_is_unsubmitted() {
        let mut sub = Submission::new(8, Arc::default());
        let mut t = RingTimer::new();
        let now = Instant::now();
        t.want(now + Duration::from_secs(10));
        assert!(t.arm(&mut sub), "armed for 10 s");
        let first = *t.slots[0].ts;
        // Nothing flushed (the SQ is full): an earlier deadline comes in.
        t.want(now + Duration::from_millis(50));
        assert!(
            t.arm(&mut sub),
            "the earlier want gets a timeout of its own"
        );
        assert_eq!(t.slots.len(), 2, "in its own slot");
        assert_eq!(
            format!("{:?}", *t.slots[0].ts),
            format!("{first:?}"),
            "the unsubmitted timeout's timespec is untouched"
        );
        assert_eq!(sub.inflight(), 2, "two timeouts staged");
        t.want(now + Duration::from_secs(1));
        assert!(!t.arm(&mut sub), "a later want rides on the 50 ms timeout");
        assert!(t.completed(user_data(1)), "the 50 ms timeout fired");
        assert!(
            !t.completed(Op::new(Kind::Recv, 0, 1).encode()),
            "not a timer's"
        );
        t.want(now + Duration::from_secs(1));
        assert!(t.arm(&mut sub), "re-armed once the earlier one is gone");
        assert_eq!(t.slots.len(), 2, "the freed slot is reused");
        assert_eq!(t.slots[1].fires, Some(now + Duration::from_secs(1)));
    }

    /// Ever earlier wants keep at most MAX_LIVE timeouts live: past that the one firing
    /// last is cancelled (its slot held until its completion).
    #[test]
    fn ever_earlier_wants_stay_bounded() {
        let mut sub = Submission::new(16, Arc::default());
        let mut t = RingTimer::new();
        let now = Instant::now();
        for k in 0..MAX_LIVE as u64 + 2 {
            t.want(now + Duration::from_secs(100 - k));
            assert!(t.arm(&mut sub), "want {k} is the earliest");
        }
        let live = t
            .slots
            .iter()
            .filter(|s| s.fires.is_some() && !s.cancelled)
            .count();
        assert_eq!(live, MAX_LIVE, "the latest ones were cancelled");
        assert!(
            t.slots[0].cancelled && t.slots[1].cancelled,
            "the 100 s and 99 s"
        );
        // The cancelled ones complete (ECANCELED): their slots come free.
        assert!(t.completed(user_data(0)) && t.completed(user_data(1)));
        t.want(now + Duration::from_secs(1));
        assert!(t.arm(&mut sub));
        assert_eq!(t.slots.len(), MAX_LIVE + 2, "a freed slot is reused");
    }

    /// Due times at the end of time and in the past arm without overflow: the far one waits
    /// MAX_WAIT at most, a past one gets a timeout of its own, and cancelling is once per
    /// timeout.
    #[test]
    fn far_and_past_due_times_arm_without_overflow() {
        let mut sub = Submission::new(8, Arc::default());
        let mut t = RingTimer::new();
        let now = Instant::now();
        let far = now
            .checked_add(Duration::from_secs(u64::MAX / 4))
            .expect("Instant reaches that far on Linux");
        t.want(far);
        assert!(t.arm(&mut sub), "armed for the far due time");
        let capped = t.slots[0].fires.expect("in flight");
        assert!(capped < far && capped >= now + MAX_WAIT, "capped");
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        t.want(far);
        t.want(past); // the earliest of the turn wins
        assert!(
            t.arm(&mut sub),
            "an earlier due time gets a timeout of its own"
        );
        t.want(far);
        assert!(!t.arm(&mut sub), "one in flight fires before it");
        assert!(t.cancel_all(&mut sub), "cancels what is in flight");
        assert!(!t.cancel_all(&mut sub), "once");
    }
}
