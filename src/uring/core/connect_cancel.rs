//! Cutting a connect short (the connection closes, the engine shuts down, the deadline's
//! linked timeout missed): a cancel of the connection's connect op that is aimed again,
//! after a short pause, until that op's completion is in.
//!
//! One cancel is not enough. A unix connect to a listener whose backlog is full goes back
//! and forth between an inline try (`EAGAIN`) and a poll that is ready at once (an
//! unconnected unix socket is always writable), each retry queued as task work, until
//! io-wq runs it as a blocking connect waiting for room. A cancel that comes while the
//! retry sits in task work finds nothing (`ENOENT`), and the connect then blocks in io-wq
//! for as long as its own deadline, or forever. And a cancel that does find it running in
//! io-wq (and interrupts it: the connect ends with `EINTR`) reports `ENOENT` all the same,
//! since the kernel then goes on looking for it among polls and timeouts. So any result but
//! 0 (found and cancelled: its completion follows) is followed by another cancel after
//! [`CANCEL_RETRY`], until the connect op completes; the slot is not held for it (a late
//! retry names the slot's generation, and finds nothing once the slot moved on).
//!
//! Not chosen: `shutdown(2)` or `close(2)` of the connecting socket (a unix connect waits on
//! the listener's queue, which neither wakes, and the ring holds its own reference to the
//! file); cancelling by fd with `IORING_ASYNC_CANCEL_ALL` (the same lookup, with the same
//! gap); non-blocking unix connects (a full backlog would then be a timed retry loop of our
//! own, with no readiness to wait for).

use io_uring::{opcode, types};

use super::super::op::{Kind, Op};
use super::Core;

/// The pause before a connect's cancel is aimed again: short next to any deadline, long
/// enough that the kernel has moved the connect on (out of task work, into io-wq).
static CANCEL_RETRY: types::Timespec = types::Timespec::new().nsec(10_000_000);

impl Core {
    /// Cancels the connection's connect op (the connect itself, the poll after it, or a
    /// handshake step: they share one `user_data`), and keeps at it until it completes.
    pub(crate) fn cancel_connect(&mut self, index: u32) {
        let gen = self.gen(index);
        let target = Op::new(Kind::Connect, gen, index).encode();
        let entry = opcode::AsyncCancel::new(target).build();
        self.sub
            .stage(entry, Op::new(Kind::CancelConnect, gen, index));
    }

    /// A connect's cancel, or the pause after one, completed with `res`.
    pub(crate) fn on_connect_cancel_cqe(&mut self, op: Op, res: i32) {
        // The slot may have moved on: a later connection's connect is not this one's to cut.
        let same = self
            .slots
            .get(op.index as usize)
            .is_some_and(|s| op.tag_matches(s.gen));
        let wanted = same
            && self.conn_mut(op.index).is_some_and(|c| {
                let closing = c.closing.is_some();
                c.connecting.as_ref().is_some_and(|cs| cs.cut_due(closing))
            });
        if !wanted {
            return;
        }
        match op.kind {
            // Found and cancelled: the connect's own completion comes.
            Kind::CancelConnect if res == 0 => {}
            Kind::CancelConnect => {
                log::debug!(
                    "uring-vsock worker {}: a connect's cancel got {res}; aiming again",
                    self.worker
                );
                let entry = opcode::Timeout::new(&CANCEL_RETRY).build();
                self.sub
                    .stage(entry, Op::new(Kind::ConnectCancelRetry, op.tag, op.index));
            }
            _ => self.cancel_connect(op.index),
        }
    }
}
