//! [`RingTimer`]: the worker's one ring timeout, shared by everything on the worker that
//! waits for a point in time (the executor's sleeps, the connections' deadlines). During a
//! turn each says when it next needs the worker ([`RingTimer::want`]); at the end of the turn
//! one `IORING_OP_TIMEOUT` is armed for the earliest, unless one in flight fires by then, so
//! a worker asleep in the kernel wakes for it.
//!
//! The timeouts carry a `user_data` no engine op has (its kind byte is unused), so the worker
//! counts their completions and does nothing else with them: whoever waits reads the clock
//! each turn instead.

use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::super::op::{Kind, Op};
use super::super::submit::Submission;

/// The `user_data` of the ring timeouts: kind byte 0xEE, which `Op::decode` does not know,
/// so the worker only counts the completion.
const TIMER_USER_DATA: u64 = 0xEE << 56;

/// The longest a ring timeout waits: a due time further out (up to `Instant`'s end of time)
/// is waited for in steps of this, so no duration or timespec arithmetic overflows.
const MAX_WAIT: Duration = Duration::from_secs(3600);

pub(crate) struct RingTimer {
    /// The ring timeout's duration, read by the kernel when the SQE is submitted.
    ts: Box<types::Timespec>,
    /// Whether an SQE pointing at `ts` may not have been submitted yet.
    ts_staged: bool,
    /// When the ring timeouts in flight fire.
    armed: Vec<Instant>,
    /// The earliest time asked for this turn.
    want: Option<Instant>,
}

impl RingTimer {
    pub(crate) fn new() -> RingTimer {
        RingTimer {
            ts: Box::new(types::Timespec::new()),
            ts_staged: false,
            armed: Vec::with_capacity(4),
            want: None,
        }
    }

    /// At the start of a turn: whether the submission queue has taken everything staged
    /// (`flushed`: `ts` is free, the kernel read it when the last turn entered), and which
    /// ring timeouts have fired.
    pub(crate) fn turn_start(&mut self, flushed: bool) {
        if flushed {
            self.ts_staged = false;
        }
        if !self.armed.is_empty() {
            let now = Instant::now();
            self.armed.retain(|&at| at > now);
        }
    }

    /// Asks for the worker to wake at `at` (or now, if it has passed): kept until the turn's
    /// [`arm`](Self::arm), the earliest of the turn's wants winning.
    pub(crate) fn want(&mut self, at: Instant) {
        if self.want.is_none_or(|w| at < w) {
            self.want = Some(at);
        }
    }

    /// At the end of a turn: arms a ring timeout for the earliest want unless one fires by
    /// then; returns whether it staged one.
    pub(crate) fn arm(&mut self, sub: &mut Submission) -> bool {
        let Some(at) = self.want.take() else {
            return false;
        };
        if self.ts_staged || self.armed.iter().any(|&a| a <= at) {
            return false;
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
        *self.ts = types::Timespec::from(wait);
        let entry = opcode::Timeout::new(&*self.ts as *const types::Timespec)
            .build()
            .user_data(TIMER_USER_DATA);
        sub.stage_group([entry]);
        self.ts_staged = true;
        self.armed.push(fires);
        true
    }

    /// Cancels the ring timeouts in flight (the worker is shutting down and waits for every
    /// op's completion); returns whether there were any.
    pub(crate) fn cancel_all(&mut self, sub: &mut Submission) -> bool {
        self.want = None;
        let any = !self.armed.is_empty();
        for _ in self.armed.drain(..) {
            let entry = opcode::AsyncCancel::new(TIMER_USER_DATA).build();
            sub.stage(entry, Op::new(Kind::Cancel, 0, u32::MAX));
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Due times at the end of time and in the past arm without overflow: the far one waits
    /// MAX_WAIT at most, a past one (earlier than what is armed) gets a timeout of its own
    /// once the last one's timespec is free, and a later want rides on what is armed.
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
        assert!(t.armed[0] < far && t.armed[0] >= now + MAX_WAIT, "capped");
        t.want(now);
        assert!(!t.arm(&mut sub), "the timespec is not submitted yet");
        t.turn_start(true);
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        t.want(far);
        t.want(past); // the earliest of the turn wins
        assert!(
            t.arm(&mut sub),
            "an earlier due time gets a timeout of its own"
        );
        t.turn_start(true);
        t.want(far);
        assert!(!t.arm(&mut sub), "one in flight fires before it");
        assert!(t.cancel_all(&mut sub), "cancels what is in flight");
        assert!(!t.cancel_all(&mut sub), "once");
    }
}
