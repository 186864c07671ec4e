//! Timers on a worker: the due times of its [`sleep`]s (and so of [`timeout`]s and connection
//! deadlines) in an ordered map, fired by the executor each turn; the earliest goes to the
//! core's ring timer (an `IORING_OP_TIMEOUT` for the earliest of it and the callback
//! connections' deadlines), so a worker asleep in the kernel wakes for it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::super::core::Core;
use super::executor;

pub(crate) struct Timers {
    due: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    scratch: Vec<Waker>,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            due: BTreeMap::new(),
            next_id: 0,
            scratch: Vec::with_capacity(16),
        }
    }

    fn add(&mut self, at: Instant, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.due.insert((at, id), waker);
        id
    }

    fn update(&mut self, at: Instant, id: u64, waker: &Waker) {
        if let Some(w) = self.due.get_mut(&(at, id)) {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
        }
    }

    fn remove(&mut self, at: Instant, id: u64) {
        self.due.remove(&(at, id));
    }

    /// Wakes the sleeps that are due.
    pub(crate) fn fire_due(&mut self) {
        if self.due.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(entry) = self.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.scratch.push(entry.remove());
        }
        // Woken after the loop: a waker may be any code's.
        for w in self.scratch.drain(..) {
            w.wake();
        }
    }

    /// Asks the core's ring timer to wake the worker for the earliest sleep (armed at the
    /// end of the worker's turn, with the connections' deadlines).
    pub(crate) fn arm(&mut self, core: &mut Core) {
        if let Some((&(at, _), _)) = self.due.first_key_value() {
            core.wake_at(at);
        }
    }

    /// Drops every sleep and cancels the ring timeouts in flight (the worker is shutting
    /// down and waits for every op's completion).
    pub(crate) fn cancel_all(&mut self, core: &mut Core) {
        self.due.clear();
        core.cancel_ring_timers();
    }
}

/// A future that completes at a point in time; see [`sleep`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    at: Instant,
    id: Option<u64>,
}

/// Completes after `d`, on the worker that polls it. Backed by the worker's timer map and
/// one ring timeout for the earliest timer (a sleeping worker wakes for it).
///
/// Polled off the engine's worker threads it completes at once (with a logged warning):
/// only a worker can wake it.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use uring_vsock::uring::{rt, Engine};
///
/// let engine = Engine::builder().workers(1).build()?;
/// let waited = engine
///     .spawn_on(0, || async {
///         let start = Instant::now();
///         rt::sleep(Duration::from_millis(20)).await;
///         start.elapsed()
///     })?
///     .wait()?;
/// assert!(waited >= Duration::from_millis(20));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(Instant::now().checked_add(d).unwrap_or_else(far_future))
}

/// Completes at `at`; see [`sleep`].
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep { at, id: None }
}

/// An instant beyond any deadline (for durations too long to add).
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.at
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            if let Some(id) = self.id.take() {
                if let Some(ex) = executor::current() {
                    ex.timers.borrow_mut().remove(self.at, id);
                }
            }
            return Poll::Ready(());
        }
        let Some(ex) = executor::current() else {
            log::warn!("uring-vsock: rt::sleep polled off the engine's workers: not waiting");
            return Poll::Ready(());
        };
        let mut timers = ex.timers.borrow_mut();
        match self.id {
            Some(id) => timers.update(self.at, id, cx.waker()),
            None => {
                let at = self.at;
                self.id = Some(timers.add(at, cx.waker().clone()));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Some(ex) = executor::current() {
                if let Ok(mut t) = ex.timers.try_borrow_mut() {
                    t.remove(self.at, id);
                }
            }
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("at", &self.at).finish()
    }
}

/// The error of a [`timeout`] that ran out; converts into an `io::Error` of kind `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

pin_project_lite::pin_project! {
    /// A future with a deadline; see [`timeout`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: Sleep,
    }
}

/// Runs `fut` for at most `d`: its output, or [`Elapsed`] (and `fut` is dropped). Dropping
/// an [`AsyncConn`](super::AsyncConn) operation this way follows its cancellation rule: a
/// receive loses nothing, a send goes on.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use uring_vsock::uring::{rt, Engine};
///
/// let engine = Engine::builder().workers(1).build()?;
/// let res = engine
///     .spawn_on(0, || async {
///         rt::timeout(Duration::from_millis(10), std::future::pending::<()>()).await
///     })?
///     .wait()?;
/// assert!(res.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn timeout<F: Future>(d: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep(d),
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}
