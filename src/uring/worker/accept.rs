//! Accepting: a listener's multishot accept (with a pause after running out of fds or
//! memory); each accepted connection goes to `handoff.rs`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, types};
use socket2::Socket;

use super::super::core::Factory;
use super::super::op::{Kind, Op};
use super::super::stats::WorkerStats;
use super::Worker;
use crate::Endpoint;

/// How long a listener waits before accepting again after running out of fds or memory: a
/// re-armed accept would fail again at once, spinning the worker at 100% CPU.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(super) struct ListenerState {
    pub(super) socket: Option<Socket>,
    pub(super) local: Endpoint,
    pub(super) factory: Factory,
    pub(super) armed: bool,
    /// The last accept failed for want of a resource: wait before re-arming.
    pub(super) starved: bool,
    /// A backoff timeout is in the kernel.
    pub(super) backoff_armed: bool,
    /// The backoff's timespec, boxed so it stays put while the SQE may point to it.
    pub(super) backoff: Box<types::Timespec>,
}

impl ListenerState {
    pub(super) fn new(socket: Socket, local: Endpoint, factory: Factory) -> ListenerState {
        ListenerState {
            socket: Some(socket),
            local,
            factory,
            armed: false,
            starved: false,
            backoff_armed: false,
            backoff: Box::new(
                types::Timespec::new()
                    .sec(ACCEPT_BACKOFF.as_secs())
                    .nsec(ACCEPT_BACKOFF.subsec_nanos()),
            ),
        }
    }
}

impl Worker {
    pub(super) fn arm_accept(&mut self, li: u32) {
        let Some(Some(l)) = self.listeners.get_mut(li as usize) else {
            return;
        };
        let Some(socket) = &l.socket else { return };
        if l.armed {
            return;
        }
        l.armed = true;
        let entry = opcode::AcceptMulti::new(types::Fd(socket.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        self.core.stage(entry, Op::new(Kind::Accept, 0, li));
    }

    pub(super) fn close_listener(&mut self, li: u32) {
        let Some(Some(l)) = self.listeners.get_mut(li as usize) else {
            return;
        };
        let (armed, backoff) = (l.armed, l.backoff_armed);
        if armed {
            let entry = opcode::AsyncCancel::new(Op::new(Kind::Accept, 0, li).encode()).build();
            self.core.stage(entry, Op::new(Kind::Cancel, 0, u32::MAX));
        }
        if backoff {
            let target = Op::new(Kind::AcceptBackoff, 0, li).encode();
            let entry = opcode::AsyncCancel::new(target).build();
            self.core.stage(entry, Op::new(Kind::Cancel, 0, u32::MAX));
        }
        if !armed && !backoff {
            self.listeners[li as usize] = None;
        }
    }

    /// Waits [`ACCEPT_BACKOFF`] before accepting on listener `li` again.
    pub(super) fn arm_accept_backoff(&mut self, li: u32) {
        let Some(Some(l)) = self.listeners.get_mut(li as usize) else {
            return;
        };
        if l.backoff_armed {
            return;
        }
        l.backoff_armed = true;
        l.starved = false;
        WorkerStats::add(&self.core.stats.accept_backoffs, 1);
        let entry = opcode::Timeout::new(&*l.backoff).build();
        self.core.stage(entry, Op::new(Kind::AcceptBackoff, 0, li));
    }

    pub(super) fn on_accept_backoff(&mut self, li: u32) {
        let Some(Some(l)) = self.listeners.get_mut(li as usize) else {
            return;
        };
        l.backoff_armed = false;
        if !self.stopping {
            self.arm_accept(li);
        } else if !l.armed {
            // Closes the listening socket now that nothing in the kernel uses it.
            self.listeners[li as usize] = None;
        }
    }

    pub(super) fn on_accept(&mut self, li: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if res >= 0 {
            // SAFETY: a successful accept completion's result is a new fd that nothing else
            // owns; it is closed when the OwnedFd drops.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if let Some(Some(l)) = self.listeners.get(li as usize) {
                if !self.stopping {
                    let (local, factory) = (l.local.clone(), Arc::clone(&l.factory));
                    self.hand_off(fd, li, local, factory);
                }
            }
        } else if res != -libc::ECANCELED {
            WorkerStats::add(&self.core.stats.accept_errors, 1);
            let starved = matches!(
                -res,
                libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS
            );
            if let (true, Some(Some(l))) = (starved, self.listeners.get_mut(li as usize)) {
                l.starved = true;
            }
        }
        if !more {
            let Some(Some(l)) = self.listeners.get_mut(li as usize) else {
                return;
            };
            l.armed = false;
            if self.stopping {
                if !l.backoff_armed {
                    // Closes the listening socket now that no accept uses it.
                    self.listeners[li as usize] = None;
                }
            } else if l.starved {
                self.arm_accept_backoff(li);
            } else {
                self.arm_accept(li);
            }
        }
    }
}
