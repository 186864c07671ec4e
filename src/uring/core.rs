//! [`Core`]: a worker's connections and what it does on their completions. The connection
//! slab is also the in-flight table: a connection has at most one receive, one send and one
//! connect (plus its linked timeout) in the kernel, plus zero-copy notifications; each op's
//! `user_data` names the slot, and the slot holds what the op uses.
//!
//! Buffer invariant: a send's buffer sits in `cur` from submission until its last completion
//! (the send's, and for zero-copy every notification), then in `parked` until it is handed to
//! the handler; a slot is freed only when its `ops` count (completions still due) is zero. So
//! nothing the kernel may still read or write is freed or reused early.
//!
//! Handlers are called only from completion processing (never from inside a [`Conn`] call),
//! with the handler taken out of its slot for the call, so a handler can use its `Conn`
//! freely and a connection is never freed under a running handler.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use io_uring::{cqueue, opcode, squeue, types};
use socket2::{SockAddr, Socket};

use super::buf_pool::BufferPool;
use super::buf_ring::BufRing;
use super::completion::{cqe_result, errno_error};
use super::conn::{CloseReason, Conn, ConnId, Handler};
use super::handle::{ConnHandle, Factory, HandleShared, WorkerLink};
use super::op::{Kind, Op};
use super::send_buf::SendBuf;
use super::stats::WorkerStats;
use crate::{Endpoint, Error, Result};

/// Most bytes one send SQE asks for.
const MAX_SEND: usize = 1 << 30;

pub(crate) struct Core {
    pub(crate) worker: u32,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// SQEs made since the last flush into the ring, and whether each heads a link.
    pub(crate) staged: Vec<(squeue::Entry, bool)>,
    pub(crate) pool: BufferPool,
    pub(crate) bufs: Rc<BufRing>,
    starved: VecDeque<(u32, u32)>,
    /// Final completions still due from the kernel, over all ops of this worker.
    pub(crate) inflight: usize,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) link: WorkerLink,
    pub(crate) load: Arc<AtomicUsize>,
    live: usize,
    sends_per_conn: usize,
    zc_threshold: usize,
    send_zc: bool,
}

struct Slot {
    gen: u32,
    conn: Option<ConnState>,
}

struct ConnState {
    socket: Option<Socket>,
    fd: RawFd,
    peer: Endpoint,
    handler: Option<Box<dyn Handler>>,
    panicked: bool,
    opened: bool,
    recv_armed: bool,
    recv_paused: bool,
    recv_starved: bool,
    /// Re-armed from the starved queue and has not received since (see `starve`).
    recv_rearmed_from_starved: bool,
    peer_eof: bool,
    queue: VecDeque<(SendBuf, bool)>,
    cur: Option<CurSend>,
    parked: VecDeque<Parked>,
    send_seq: u32,
    /// Completions still due for this connection's ops.
    ops: u32,
    want_wr_shutdown: bool,
    wr_shut: bool,
    notify_shutdown: bool,
    closing: Option<CloseReason>,
    handle: Option<Arc<HandleShared>>,
    zc: bool,
    connecting: Option<Box<Connecting>>,
    /// Reset rather than drain when closing (engine shutdown).
    abort: bool,
}

/// The send in the kernel.
struct CurSend {
    buf: SendBuf,
    from_handle: bool,
    off: usize,
    seq: u32,
    /// Zero-copy notifications still due for this buffer.
    notifs: u32,
    /// Whether the op in the kernel is a `SEND_ZC` (only its `EOPNOTSUPP` means "copy
    /// instead"; a plain send's is a real error).
    zc: bool,
}

/// A finished send whose buffer waits for notifications or for delivery to the handler.
struct Parked {
    buf: SendBuf,
    from_handle: bool,
    seq: u32,
    notifs: u32,
    res: io::Result<usize>,
}

