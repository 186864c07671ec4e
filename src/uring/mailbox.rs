//! The mailbox of a worker: [`Command`]s from other threads (the engine's listen and
//! connect, accepted connections handed over, handles' requests) on a channel, the
//! [`Waker`] that makes a worker asleep in the kernel look at it, and the [`RingDoor`]
//! through which accepted connections reach its ring directly (`IORING_OP_MSG_RING`).

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::conn::ConnId;
use super::core::{Factory, MakeHandler};
use super::handle::{ConnHandle, Request, RequestSink};
use crate::socket::SocketKind;
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
        /// Stream or seqpacket.
        kind: SocketKind,
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

/// A worker's ring as a destination for `IORING_OP_MSG_RING` hand-offs: its fd, published
/// once the ring exists, and the count of messages on their way to it. A worker leaves only
/// after closing the door (no message in transit, none admitted after), so a message never
/// lands in a ring nobody reaps (its fd would leak), and the fd a sender names is the ring's
/// until the message has been delivered or has failed.
pub(crate) struct RingDoor {
    fd: AtomicI32,
    /// Messages in transit; [`DOOR_CLOSED`] once the worker leaves.
    inbound: AtomicUsize,
}

const DOOR_CLOSED: usize = usize::MAX;

impl RingDoor {
    pub(crate) fn new() -> RingDoor {
        RingDoor {
            fd: AtomicI32::new(-1),
            inbound: AtomicUsize::new(0),
        }
    }

    /// The worker's ring exists and takes messages (called before the engine is started).
    pub(crate) fn publish(&self, fd: RawFd) {
        self.fd.store(fd, Ordering::Release);
    }

    /// Admits one message: the ring's fd, valid until [`arrived`](Self::arrived) or
    /// [`failed`](Self::failed) is called for it; `None` if the door is closed or the ring
    /// was never published.
    pub(crate) fn admit(&self) -> Option<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 {
            return None;
        }
        self.inbound
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != DOOR_CLOSED).then(|| n + 1)
            })
            .ok()
            .map(|_| fd)
    }

    /// An admitted message is settled: the worker reaped it, or the kernel refused it (then
    /// the sender keeps the fd, and wakes the worker in case it waits for its door to empty).
    pub(crate) fn settled(&self) {
        let _ = self
            .inbound
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != DOOR_CLOSED && n > 0).then(|| n - 1)
            });
    }

    /// Closes the door if nothing is in transit; whether it is closed.
    pub(crate) fn try_close(&self) -> bool {
        match self
            .inbound
            .compare_exchange(0, DOOR_CLOSED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(n) => n == DOOR_CLOSED,
        }
    }

    /// Closes the door whatever is in transit (a failed worker, which reaps no more).
    pub(crate) fn force_close(&self) {
        self.inbound.store(DOOR_CLOSED, Ordering::Release);
    }
}

/// The listeners' endpoints and factories by listener slot, written by the accepting worker
/// and read by a worker a connection is handed to through its ring (a ring message carries
/// only the fd and the slot).
pub(crate) type ListenerTable = Arc<RwLock<Vec<Option<(Endpoint, Factory)>>>>;

/// Where to send a worker work.
#[derive(Clone)]
pub(crate) struct WorkerLink {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: Arc<Waker>,
    pub(crate) door: Arc<RingDoor>,
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
