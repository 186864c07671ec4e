//! Connecting through the ring: the connect (linked to a timeout for the caller's deadline),
//! and, where vsock leaves a connect under way (`EALREADY`), a writability poll within the
//! same deadline; for a hybrid vsock endpoint, the `CONNECT` handshake's sends and receives,
//! each linked to what is left of the deadline; then the connection opens, or the caller gets
//! the typed error.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, Socket};

use super::super::completion::errno_error;
use super::super::conn::CloseReason;
use super::super::handle::ConnHandle;
use super::super::op::{Kind, Op};
use super::super::stats::WorkerStats;
use super::{Core, Handler};
use crate::hybrid::connector::{Action, Connector};
use crate::hybrid::MAX_REPLY;
use crate::socket::SocketKind;
use crate::{Endpoint, Error, Result};

/// A connect in flight; boxed so the address and timespec the SQEs point to never move.
pub(crate) struct Connecting {
    addr: SockAddr,
    ts: types::Timespec,
    timeout: Option<Duration>,
    /// When the caller's timeout runs out, for the poll that may follow the connect (`None`:
    /// no timeout, or one too far away to represent).
    deadline: Option<Instant>,
    /// The op in the kernel is a writability poll, not the connect itself.
    polling: bool,
    /// Who hears the outcome: the caller of `Engine::connect`, or (`None`, a dial from a
    /// handler) the new connection's own handler (`on_open`, or `on_close` on failure).
    reply: Option<Sender<Result<ConnHandle>>>,
    res: Option<i32>,
    timeout_res: Option<i32>,
    /// A hybrid endpoint's handshake, once the unix connect is made.
    handshake: Option<RingHandshake>,
}

/// A hybrid handshake on the ring: the [`Connector`] says what to do, this turns it into an
/// SQE. The request it sends and the buffer it receives into live in the boxed
/// [`Connecting`], which outlives every op of the connection, so they stay in place until
/// each completion.
struct RingHandshake {
    connector: Connector,
    buf: [u8; MAX_REPLY],
    /// What the op in the kernel does.
    pending: Action,
}

impl RingHandshake {
    fn new(port: u32) -> RingHandshake {
        RingHandshake {
            connector: Connector::new(port),
            buf: [0; MAX_REPLY],
            pending: Action::Done,
        }
    }

