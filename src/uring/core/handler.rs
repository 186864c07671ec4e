//! The completion-based connection API: the [`Handler`] trait the worker calls, the [`Conn`]
//! view of the [`Core`] it passes (send, half-close, close, pause receiving), and the
//! factories that make handlers on their worker.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::buf_ring::RecvBuf;
use super::super::conn::{CloseReason, ConnId, Deadline};
use super::super::handle::ConnHandle;
use super::super::send_buf::SendBuf;
use super::Core;
use crate::Endpoint;

/// Makes the handler of an outgoing connection, on its worker.
pub(crate) type MakeHandler = Box<dyn FnOnce() -> Box<dyn Handler> + Send>;

/// Makes the handler of an accepted connection, on the worker that will run it.
pub(crate) type Factory = Arc<dyn Fn(&Endpoint) -> Box<dyn Handler> + Send + Sync>;

/// What a connection does with its completions; called on the connection's worker thread
/// (the fast path: no locks, no hand-offs).
///
/// Each method gets the connection as a [`Conn`] to act on. Keep calls short: the worker
/// serves its other connections between them. A panic closes just this connection
/// ([`CloseReason::Panicked`]); the handler is then dropped without `on_close`.
///
/// # Examples
///
/// An echo handler: received buffers are sent back as they are (no copy); when the
/// connection has too many sends queued, the buffer waits in a backlog that `on_sent`
/// drains. The backlog holds at most the worker's receive buffers, so it stops growing.
///
/// ```
/// use std::collections::VecDeque;
/// use std::io;
/// use uring_vsock::uring::{Conn, Handler, RecvBuf, SendBuf};
///
/// #[derive(Default)]
/// struct Echo {
///     backlog: VecDeque<SendBuf>,
/// }
///
/// impl Handler for Echo {
///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
///         self.backlog.push_back(buf.into());
///         self.on_sent_or_recv(conn);
///     }
///     fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
///         if res.is_ok() {
///             self.on_sent_or_recv(conn);
///         }
///     }
/// }
///
/// impl Echo {
///     fn on_sent_or_recv(&mut self, conn: &mut Conn<'_>) {
///         while let Some(buf) = self.backlog.pop_front() {
///             if let Err(buf) = conn.send(buf) {
///                 self.backlog.push_front(buf);
///                 break;
///             }
///         }
///     }
/// }
/// ```
pub trait Handler: 'static {
    /// The connection was accepted or connected; receiving starts after this returns.
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Bytes arrived. The buffer is the handler's: keep it, drop it (back to the ring), or
    /// send it back with [`Conn::send`] (no copy).
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf);

    /// A send finished: `Ok(len)` when all of it was written, or the error (e.g. cancelled
    /// because the connection closed). The buffer comes back to the handler.
    fn on_sent(&mut self, conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        let _ = (conn, buf, res);
    }

    /// The peer shut down its write side (EOF): no more `on_recv`. By default this shuts down
    /// our write side once queued sends are out, which closes the connection with
    /// [`CloseReason::Eof`].
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        conn.shutdown_write();
    }

    /// Our write side was shut down (after [`Conn::shutdown_write`], all sends out).
    fn on_shutdown(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// A deadline passed while it applied: [`Deadline::Read`] while the connection waited for
    /// data, [`Deadline::Write`] while sends were queued or in flight (see
    /// [`Conn::set_read_deadline`], [`Conn::set_write_deadline`]). The deadline is cleared
    /// before this call, so it fires once: set a new one to extend it, or leave it cleared
    /// to keep the connection with no deadline.
    ///
    /// By default this closes the connection for it ([`Conn::close_timed_out`]): after a
    /// read deadline gracefully, after a write deadline at once, with the queued sends back
    /// through `on_sent` with `TimedOut` errors; `on_close` then gets
    /// [`CloseReason::TimedOut`].
    fn on_deadline(&mut self, conn: &mut Conn<'_>, which: Deadline) {
        conn.close_timed_out(which);
    }

    /// The connection closed: every operation has completed and the socket is closed. Sends
    /// still queued (after an abort or a failure) were returned through `on_sent` with an
    /// error first.
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = (conn, reason);
    }
}

/// A connection as its handler sees it, during a handler call.
///
/// Buffer ownership: [`send`](Self::send) takes a buffer until its `on_sent`;
/// [`send_buf`](Self::send_buf) lends an empty registered buffer from the worker's pool.
pub struct Conn<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) index: u32,
}

