//! [`AsyncConn`]: a connection as a task on its worker sees it, with owned-buffer operations
//! in the completion style (the buffer goes to the engine and comes back), built on the
//! callback core through the [`Bridge`](super::bridge::Bridge) handler.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::super::buf_ring::RecvBuf;
use super::super::conn::{CloseReason, ConnId};
use super::super::send_buf::SendBuf;
use super::bridge::{close_error, ConnShared, State};
use super::timer::{sleep_until, Sleep};
use crate::Endpoint;

/// A connection served by a task on its worker ([`Engine::listen_async`]).
///
/// Operations take and give back owned buffers: [`recv`](Self::recv) yields a [`RecvBuf`]
/// from the worker's receive ring, [`send`](Self::send) takes a [`SendBuf`] (a pooled one
/// from [`send_buf`](Self::send_buf), or any `Vec<u8>` turned into one) and always hands it
/// back with the result. `AsyncConn` is `!Send`: it lives on its worker, and so do the tasks
/// that use it.
///
/// # Cancellation
///
/// Dropping an operation's future never loses, reorders or corrupts data:
/// - a [`recv`](Self::recv) future takes a buffer only when it completes, so a dropped one
///   leaves every received buffer queued for the next call;
/// - a [`send`](Self::send) future that was polled has handed its buffer to the engine: the
///   send runs on, whole and in order after the sends before it, and its buffer is dropped
///   when it finishes (a failure closes the connection, so later operations see it). A send
///   future dropped before its first poll sends nothing.
///
/// # Deadlines
///
/// As Go's `net.Conn`: [`set_read_deadline`](Self::set_read_deadline) and
/// [`set_write_deadline`](Self::set_write_deadline) set points in time after which
/// operations fail with `TimedOut`, until the deadline is moved. A receive that times out
/// loses nothing (the data stays queued); a send that times out with its buffer in the
/// kernel aborts the connection (a stream cannot take back half a buffer) and returns the
/// buffer once the kernel has. Per-operation timeouts: [`rt::timeout`](super::timeout).
///
/// Dropping an `AsyncConn` closes it gracefully (as [`close`](Self::close), not awaited).
///
/// # Examples
///
/// An echo server: every buffer received is sent back as it is (no copy).
///
/// ```
/// use std::io::{Read, Write};
/// use uring_vsock::uring::{AsyncConn, Engine};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::builder().workers(1).build()?;
/// let ep: uring_vsock::Endpoint = "tcp:127.0.0.1:0".parse()?;
/// let local = engine.listen_async(&ep, |conn: AsyncConn| async move {
///     while let Ok(Some(buf)) = conn.recv().await {
///         let (res, _buf) = conn.send(buf.into()).await;
///         if res.is_err() {
///             return;
///         }
///     }
///     let _ = conn.close().await;
/// })?;
///
/// let mut client = uring_vsock::blocking::Stream::connect(&local)?;
/// client.write_all(b"ping")?;
/// let mut echo = [0; 4];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"ping");
/// # Ok(()) }
/// ```
///
/// [`Engine::listen_async`]: super::super::Engine::listen_async
pub struct AsyncConn {
    shared: Rc<ConnShared>,
    id: ConnId,
    peer: Endpoint,
}

impl AsyncConn {
    pub(crate) fn new(shared: Rc<ConnShared>, id: ConnId, peer: Endpoint) -> AsyncConn {
        AsyncConn { shared, id, peer }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's endpoint.
    pub fn peer(&self) -> &Endpoint {
        &self.peer
    }

    /// The next received buffer; `Ok(None)` at EOF (the peer shut down its write side, and
    /// every byte before it was returned).
    ///
    /// # Errors
    ///
    /// `TimedOut` past the read deadline; once the connection has closed, its reason
    /// (`ConnectionReset`, `ConnectionAborted`, `NotConnected` after a local close or the
    /// engine's shutdown, the failed operation's error).
    pub fn recv(&self) -> Recv<'_> {
        Recv {
            conn: self,
            deadline: None,
        }
    }