    /// The SQE of the next action, `None` when the handshake is done. The reply is peeked,
    /// then only its bytes are consumed, so the guest's first stream bytes stay queued for
    /// the connection's receives.
    fn next_entry(&mut self, fd: RawFd) -> Option<squeue::Entry> {
        self.pending = self.connector.action();
        let entry = match self.pending {
            Action::Done => return None,
            Action::Send => {
                let unsent = self.connector.unsent();
                opcode::Send::new(types::Fd(fd), unsent.as_ptr(), unsent.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            }
            Action::Peek(n) => opcode::Recv::new(
                types::Fd(fd),
                self.buf.as_mut_ptr(),
                n.min(MAX_REPLY) as u32,
            )
            .flags(libc::MSG_PEEK)
            .build(),
            Action::Consume(n) => opcode::Recv::new(
                types::Fd(fd),
                self.buf.as_mut_ptr(),
                n.min(MAX_REPLY) as u32,
            )
            .build(),
        };
        Some(entry)
    }

    /// The pending op transferred `n` bytes.
    fn complete(&mut self, n: usize) -> io::Result<()> {
        let n = n.min(MAX_REPLY);
        match self.pending {
            Action::Send => self.connector.sent(n),
            Action::Peek(_) => self.connector.peeked(&self.buf[..n])?,
            // The bytes were peeked, so they are queued: none means the queue vanished.
            Action::Consume(_) if n == 0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            Action::Consume(_) => self.connector.consumed(n),
            Action::Done => {}
        }
        Ok(())
    }
}

impl Connecting {
    /// Fails the connect with `err` (the worker is going away).
    pub(crate) fn fail(&self, peer: &Endpoint, err: io::Error) {
        if let Some(reply) = &self.reply {
            let _ = reply.send(Err(Error::new("connect", Some(peer.clone()), err)));
        }
    }
}

impl Core {
    /// Starts a connect through the ring (a socket of type `kind`), with a linked timeout
    /// when `timeout` is given.
    pub(crate) fn connect(
        &mut self,
        ep: Endpoint,
        kind: SocketKind,
        timeout: Option<Duration>,
        handler: Box<dyn Handler>,
        reply: Sender<Result<ConnHandle>>,
    ) -> Option<u32> {
        match self.start_connect(ep, kind, timeout, handler, Some(reply.clone())) {
            Ok(index) => Some(index),
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    }

    /// Starts a connect for a handler of this worker ([`Conn::connect`](super::Conn::connect)):
    /// the new connection's handler hears the outcome (`on_open`, or `on_close` with the
    /// error). Returns the new connection's slot.
    pub(crate) fn dial(
        &mut self,
        ep: Endpoint,
        timeout: Option<Duration>,
        handler: Box<dyn Handler>,
    ) -> Result<u32> {
        self.start_connect(ep, SocketKind::Stream, timeout, handler, None)
    }

    fn start_connect(
        &mut self,
        ep: Endpoint,
        kind: SocketKind,
        timeout: Option<Duration>,
        handler: Box<dyn Handler>,
        reply: Option<Sender<Result<ConnHandle>>>,
    ) -> Result<u32> {
        if timeout.is_some_and(|t| t.is_zero()) {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "connect timeout of zero");
            return Err(Error::new("connect", Some(ep), err));
        }
        if self.stopping {
            let err = io::Error::new(io::ErrorKind::NotConnected, "the engine is shutting down");
            return Err(Error::new("connect", Some(ep), err));
        }
        let addr = crate::socket::sock_addr("connect", &ep)?;
        let socket = crate::socket::new_socket(&ep, kind, false)?;
        self.cfg.socket.apply(&socket, &ep, "connect")?;
        if let (Endpoint::Vsock(_), Some(t)) = (&ep, timeout) {
            // The kernel's vsock connect timeout (2 s by default) bounds connects through the
            // ring too: raise it so the caller's deadline decides.
            crate::socket::raise_vsock_connect_timeout(&socket, t)
                .map_err(Error::with("setsockopt SO_VM_SOCKETS_CONNECT_TIMEOUT", &ep))?;
        }
        let index = self.insert(socket, ep, handler);
        let c = self.conn_mut(index).expect("just inserted");
        let cs = c.connecting.insert(Box::new(Connecting {
            addr,
            ts: types::Timespec::new(), // set by stage_connect_op
            timeout,
            // A timeout past what Instant can hold (Duration::MAX) is no deadline at all.
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            polling: false,
            reply,
            res: None,
            timeout_res: None,
            handshake: None,
        }));
        let entry =
            opcode::Connect::new(types::Fd(c.fd), cs.addr.as_ptr().cast(), cs.addr.len()).build();
        self.stage_connect_op(index, entry);
        Ok(index)
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
                self.sub.stage_linked_timeout(entry, t);
            }
            None => {
                c.ops += 1;
                self.sub.stage_group([entry]);
            }
        }
    }

    pub(crate) fn on_connect_cqe(&mut self, index: u32, kind: Kind, res: i32) {
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
            // The linked timeout fired but did not cancel the connect in place (ENOENT: it
            // missed, or interrupted it in io-wq; EALREADY): aim again until it is over.
            if kind == Kind::ConnectTimeout && matches!(-res, libc::ENOENT | libc::EALREADY) {
                self.cancel_connect(index);
            }
            return;
        }
        let Some(cs) = c.connecting.as_ref() else {
            return;
        };
        let res = cs.res.unwrap_or(-libc::ECANCELED);
        let outcome = if cs.handshake.is_some() {
            self.handshake_step(index, res)
        } else {
            self.connect_step(index, res)
        };
        if let Some(outcome) = outcome {
            self.finish_connect(index, outcome);
        }
    }

    /// The connect (or the poll after it) completed with `res`: the outcome, or `None` when
    /// a next op (the poll, the handshake) is staged.
    fn connect_step(&mut self, index: u32, mut res: i32) -> Option<Result<()>> {
        let c = self.conn_mut(index)?;
        let cs = c.connecting.as_mut()?;
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
            return None;
        }
        let ep = c.peer.clone();
        let closing = c.closing.is_some();
        if res == 0 && !closing {
            let Endpoint::Hybrid(h) = &c.peer else {
                return Some(Ok(()));
            };
            // Connected to the VMM's socket: now the handshake, within the same deadline.
            let fd = c.fd;
            cs.res = None;
            cs.timeout_res = None;
            let hs = cs.handshake.insert(RingHandshake::new(h.port()));
            let Some(entry) = hs.next_entry(fd) else {
                return Some(Ok(())); // nothing to do (there always is: the request goes first)
            };
            self.stage_connect_op(index, entry);
            return None;
        }
        // The deadline's cancel ends the connect with ECANCELED, or, where io-wq ran it as a
        // blocking connect (unix, waiting for backlog room), interrupts it: EINTR, and the
        // linked timeout then reports ENOENT (its target was not cancellable in place). So a
        // deadline that has passed counts too.
        let timed_out = cs.deadline_hit()
            && matches!(
                -res,
                libc::ECANCELED | libc::EALREADY | libc::EINPROGRESS | libc::EINTR
            );
        // A cancel that reached the connect blocked in io-wq interrupts it: EINTR.
        let cut = res == 0 || res == -libc::ECANCELED || (res == -libc::EINTR && closing);
        let err = if timed_out {
            cs.timed_out()
        } else if cut {
            cancelled()
        } else {
            errno_error("connect", -res)
        };
        Some(Err(Error::new("connect", Some(ep), err)))
    }

    /// A hybrid handshake op completed with `res`: the outcome, or `None` when the next op
    /// is staged.
    fn handshake_step(&mut self, index: u32, res: i32) -> Option<Result<()>> {
        let c = self.conn_mut(index)?;
        let fd = c.fd;
        let closing = c.closing.is_some();
        let ep = c.peer.clone();
        let cs = c.connecting.as_mut()?;
        let deadline_hit = cs.deadline_hit();
        let hs = cs.handshake.as_mut()?;
        let fail = |e| Some(Err(Error::new("handshake", Some(ep.clone()), e)));
        if closing {
            return fail(cancelled());
        }
        if res < 0 {
            if deadline_hit && matches!(-res, libc::ECANCELED | libc::EINTR) {
                return fail(cs.timed_out());
            }
            return fail(hs.connector.io_error(errno_error("handshake", -res)));
        }
        if let Err(e) = hs.complete(res as usize) {
            return fail(hs.connector.io_error(e));
        }
        let entry = hs.next_entry(fd);
        match entry {
            None => Some(Ok(())),
            Some(_) if deadline_hit => fail(cs.timed_out()),
            Some(entry) => {
                cs.res = None;
                cs.timeout_res = None;
                self.stage_connect_op(index, entry);
                None
            }
        }
    }

    /// Ends a connect: the connection opens, or the caller gets `outcome`'s error.
    fn finish_connect(&mut self, index: u32, outcome: Result<()>) {
        let Some(c) = self.conn_mut(index) else {
            return;
        };
        let Some(cs) = c.connecting.take() else {
            return;
        };
        let Some(reply) = cs.reply else {
            // Dialed from a handler: its own handler hears the outcome.
            match outcome {
                Ok(()) => {
                    WorkerStats::add(&self.stats.connected, 1);
                    self.open(index);
                }
                Err(e) => self.fail_dial(index, e),
            }
            return;
        };
        match outcome {
            Ok(()) => {
                let handle = self.handle(index);
                if reply.send(Ok(handle)).is_ok() {
                    WorkerStats::add(&self.stats.connected, 1);
                    self.open(index);
                    return;
                }
                // The caller gave up waiting: nobody can drive this connection; close it (the
                // handler is dropped, never opened).
                self.free_unserved(index);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                if let Some(h) = self.conn_mut(index).and_then(|c| c.handle.take()) {
                    h.set_closed(CloseReason::EngineShutdown);
                }
                self.free_unserved(index);
            }
        }
    }

    /// Frees the slot of a connection no handler will serve, with a reset (`SO_LINGER` 0):
    /// one the caller gave up on, or one cut short after the kernel had connected it, must
    /// not end with a FIN that its peer could take for a complete, empty stream.
    fn free_unserved(&mut self, index: u32) {
        if let Some(s) = self.conn_mut(index).and_then(|c| c.socket.take()) {
            let _ = s.set_linger(Some(Duration::ZERO));
        }
        self.free_slot(index);
    }

    /// A dial from a handler failed: its handler gets `on_close` with the error (never
    /// `on_open`; the connection is closing, so its `Conn` refuses sends), then the slot is
    /// freed.
    fn fail_dial(&mut self, index: u32, err: Error) {
        // A dial cut by the engine's shutdown, or aborted by a handler, says so; only a
        // connect that failed by itself is an error.
        let reason = match self.conn_mut(index).and_then(|c| c.closing.clone()) {
            Some(r @ (CloseReason::EngineShutdown | CloseReason::Aborted | CloseReason::Local)) => {
                r
            }
            _ => CloseReason::Error(std::sync::Arc::new(err)),
        };
        if let Some(c) = self.conn_mut(index) {
            c.closing = Some(reason.clone());
            // Cut short after the kernel connected it, it must end with a reset (see
            // `free_unserved`).
            if let Some(s) = c.socket.take() {
                let _ = s.set_linger(Some(Duration::ZERO));
            }
        }
        self.call(index, |h, conn| h.on_close(conn, &reason));
        if let Some(h) = self.conn_mut(index).and_then(|c| c.handle.take()) {
            h.set_closed(reason);
        }
        self.free_slot(index);
    }
}

impl Connecting {
    /// Whether the connect op is still in the kernel and should be cut short: the
    /// connection is `closing`, or the deadline has passed (its linked timeout may have
    /// missed it; see `connect_cancel.rs`).
    pub(super) fn cut_due(&self, closing: bool) -> bool {
        self.res.is_none() && (closing || self.deadline_hit())
    }

    /// Whether the caller's deadline cut the op short (its linked timeout fired) or has
    /// passed.
    fn deadline_hit(&self) -> bool {
        self.timeout_res == Some(-libc::ETIME) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The error of a connect (handshake included) the deadline cut short.
    fn timed_out(&self) -> io::Error {
        let after = self.timeout.unwrap_or_default();
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {after:?}"),
        )
    }
}

/// The error of a connect the engine's shutdown or the connection's own close or abort
/// cancelled.
fn cancelled() -> io::Error {
    io::Error::new(
        io::ErrorKind::Interrupted,
        "connect cancelled (the connection was closed, or the engine is shutting down)",
    )
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
