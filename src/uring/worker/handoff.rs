//! The hand-off of an accepted connection to the least-loaded worker (the acceptor itself
//! included): by ring message where the kernel has it (`IORING_OP_MSG_RING` with
//! `IORING_MSG_DATA`: the target's completion carries the fd, a number valid in the whole
//! process, and the listener's slot), otherwise through the target's channel and wake-up
//! socket.
//!
//! Who owns the fd of a ring hand-off: the acceptor, in [`PendingHandoffs`], until its own
//! completion of the message says whether the kernel delivered it. Delivered, the target
//! owns it (it may have adopted it already); refused (a full or overflowing ring), the
//! acceptor serves it. A target leaves only once its [`RingDoor`] is closed with nothing in
//! transit, so a delivered message is always reaped, and its fd adopted or closed.
//!
//! [`RingDoor`]: super::super::mailbox::RingDoor

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::super::core::Factory;
use super::super::mailbox::Command;
use super::super::op::{Kind, Op};
use super::super::stats::WorkerStats;
use super::Worker;
use crate::Endpoint;

/// A connection handed off by ring message, kept until the message's completion.
struct Pending {
    fd: OwnedFd,
    target: usize,
    /// The listener slot, to serve the connection here if the message is refused.
    li: u32,
}

/// Ring hand-offs in flight, by slot (the slot is the message's `user_data` index).
#[derive(Default)]
pub(super) struct PendingHandoffs {
    slots: Vec<Option<Pending>>,
    free: Vec<u32>,
}

impl PendingHandoffs {
    fn insert(&mut self, p: Pending) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(p);
                i
            }
            None => {
                self.slots.push(Some(p));
                self.slots.len() as u32 - 1
            }
        }
    }

    fn take(&mut self, i: u32) -> Option<Pending> {
        let p = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(p)
    }
}

impl Worker {
    /// Gives a connection accepted on listener `li` to the least-loaded worker (this one on
    /// ties).
    pub(super) fn hand_off(&mut self, fd: OwnedFd, li: u32, local: Endpoint, factory: Factory) {
        let mut target = self.index;
        let mut best = self.loads[self.index].load(Ordering::Relaxed);
        for (i, load) in self.loads.iter().enumerate() {
            let l = load.load(Ordering::Relaxed);
            if l < best {
                best = l;
                target = i;
            }
        }
        if target == self.index {
            self.core.adopt(fd, &local, &factory);
            return;
        }
        // Counted now (the target takes it back when it adopts) so a burst of accepts spreads
        // out before the target has adopted any. A worker that has died (load usize::MAX) in
        // the meantime is not counted into: this one serves the connection.
        let counted = self.loads[target].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            (l != usize::MAX).then(|| l + 1)
        });
        if counted.is_err() {
            self.core.adopt(fd, &local, &factory);
            return;
        }
        if self.ring_handoff {
            if let Some(ring_fd) = self.links[target].door.admit() {
                let raw = fd.as_raw_fd();
                let slot = self.handoffs.insert(Pending { fd, target, li });
                let data = Op::new(Kind::Handoff, 0, li).encode();
                let entry = opcode::MsgRingData::new(types::Fd(ring_fd), raw, data, None).build();
                self.core.stage(entry, Op::new(Kind::HandoffSent, 0, slot));
                WorkerStats::add(&self.core.stats.ring_handoffs, 1);
                return;
            }
            // The target is leaving (its door is closed): the channel says so below.
        }
        WorkerStats::add(&self.core.stats.channel_handoffs, 1);
        if let Err(cmd) = self.links[target].send(Command::Adopt { fd, local, factory }) {
            // The target has exited (its channel is gone): serve the connection here.
            self.uncount(target);
            if let Command::Adopt { fd, local, factory } = cmd {
                self.core.adopt(fd, &local, &factory);
            }
        }
    }

    /// Takes back the in-transit count of a hand-off to `target` that did not reach it.
    fn uncount(&self, target: usize) {
        let _ = self.loads[target].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            (l != usize::MAX).then(|| l.saturating_sub(1))
        });
    }

    /// The acceptor's completion of a hand-off message in `slot`.
    pub(super) fn on_handoff_sent(&mut self, slot: u32, res: i32) {
        let Some(p) = self.handoffs.take(slot) else {
            return;
        };
        if res >= 0 {
            // Delivered: the fd is the target's now; not closed here.
            let _ = p.fd.into_raw_fd();
            return;
        }
        log::debug!(
            "uring-vsock worker {}: hand-off to worker {} refused (errno {}); serving it here",
            self.index,
            p.target,
            -res
        );
        WorkerStats::add(&self.core.stats.handoffs_refused, 1);
        self.links[p.target].door.settled();
        self.uncount(p.target);
        // The target may be waiting for its door to empty before it leaves.
        self.links[p.target].waker.wake();
        if self.stopping {
            return; // closes the fd
        }
        if let Some(Some(l)) = self.listeners.get(p.li as usize) {
            let (local, factory) = (l.local.clone(), Arc::clone(&l.factory));
            self.core.adopt(p.fd, &local, &factory);
        }
    }

    /// This worker is being abandoned (see `Exit`) with hand-offs it may or may not have
    /// submitted: their targets stop waiting for them (a target waits for its door to empty
    /// before it leaves, and would wait forever), and their fds are left open, since a
    /// message that did go out hands its fd to the target.
    pub(super) fn abandon_handoffs(&mut self) {
        for p in self.handoffs.slots.drain(..).flatten() {
            self.links[p.target].door.settled();
            self.links[p.target].waker.wake();
            let _ = p.fd.into_raw_fd();
        }
        self.handoffs.free.clear();
    }

    /// A connection handed to this worker by ring message: `res` is its fd.
    pub(super) fn on_handoff(&mut self, li: u32, res: i32) {
        self.links[self.index].door.settled();
        // The acceptor counted it in transit; `adopt` counts it as ours.
        self.loads[self.index].fetch_sub(1, Ordering::Relaxed);
        if res < 0 {
            return;
        }
        // SAFETY: the result of a hand-off message is an accepted fd that its acceptor gave
        // up when the kernel delivered this message (see the module comment): nothing else
        // owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        if self.stopping {
            return; // closes the fd
        }
        let table = self
            .listener_table
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let Some(Some((local, factory))) = table.get(li as usize).cloned() else {
            return;
        };
        drop(table);
        self.core.adopt(fd, &local, &factory);
    }
}
