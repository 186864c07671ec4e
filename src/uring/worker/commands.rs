//! A worker's mailbox side: the read of its wake-up socket, and the commands other threads
//! send it (listen, adopt, connect, handle requests, shutdown).

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::super::mailbox::Command;
use super::super::op::{Kind, Op};
use super::super::stats::WorkerStats;
use super::accept::ListenerState;
use super::Worker;
use crate::{Endpoint, Error};

impl Worker {
    pub(super) fn arm_wake(&mut self) {
        if self.wake_armed || self.door_closed {
            return;
        }
        self.wake_armed = true;
        let entry = opcode::Read::new(
            types::Fd(self.wake_reader.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            self.wake_buf.len() as u32,
        )
        .build();
        self.core.stage(entry, Op::new(Kind::Wake, 0, 0));
    }

    pub(super) fn on_wake(&mut self, _res: i32) {
        self.wake_armed = false;
        // Swap (not store) so that a sender whose `pending` swap we read also made its
        // command visible to the drain that follows in the loop.
        self.links[self.index]
            .waker
            .pending
            .swap(false, Ordering::AcqRel);
        self.arm_wake();
    }

    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Listen {
                socket,
                local,
                factory,
            } => {
                if self.stopping {
                    return;
                }
                self.listener_table
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Some((local.clone(), Arc::clone(&factory))));
                self.listeners
                    .push(Some(ListenerState::new(socket, local, factory)));
                self.arm_accept(self.listeners.len() as u32 - 1);
            }
            Command::Adopt { fd, local, factory } => {
                // The acceptor counted it in transit; `adopt` counts it as ours.
                self.loads[self.index].fetch_sub(1, Ordering::Relaxed);
                if !self.stopping {
                    self.core.adopt(fd, &local, &factory);
                }
            }
            Command::Connect {
                ep,
                kind,
                timeout,
                make,
                reply,
            } => {
                if self.stopping {
                    let _ = reply.send(Err(shutting_down("connect", ep)));
                    return;
                }
                // The closure is user code: a panic fails this connect, not the worker.
                match catch_unwind(AssertUnwindSafe(make)) {
                    Ok(handler) => {
                        self.core.connect(ep, kind, timeout, handler, reply);
                    }
                    Err(_) => {
                        WorkerStats::add(&self.core.stats.handler_panics, 1);
                        let err = io::Error::other("the closure making the handler panicked");
                        let _ = reply.send(Err(Error::new("connect", Some(ep), err)));
                    }
                }
            }
            Command::Request(id, req) => self.core.handle_request(id, req),
            Command::Run(f) => {
                // User code (it makes a task's future): a panic must not end the worker.
                if catch_unwind(AssertUnwindSafe(f)).is_err() {
                    WorkerStats::add(&self.core.stats.handler_panics, 1);
                }
            }
            #[cfg(test)]
            Command::Fault(f) => self.fault = Some(f),
            Command::Shutdown => {
                if !self.stopping {
                    self.stopping = true;
                    for li in 0..self.listeners.len() as u32 {
                        self.close_listener(li);
                    }
                    self.core.close_all();
                }
            }
        }
    }

    /// After the loop: answer what is still queued (connects fail, fds close).
    pub(super) fn drain_commands_after_exit(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Connect { ep, reply, .. } => {
                    let _ = reply.send(Err(shutting_down("connect", ep)));
                }
                Command::Request(..) | Command::Adopt { .. } | Command::Listen { .. } => {}
                _ => {}
            }
        }
    }
}

pub(super) fn shutting_down(op: &'static str, ep: Endpoint) -> Error {
    Error::new(
        op,
        Some(ep),
        io::Error::new(io::ErrorKind::NotConnected, "the engine is shutting down"),
    )
}
