//! Whether the calling thread is an engine worker: blocking engine calls made from a handler
//! (on a worker) fail or fall back instead of deadlocking it.

thread_local! {
    /// Set on worker threads.
    pub(crate) static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is an engine worker.
pub(crate) fn on_worker() -> bool {
    ON_WORKER.with(|w| w.get())
}
