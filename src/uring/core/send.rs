//! Sending: queues a connection's buffers in its
//! [`SendQueue`](super::super::send_queue::SendQueue), submits its chains as linked SQEs, takes
//! their completions and notifications, and shuts the write side down after the last byte.

use io_uring::{cqueue, opcode, squeue};

use super::super::conn::CloseReason;
use super::super::op::{Kind, Op};
use super::super::send_buf::SendBuf;
use super::super::send_queue::SendEvent;
use super::super::stats::WorkerStats;
use super::files::on_socket;
use super::{Core, WriteSide};

impl Core {
    pub(crate) fn sends_queued(&self, index: u32) -> usize {
        self.conn(index).send.len()
    }

    pub(crate) fn can_send(&self, index: u32) -> bool {
        let c = self.conn(index);
        c.closing.is_none() && c.write == WriteSide::Open && c.send.len() < self.cfg.sends_per_conn
    }

    pub(crate) fn send(
        &mut self,
        index: u32,
        buf: SendBuf,
        from_handle: bool,
    ) -> std::result::Result<(), SendBuf> {
        if !from_handle && !self.can_send(index) {
            return Err(buf);
        }
        let Some(c) = self.conn_mut(index) else {
            return Err(buf);
        };
        if c.closing.is_some() || c.write != WriteSide::Open {
            return Err(buf);
        }
        c.send.push(buf, from_handle);
        let at = c.deadlines.write;
        self.recheck_write_deadline(index, at);
        self.pump_send(index);
        Ok(())
    }

    /// Starts the next chain of queued sends if none is in the kernel; shuts the write side
    /// once everything is out and a shutdown was asked for.
    pub(super) fn pump_send(&mut self, index: u32) {
        let settings = self.send_settings;
        let mut chain = std::mem::take(&mut self.chain);
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            self.chain = chain;
            return;
        };
        if c.closing.is_some() || c.connecting.is_some() || !c.opened {
            self.chain = chain;
            return;
        }
        c.send.start(&settings, &mut chain);
        if chain.is_empty() {
            self.chain = chain;
            if c.write == WriteSide::ShutdownQueued && c.send.unfinished() == 0 {
                c.write = WriteSide::Shut { notify: true };
                if let Some(s) = &c.socket {
                    // ENOTCONN when the peer is already gone: nothing left to shut.
                    let _ = s.shutdown(std::net::Shutdown::Write);
                }
            }
            return;
        }
        let n = chain.len() as u32;
        let file = self.files.file_for(c, index, n, &mut self.sub, &self.stats);
        c.ops += chain.len() as u32;
        // MSG_WAITALL: the kernel retries a partial send itself, so a short completion means
        // an error or a signal. MSG_NOSIGNAL: a dead peer is an `EPIPE` completion, never a
        // `SIGPIPE` (which `WRITE_FIXED` on a socket would raise).
        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
        let zc = chain.iter().filter(|s| s.zc).count() as u64;
        WorkerStats::add(&self.stats.zc_sends, zc);
        WorkerStats::add(&self.stats.copy_sends, chain.len() as u64 - zc);
        WorkerStats::add(&self.stats.send_chains, 1);
        self.sub.stage_group(chain.iter().map(|s| {
            let entry = if s.zc {
                on_socket!(file, |fd| opcode::SendZc::new(fd, s.ptr, s.len)
                    .buf_index(s.fixed)
                    .flags(flags)
                    .build())
            } else {
                on_socket!(file, |fd| opcode::Send::new(fd, s.ptr, s.len)
                    .flags(flags)
                    .build())
            };
            let entry = entry.user_data(Op::new(Kind::Send, s.seq, index).encode());
            if s.link {
                entry.flags(squeue::Flags::IO_LINK)
            } else {
                entry
            }
        }));
        self.chain = chain;
    }

    /// Takes a send's completion; returns whether it was one the connection waited for (a
    /// notification is only when its send's completion said one would follow).
    pub(super) fn on_send_cqe(&mut self, index: u32, op: Op, res: i32, flags: u32) -> bool {
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return !cqueue::more(flags) && !cqueue::notif(flags);
        };
        if cqueue::notif(flags) {
            // The kernel is done reading the buffer of the send `op.tag` names. A zero-copy
            // send cut from its chain (ECANCELED without F_MORE) may still get one (seen on
            // 6.18): F_MORE is the kernel's promise, so such a stray notification is ignored.
            if !c.send.on_notif(|s| op.tag_matches(s)) {
                WorkerStats::add(&self.stats.stray_notifs, 1);
                return false;
            }
            c.ops -= 1;
            self.maybe_finish(index);
            return true;
        }
        let last = !cqueue::more(flags);
        // Tags keep 24 bits: find the full sequence number of the send this names.
        let Some(seq) = c.send.owns(|s| op.tag_matches(s)) else {
            debug_assert!(
                false,
                "a send completion no send of this connection waits for"
            );
            return last;
        };
        if last {
            c.ops -= 1; // else its notification is still due
        }
        if res > 0 {
            WorkerStats::add(&self.stats.sent_bytes, res as u64);
        }
        if res == -libc::EOPNOTSUPP {
            WorkerStats::add(&self.stats.zero_copy_fallbacks, 1);
        }
        if res == -libc::ENOBUFS {
            // Not backpressure: the kernel reset the connection (see `errno_error`), and the
            // queue fails it.
            WorkerStats::add(&self.stats.send_overflow_resets, 1);
        }
        let event = c.send.on_complete(seq, res, cqueue::more(flags));
        // Closing: the chain's next send is running now; stop it too.
        self.cancel_send_head(index);
        let c = self.conn_mut(index).expect("live");
        match event {
            // The chain may be over: what is left (a cut chain's rest, sends the handler
            // queued meanwhile) goes in the next one.
            SendEvent::Nothing => self.pump_send(index),
            SendEvent::Failed(e) => {
                let peer = c.peer.clone();
                self.begin_close(index, CloseReason::from_io("send", &peer, e));
            }
        }
        self.maybe_finish(index);
        last
    }

    pub(crate) fn shutdown_write(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            if c.write == WriteSide::Open {
                c.write = WriteSide::ShutdownQueued;
            }
        }
        self.pump_send(index);
    }
}
