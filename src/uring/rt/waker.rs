//! A task's [`Waker`]: an `Arc` made once per task, so waking and cloning allocate nothing. A
//! wake on the task's own worker thread goes straight into that worker's run queue (no lock,
//! no syscall); a wake from any other thread goes through the worker's remote queue and its
//! mailbox wake-up, so a task is only ever polled on its worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Wake;

use super::super::mailbox::WorkerLink;
use super::executor;

/// Names a task in its executor's slab: slot and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskKey {
    pub(crate) slot: u32,
    pub(crate) gen: u32,
}

/// What other threads use to wake this worker's tasks.
pub(crate) struct Remote {
    /// Tasks woken from other threads since the worker last looked.
    pub(crate) queue: Mutex<Vec<TaskKey>>,
    /// Set with each push, so the worker locks only when there is something to take.
    pub(crate) pending: AtomicBool,
    /// The worker's mailbox (set on the worker's first turn), whose waker ends its sleep.
    pub(crate) link: OnceLock<WorkerLink>,
}

impl Remote {
    pub(crate) fn new() -> Remote {
        Remote {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            link: OnceLock::new(),
        }
    }

    /// Takes the tasks woken from other threads.
    pub(crate) fn take(&self, into: &mut Vec<TaskKey>) {
        if self.pending.swap(false, Ordering::AcqRel) {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            into.append(&mut q);
        }
    }
}

/// One task's waker.
pub(crate) struct TaskWaker {
    pub(crate) key: TaskKey,
    /// Whether the task is in a run queue already (wakes coalesce).
    pub(crate) scheduled: AtomicBool,
    pub(crate) remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if executor::wake_local(&self.remote, self.key) {
            return;
        }
        // Another thread (or this worker's executor is gone): through the mailbox.
        {
            let mut q = self.remote.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push(self.key);
        }
        self.remote.pending.store(true, Ordering::Release);
        if let Some(link) = self.remote.link.get() {
            link.waker.wake();
        }
    }
}
