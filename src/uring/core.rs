//! [`Core`]: a worker's connections and what it does on their completions. The connection
//! slab is also the in-flight table: each op's `user_data` names the slot, and the slot holds
//! what the op uses. Each direction is a state machine of its own ([`RecvSide`],
//! [`SendQueue`]; connecting in [`super::connect`]) that says what to submit; this file
//! turns that into SQEs and calls the handler.
//!
//! Buffer invariant: a send's buffer stays in the connection's [`SendQueue`] from submission
//! until its last completion (the send's, and for zero-copy every notification); a receive
//! into a connection's own buffer keeps it in the [`RecvSide`] until its completion; a slot is
//! freed only when its `ops` count (completions still due) is zero. So nothing the kernel may
//! still read or write is freed or reused early.
//!
//! Handlers are called only from completion processing (never from inside a [`Conn`] call),
//! with the handler taken out of its slot for the call, so a handler can use its `Conn`
//! freely and a connection is never freed under a running handler.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types};
use socket2::Socket;

use super::buf_pool::BufferPool;
use super::buf_ring::{BufRing, RecvBuf};
use super::completion::{cqe_result, errno_error};
use super::conn::{CloseReason, Conn, ConnId, Handler};
use super::connect::Connecting;
use super::handle::{ConnHandle, Factory, HandleShared, WorkerLink};
use super::op::{Kind, Op};
use super::recv::{Arm, RecvShare, RecvSide, ResumeList};
use super::send::{partial_error, SendEvent, SendQueue, SendSettings, SubmitSend};
use super::send_buf::SendBuf;
use super::settings::Settings;
use super::stats::WorkerStats;
use super::submit::Submission;
use crate::Endpoint;

pub(crate) struct Core {
    pub(crate) worker: u32,
    slots: Vec<Slot>,
    free: Vec<u32>,
    pub(crate) sub: Submission,
    pub(crate) pool: BufferPool,
    pub(crate) bufs: Rc<BufRing>,
    /// Connections whose receive share freed up.
    resume: ResumeList,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) link: WorkerLink,
    pub(crate) load: Arc<AtomicUsize>,
    live: usize,
    pub(crate) cfg: Arc<Settings>,
    send_settings: SendSettings,
    /// Scratch space for the chain being submitted (kept, so sending allocates nothing).
    chain: Vec<SubmitSend>,
}

struct Slot {
    gen: u32,
    conn: Option<ConnState>,
}

/// The write side: open, a shutdown asked for (after the queued sends), or shut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
    Open,
    ShutdownQueued,
    /// FIN sent; `notify`: the handler's `on_shutdown` is still due.
    Shut {
        notify: bool,
    },
}

