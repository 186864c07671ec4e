//! Receiving: arms a connection's receive as its [`RecvSide`](super::super::recv_side::RecvSide)
//! says (multishot from the ring, or into an own buffer), takes the completions, throttles
//! and resumes for the buffer share, and hands buffers to the handler.

use std::io;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue};

use super::super::buf_ring::RecvBuf;
use super::super::completion::errno_error;
use super::super::conn::CloseReason;
use super::super::op::{Kind, Op};
use super::super::recv_side::{Arm, RecvEvent};
use super::super::stats::WorkerStats;
use super::files::on_socket;
use super::Core;

/// `IORING_RECVSEND_BUNDLE`, as the receive's `ioprio` (the crate's bundle opcode has no
/// length field, which caps the bundle).
const RECVSEND_BUNDLE: u16 = 16;

impl Core {
    pub(super) fn arm_recv(&mut self, index: u32) {
        let (free, own_size) = (self.bufs.available(), self.cfg.recv_buffer_size);
        let (gen, bgid) = (self.gen(index), self.bufs.bgid());
        let (buf_size, entries) = (self.bufs.buf_size(), self.bufs.entries());
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
        // A seqpacket message per receive, with its full length in the result (MSG_TRUNC).
        let msg_flags = if c.recv.is_messages() {
            libc::MSG_TRUNC
        } else {
            0
        };
        let Some(arm) = c.recv.arm(free, own_size) else {
            return;
        };
        let file = self.files.file_for(c, index, 1, &mut self.sub, &self.stats);
        let entry = match arm {
            Arm::Ring if c.recv.is_messages() => on_socket!(file, |fd| opcode::Recv::new(
                fd,
                std::ptr::null_mut(),
                buf_size
            )
            .buf_group(bgid)
            .flags(msg_flags)
            .build())
            .flags(squeue::Flags::BUFFER_SELECT),
            Arm::Ring if c.recv.bundle() => {
                // A single bundle receive of at most the buffers left in the connection's
                // share, so its share holds exactly. (Multishot bundles would need the
                // kernel's per-completion cap, which lost a peer's EOF on 6.18.)
                let cap = c.recv.share.room().min(entries).saturating_mul(buf_size);
                on_socket!(file, |fd| opcode::Recv::new(fd, std::ptr::null_mut(), cap)
                    .ioprio(RECVSEND_BUNDLE)
                    .buf_group(bgid)
                    .build())
                .flags(squeue::Flags::BUFFER_SELECT)
            }
            Arm::Ring => on_socket!(file, |fd| opcode::RecvMulti::new(fd, bgid).build()),
            Arm::Own { ptr, len } => {
                WorkerStats::add(&self.stats.own_buffer_recvs, 1);
                on_socket!(file, |fd| opcode::Recv::new(fd, ptr, len as u32)
                    .flags(msg_flags)
                    .build())
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
        // Take the ring's buffers first: whatever happens next, they go back on drop. A
        // bundle's buffers are the ring entries from the named one on; a bundle completion
        // without data (res <= 0) took none, whatever buffer it names.
        let share = Rc::clone(&c.recv.share);
        let (mut ring_buf, mut bundle, mut broken) = (None, None, false);
        match cqueue::buffer_select(flags) {
            Some(bid) if c.recv.bundle() && res > 0 => {
                bundle = self.bufs.take_bundle(bid, res as u32, &share);
                broken = bundle.is_none();
            }
            Some(_) if c.recv.bundle() => {}
            Some(bid) => {
                // A seqpacket result is the message's full length: the buffer holds at most
                // its own size of it.
                let held = (res.max(0) as u32).min(self.bufs.buf_size());
                ring_buf = self.bufs.take(bid, held, Some(Rc::clone(&share)));
            }
            None => {}
        }
        let taken = bundle.as_ref().map_or(0, |b| b.len()) + u32::from(ring_buf.is_some());
        if bundle.as_ref().is_some_and(|b| b.len() > 1) {
            WorkerStats::add(&self.stats.recv_bundle_bufs, u64::from(taken));
        }
        let step = c.recv.complete(res, more, taken);
        if step.ended {
            c.ops -= 1;
        }
        let buf = ring_buf
            .or_else(|| {
                step.own
                    .filter(|_| res > 0)
                    .map(|b| RecvBuf::own(b, res as usize, Some(share)))
            })
            .map(|b| {
                if c.recv.is_messages() {
                    b.with_message_len(res.max(0) as u32)
                } else {
                    b
                }
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
            RecvEvent::Data(_) if broken => {
                let peer = c.peer.clone();
                let e = io::Error::other(
                    "recv: a bundle completion named buffers the ring does not hold",
                );
                self.begin_close(index, CloseReason::from_io("recv", &peer, e));
            }
            RecvEvent::Data(n) => {
                // A truncated message's `n` is its full length (MSG_TRUNC): count what came.
                let got = buf.as_ref().map_or(n, |b| b.len().min(n));
                WorkerStats::add(&self.stats.recv_bytes, got as u64);
                let mut bufs = buf.into_iter().chain(bundle.iter_mut().flatten());
                if !closing {
                    for buf in bufs.by_ref() {
                        self.call(index, |h, conn| h.on_recv(conn, buf));
                        // The handler may have closed the connection: the rest is dropped.
                        if self.conn_mut(index).is_none_or(|c| c.closing.is_some()) {
                            break;
                        }
                    }
                }
            }
            RecvEvent::NoBuffers => {
                // ENOBUFS is also a socket's error: vsock (6.12.92+) resets a connection whose
                // receive queue holds too many packets, and every receive after that fails
                // with it. Only an empty ring re-arms; the socket's pending error ends it.
                let pending = match c.socket.as_ref().map(|s| s.take_error()) {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => Some(e),
                    None => None,
                };
                let peer = c.peer.clone();
                WorkerStats::add(&self.stats.enobufs, 1);
                if let Some(e) = pending {
                    let e = match e.raw_os_error() {
                        Some(errno) => errno_error("socket error", errno),
                        None => e,
                    };
                    self.begin_close(index, CloseReason::from_io("recv", &peer, e));
                }
            }
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
        let mut at = None;
        if let Some(c) = self.conn_mut(index) {
            c.recv.resume();
            at = c.deadlines.read;
        }
        self.recheck_read_deadline_at(index, at);
        self.arm_recv(index);
    }
}
