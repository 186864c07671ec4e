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
//! Handlers are called only from completion processing and, for another connection than the
//! caller's, after [`Conn::with_conn`] (never for the connection whose handler runs),
//! with the handler taken out of its slot for the call, so a handler can use its `Conn`
//! freely and a connection is never freed under a running handler.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use io_uring::{cqueue, squeue};
use socket2::Socket;

use super::buf_pool::BufferPool;
use super::buf_ring::BufRing;
use super::conn::{CloseReason, ConnId};
use super::handle::{ConnHandle, HandleShared, Request, RequestSink};
use super::op::{Kind, Op};
use super::recv_side::{RecvShare, RecvSide, ResumeList};
use super::send_buf::SendBuf;
use super::send_queue::{SendQueue, SendSettings, SubmitSend, MAX_SEND};
use super::settings::Settings;
use super::stats::WorkerStats;
use super::submit::Submission;
use crate::Endpoint;
use connect::Connecting;
use deadline::Deadlines;
use deadline_heap::DeadlineHeap;
use files::FileTable;
use ring_timer::RingTimer;

mod close;
mod connect;
mod connect_cancel;
mod deadline;
mod deadline_heap;
mod files;
mod handler;
mod recv;
mod ring_timer;
mod send;

pub(crate) use files::table_slots;
pub use handler::{Conn, Handler};
pub(crate) use handler::{Factory, MakeHandler};

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
    /// Where this worker's connections' handles send their requests (its mailbox).
    requests: Arc<dyn RequestSink>,
    pub(crate) load: Arc<AtomicUsize>,
    live: usize,
    pub(crate) cfg: Arc<Settings>,
    send_settings: SendSettings,
    /// Scratch space for the chain being submitted (kept, so sending allocates nothing).
    chain: Vec<SubmitSend>,
    /// Set by [`Core::close_all`]: the worker is shutting down, so no connect starts (a
    /// handler dialing from `on_close` would otherwise outlive the close and hold shutdown).
    pub(crate) stopping: bool,
    /// The registered file table (empty when registered files are off).
    files: FileTable,
    /// When each connection's deadlines are next looked at.
    deadline_heap: DeadlineHeap,
    /// Scratch space for the connections whose deadlines came due (kept: no allocation).
    due_scratch: Vec<(u32, u32)>,
    /// The worker's ring timeout, for the deadlines and the executor's timers.
    ring_timer: RingTimer,
}

