//! [`JoinHandle`]: a task's output, awaitable from any thread (and from any runtime) or
//! waited for by blocking a thread that is not a worker.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::super::on_worker::on_worker;
use super::executor;

/// Why a task gave no output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The task panicked (and was dropped; the worker goes on).
    Panicked,
    /// The worker shut down before the task finished.
    Shutdown,
    /// The task was dropped unfinished for another reason (its worker failed, or the closure
    /// making it panicked).
    Cancelled,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinError::Panicked => "the task panicked",
            JoinError::Shutdown => "the engine shut down before the task finished",
            JoinError::Cancelled => "the task was dropped before it finished",
        })
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(e: JoinError) -> io::Error {
        let kind = match e {
            JoinError::Shutdown => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

struct Inner<T> {
    out: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
}

pub(crate) struct JoinState<T> {
    inner: Mutex<Inner<T>>,
    done: Condvar,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Arc<JoinState<T>> {
        Arc::new(JoinState {
            inner: Mutex::new(Inner {
                out: None,
                waker: None,
            }),
            done: Condvar::new(),
        })
    }

    /// The task's side: completes the handle, or (dropped unused) fails it.
    pub(crate) fn guard(self: &Arc<Self>) -> JoinGuard<T> {
        JoinGuard {
            state: Some(Arc::clone(self)),
        }
    }

    fn set(&self, out: Result<T, JoinError>) {
        let waker = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.out.is_some() {
                return;
            }
            inner.out = Some(out);
            inner.waker.take()
        };
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Completes a [`JoinHandle`]; dropped without completing, it fails it.
pub(crate) struct JoinGuard<T> {
    state: Option<Arc<JoinState<T>>>,
}

impl<T> JoinGuard<T> {
    pub(crate) fn complete(mut self, out: Result<T, JoinError>) {
        if let Some(s) = self.state.take() {
            s.set(out);
        }
    }
}

impl<T> Drop for JoinGuard<T> {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            s.set(Err(executor::cancelled_reason()));
        }
    }
}

/// A spawned task's output. Await it (from a worker's task or from any other runtime), or
/// [`wait`](Self::wait) for it on a thread that is not an engine worker. Dropping it detaches
/// the task (it runs on).
#[must_use = "dropping a JoinHandle detaches the task"]
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> JoinHandle<T> {
        JoinHandle { state }
    }

    /// Lets the task run on by itself, its output unused (as dropping the handle does, said
    /// out loud).
    pub fn detach(self) {}

    /// Whether the task has finished (or was dropped).
    pub fn is_finished(&self) -> bool {
        self.lock().out.is_some()
    }

    /// Blocks the calling thread until the task finishes.
    ///
    /// # Errors
    ///
    /// The task's [`JoinError`]; `WouldBlock` on an engine worker thread (it would wait for
    /// itself: await the handle there instead).
    pub fn wait(self) -> io::Result<T> {
        self.wait_until(None)
    }

    /// As [`wait`](Self::wait), giving up after `limit` with `TimedOut` (the task runs on).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), and `TimedOut`.
    pub fn wait_timeout(self, limit: Duration) -> io::Result<T> {
        self.wait_until(Instant::now().checked_add(limit))
    }

    fn wait_until(self, deadline: Option<Instant>) -> io::Result<T> {
        if on_worker() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "JoinHandle::wait blocks: not callable on an engine worker (await it)",
            ));
        }
        let mut inner = self.lock();
        loop {
            if let Some(out) = inner.out.take() {
                return out.map_err(io::Error::from);
            }
            inner = match deadline {
                None => self
                    .state
                    .done
                    .wait(inner)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "JoinHandle::wait_timeout: the task has not finished",
                        ));
                    }
                    match self.state.done.wait_timeout(inner, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                }
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.state.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.lock();
        match inner.out.take() {
            Some(out) => Poll::Ready(out),
            None => {
                match &mut inner.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