    /// Sends all of `buf` after the sends before it; gives the buffer back with the result
    /// (`Ok(len)`: all of it was written).
    ///
    /// # Errors
    ///
    /// `TimedOut` past the write deadline; `NotConnected` after
    /// [`shutdown_write`](Self::shutdown_write) or once the connection is closing; the
    /// connection's close reason once it has closed.
    pub fn send(&self, buf: SendBuf) -> SendFuture<'_> {
        SendFuture {
            conn: self,
            state: SendState::Start(buf),
            deadline: None,
        }
    }

    /// An empty registered buffer from the worker's send pool, or `None` when all are in
    /// use (make one from a `Vec<u8>` instead).
    pub fn send_buf(&self) -> Option<SendBuf> {
        super::executor::current().and_then(|ex| ex.pool.get().and_then(|p| p.get()))
    }

    /// Shuts down the write side once every send before it is out (the peer reads EOF);
    /// receiving goes on.
    ///
    /// # Errors
    ///
    /// The close reason when the connection closed first.
    pub async fn shutdown_write(&self) -> io::Result<()> {
        let mut asked = false;
        std::future::poll_fn(|cx| self.poll_shutdown_write(&mut asked, cx)).await
    }

    /// Closes gracefully: receiving stops, every send before it goes out, then FIN; resolves
    /// when the socket is closed.
    ///
    /// # Errors
    ///
    /// The close reason when the connection did not end cleanly (reset, aborted, failed).
    pub async fn close(self) -> io::Result<()> {
        self.ask(|st| st.want.close = true);
        std::future::poll_fn(|cx| {
            let mut st = self.shared.st.borrow_mut();
            match &st.closed {
                Some(r) if r.is_clean() => Poll::Ready(Ok(())),
                Some(r) => Poll::Ready(Err(close_error("close", r))),
                None => {
                    register(&mut st.state_wakers, cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Closes at once: sends not yet out fail, the peer gets a reset (see
    /// [`Conn::abort`](super::super::Conn::abort)).
    pub fn abort(self) {
        self.ask(|st| st.want.abort = true);
    }

    /// How the connection ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.shared.st.borrow().closed.clone()
    }

    /// Sets (or with `None` clears) the point in time after which receives fail with
    /// `TimedOut`; it applies to the receive waiting now too.
    pub fn set_read_deadline(&self, at: Option<Instant>) {
        let w = {
            let mut st = self.shared.st.borrow_mut();
            st.read_deadline = at;
            st.recv_waker.take()
        };
        if let Some(w) = w {
            w.wake(); // re-polled with the new deadline
        }
    }

    /// Sets (or with `None` clears) the point in time after which sends fail with
    /// `TimedOut`; a send still unfinished then aborts the connection.
    pub fn set_write_deadline(&self, at: Option<Instant>) {
        let wakers = {
            let mut st = self.shared.st.borrow_mut();
            st.write_deadline = at;
            std::mem::take(&mut st.send_wakers)
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Sets both deadlines.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.set_read_deadline(at);
        self.set_write_deadline(at);
    }

    fn ask(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.shared.st.borrow_mut());
        self.shared.mark_dirty();
    }
}

impl Drop for AsyncConn {
    fn drop(&mut self) {
        let ask = match self.shared.st.try_borrow_mut() {
            Ok(mut st) if st.closed.is_none() && !st.want.close && !st.want.abort => {
                st.want.close = true;
                true
            }
            _ => false,
        };
        if ask {
            self.shared.mark_dirty();
        }
    }
}

impl fmt::Debug for AsyncConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConn")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish()
    }
}

// The operations as poll functions, for the futures above and the I/O adapters.
impl AsyncConn {
    pub(crate) fn poll_recv(
        &self,
        deadline_timer: &mut Option<Sleep>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<RecvBuf>>> {
        let mut st = self.shared.st.borrow_mut();
        if let Some(buf) = st.recv_q.pop_front() {
            return Poll::Ready(Ok(Some(buf)));
        }
        if st.eof {
            return Poll::Ready(Ok(None));
        }
        if let Some(r) = &st.closed {
            return Poll::Ready(Err(close_error("recv", r)));
        }
        if let Some(at) = st.read_deadline {
            if Instant::now() >= at {
                return Poll::Ready(Err(timed_out("recv")));
            }
        }
        match &mut st.recv_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        let deadline = st.read_deadline;
        drop(st);
        if let Some(at) = deadline {
            if poll_deadline(deadline_timer, at, cx) {
                return Poll::Ready(Err(timed_out("recv")));
            }
        }
        Poll::Pending
    }

    /// Drives a send: `Start` hands the buffer to the engine (it is `Queued` from then on),
    /// `Queued` waits for its completion.
    pub(crate) fn poll_send(
        &self,
        state: &mut SendState,
        deadline_timer: &mut Option<Sleep>,
        cx: &mut Context<'_>,
    ) -> Poll<(io::Result<usize>, SendBuf)> {
        let shared = &self.shared;
        let mut st = shared.st.borrow_mut();
        let seq = match std::mem::replace(state, SendState::Done) {
            SendState::Start(buf) => {
                if let Some(r) = &st.closed {
                    return Poll::Ready((Err(close_error("send", r)), buf));
                }
                if st.want.shutdown || st.want.close || st.want.abort {
                    let err = io::Error::new(
                        io::ErrorKind::NotConnected,
                        "send: the write side is shut down or the connection is closing",
                    );
                    return Poll::Ready((Err(err), buf));
                }
                if st.write_deadline.is_some_and(|at| Instant::now() >= at) {
                    return Poll::Ready((Err(timed_out("send")), buf));
                }
                let seq = st.next_seq;
                st.next_seq += 1;
                st.outbox.push_back((seq, buf));
                st.send_wakers.push((seq, cx.waker().clone()));
                drop(st);
                shared.mark_dirty();
                st = shared.st.borrow_mut();
                seq
            }
            SendState::Queued(seq) => seq,
            SendState::Done => {
                let err = io::Error::other("send polled after it completed");
                return Poll::Ready((Err(err), SendBuf::from(Vec::new())));
            }
        };
        if let Some(i) = st.done.iter().position(|d| d.0 == seq) {
            let (_, res, buf) = st.done.remove(i).expect("found above");
            let res = match res {
                Err(_) if st.write_timed_out => Err(timed_out("send")),
                r => r,
            };
            return Poll::Ready((res, buf));
        }
        *state = SendState::Queued(seq);
        match st.send_wakers.iter_mut().find(|(s, _)| *s == seq) {
            Some((_, w)) if w.will_wake(cx.waker()) => {}
            Some((_, w)) => w.clone_from(cx.waker()),
            None => st.send_wakers.push((seq, cx.waker().clone())),
        }
        let deadline = st.write_deadline;
        drop(st);
        if let Some(at) = deadline {
            if poll_deadline(deadline_timer, at, cx) {
                // The buffer may be in the kernel: abort, and return it with the completion.
                let mut st = shared.st.borrow_mut();
                if !st.write_timed_out {
                    st.write_timed_out = true;
                    st.want.abort = true;
                    drop(st);
                    shared.mark_dirty();
                }
            }
        }
        Poll::Pending
    }

    /// A send's future is gone: a queued send runs on and its buffer is dropped when done.
    pub(crate) fn forget_send(&self, state: &SendState) {
        let SendState::Queued(seq) = *state else {
            return;
        };
        let Ok(mut st) = self.shared.st.try_borrow_mut() else {
            return;
        };
        st.send_wakers.retain(|(s, _)| *s != seq);
        if let Some(i) = st.done.iter().position(|d| d.0 == seq) {
            st.done.remove(i);
        } else {
            st.abandoned.push(seq);
        }
    }

    /// Asks for the write side's shutdown (once) and waits for it.
    pub(crate) fn poll_shutdown_write(
        &self,
        asked: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !*asked {
            *asked = true;
            self.ask(|st| st.want.shutdown = true);
        }
        let mut st = self.shared.st.borrow_mut();
        if st.shut {
            return Poll::Ready(Ok(()));
        }
        if let Some(r) = &st.closed {
            return Poll::Ready(if r.is_clean() {
                Ok(())
            } else {
                Err(close_error("shutdown", r))
            });
        }
        register(&mut st.state_wakers, cx);
        Poll::Pending
    }
}

/// Keeps one waker per waiting task in `wakers`.
fn register(wakers: &mut Vec<std::task::Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

/// Polls the deadline's timer (made on first need), so the task wakes when it passes.
fn poll_deadline(slot: &mut Option<Sleep>, at: Instant, cx: &mut Context<'_>) -> bool {
    match slot {
        Some(s) if s.deadline() == at => {}
        _ => *slot = Some(sleep_until(at)),
    }
    let sleep = slot.as_mut().expect("set above");
    Pin::new(sleep).poll(cx).is_ready()
}

fn timed_out(op: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{op}: deadline passed"))
}

/// The future of [`AsyncConn::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a> {
    conn: &'a AsyncConn,
    deadline: Option<Sleep>,
}

impl Future for Recv<'_> {
    type Output = io::Result<Option<RecvBuf>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.conn.poll_recv(&mut this.deadline, cx)
    }
}

impl fmt::Debug for Recv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").field("conn", &self.conn.id).finish()
    }
}

pub(crate) enum SendState {
    Start(SendBuf),
    /// With the engine under this number.
    Queued(u64),
    Done,
}

/// The future of [`AsyncConn::send`]: `(result, buffer)`.
#[must_use = "futures do nothing unless awaited; a send future polled once sends on"]
pub struct SendFuture<'a> {
    conn: &'a AsyncConn,
    state: SendState,
    deadline: Option<Sleep>,
}

impl Future for SendFuture<'_> {
    type Output = (io::Result<usize>, SendBuf);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.conn.poll_send(&mut this.state, &mut this.deadline, cx)
    }
}

impl Drop for SendFuture<'_> {
    fn drop(&mut self) {
        self.conn.forget_send(&self.state);
    }
}

impl fmt::Debug for SendFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("conn", &self.conn.id)
            .finish()
    }
}