/// A connect in flight; boxed so the address and timespec the SQEs point to never move.
pub(crate) struct Connecting {
    addr: SockAddr,
    ts: types::Timespec,
    timeout: Option<Duration>,
    /// When the caller's timeout runs out, for the poll that may follow the connect.
    deadline: Option<Instant>,
    /// The op in the kernel is a writability poll, not the connect itself (see
    /// [`Core::on_connect_cqe`]).
    polling: bool,
    reply: Sender<Result<ConnHandle>>,
    res: Option<i32>,
    timeout_res: Option<i32>,
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
        sends_per_conn: usize,
        zc_threshold: usize,
        send_zc: bool,
        staged_capacity: usize,
    ) -> Core {
        Core {
            worker,
            slots: Vec::with_capacity(1024),
            free: Vec::with_capacity(1024),
            staged: Vec::with_capacity(staged_capacity),
            pool,
            bufs,
            starved: VecDeque::with_capacity(1024),
            inflight: 0,
            stats,
            link,
            load,
            live: 0,
            sends_per_conn,
            zc_threshold,
            send_zc,
        }
    }

    /// Connections alive (including connecting and closing ones).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn stage(&mut self, entry: squeue::Entry, op: Op) {
        self.staged.push((entry.user_data(op.encode()), false));
        self.inflight += 1;
    }

    fn conn(&self, index: u32) -> &ConnState {
        self.slots[index as usize]
            .conn
            .as_ref()
            .expect("Conn names a live slot")
    }

    fn conn_mut(&mut self, index: u32) -> Option<&mut ConnState> {
        self.slots.get_mut(index as usize)?.conn.as_mut()
    }

    fn gen(&self, index: u32) -> u32 {
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

    fn insert(&mut self, socket: Socket, peer: Endpoint, handler: Box<dyn Handler>) -> u32 {
        let fd = socket.as_raw_fd();
        let cap = 2 * self.sends_per_conn;
        let state = ConnState {
            socket: Some(socket),
            fd,
            peer,
            handler: Some(handler),
            panicked: false,
            opened: false,
            recv_armed: false,
            recv_paused: false,
            recv_starved: false,
            recv_rearmed_from_starved: false,
            peer_eof: false,
            queue: VecDeque::with_capacity(cap),
            cur: None,
            parked: VecDeque::with_capacity(cap),
            send_seq: 0,
            ops: 0,
            want_wr_shutdown: false,
            wr_shut: false,
            notify_shutdown: false,
            closing: None,
            handle: None,
            zc: true,
            connecting: None,
            abort: false,
        };
        self.live += 1;
        self.load.fetch_add(1, Ordering::Relaxed);
        WorkerStats::add(&self.stats.open, 1);
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].conn = Some(state);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    conn: Some(state),
                });
                (self.slots.len() - 1) as u32
            }
        };
        // Send tags start at `gen << 16`, so a late cancel aimed at a previous connection of
        // this slot rarely names a send of this one. Not a guarantee: the tag keeps 24 bits,
        // so only 8 generation bits survive, and after 65,536 sends the sequence runs into
        // them. Receives and connects are tagged with the generation itself (24 bits).
        let gen = self.gen(index);
        if let Some(c) = self.conn_mut(index) {
            c.send_seq = gen << 16;
        }
        index
    }

    /// Frees a slot whose ops have all completed; dropping the state closes the socket.
    fn free_slot(&mut self, index: u32) {
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
                let err = io::Error::other(reason.to_string());
                let _ = cs
                    .reply
                    .send(Err(Error::new("connect", Some(c.peer.clone()), err)));
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

    fn open(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.opened = true;
        }
        self.call(index, |h, conn| h.on_open(conn));
        self.arm_recv(index);
        self.maybe_finish(index);
    }

    /// Starts a connect through the ring, with a linked timeout when `timeout` is given.
    pub(crate) fn connect(
        &mut self,
        ep: Endpoint,
        timeout: Option<Duration>,
        handler: Box<dyn Handler>,
        reply: Sender<Result<ConnHandle>>,
    ) {
        if timeout.is_some_and(|t| t.is_zero()) {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "connect timeout of zero");
            let _ = reply.send(Err(Error::new("connect", Some(ep), err)));
            return;
        }
        let setup = crate::socket::sock_addr("connect", &ep)
            .and_then(|addr| Ok((addr, crate::socket::new_stream(&ep, false)?)));
        let (addr, socket) = match setup {
            Ok(v) => v,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let index = self.insert(socket, ep, handler);
        let c = self.conn_mut(index).expect("just inserted");
        let cs = c.connecting.insert(Box::new(Connecting {
            addr,
            ts: types::Timespec::new(), // set by stage_connect_op
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            polling: false,
            reply,
            res: None,
            timeout_res: None,
        }));
        let entry =
            opcode::Connect::new(types::Fd(c.fd), cs.addr.as_ptr().cast(), cs.addr.len()).build();
        self.stage_connect_op(index, entry);
    }

    /// Stages `entry` (the connect, or the poll after it) as the connection's `Connect` op,
    /// linked to a timeout for what is left of the caller's deadline.
    fn stage_connect_op(&mut self, index: u32, entry: squeue::Entry) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        let Some(cs) = c.connecting.as_mut() else {
            return;
        };
        let entry = entry.user_data(Op::new(Kind::Connect, gen, index).encode());
        let timeout_entry = cs.deadline.map(|deadline| {
            // No op of this connection is in the kernel now, so the timespec may change.
            let left = deadline.saturating_duration_since(Instant::now());
            cs.ts = types::Timespec::new()
                .sec(left.as_secs())
                .nsec(left.subsec_nanos());
            opcode::LinkTimeout::new(&cs.ts)
                .build()
                .user_data(Op::new(Kind::ConnectTimeout, gen, index).encode())
        });
        match timeout_entry {
            Some(t) => {
                c.ops += 2;
                self.staged
                    .push((entry.flags(squeue::Flags::IO_LINK), true));
                self.staged.push((t, false));
                self.inflight += 2;
            }
            None => {
                c.ops += 1;
                self.staged.push((entry, false));
                self.inflight += 1;
            }
        }
    }

    fn on_connect_cqe(&mut self, index: u32, kind: Kind, res: i32) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        c.ops -= 1;
        if let Some(cs) = c.connecting.as_mut() {
            match kind {
                Kind::Connect => cs.res = Some(res),
                _ => cs.timeout_res = Some(res),
            }
        }
        if c.ops > 0 {
            return;
        }
        let Some(cs) = c.connecting.as_mut() else {
            return;
        };
        let mut res = cs.res.unwrap_or(-libc::ECANCELED);
        if cs.polling && res >= 0 {
            // The poll saw the socket writable or in error: SO_ERROR says which.
            res = connect_outcome(c.socket.as_ref());
        }
        // vsock can wake the connect's internal poll before the handshake is done; the retried
        // connect then fails with EALREADY (and a poll may fire early too). The connect is
        // still under way: wait for writability, within the same deadline.
        let under_way = res == -libc::EALREADY || res == -libc::EINPROGRESS;
        if under_way && c.closing.is_none() && cs.timeout_res != Some(-libc::ETIME) {
            cs.polling = true;
            cs.res = None;
            cs.timeout_res = None;
            let events = (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) as u32;
            let poll = opcode::PollAdd::new(types::Fd(c.fd), events).build();
            WorkerStats::add(&self.stats.connect_polls, 1);
            self.stage_connect_op(index, poll);
            return;
        }
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        let Some(cs) = c.connecting.take() else {
            return;
        };
        let ep = c.peer.clone();
        if res == 0 && c.closing.is_none() {
            let handle = self.handle(index);
            if cs.reply.send(Ok(handle)).is_ok() {
                WorkerStats::add(&self.stats.connected, 1);
                self.open(index);
                return;
            }
            // The caller gave up waiting: nobody can drive this connection; close it (the
            // handler is dropped, never opened).
            self.free_slot(index);
            return;
        }
        let timed_out = cs.timeout_res == Some(-libc::ETIME)
            && (res == -libc::ECANCELED || res == -libc::EALREADY || res == -libc::EINPROGRESS);
        let err = if timed_out {
            let after = cs.timeout.unwrap_or_default();
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {after:?}"),
            )
        } else if res == 0 || res == -libc::ECANCELED {
            io::Error::new(
                io::ErrorKind::Interrupted,
                "connect cancelled: engine shutting down",
            )
        } else {
            errno_error("connect", -res)
        };
        let _ = cs.reply.send(Err(Error::new("connect", Some(ep), err)));
        if let Some(h) = self.conn_mut(index).and_then(|c| c.handle.take()) {
            h.set_closed(CloseReason::EngineShutdown);
        }
        self.free_slot(index);
    }

    // ---- receiving -----------------------------------------------------------------------

    fn arm_recv(&mut self, index: u32) {
        let available = self.bufs.available();
        let gen = self.gen(index);
        let bgid = self.bufs.bgid();
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.recv_armed
            || c.recv_paused
            || c.peer_eof
            || c.closing.is_some()
            || c.connecting.is_some()
            || !c.opened
        {
            return;
        }
        if available == 0 {
            // Armed now it would fail with ENOBUFS at once: wait for a buffer to come back.
            self.starve(index, false);
            return;
        }
        c.recv_armed = true;
        c.ops += 1;
        let entry = opcode::RecvMulti::new(types::Fd(c.fd), bgid).build();
        self.stage(entry, Op::new(Kind::Recv, gen, index));
    }

    /// Queues the connection's receive until a buffer comes back. `first` puts it at the
    /// front: a receive that was re-armed from this queue and lost its buffer to a
    /// connection whose receive stayed armed keeps its turn, so busy connections cannot
    /// starve it.
    fn starve(&mut self, index: u32, first: bool) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.recv_starved {
            return;
        }
        c.recv_starved = true;
        if first {
            self.starved.push_front((index, gen));
        } else {
            self.starved.push_back((index, gen));
        }
    }

    /// Re-arms receives that found the ring empty, in the order they ran dry, at most one
    /// per free buffer.
    pub(crate) fn rearm_starved(&mut self) {
        let mut budget = self.bufs.available().min(self.starved.len() as u32);
        while budget > 0 {
            let Some((index, gen)) = self.starved.pop_front() else {
                break;
            };
            budget -= 1;
            if self.slots.get(index as usize).is_some_and(|s| s.gen == gen) {
                if let Some(c) = self.conn_mut(index) {
                    c.recv_starved = false;
                    c.recv_rearmed_from_starved = true;
                    self.arm_recv(index);
                }
            }
        }
    }

    fn on_recv_cqe(&mut self, index: u32, res: i32, flags: u32) {
        // Take the buffer first: whatever happens next, it goes back to the ring on drop.
        let buf =
            cqueue::buffer_select(flags).and_then(|bid| self.bufs.take(bid, res.max(0) as u32));
        let more = cqueue::more(flags);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if !more {
            c.recv_armed = false;
            c.ops -= 1;
        }
        let closing = c.closing.is_some();
        match cqe_result("recv", res) {
            Ok(0) if buf.is_none() => {
                if !closing && !c.peer_eof {
                    c.peer_eof = true;
                    self.call(index, |h, conn| h.on_peer_shutdown(conn));
                }
            }
            Ok(n) => {
                c.recv_rearmed_from_starved = false;
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
            // Fairness under buffer pressure: a receive ended by ENOBUFS, or any while others
            // wait for buffers, queues behind those waiting instead of re-arming at once and
            // taking the next free buffer from them.
            let ran_dry = res == -libc::ENOBUFS;
            let kept_turn = ran_dry
                && self
                    .conn_mut(index)
                    .is_some_and(|c| std::mem::take(&mut c.recv_rearmed_from_starved));
            if ran_dry || !self.starved.is_empty() {
                self.starve(index, kept_turn);
            } else {
                self.arm_recv(index);
            }
        }
        self.maybe_finish(index);
    }

    pub(crate) fn pause_recv(&mut self, index: u32) {
        let gen = self.gen(index);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        c.recv_paused = true;
        if c.recv_armed {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
    }

    pub(crate) fn resume_recv(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.recv_paused = false;
        }
        self.arm_recv(index);
    }

    // ---- sending -------------------------------------------------------------------------

    pub(crate) fn sends_queued(&self, index: u32) -> usize {
        let c = self.conn(index);
        c.queue.len() + c.cur.is_some() as usize + c.parked.len()
    }

    pub(crate) fn can_send(&self, index: u32) -> bool {
        let c = self.conn(index);
        c.closing.is_none() && !c.want_wr_shutdown && self.sends_queued(index) < self.sends_per_conn
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
        if c.closing.is_some() || c.want_wr_shutdown {
            return Err(buf);
        }
        c.queue.push_back((buf, from_handle));
        self.pump_send(index);
        Ok(())
    }

    /// Starts the next queued send if none is in the kernel.
    fn pump_send(&mut self, index: u32) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        if c.cur.is_some() || c.closing.is_some() || c.connecting.is_some() {
            return;
        }
        match c.queue.pop_front() {
            Some((buf, from_handle)) => {
                c.send_seq = c.send_seq.wrapping_add(1);
                c.cur = Some(CurSend {
                    buf,
                    from_handle,
                    off: 0,
                    seq: c.send_seq,
                    notifs: 0,
                    zc: false,
                });
                self.submit_cur(index);
            }
            None if c.want_wr_shutdown && !c.wr_shut => {
                c.wr_shut = true;
                c.notify_shutdown = true;
                if let Some(s) = &c.socket {
                    // ENOTCONN when the peer is already gone: nothing left to shut.
                    let _ = s.shutdown(std::net::Shutdown::Write);
                }
            }
            None => {}
        }
    }

    /// Submits (the rest of) the current send: zero-copy for large registered buffers on
    /// families that support it, else a copying send. `MSG_NOSIGNAL`: a dead peer is an
    /// `EPIPE` completion, never a `SIGPIPE` (which `WRITE_FIXED` on a socket would raise).
    fn submit_cur(&mut self, index: u32) {
        let (zc_ok, threshold) = (self.send_zc, self.zc_threshold);
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        let Some(cur) = c.cur.as_mut() else { return };
        let (ptr, len, fixed) = cur.buf.raw();
        let rest = (len - cur.off).min(MAX_SEND);
        // SAFETY (of the pointer arithmetic): off <= len, inside the buffer.
        let at = ptr.wrapping_add(cur.off);
        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
        let zc = zc_ok && c.zc && rest >= threshold && fixed.is_some();
        cur.zc = zc;
        let entry = if zc {
            opcode::SendZc::new(types::Fd(c.fd), at, rest as u32)
                .buf_index(fixed)
                .flags(flags)
                .build()
        } else {
            opcode::Send::new(types::Fd(c.fd), at, rest as u32)
                .flags(flags)
                .build()
        };
        let op = Op::new(Kind::Send, cur.seq, index);
        c.ops += 1;
        WorkerStats::add(
            if zc {
                &self.stats.zc_sends
            } else {
                &self.stats.copy_sends
            },
            1,
        );
        self.stage(entry, op);
    }

    fn on_send_cqe(&mut self, index: u32, op: Op, res: i32, flags: u32) {
        // Borrow the slot field by field, so the stats stay reachable.
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        if cqueue::notif(flags) {
            // The kernel is done reading the buffer of send `op.tag`.
            c.ops -= 1;
            if let Some(cur) = c.cur.as_mut().filter(|cur| op.tag_matches(cur.seq)) {
                cur.notifs -= 1;
            } else if let Some(p) = c.parked.iter_mut().find(|p| op.tag_matches(p.seq)) {
                p.notifs -= 1;
            }
            self.maybe_finish(index);
            return;
        }
        let more = cqueue::more(flags);
        if !more {
            c.ops -= 1;
        }
        let closing = c.closing.is_some();
        let Some(cur) = c.cur.as_mut().filter(|cur| op.tag_matches(cur.seq)) else {
            return;
        };
        if more {
            cur.notifs += 1;
        }
        let (len, was_zc) = (cur.buf.len(), cur.zc);
        let outcome = match cqe_result("send", res) {
            Ok(n) => {
                cur.off += n as usize;
                WorkerStats::add(&self.stats.sent_bytes, n as u64);
                if cur.off >= len {
                    Ok(len)
                } else if closing {
                    Err(errno_error("send", libc::ECANCELED))
                } else if n > 0 {
                    self.submit_cur(index);
                    return;
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "send: wrote 0 bytes",
                    ))
                }
            }
            Err(_) if res == -libc::EOPNOTSUPP && was_zc && !closing => {
                // SEND_ZC is not supported on this family (AF_UNIX): copy from now on.
                c.zc = false;
                WorkerStats::add(&self.stats.zero_copy_fallbacks, 1);
                self.submit_cur(index);
                return;
            }
            Err(e) => Err(e),
        };
        let c = self.conn_mut(index).expect("live");
        let cur = c.cur.take().expect("matched above");
        let failed = match &outcome {
            Err(e) if res != -libc::ECANCELED && !closing => {
                Some(io::Error::new(e.kind(), e.to_string()))
            }
            _ => None,
        };
        c.parked.push_back(Parked {
            buf: cur.buf,
            from_handle: cur.from_handle,
            seq: cur.seq,
            notifs: cur.notifs,
            res: outcome,
        });
        if let Some(e) = failed {
            let peer = c.peer.clone();
            self.begin_close(index, CloseReason::from_io("send", &peer, e));
        } else {
            self.pump_send(index);
        }
        self.maybe_finish(index);
    }

    pub(crate) fn shutdown_write(&mut self, index: u32) {
        if let Some(c) = self.conn_mut(index) {
            c.want_wr_shutdown = true;
        }
        self.pump_send(index);
    }

    // ---- closing -------------------------------------------------------------------------

    fn cancel(&mut self, target: Op, index: u32) {
        let entry = opcode::AsyncCancel::new(target.encode()).build();
        self.stage(entry, Op::new(Kind::Cancel, 0, index));
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
        let (recv, send, connecting) = (
            c.recv_armed,
            c.cur.as_ref().map(|s| s.seq),
            c.connecting.is_some(),
        );
        if recv {
            self.cancel(Op::new(Kind::Recv, gen, index), index);
        }
        if let Some(seq) = send {
            self.cancel(Op::new(Kind::Send, seq, index), index);
        }
        if connecting {
            self.cancel(Op::new(Kind::Connect, gen, index), index);
        }
    }

    /// Closes every connection (engine shutdown), aborting those already closing cleanly so
    /// no zero-copy notification waits on a peer that does not read.
    pub(crate) fn close_all(&mut self) {
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.conn_mut(index) {
                c.abort = true;
                self.begin_close(index, CloseReason::EngineShutdown);
                self.maybe_finish(index);
            }
        }
    }

    /// Delivers what is due (finished sends, the shutdown notice, EOF both ways) and ends a
    /// closing connection whose completions are all in.
    fn maybe_finish(&mut self, index: u32) {
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
            if c.notify_shutdown {
                c.notify_shutdown = false;
                self.call(index, |h, conn| h.on_shutdown(conn));
                continue;
            }
            if let Some(i) = c.parked.iter().position(|p| p.notifs == 0) {
                let p = c.parked.remove(i).expect("position is in range");
                if p.from_handle {
                    if let Some(h) = &c.handle {
                        h.send_done();
                    }
                    continue;
                }
                self.call(index, |h, conn| h.on_sent(conn, p.buf, p.res));
                continue;
            }
            if c.closing.is_none() {
                if c.peer_eof
                    && c.wr_shut
                    && c.cur.is_none()
                    && c.queue.is_empty()
                    && c.parked.is_empty()
                {
                    c.closing = Some(CloseReason::Eof);
                    continue;
                }
                return;
            }
            if c.ops > 0 {
                if c.cur.is_none() && !c.recv_armed {
                    // Only zero-copy notifications are due: they come when the kernel frees
                    // the data (the buffers stay in `parked` until then). A clean close lets
                    // it drain: FIN after the data, the socket kept, so engine shutdown can
                    // still abort it (a peer that never reads would hold it for minutes). A
                    // failed close, or shutdown, resets it: the data is freed at once.
                    let abort = c.abort || !c.closing.as_ref().is_some_and(|r| r.is_clean());
                    if abort {
                        if let Some(s) = c.socket.take() {
                            let _ = s.set_linger(Some(Duration::ZERO));
                        }
                    } else if !c.wr_shut {
                        c.wr_shut = true;
                        if let Some(s) = &c.socket {
                            // ENOTCONN when the peer is already gone: nothing left to shut.
                            let _ = s.shutdown(std::net::Shutdown::Write);
                        }
                    }
                }
                return;
            }
            if let Some((buf, from_handle)) = c.queue.pop_front() {
                if !from_handle {
                    let err = errno_error("send", libc::ECANCELED);
                    self.call(index, |h, conn| h.on_sent(conn, buf, Err(err)));
                }
                continue;
            }
            // Everything is in: close the socket, tell the handler and the handles.
            c.socket = None;
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
        let (link, max) = (self.link.clone(), self.sends_per_conn);
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
            HandleOp::Close => self.begin_close(index, CloseReason::Local),
            HandleOp::ResumeRecv => self.resume_recv(index),
        }
        self.maybe_finish(index);
    }

    /// Dispatches one connection completion.
    pub(crate) fn on_conn_cqe(&mut self, op: Op, res: i32, flags: u32) {
        let index = op.index;
        match op.kind {
            Kind::Recv => {
                // A slot is reused only after every op of its previous connection completed.
                debug_assert!(
                    self.slots
                        .get(index as usize)
                        .is_none_or(|s| op.tag_matches(s.gen)),
                    "receive completion of another generation"
                );
                self.on_recv_cqe(index, res, flags)
            }
            Kind::Send => self.on_send_cqe(index, op, res, flags),
            Kind::Connect | Kind::ConnectTimeout => {
                debug_assert!(
                    self.slots
                        .get(index as usize)
                        .is_none_or(|s| op.tag_matches(s.gen)),
                    "connect completion of another generation"
                );
                self.on_connect_cqe(index, op.kind, res)
            }
            Kind::Cancel => self.maybe_finish(index),
            Kind::Wake | Kind::Accept | Kind::AcceptBackoff => {}
        }
    }
}

/// Requests from a [`ConnHandle`] other than sends.
pub(crate) enum HandleOp {
    ShutdownWrite,
    Close,
    ResumeRecv,
}

/// The outcome of a connect whose socket polled writable or in error: 0 when connected,
/// `-errno` when it failed, `-EINPROGRESS` while still under way.
fn connect_outcome(socket: Option<&Socket>) -> i32 {
    let Some(socket) = socket else {
        return -libc::EBADF;
    };
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => return -e.raw_os_error().unwrap_or(libc::EIO),
        Ok(None) => {}
    }
    match socket.peer_addr() {
        Ok(_) => 0,
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => -libc::EINPROGRESS,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
    }
}
