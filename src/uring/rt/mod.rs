//! The engine as an async runtime: a local executor on each worker, so futures run where
//! their connections' completions arrive, with no thread hop per operation.
//!
//! - [`Engine::spawn_on`] runs a future on a worker; the closure that makes it is `Send`,
//!   the future need not be. [`spawn`] does the same from a task, on its own worker.
//! - [`Engine::listen_async`] serves each accepted connection with a task on the
//!   connection's worker, given the connection as an [`AsyncConn`].
//! - [`sleep`] and [`timeout`] run on the worker's timers (one ring timeout for the
//!   earliest); [`AsyncConn`] has read and write deadlines.
//!
//! Wakers are local: a task woken on its worker goes into that worker's run queue with no
//! lock or syscall; a wake from another thread goes through the worker's mailbox. The
//! worker polls its tasks after each turn's completions, at most a budget of polls per turn
//! so the ring is served between them.
//!
//! Scheduling is cooperative: a task that computes for long between awaits holds up every
//! other task and connection of its worker (move such work to a thread of its own).
//!
//! A task that panics is dropped (its [`JoinHandle`] says [`JoinError::Panicked`]); the
//! worker goes on. At engine shutdown every task is dropped ([`JoinError::Shutdown`]).
//!
//! [`Engine::spawn_on`]: super::Engine::spawn_on
//! [`Engine::listen_async`]: super::Engine::listen_async

mod async_conn;
mod bridge;
#[cfg(any(feature = "tokio", feature = "hyper"))]
mod conn_io;
mod connect;
mod engine_api;
mod executor;
#[cfg(feature = "hyper")]
mod http;
mod join;
mod timer;
mod waker;

pub use async_conn::{AsyncConn, Recv, SendFuture};
#[cfg(any(feature = "tokio", feature = "hyper"))]
pub use conn_io::ConnIo;
#[cfg(feature = "hyper")]
pub use http::{HttpServer, LocalExec, WorkerTimer};
pub use join::{JoinError, JoinHandle};
pub use timer::{sleep, sleep_until, timeout, Elapsed, Sleep, Timeout};

pub(crate) use executor::run;

/// Spawns `fut` on the calling task's worker (a task can spawn more tasks: no `Send`
/// needed).
///
/// # Errors
///
/// `Unsupported` when called off the engine's worker threads (use
/// [`Engine::spawn_on`](super::Engine::spawn_on) there); `NotConnected` once the worker is
/// shutting down.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use uring_vsock::uring::{rt, Engine};
///
/// let engine = Engine::builder().workers(1).build()?;
/// let sum = engine
///     .spawn_on(0, || async {
///         let shared = Rc::new(20); // !Send, fine on the worker
///         let s = Rc::clone(&shared);
///         let child = rt::spawn(async move { *s + 1 }).expect("on a worker");
///         child.await.expect("finished") + *shared
///     })?
///     .wait()?;
/// assert_eq!(sum, 41);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn<F>(fut: F) -> std::io::Result<JoinHandle<F::Output>>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    executor::spawn_local(fut)
}
