//! The engine's entry points into its runtime: [`Engine::spawn_on`] and
//! [`Engine::listen_async`].

use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::super::engine::Engine;
use super::bridge::Bridge;
use super::executor;
use super::join::{JoinError, JoinHandle, JoinState};
use super::AsyncConn;
use crate::{Endpoint, Result};

impl Engine {
    /// Runs the future `make()` returns as a task on worker `worker`. `make` is called on
    /// that worker, so the future itself need not be `Send` (it may hold `Rc`s, `RefCell`s,
    /// [`AsyncConn`]s); only its output crosses threads, through the [`JoinHandle`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the worker when there is no such worker; `NotConnected` once
    /// the engine has shut down. A panic in `make` (or in the task) fails the handle with
    /// [`JoinError::Panicked`] / [`JoinError::Cancelled`], not the worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use uring_vsock::uring::Engine;
    ///
    /// let engine = Engine::builder().workers(2).build()?;
    /// let handle = engine.spawn_on(1, || async {
    ///     let n = Rc::new(Cell::new(1)); // !Send: built on the worker
    ///     n.set(n.get() + 1);
    ///     n.get()
    /// })?;
    /// assert_eq!(handle.wait()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_on<F, Fut>(&self, worker: usize, make: F) -> io::Result<JoinHandle<Fut::Output>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        if worker >= self.workers() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("spawn_on: worker {worker} of {}", self.workers()),
            ));
        }
        let state = JoinState::new();
        let guard = state.guard();
        let run = Box::new(move || {
            let Some(ex) = executor::current() else {
                return; // not a worker: the guard drops and fails the handle
            };
            if ex.stopped() {
                guard.complete(Err(JoinError::Shutdown));
                return;
            }
            match catch_unwind(AssertUnwindSafe(make)) {
                Ok(fut) => executor::spawn_guarded(&ex, fut, guard),
                Err(_) => {
                    log::warn!("uring-vsock: the closure given to spawn_on panicked");
                    guard.complete(Err(JoinError::Panicked));
                }
            }
        });
        self.run_on(worker, run).map_err(|()| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "spawn_on: the engine has shut down",
            )
        })?;
        Ok(JoinHandle::new(state))
    }

    /// Listens on `ep` as [`listen`](Self::listen) does, and serves each accepted connection
    /// with a task: `serve(conn)`, run on the connection's worker. `serve` is called there,
    /// so its future need not be `Send`. Returns the bound endpoint.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen): the bind or listen error, with the endpoint.
    ///
    /// # Examples
    ///
    /// See [`AsyncConn`].
    pub fn listen_async<F, Fut>(&self, ep: &Endpoint, serve: F) -> Result<Endpoint>
    where
        F: Fn(AsyncConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let serve = Arc::new(serve);
        self.listen(ep, move |_peer| Bridge::serving(Arc::clone(&serve)))
    }
}
