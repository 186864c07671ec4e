//! Closing: graceful close, abort, the cancels that stop a connection's ops, and
//! [`Core::maybe_finish`], which delivers what is due and frees a connection once every
//! completion is in.

use std::time::Duration;

use io_uring::opcode;

use super::super::completion::errno_error;
use super::super::conn::{CloseReason, Deadline};
use super::super::op::{Kind, Op};
use super::super::send_queue::{partial_error, PartialSend};
use super::deadline::{send_timed_out, write_timed_out};
use super::{Core, WriteSide};

impl Core {
    /// While closing, cancels the send the kernel runs now of the connection's chain (the
    /// later ones fail with it, as their link breaks). A cancel can miss: the head may have
    /// finished and the next not have started yet; its completion then says `ENOENT`, and
    /// [`on_send_cancel_cqe`](Self::on_send_cancel_cqe) aims again, until the chain is over.
    pub(super) fn cancel_send_head(&mut self, index: u32) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        // A cut chain is being cancelled by the kernel itself (its link broke).
        if c.closing.is_none() || c.send_cancel.is_some() || c.send.cut() {
            return;
        }
        let Some(seq) = c.send.in_kernel_seqs().next() else {
            return;
        };
        c.send_cancel = Some(seq);
        // Counted, so the slot outlives its cancel (a late one could name the next
        // connection's send otherwise).
        c.ops += 1;
        let entry = opcode::AsyncCancel::new(Op::new(Kind::Send, seq, index).encode()).build();
        self.sub.stage(entry, Op::new(Kind::CancelSend, seq, index));
    }

    pub(super) fn on_send_cancel_cqe(&mut self, index: u32, res: i32) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        c.ops -= 1;
        let target = c.send_cancel.take();
        // Found (0), or running and about to complete (EALREADY): its completion comes, and
        // aims at the next if the chain goes on. Not found: aim at what runs now.
        let missed = res == -libc::ENOENT;
        let head = c.send.in_kernel_seqs().next();
        if missed || head != target {
            self.cancel_send_head(index);
        }
        self.maybe_finish(index);
    }

    pub(crate) fn cancel(&mut self, target: Op, index: u32) {
        let entry = opcode::AsyncCancel::new(target.encode()).build();
        self.sub.stage(entry, Op::new(Kind::Cancel, 0, index));
    }

    /// A graceful close: receiving stops, queued sends go out, then FIN, then the connection
    /// closes with [`CloseReason::Local`].
    pub(crate) fn close_gracefully(&mut self, index: u32) {
        self.close_gracefully_for(index, CloseReason::Local);
    }

    /// A graceful close that ends with `reason` (the first asked for, if asked twice).
    pub(super) fn close_gracefully_for(&mut self, index: u32, reason: CloseReason) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        let reason = c.close_when_flushed.get_or_insert(reason).clone();
        let already_shut = matches!(c.write, WriteSide::Shut { notify: false });
        if c.recv.close() {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        if already_shut {
            self.begin_close(index, reason);
        } else {
            self.shutdown_write(index);
        }
    }

    /// An abortive close: everything in flight is cancelled and the peer gets a reset.
    pub(crate) fn abort(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.abort = true;
        }
        self.begin_close(index, CloseReason::Aborted);
    }

    /// Starts closing: cancels the ops in flight; [`maybe_finish`](Self::maybe_finish) ends
    /// the connection once their completions are in.
    pub(crate) fn begin_close(&mut self, index: u32, reason: CloseReason) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        c.closing = Some(reason);
        // Sends cut short: the peer gets a reset, never a FIN it could take for a clean end
        // of the stream.
        if c.send.unfinished() > 0 {
            c.abort = true;
        }
        c.send.set_closing();
        let recv = c.recv.close();
        let sends = c.send.in_kernel();
        let connecting = c.connecting.is_some();
        if recv {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        if sends {
            self.cancel_send_head(index);
        }
        if connecting {
            self.cancel_connect(index);
        }
    }

    /// Closes every connection (engine shutdown). Those already closing cleanly are reset if
    /// they are still waiting, so no zero-copy notification waits on a peer that does not
    /// read.
    pub(crate) fn close_all(&mut self) {
        self.stopping = true;
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.conn_mut(index) {
                if c.closing.is_some() {
                    c.abort = true;
                }
                self.begin_close(index, CloseReason::EngineShutdown);
                self.maybe_finish(index);
            }
        }
    }

    /// Delivers what is due (finished sends, the shutdown notice, EOF both ways) and ends a
    /// closing connection whose completions are all in.
    pub(crate) fn maybe_finish(&mut self, index: u32) {
        loop {
            let Some(c) = self.conn_mut(index) else {
                return;
            };
            if c.handler.is_none() && !c.panicked {
                return; // inside this connection's handler call: finish after it returns
            }
            if c.connecting.is_some() {
                return; // the connect completion finishes it
            }
            if c.write == (WriteSide::Shut { notify: true }) {
                c.write = WriteSide::Shut { notify: false };
                if c.close_when_flushed.is_some() && c.closing.is_none() {
                    c.closing = c.close_when_flushed.clone();
                    continue;
                }
                self.call(index, |h, conn| h.on_shutdown(conn));
                continue;
            }
            if let Some(d) = c.send.pop_done() {
                if d.from_handle {
                    if let Some(h) = &c.handle {
                        h.send_done();
                    }
                    continue;
                }
                // Cut by the write deadline: the error says so (how much went out kept).
                let res = match d.res {
                    Err(e) if write_timed_out(c.closing.as_ref()) => {
                        let sent = PartialSend::of(&e).map_or(0, |p| p.sent);
                        Err(send_timed_out(sent, d.buf.len()))
                    }
                    res => res,
                };
                self.call(index, |h, conn| h.on_sent(conn, d.buf, res));
                continue;
            }
            if c.closing.is_none() {
                if c.recv.eof() && matches!(c.write, WriteSide::Shut { .. }) && c.send.is_idle() {
                    c.closing = Some(CloseReason::Eof);
                    continue;
                }
                return;
            }
            if c.ops > 0 {
                if !c.send.in_kernel() && !c.recv.is_armed() {
                    // Only zero-copy notifications are due: they come when the kernel frees
                    // the data (the buffers stay in the send queue until then). A clean close
                    // lets it drain: FIN after the data, the socket kept, so engine shutdown
                    // can still abort it (a peer that never reads would hold it for minutes).
                    // A failed close, or shutdown, resets it: the data is freed at once.
                    let graceful = c.closing.as_ref().is_some_and(|r| {
                        r.is_clean() || matches!(r, CloseReason::TimedOut(Deadline::Read))
                    });
                    let abort = c.abort || !graceful;
                    if abort {
                        if let Some(s) = c.socket.take() {
                            let _ = s.set_linger(Some(Duration::ZERO));
                            // The file table's reference would keep the socket (and the
                            // notifications) waiting: let it go too.
                            self.release_file(index);
                        }
                    } else if !matches!(c.write, WriteSide::Shut { .. }) {
                        c.write = WriteSide::Shut { notify: false };
                        if let Some(s) = &c.socket {
                            // ENOTCONN when the peer is already gone: nothing left to shut.
                            let _ = s.shutdown(std::net::Shutdown::Write);
                        }
                    }
                }
                return;
            }
            if let Some((buf, from_handle, sent)) = c.send.take_queued() {
                if !from_handle {
                    let err = if write_timed_out(c.closing.as_ref()) {
                        send_timed_out(sent, buf.len())
                    } else {
                        partial_error(errno_error("send", libc::ECANCELED), sent, buf.len())
                    };
                    self.call(index, |h, conn| h.on_sent(conn, buf, Err(err)));
                }
                continue;
            }
            // Everything is in: close the socket (a reset when aborting), tell the handler
            // and the handles.
            if let Some(s) = c.socket.take() {
                if c.abort {
                    let _ = s.set_linger(Some(Duration::ZERO));
                }
            }
            self.release_file(index);
            let c = self.conn_mut(index).expect("live");
            let reason = c.closing.clone().expect("closing");
            if c.opened {
                self.call(index, |h, conn| h.on_close(conn, &reason));
            }
            if let Some(h) = self.conn_mut(index).and_then(|c| c.handle.take()) {
                h.set_closed(reason);
            }
            self.free_slot(index);
            return;
        }
    }
}
