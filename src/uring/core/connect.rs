//! Connecting through the ring: the connect (linked to a timeout for the caller's deadline),
//! and, where vsock leaves a connect under way (`EALREADY`), a writability poll within the
//! same deadline; then the connection opens, or the caller gets the typed error.

use std::io;
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
    reply: Sender<Result<ConnHandle>>,
    res: Option<i32>,
    timeout_res: Option<i32>,
}

impl Connecting {
    /// Fails the connect with `err` (the worker is going away).
    pub(crate) fn fail(&self, peer: &Endpoint, err: io::Error) {
        let _ = self
            .reply
            .send(Err(Error::new("connect", Some(peer.clone()), err)));
    }
}

impl Core {
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
        let setup = crate::socket::sock_addr("connect", &ep).and_then(|addr| {
            let socket = crate::socket::new_stream(&ep, false)?;
            self.cfg.socket.apply(&socket, &ep, "connect")?;
            Ok::<(SockAddr, Socket), Error>((addr, socket))
        });
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
            // A timeout past what Instant can hold (Duration::MAX) is no deadline at all.
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
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
        // The deadline's cancel ends the connect with ECANCELED, or, where io-wq ran it as a
        // blocking connect (unix, waiting for backlog room), interrupts it: EINTR, and the
        // linked timeout then reports ENOENT (its target was not cancellable in place). So a
        // deadline that has passed counts too.
        let past = cs.deadline.is_some_and(|d| Instant::now() >= d);
        let timed_out = (cs.timeout_res == Some(-libc::ETIME) || past)
            && matches!(
                -res,
                libc::ECANCELED | libc::EALREADY | libc::EINPROGRESS | libc::EINTR
            );
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
