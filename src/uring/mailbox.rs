//! The mailbox of a worker: [`Command`]s from other threads (the engine's listen and
//! connect, accepted connections handed over, handles' requests) on a channel, and the
//! [`Waker`] that makes a worker asleep in the kernel look at it.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::conn::ConnId;
use super::core::{Factory, MakeHandler};
use super::handle::{ConnHandle, Request, RequestSink};
use crate::{Endpoint, Result};

/// Work for a worker from another thread.
pub(crate) enum Command {
    /// Serve a listener: multishot accept on it.
    Listen {
        socket: socket2::Socket,
        local: Endpoint,
        factory: Factory,
    },
    /// Adopt an accepted connection.
    Adopt {
        fd: OwnedFd,
        local: Endpoint,
        factory: Factory,
    },
    /// Connect through the ring.
    Connect {
        ep: Endpoint,
        timeout: Option<Duration>,
        make: MakeHandler,
        reply: Sender<Result<ConnHandle>>,
    },
    /// A handle's request for one of this worker's connections.
    Request(ConnId, Request),
    /// Run a closure on the worker (the async runtime's `Engine::spawn_on`).
    Run(Box<dyn FnOnce() + Send>),
    /// Stop accepting, close everything, exit.
    Shutdown,
    /// Tests only: make the worker fail as if its ring had.
    #[cfg(test)]
    Fault(Fault),
}

/// A failure a test makes a worker have.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// `io_uring_enter` fails.
    RingError,
    /// The worker loop panics (a bug in the engine).
    Panic,
}

/// Wakes a worker that may be asleep in the kernel: one byte into a socket pair whose other
/// end the worker's ring always has a read on. `pending` coalesces wake-ups: only the first
/// sender since the worker last looked writes. The writer is nonblocking: a full buffer
/// already means a wake-up is due.
pub(crate) struct Waker {
    pub(crate) writer: std::os::unix::net::UnixStream,
    pub(crate) pending: AtomicBool,
}

impl Waker {
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A full buffer already wakes the worker, so a failed send loses nothing.
            // MSG_NOSIGNAL: a worker that has gone (its end closed) is EPIPE, not SIGPIPE.
            let _ = socket2::SockRef::from(&self.writer).send_with_flags(&[1], libc::MSG_NOSIGNAL);
        }
    }
}

/// Where to send a worker work.
#[derive(Clone)]
pub(crate) struct WorkerLink {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: Arc<Waker>,
}

impl WorkerLink {
    /// Sends `cmd` and wakes the worker; gives it back if the worker is gone.
    pub(crate) fn send(&self, cmd: Command) -> std::result::Result<(), Command> {
        self.tx.send(cmd).map_err(|e| e.0)?;
        self.waker.wake();
        Ok(())
    }
}

impl RequestSink for WorkerLink {
    fn request(&self, id: ConnId, req: Request) -> std::result::Result<(), Request> {
        self.send(Command::Request(id, req))
            .map_err(|cmd| match cmd {
                Command::Request(_, req) => req,
                _ => unreachable!("send gives back the command it was given"),
            })
    }
}
