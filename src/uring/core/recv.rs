//! Receiving: arms a connection's receive as its [`RecvSide`](super::super::recv_side::RecvSide)
//! says (multishot from the ring, or into an own buffer), takes the completions, throttles
//! and resumes for the buffer share, and hands buffers to the handler.

use std::rc::Rc;

use io_uring::{cqueue, opcode, types};

use super::super::buf_ring::RecvBuf;
use super::super::completion::errno_error;
use super::super::conn::CloseReason;
use super::super::op::{Kind, Op};
use super::super::recv_side::{Arm, RecvEvent};
use super::super::stats::WorkerStats;
use super::Core;

impl Core {
    pub(super) fn arm_recv(&mut self, index: u32) {
        let (free, own_size) = (self.bufs.available(), self.cfg.recv_buffer_size);
        let (gen, bgid) = (self.gen(index), self.bufs.bgid());
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        if !c.opened || c.connecting.is_some() || c.closing.is_some() {
            return;
        }
        let entry = match c.recv.arm(free, own_size) {
            None => return,
            Some(Arm::Ring) => opcode::RecvMulti::new(types::Fd(c.fd), bgid).build(),
            Some(Arm::Own { ptr, len }) => {
                WorkerStats::add(&self.stats.own_buffer_recvs, 1);
                opcode::Recv::new(types::Fd(c.fd), ptr, len as u32).build()
            }
        };
        c.ops += 1;
        self.sub.stage(entry, Op::new(Kind::Recv, gen, index));
    }

    /// Re-arms the receives of connections whose buffer share freed up.
    pub(crate) fn rearm_resumed(&mut self) {
        if self.resume.borrow().is_empty() {
            return;
        }
        let list = std::mem::take(&mut *self.resume.borrow_mut());
        for (index, gen) in list {
            if self.slots.get(index as usize).is_some_and(|s| s.gen == gen) {
                self.arm_recv(index);
            }
        }
    }

    pub(super) fn on_recv_cqe(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let gen = self.gen(index);
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        // Take the ring's buffer first: whatever happens next, it goes back on drop.
        let share = Rc::clone(&c.recv.share);
        let ring_buf = cqueue::buffer_select(flags).and_then(|bid| {
            self.bufs
                .take(bid, res.max(0) as u32, Some(Rc::clone(&share)))
        });
        let step = c.recv.complete(res, more, u32::from(ring_buf.is_some()));
        if step.ended {
            c.ops -= 1;
        }
        let buf = ring_buf.or_else(|| {
            step.own
                .filter(|_| res > 0)
                .map(|b| RecvBuf::own(b, res as usize, Some(share)))
        });
        if step.share_filled {
            WorkerStats::add(&self.stats.recv_share_pauses, 1);
        }
        if step.cancel {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        let c = self.conn_mut(index).expect("live");
        let closing = c.closing.is_some();
        match step.event {
            // EOF, whether or not a buffer came with it (dropped: it holds nothing).
            RecvEvent::Eof { first } => {
                drop(buf);
                if first && !closing {
                    self.call(index, |h, conn| h.on_peer_shutdown(conn));
                }
            }
            RecvEvent::Data(n) => {
                WorkerStats::add(&self.stats.recv_bytes, n as u64);
                if let (false, Some(buf)) = (closing, buf) {
                    self.call(index, |h, conn| h.on_recv(conn, buf));
                }
            }
            RecvEvent::NoBuffers => WorkerStats::add(&self.stats.enobufs, 1),
            RecvEvent::Cancelled => WorkerStats::add(&self.stats.recvs_cancelled, 1),
            RecvEvent::Failed(errno) => {
                let peer = c.peer.clone();
                let e = errno_error("recv", errno);
                self.begin_close(index, CloseReason::from_io("recv", &peer, e));
            }
        }
        if step.ended {
            self.arm_recv(index);
        }
        self.maybe_finish(index);
    }

    pub(crate) fn pause_recv(&mut self, index: u32) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.recv.pause() {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
    }

    pub(crate) fn resume_recv(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.recv.resume();
        }
        self.arm_recv(index);
    }
}