struct Slot {
    gen: u32,
    /// The first send tag of the slot's next connection.
    next_seq: u32,
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
    /// The socket's slot in the registered file table, while it has one.
    file: Option<u32>,
    /// SQEs made on the socket so far (saturating): it is registered after a few.
    sqes: u32,
    pub(crate) peer: Endpoint,
    handler: Option<Box<dyn Handler>>,
    panicked: bool,
    opened: bool,
    recv: RecvSide,
    send: SendQueue,
    write: WriteSide,
    /// A graceful close: once the queued sends are out and FIN is sent, the connection closes
    /// for this reason.
    close_when_flushed: Option<CloseReason>,
    /// Completions still due for this connection's ops.
    pub(crate) ops: u32,
    pub(crate) closing: Option<CloseReason>,
    pub(crate) handle: Option<Arc<HandleShared>>,
    pub(crate) connecting: Option<Box<Connecting>>,
    /// Reset rather than drain when closing (abort, engine shutdown).
    abort: bool,
    /// The send an outstanding cancel aims at.
    send_cancel: Option<u32>,
    /// The read and write deadlines the handler set.
    deadlines: Deadlines,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        worker: u32,
        pool: BufferPool,
        bufs: Rc<BufRing>,
        stats: Arc<WorkerStats>,
        requests: Arc<dyn RequestSink>,
        load: Arc<AtomicUsize>,
        cfg: Arc<Settings>,
        send_zc: bool,
        file_slots: u32,
    ) -> Core {
        let send_settings = SendSettings {
            zc: send_zc,
            zc_threshold: cfg.zero_copy_threshold,
            max_chain: cfg.max_send_chain(),
            max_send: MAX_SEND,
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
            requests,
            load,
            live: 0,
            chain: Vec::with_capacity(cfg.max_send_chain()),
            cfg,
            send_settings,
            stopping: false,
            files: FileTable::new(file_slots),
            deadline_heap: DeadlineHeap::with_capacity(1024),
            due_scratch: Vec::with_capacity(64),
            ring_timer: RingTimer::new(),
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

    /// Whether the connection's socket reports a hang-up or an error (see
    /// [`Conn::peer_hung_up`]).
    pub(crate) fn peer_hung_up(&self, index: u32) -> bool {
        let Some(socket) = self.conn(index).socket.as_ref() else {
            return false;
        };
        crate::sys::poll_now(socket, 0)
            .is_ok_and(|events| events & (libc::POLLHUP | libc::POLLERR) != 0)
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
                self.slots.push(Slot {
                    gen: 0,
                    next_seq: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.gen(index);
        let share = RecvShare::new(self.cfg.recv_share, (index, gen), Rc::clone(&self.resume));
        // Not on tcp: a tcp bundle receive that fills every buffer is retried by the kernel
        // for what the socket still holds, past the receive's length, so it could take far
        // more than the connection's share in one completion.
        let bundle = self.bufs.bundles() && !matches!(peer, Endpoint::Tcp(_));
        // A seqpacket socket (Engine::listen_seqpacket, connect_seqpacket) receives one
        // message per completion.
        let messages = socket.r#type().is_ok_and(|t| t == socket2::Type::SEQPACKET);
        let recv = RecvSide::new(share, bundle);
        let recv = if messages { recv.messages() } else { recv };
        // Send tags go on from where the slot's previous connection stopped, so a late
        // completion or stray notification of that one (tags keep 24 bits) names none of this
        // one's sends until 16M more sends have wrapped the counter. Receives and connects
        // are tagged with the generation itself (24 bits).
        let state = ConnState {
            fd: socket.as_raw_fd(),
            file: None,
            sqes: 0,
            socket: Some(socket),
            peer,
            handler: Some(handler),
            panicked: false,
            opened: false,
            recv,
            send: if messages {
                SendQueue::new(self.slots[index as usize].next_seq).messages()
            } else {
                SendQueue::new(self.slots[index as usize].next_seq)
            },
            write: WriteSide::Open,
            close_when_flushed: None,
            ops: 0,
            closing: None,
            handle: None,
            connecting: None,
            abort: false,
            send_cancel: None,
            deadlines: Deadlines::default(),
        };
        self.slots[index as usize].conn = Some(state);
        self.live += 1;
        self.load.fetch_add(1, Ordering::Relaxed);
        WorkerStats::add(&self.stats.open, 1);
        index
    }

    /// Frees a slot whose ops have all completed; dropping the state closes the socket (its
    /// registered file slot cleared first).
    pub(crate) fn free_slot(&mut self, index: u32) {
        self.release_file(index);
        self.deadline_heap.remove(index);
        let slot = &mut self.slots[index as usize];
        if let Some(mut c) = slot.conn.take() {
            debug_assert_eq!(c.ops, 0, "slot freed with ops in flight");
            slot.gen = slot.gen.wrapping_add(1);
            slot.next_seq = c.send.next_seq();
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
        self.recheck_deadlines(index);
        self.arm_recv(index);
        self.pump_send(index);
        self.maybe_finish(index);
    }

    // ---- handles and commands -------------------------------------------------------------

    pub(crate) fn handle(&mut self, index: u32) -> ConnHandle {
        let id = self.conn_id(index);
        let (link, max) = (Arc::clone(&self.requests), self.cfg.sends_per_conn);
        let c = self.conn_mut(index).expect("live");
        let shared = c
            .handle
            .get_or_insert_with(|| HandleShared::new(id, link, max));
        ConnHandle {
            shared: Arc::clone(shared),
        }
    }

    /// Carries out a handle's request (ignored once the connection is gone).
    pub(crate) fn handle_request(&mut self, id: ConnId, req: Request) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        match req {
            Request::Send(data) => {
                if let Err(_buf) = self.send(index, SendBuf::from(data), true) {
                    if let Some(h) = &self.conn(index).handle {
                        h.send_done();
                    }
                }
            }
            Request::ShutdownWrite => self.shutdown_write(index),
            Request::Close => self.close_gracefully(index),
            Request::Abort => self.abort(index),
            Request::ResumeRecv => self.resume_recv(index),
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
            Kind::CancelConnect | Kind::ConnectCancelRetry => {
                self.on_connect_cancel_cqe(op, res);
                last
            }
            Kind::CancelSend => {
                self.on_send_cancel_cqe(index, res);
                last
            }
            Kind::FilesUpdate => {
                self.on_files_update_cqe(op, res);
                last
            }
            Kind::Wake | Kind::Accept | Kind::AcceptBackoff | Kind::HandoffSent => last,
            Kind::Handoff => false,
        }
    }
}