pub(crate) struct ConnState {
    pub(crate) socket: Option<Socket>,
    pub(crate) fd: RawFd,
    pub(crate) peer: Endpoint,
    handler: Option<Box<dyn Handler>>,
    panicked: bool,
    opened: bool,
    recv: RecvSide,
    send: SendQueue,
    write: WriteSide,
    /// A graceful close: once the queued sends are out and FIN is sent, the connection closes.
    close_when_flushed: bool,
    /// Completions still due for this connection's ops.
    pub(crate) ops: u32,
    pub(crate) closing: Option<CloseReason>,
    pub(crate) handle: Option<Arc<HandleShared>>,
    pub(crate) connecting: Option<Box<Connecting>>,
    /// Reset rather than drain when closing (abort, engine shutdown).
    abort: bool,
    /// The send an outstanding cancel aims at.
    send_cancel: Option<u32>,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        worker: u32,
        pool: BufferPool,
        bufs: Rc<BufRing>,
        stats: Arc<WorkerStats>,
        link: WorkerLink,
        load: Arc<AtomicUsize>,
        cfg: Arc<Settings>,
        send_zc: bool,
    ) -> Core {
        let send_settings = SendSettings {
            zc: send_zc,
            zc_threshold: cfg.zero_copy_threshold,
            max_chain: cfg.max_send_chain(),
        };
        Core {
            worker,
            slots: Vec::with_capacity(1024),
            free: Vec::with_capacity(1024),
            sub: Submission::new(cfg.sq_entries as usize * 2, Arc::clone(&stats)),
            pool,
            bufs,
            resume: ResumeList::default(),
            stats,
            link,
            load,
            live: 0,
            chain: Vec::with_capacity(cfg.max_send_chain()),
            cfg,
            send_settings,
        }
    }

    /// Connections alive (including connecting and closing ones).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn stage(&mut self, entry: squeue::Entry, op: Op) {
        self.sub.stage(entry, op);
    }

    fn conn(&self, index: u32) -> &ConnState {
        self.slots[index as usize]
            .conn
            .as_ref()
            .expect("Conn names a live slot")
    }

    pub(crate) fn conn_mut(&mut self, index: u32) -> Option<&mut ConnState> {
        self.slots.get_mut(index as usize)?.conn.as_mut()
    }

    pub(crate) fn gen(&self, index: u32) -> u32 {
        self.slots[index as usize].gen
    }

    /// The slot `id` names, if it is still that connection.
    fn index_of(&self, id: ConnId) -> Option<u32> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.gen == id.gen && slot.conn.is_some()).then_some(id.index)
    }

    pub(crate) fn conn_id(&self, index: u32) -> ConnId {
        ConnId {
            worker: self.worker,
            index,
            gen: self.gen(index),
        }
    }

    pub(crate) fn peer(&self, index: u32) -> &Endpoint {
        &self.conn(index).peer
    }

    pub(crate) fn insert(
        &mut self,
        socket: Socket,
        peer: Endpoint,
        handler: Box<dyn Handler>,
    ) -> u32 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.gen(index);
        let share = RecvShare::new(self.cfg.recv_share, (index, gen), Rc::clone(&self.resume));
        // Send tags start at `gen << 16`, so a late cancel aimed at a previous connection of
        // this slot rarely names a send of this one. Not a guarantee: the tag keeps 24 bits,
        // so only 8 generation bits survive, and after 65,536 sends the sequence runs into
        // them. Receives and connects are tagged with the generation itself (24 bits).
        let state = ConnState {
            fd: socket.as_raw_fd(),
            socket: Some(socket),
            peer,
            handler: Some(handler),
            panicked: false,
            opened: false,
            recv: RecvSide::new(share),
            send: SendQueue::new(gen << 16),
            write: WriteSide::Open,
            close_when_flushed: false,
            ops: 0,
            closing: None,
            handle: None,
            connecting: None,
            abort: false,
            send_cancel: None,
        };
        self.slots[index as usize].conn = Some(state);
        self.live += 1;
        self.load.fetch_add(1, Ordering::Relaxed);
        WorkerStats::add(&self.stats.open, 1);
        index
    }

    /// Frees a slot whose ops have all completed; dropping the state closes the socket.
    pub(crate) fn free_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if let Some(mut c) = slot.conn.take() {
            debug_assert_eq!(c.ops, 0, "slot freed with ops in flight");
            slot.gen = slot.gen.wrapping_add(1);
            self.free.push(index);
            self.live -= 1;
            self.load.fetch_sub(1, Ordering::Relaxed);
            self.stats.open.fetch_sub(1, Ordering::Relaxed);
            WorkerStats::add(&self.stats.closed, 1);
            // The handler's Drop is user code: a panic in it must not unwind out of the worker.
            if let Some(h) = c.handler.take() {
                Self::drop_handler(&self.stats, h);
            }
        }
    }

    /// Drops a handler, counting (not propagating) a panic in its `Drop`.
    fn drop_handler(stats: &WorkerStats, handler: Box<dyn Handler>) {
        if catch_unwind(AssertUnwindSafe(move || drop(handler))).is_err() {
            WorkerStats::add(&stats.handler_panics, 1);
        }
    }

    /// The worker is going away without draining its ring: tells every handle and every
    /// pending connect, and nothing else. The slots stay as they are (their buffers may be
    /// in the kernel's hands; the caller leaks them).
    pub(crate) fn abandon(&mut self, reason: &CloseReason) {
        for slot in &mut self.slots {
            let Some(c) = slot.conn.as_mut() else {
                continue;
            };
            if let Some(cs) = c.connecting.as_ref() {
                cs.fail(&c.peer, io::Error::other(reason.to_string()));
            }
            if let Some(h) = c.handle.take() {
                h.set_closed(reason.clone());
            }
        }
    }

    /// Runs `f` with the connection's handler and a `Conn`; a panic closes the connection.
    fn call(&mut self, index: u32, f: impl FnOnce(&mut dyn Handler, &mut Conn<'_>)) {
        let Some(mut handler) = self.conn_mut(index).and_then(|c| c.handler.take()) else {
            return;
        };
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut conn = Conn { core: self, index };
            f(&mut *handler, &mut conn);
        }));
        match res {
            Ok(()) => {
                if let Some(c) = self.conn_mut(index) {
                    c.handler = Some(handler);
                }
            }
            Err(_) => {
                WorkerStats::add(&self.stats.handler_panics, 1);
                Self::drop_handler(&self.stats, handler);
                if let Some(c) = self.conn_mut(index) {
                    c.panicked = true;
                }
                self.begin_close(index, CloseReason::Panicked);
            }
        }
        // No maybe_finish here: it calls handlers itself, and callers run it afterwards.
    }

    // ---- opening -------------------------------------------------------------------------

    /// Serves an accepted connection: makes its handler, `on_open`, starts receiving.
    pub(crate) fn adopt(&mut self, fd: OwnedFd, local: &Endpoint, factory: &Factory) {
        let socket = Socket::from(fd);
        // The peer may already be gone (getpeername fails); the connection is still served so
        // its data and EOF are seen, with the listener's endpoint standing in for the peer.
        let peer = crate::socket::peer_endpoint(&socket).unwrap_or_else(|_| local.clone());
        // A panicking factory must not unwind out of the worker (its ring and buffers would
        // be freed under the kernel): the connection is closed unserved (the socket drops).
        let Ok(handler) = catch_unwind(AssertUnwindSafe(|| factory(&peer))) else {
            WorkerStats::add(&self.stats.handler_panics, 1);
            return;
        };
        let index = self.insert(socket, peer, handler);
        WorkerStats::add(&self.stats.accepted, 1);
        self.open(index);
    }

    pub(crate) fn open(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.opened = true;
        }
        self.call(index, |h, conn| h.on_open(conn));
        self.arm_recv(index);
        self.pump_send(index);
        self.maybe_finish(index);
    }

    // ---- receiving -----------------------------------------------------------------------

    fn arm_recv(&mut self, index: u32) {
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

    fn on_recv_cqe(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        // A receive into the connection's own buffer gives it back with its completion.
        let own = if more {
            None
        } else {
            c.ops -= 1;
            c.recv.ended()
        };
        // Take the buffer first: whatever happens next, it goes back on drop.
        let share = Some(Rc::clone(&c.recv.share));
        let buf = match cqueue::buffer_select(flags) {
            Some(bid) => self.bufs.take(bid, res.max(0) as u32, share),
            None => own
                .filter(|_| res > 0)
                .map(|b| RecvBuf::own(b, res as usize, share)),
        };
        let mut cancel = false;
        if buf.is_some() && c.recv.share.take() {
            // The connection holds its whole share: it stops receiving (alone) until it
            // gives half back; the rest waits in its socket.
            WorkerStats::add(&self.stats.recv_share_pauses, 1);
            cancel = c.recv.cancel_armed();
        }
        if cancel {
            let gen = self.gen(index);
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        let c = self.conn_mut(index).expect("live");
        let closing = c.closing.is_some();
        match cqe_result("recv", res) {
            Ok(0) if buf.is_none() => {
                if !closing && !c.recv.eof() {
                    c.recv.set_eof();
                    self.call(index, |h, conn| h.on_peer_shutdown(conn));
                }
            }
            Ok(n) => {
                WorkerStats::add(&self.stats.recv_bytes, n as u64);
                if let (false, Some(buf)) = (closing, buf) {
                    self.call(index, |h, conn| h.on_recv(conn, buf));
                }
            }
            Err(_) if res == -libc::ENOBUFS => WorkerStats::add(&self.stats.enobufs, 1),
            Err(_) if res == -libc::ECANCELED => WorkerStats::add(&self.stats.recvs_cancelled, 1),
            Err(e) => {
                let peer = c.peer.clone();
                self.begin_close(index, CloseReason::from_io("recv", &peer, e));
            }
        }
        if !more {
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

    // ---- sending -------------------------------------------------------------------------

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
        self.pump_send(index);
        Ok(())
    }

    /// Starts the next chain of queued sends if none is in the kernel; shuts the write side
    /// once everything is out and a shutdown was asked for.
    fn pump_send(&mut self, index: u32) {
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
        let fd = types::Fd(c.fd);
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
                opcode::SendZc::new(fd, s.ptr, s.len)
                    .buf_index(s.fixed)
                    .flags(flags)
                    .build()
            } else {
                opcode::Send::new(fd, s.ptr, s.len).flags(flags).build()
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
    fn on_send_cqe(&mut self, index: u32, op: Op, res: i32, flags: u32) -> bool {
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return !cqueue::notif(flags);
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
        c.ops -= 1;
        if cqueue::more(flags) {
            c.ops += 1; // its notification is still due
        }
        let last = !cqueue::more(flags);
        // Tags keep 24 bits: find the full sequence number of the send this names.
        let Some(seq) = c.send.owns(|s| op.tag_matches(s)) else {
            return last;
        };
        if res > 0 {
            WorkerStats::add(&self.stats.sent_bytes, res as u64);
        }
        if res == -libc::EOPNOTSUPP {
            WorkerStats::add(&self.stats.zero_copy_fallbacks, 1);
        }
        let event = c.send.on_complete(seq, res, cqueue::more(flags));
        if c.closing.is_some() && c.send.in_kernel() && c.send_cancel.is_none() {
            self.cancel_send_head(index);
        }
        let c = self.conn_mut(index).expect("live");
        match event {
            // Restart: the chain was cut short; the rest goes in a new one. Nothing: sends
            // the handler queued meanwhile may be waiting for the chain to end.
            SendEvent::Nothing | SendEvent::Restart => self.pump_send(index),
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

    // ---- closing -------------------------------------------------------------------------

    /// While closing, cancels the send the kernel runs now of the connection's chain (the
    /// later ones fail with it, as their link breaks). A cancel can miss: the head may have
    /// finished and the next not have started yet; its completion then says `ENOENT`, and
    /// [`on_send_cancel_cqe`](Self::on_send_cancel_cqe) aims again, until the chain is over.
    fn cancel_send_head(&mut self, index: u32) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.closing.is_none() || c.send_cancel.is_some() {
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

    fn on_send_cancel_cqe(&mut self, index: u32, res: i32) {
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
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        c.close_when_flushed = true;
        let already_shut = matches!(c.write, WriteSide::Shut { notify: false });
        if c.recv.close() {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        if already_shut {
            self.begin_close(index, CloseReason::Local);
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
            self.cancel(Op::new(Kind::Connect, gen, index), index);
        }
    }

    /// Closes every connection (engine shutdown). Those already closing cleanly are reset if
    /// they are still waiting, so no zero-copy notification waits on a peer that does not
    /// read.
    pub(crate) fn close_all(&mut self) {
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
                if c.close_when_flushed && c.closing.is_none() {
                    c.closing = Some(CloseReason::Local);
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
                self.call(index, |h, conn| h.on_sent(conn, d.buf, d.res));
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
                    let abort = c.abort || !c.closing.as_ref().is_some_and(|r| r.is_clean());
                    if abort {
                        if let Some(s) = c.socket.take() {
                            let _ = s.set_linger(Some(Duration::ZERO));
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
                    let err = errno_error("send", libc::ECANCELED);
                    let err = partial_error(err, sent, buf.len());
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

    // ---- handles and commands -------------------------------------------------------------

    pub(crate) fn handle(&mut self, index: u32) -> ConnHandle {
        let id = self.conn_id(index);
        let (link, max) = (self.link.clone(), self.cfg.sends_per_conn);
        let c = self.conn_mut(index).expect("live");
        let shared = c
            .handle
            .get_or_insert_with(|| HandleShared::new(id, link, max));
        ConnHandle {
            shared: Arc::clone(shared),
        }
    }

    pub(crate) fn handle_send(&mut self, id: ConnId, data: Vec<u8>) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        if let Err(_buf) = self.send(index, SendBuf::from(data), true) {
            if let Some(h) = &self.conn(index).handle {
                h.send_done();
            }
        }
        self.maybe_finish(index);
    }

    pub(crate) fn handle_command(&mut self, id: ConnId, what: HandleOp) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        match what {
            HandleOp::ShutdownWrite => self.shutdown_write(index),
            HandleOp::Close => self.close_gracefully(index),
            HandleOp::Abort => self.abort(index),
            HandleOp::ResumeRecv => self.resume_recv(index),
        }
        self.maybe_finish(index);
    }

    /// Dispatches one connection completion; returns whether it was an op's final one (the
    /// worker counts those against what it submitted).
    pub(crate) fn on_conn_cqe(&mut self, op: Op, res: i32, flags: u32) -> bool {
        let index = op.index;
        let last = !cqueue::more(flags);
        match op.kind {
            Kind::Recv => {
                // A slot is reused only after every op of its previous connection completed.
                debug_assert!(
                    self.slots
                        .get(index as usize)
                        .is_none_or(|s| op.tag_matches(s.gen)),
                    "receive completion of another generation"
                );
                self.on_recv_cqe(index, res, flags);
                last
            }
            Kind::Send => self.on_send_cqe(index, op, res, flags),
            Kind::Connect | Kind::ConnectTimeout => {
                debug_assert!(
                    self.slots
                        .get(index as usize)
                        .is_none_or(|s| op.tag_matches(s.gen)),
                    "connect completion of another generation"
                );
                self.on_connect_cqe(index, op.kind, res);
                last
            }
            Kind::Cancel => {
                self.maybe_finish(index);
                last
            }
            Kind::CancelSend => {
                self.on_send_cancel_cqe(index, res);
                last
            }
            Kind::Wake | Kind::Accept | Kind::AcceptBackoff => last,
        }
    }
}

/// Requests from a [`ConnHandle`] other than sends.
pub(crate) enum HandleOp {
    ShutdownWrite,
    Close,
    Abort,
    ResumeRecv,
}
