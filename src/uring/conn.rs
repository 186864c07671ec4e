//! What names a connection ([`ConnId`]), says how it ended ([`CloseReason`]) and which of its
//! deadlines passed ([`Deadline`]): the types the handler API, the core and the handles all
//! use, below each of them.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::{Endpoint, Error};

/// Names a connection: its worker, slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) worker: u32,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The worker the connection lives on.
    pub fn worker(&self) -> usize {
        self.worker as usize
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}#{}.{}", self.worker, self.index, self.gen)
    }
}

/// Why a connection closed. Non-exhaustive: later versions may add reasons (match with a
/// wildcard arm).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both directions finished: the peer sent EOF and our write side was shut down with
    /// everything sent.
    Eof,
    /// [`Conn::close`](super::Conn::close) or [`ConnHandle::close`](super::ConnHandle::close) was called: everything queued was sent, then
    /// FIN.
    Local,
    /// [`Conn::abort`](super::Conn::abort) or [`ConnHandle::abort`](super::ConnHandle::abort) was called: what was queued was dropped and
    /// the peer got a reset.
    Aborted,
    /// The peer reset the connection (`ECONNRESET`, `EPIPE`).
    Reset,
    /// An operation failed; the error names it and the peer.
    Error(Arc<Error>),
    /// A handler call panicked.
    Panicked,
    /// The engine shut down.
    EngineShutdown,
    /// A deadline passed and the handler's [`on_deadline`](super::Handler::on_deadline)
    /// closed the connection for it ([`Conn::close_timed_out`](super::Conn::close_timed_out),
    /// what it does by default): after a read deadline gracefully (what was queued was sent,
    /// then FIN), after a write deadline at once (the queued sends came back with `TimedOut`
    /// errors and the peer got a reset).
    TimedOut(Deadline),
}

/// Which deadline of a connection passed: see
/// [`Conn::set_read_deadline`](super::Conn::set_read_deadline) and
/// [`Conn::set_write_deadline`](super::Conn::set_write_deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// The read deadline: it passed while the connection waited for data.
    Read,
    /// The write deadline: it passed while sends were queued or in flight.
    Write,
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deadline::Read => "read deadline",
            Deadline::Write => "write deadline",
        })
    }
}

impl CloseReason {
    /// The reason for a failed operation `op` on `peer`: `Reset` for resets, else `Error`.
    pub(crate) fn from_io(op: &'static str, peer: &Endpoint, err: io::Error) -> CloseReason {
        match err.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => CloseReason::Reset,
            _ => CloseReason::Error(Arc::new(Error::new(op, Some(peer.clone()), err))),
        }
    }

    /// Whether the connection ended without a failure (`Eof` or `Local`).
    pub fn is_clean(&self) -> bool {
        matches!(self, CloseReason::Eof | CloseReason::Local)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("closed after EOF both ways"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Aborted => f.write_str("aborted locally (reset)"),
            CloseReason::Reset => f.write_str("reset by peer"),
            CloseReason::Error(e) => write!(f, "closed on error: {e}"),
            CloseReason::Panicked => f.write_str("closed: a handler panicked"),
            CloseReason::EngineShutdown => f.write_str("closed: engine shut down"),
            CloseReason::TimedOut(Deadline::Read) => {
                f.write_str("closed: the read deadline passed")
            }
            CloseReason::TimedOut(Deadline::Write) => {
                f.write_str("aborted: the write deadline passed (reset)")
            }
        }
    }
}