impl Conn<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.core.conn_id(self.index)
    }

    /// The peer's endpoint.
    pub fn peer(&self) -> &Endpoint {
        self.core.peer(self.index)
    }

    /// Whether both directions of the connection are over as the socket shows it now
    /// (`POLLHUP`, or a pending error): a unix peer that closed shows so at once, while a
    /// tcp or vsock peer's close shows as EOF only, as a half-close would. So in
    /// [`Handler::on_peer_shutdown`] it tells a unix peer that is gone from one that shut
    /// only its write side and still reads. One `poll(2)` that does not wait; `false`
    /// once the socket is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_vsock::uring::{Conn, Handler, RecvBuf};
    ///
    /// struct Front;
    /// impl Handler for Front {
    ///     fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    ///     fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
    ///         if conn.peer_hung_up() {
    ///             conn.abort(); // nobody is left to read an answer
    ///         }
    ///     }
    /// }
    /// ```
    pub fn peer_hung_up(&self) -> bool {
        self.core.peer_hung_up(self.index)
    }

    /// Queues `buf` to be sent after what is queued already. Sends go out in order: what is
    /// queued goes to the kernel as one chain of linked sends, the next chain once it is
    /// done; the buffer comes back in [`Handler::on_sent`].
    ///
    /// # Errors
    ///
    /// Gives the buffer back when the connection has the most sends queued (backpressure:
    /// retry from `on_sent`) or is closing.
    pub fn send(&mut self, buf: impl Into<SendBuf>) -> Result<(), SendBuf> {
        self.core.send(self.index, buf.into(), false)
    }

    /// Copies `data` into pooled buffers and queues them; returns how many bytes were taken
    /// (fewer when the pool or the send queue is full, 0 when closing). On a seqpacket
    /// connection each buffer is a message of its own: send a message with
    /// [`send`](Self::send) instead.
    pub fn send_copy(&mut self, mut data: &[u8]) -> usize {
        let mut taken = 0;
        while !data.is_empty() && self.can_send() {
            let Some(mut buf) = self.core.pool.get() else {
                break;
            };
            let n = buf.extend_from_slice(data);
            if self.send(buf).is_err() {
                break;
            }
            taken += n;
            data = &data[n..];
        }
        taken
    }

    /// An empty buffer from the worker's registered pool, or `None` when all are in use.
    pub fn send_buf(&mut self) -> Option<SendBuf> {
        self.core.pool.get()
    }

    /// Whether [`send`](Self::send) would take a buffer now.
    pub fn can_send(&self) -> bool {
        self.core.can_send(self.index)
    }

    /// Sends queued or in flight.
    pub fn sends_queued(&self) -> usize {
        self.core.sends_queued(self.index)
    }

    /// Stops receiving: cancels the receive in flight (data already received may still be
    /// delivered; nothing is lost: the rest stays in the socket) until [`resume_recv`].
    ///
    /// [`resume_recv`]: Self::resume_recv
    pub fn pause_recv(&mut self) {
        self.core.pause_recv(self.index);
    }

    /// Receives again after [`pause_recv`](Self::pause_recv).
    pub fn resume_recv(&mut self) {
        self.core.resume_recv(self.index);
    }

    /// Shuts down the write side once queued sends are out (the peer reads EOF).
    pub fn shutdown_write(&mut self) {
        self.core.shutdown_write(self.index);
    }

    /// Closes the connection gracefully: receiving stops, the sends already queued go out
    /// (each comes back through `on_sent` as usual), then FIN, then the socket is closed and
    /// `on_close` runs with [`CloseReason::Local`]. The peer reads every byte, then EOF.
    ///
    /// A peer that never reads holds the close until [`abort`](Self::abort) or the engine's
    /// shutdown. Bytes the peer sent that were not received yet are discarded (on tcp the
    /// kernel then answers with a reset, as a `close(2)` with unread data does).
    pub fn close(&mut self) {
        self.core.close_gracefully(self.index);
    }

    /// Closes the connection at once: operations in flight are cancelled and awaited, queued
    /// sends come back through `on_sent` with an error (its [`PartialSend`] says how much of
    /// each went out), and the peer gets a reset (`SO_LINGER` 0), not a FIN, so a tcp or unix
    /// peer cannot take a cut message for a complete one. vsock has no reset of its own: its
    /// peer's reads end as at a close, and its writes fail with `EPIPE`. `on_close` runs with
    /// [`CloseReason::Aborted`].
    ///
    /// [`PartialSend`]: crate::uring::PartialSend
    pub fn abort(&mut self) {
        self.core.abort(self.index);
    }

    /// Sets (or with `None` clears) the point in time after which waiting for data times
    /// out: if the connection still waits for data then, [`Handler::on_deadline`] gets
    /// [`Deadline::Read`] (by default the connection closes with
    /// [`CloseReason::TimedOut`]). It applies to the wait going on now too, and until the
    /// deadline is moved; per connection, not per receive: an idle timeout moves it on in
    /// each `on_recv`, which costs a store (no allocation, no system call).
    ///
    /// As the read deadlines of Go's `net.Conn` and of [`AsyncConn`], with rules of its own
    /// for callbacks:
    /// - A deadline that has passed already, or passes while the connection waits, fires
    ///   when the worker next runs its timers: after the current handler call has returned,
    ///   never inside the setter's call.
    /// - It applies only while the connection waits for data: not while receiving is paused
    ///   ([`pause_recv`](Self::pause_recv); one that passed meanwhile fires once receiving
    ///   resumes, if it has not been moved), nor after the peer's EOF
    ///   ([`Handler::on_peer_shutdown`]: nothing more can come), nor once the connection is
    ///   closing ([`close`](Self::close), [`abort`](Self::abort)). A receive the engine
    ///   stopped for the connection's share of receive buffers still waits.
    /// - Before `on_open` (a dialed connection still connecting) it waits for the
    ///   connection to open; the connect's own timeout bounds the connecting.
    /// - It fires once: it is cleared when `on_deadline` is called.
    ///
    /// Any `Instant` is fine, however far ahead or behind: nothing overflows (a ring timeout
    /// waits at most an hour, then the worker looks again).
    ///
    /// [`AsyncConn`]: crate::uring::AsyncConn
    ///
    /// # Examples
    ///
    /// An idle timeout: a connection that receives nothing for 30 s is closed (with
    /// [`CloseReason::TimedOut`]), one that keeps sending stays open.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use uring_vsock::uring::{Conn, Handler, RecvBuf};
    ///
    /// const IDLE: Duration = Duration::from_secs(30);
    ///
    /// struct IdleEcho;
    /// impl Handler for IdleEcho {
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         conn.set_read_deadline(Instant::now().checked_add(IDLE));
    ///     }
    ///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
    ///         conn.set_read_deadline(Instant::now().checked_add(IDLE));
    ///         let _ = conn.send(buf);
    ///     }
    /// }
    /// ```
    pub fn set_read_deadline(&mut self, at: Option<Instant>) {
        self.core.set_deadline(self.index, Deadline::Read, at);
    }

    /// Sets (or with `None` clears) the point in time after which sends time out: if sends
    /// are queued or in flight then, [`Handler::on_deadline`] gets [`Deadline::Write`] (by
    /// default the connection is aborted: the queued sends come back through `on_sent` with
    /// `TimedOut` errors, each with its [`PartialSend`], the peer gets a reset, and `on_close`
    /// gets [`CloseReason::TimedOut`]). It applies to the sends queued now too, and until the
    /// deadline is moved.
    ///
    /// As the write deadlines of Go's `net.Conn` and of [`AsyncConn`] (where a send that
    /// times out with its buffer in the kernel aborts the connection too: a stream cannot
    /// take back half a buffer), with rules of its own for callbacks:
    /// - A deadline that has passed already, or passes while sends wait, fires when the
    ///   worker next runs its timers: after the current handler call has returned, never
    ///   inside the setter's call. One that passes with no send queued fires when the next
    ///   send is queued, if it has not been moved.
    /// - It applies during a graceful [`close`](Self::close) too, while its sends are still
    ///   going out (so it bounds a close held by a peer that does not read, until the last
    ///   send completes), and after the peer's EOF; not once the connection is closing
    ///   otherwise (after the close's FIN, an abort, a failure), nor before `on_open`. A
    ///   graceful close whose sends have all completed but whose zero-copy notifications are
    ///   still due (the kernel holds the data, FIN is out, the peer does not read) is not
    ///   bounded by it: engine shutdown aborts such a close.
    /// - Sends queued through a [`ConnHandle`] count; they come back to the handle, not to
    ///   `on_sent`.
    /// - It fires once: it is cleared when `on_deadline` is called.
    ///
    /// [`AsyncConn`]: crate::uring::AsyncConn
    /// [`PartialSend`]: crate::uring::PartialSend
    pub fn set_write_deadline(&mut self, at: Option<Instant>) {
        self.core.set_deadline(self.index, Deadline::Write, at);
    }

    /// Sets both deadlines ([`set_read_deadline`](Self::set_read_deadline) and
    /// [`set_write_deadline`](Self::set_write_deadline)), as Go's `SetDeadline`.
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.set_read_deadline(at);
        self.set_write_deadline(at);
    }

    /// The read deadline, if one is set (`None` again once it fired).
    pub fn read_deadline(&self) -> Option<Instant> {
        self.core.deadline(self.index, Deadline::Read)
    }

    /// The write deadline, if one is set (`None` again once it fired).
    pub fn write_deadline(&self) -> Option<Instant> {
        self.core.deadline(self.index, Deadline::Write)
    }

    /// Closes the connection for a passed deadline, as [`Handler::on_deadline`] does by
    /// default; `on_close` then gets [`CloseReason::TimedOut`]. After [`Deadline::Read`] it
    /// closes gracefully (as [`close`](Self::close): the queued sends go out, then FIN);
    /// after [`Deadline::Write`] at once (as [`abort`](Self::abort): the peer gets a reset),
    /// and the queued sends come back through `on_sent` with `TimedOut` errors. Does nothing
    /// once the connection is closing.
    pub fn close_timed_out(&mut self, which: Deadline) {
        self.core.close_timed_out(self.index, which);
    }

    /// A handle to drive this connection from other threads.
    pub fn handle(&mut self) -> ConnHandle {
        self.core.handle(self.index)
    }

    /// Connects to `ep` from this connection's worker, so the new connection lives on the
    /// same worker as this one (its buffers can be forwarded to this one without a copy, and
    /// [`with_conn`](Self::with_conn) reaches it). Does not block: returns the new
    /// connection's id at once; `handler` then gets `on_open` once connected, or, if the
    /// connect fails (refused, `timeout` passed, the engine shut down), `on_close` with
    /// [`CloseReason::Error`] naming it (or [`CloseReason::EngineShutdown`]) and never
    /// `on_open`. Until it opens, sends to it are queued.
    ///
    /// # Errors
    ///
    /// `connect ENDPOINT: …` when the connect cannot start: a zero `timeout`
    /// (`InvalidInput`), an endpoint the kernel cannot make a socket for (e.g. vsock without
    /// a transport). `handler` is dropped then.
    ///
    /// # Examples
    ///
    /// A handler that greets each accepted connection's peer through a connection of its own
    /// to `upstream` (see the `with_conn` example for reaching one from the other):
    ///
    /// ```
    /// use uring_vsock::uring::{Conn, Handler, RecvBuf};
    /// use uring_vsock::Endpoint;
    ///
    /// struct Upstream;
    /// impl Handler for Upstream {
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         conn.send_copy(b"hello");
    ///     }
    ///     fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    /// }
    ///
    /// struct Front(Endpoint);
    /// impl Handler for Front {
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         if let Err(e) = conn.connect(&self.0, Some(std::time::Duration::from_secs(5)), Upstream) {
    ///             log::warn!("{e}");
    ///             conn.close();
    ///         }
    ///     }
    ///     fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    /// }
    /// ```
    pub fn connect<H: Handler>(
        &mut self,
        ep: &Endpoint,
        timeout: Option<Duration>,
        handler: H,
    ) -> crate::Result<ConnId> {
        let index = self.core.dial(ep.clone(), timeout, Box::new(handler))?;
        Ok(self.core.conn_id(index))
    }

    /// Runs `f` with another connection of this worker (`id`, e.g. from
    /// [`connect`](Self::connect)), as that connection's handler would see it: send to it
    /// (a [`RecvBuf`] of this one moves over without a copy), pause or resume its receiving,
    /// shut it down, close it. Returns `None` when `id` is not a live connection of this
    /// worker (closed, or on another worker: use a [`ConnHandle`] there).
    ///
    /// After `f`, what became due on that connection is delivered to its handler (a send's
    /// `on_sent`, `on_shutdown`, `on_close`) before this returns; its handler may in turn
    /// reach back to this connection, whose own deliveries wait until the current handler
    /// call returns. So a handler must not hold a borrow (e.g. of a `RefCell` it shares with
    /// the other handler) across this call.
    ///
    /// # Examples
    ///
    /// Forwarding: what this connection receives goes to its partner unchanged, or pauses
    /// this side when the partner has too many sends queued (the partner's `on_sent` would
    /// resume it):
    ///
    /// ```
    /// use uring_vsock::uring::{Conn, ConnId, Handler, RecvBuf};
    ///
    /// struct Forward {
    ///     partner: ConnId,
    /// }
    /// impl Handler for Forward {
    ///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
    ///         let sent = conn.with_conn(self.partner, |p| p.send(buf).is_ok());
    ///         match sent {
    ///             Some(true) => {}
    ///             Some(false) => conn.pause_recv(), // a real proxy keeps the buffer to retry
    ///             None => conn.close(),             // the partner is gone
    ///         }
    ///     }
    /// }
    /// ```
    pub fn with_conn<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Conn<'_>) -> R) -> Option<R> {
        if id.worker != self.core.worker {
            return None;
        }
        let index = self.core.index_of(id)?;
        let r = f(&mut Conn {
            core: self.core,
            index,
        });
        if index != self.index {
            self.core.maybe_finish(index);
        }
        Some(r)
    }
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("id", &self.id()).finish()
    }
}
