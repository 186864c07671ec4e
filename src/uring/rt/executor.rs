//! The worker-local executor: a slab of `!Send` tasks, a run queue, the connections whose
//! requests wait for the core, and the timers. It lives in a thread-local of its worker, is
//! driven by the worker loop through [`run`] (after the completions of each turn), and
//! polls a task only on that worker.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::super::buf_pool::BufferPool;
use super::super::core::Core;
use super::super::mailbox::WorkerLink;
use super::super::on_worker::on_worker;
use super::connect::Connects;
use super::join::{JoinError, JoinGuard, JoinHandle, JoinState};
use super::timer::Timers;
use super::waker::{Remote, TaskKey, TaskWaker};

/// Task polls per worker turn before the worker serves its ring again (fairness with the
/// connections' completions); the rest run on the next turn.
const BUDGET: usize = 1024;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Something with requests for the core (an `AsyncConn`'s sends, shutdown, close).
pub(crate) trait Flush {
    /// Hands the requests to the core.
    fn flush(&self, core: &mut Core);
}

struct Task {
    fut: Option<LocalFuture>,
    waker: Waker,
    wref: Arc<TaskWaker>,
}

struct Slot {
    gen: u32,
    task: Option<Task>,
}

pub(crate) struct Executor {
    pub(crate) remote: Arc<Remote>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    run: RefCell<VecDeque<TaskKey>>,
    /// Woken from other threads, taken from [`Remote`] (kept: no allocation per turn).
    woken: RefCell<Vec<TaskKey>>,
    dirty: RefCell<Vec<Rc<dyn Flush>>>,
    pub(crate) timers: RefCell<Timers>,
    stopped: Cell<bool>,
    /// Set while a panicked task's future is dropped, so its join handle says so.
    pub(crate) dropping_panicked: Cell<bool>,
    live: Cell<usize>,
    /// Connects asked for by tasks, for the core.
    pub(crate) connects: Connects,
    /// The worker's send pool (set on its first turn), for `AsyncConn::send_buf`.
    pub(crate) pool: std::cell::OnceCell<BufferPool>,
}

thread_local! {
    static EXEC: RefCell<Option<Rc<Executor>>> = const { RefCell::new(None) };
}

/// This worker's executor (made on first use); `None` off the engine's workers.
pub(crate) fn current() -> Option<Rc<Executor>> {
    if !on_worker() {
        return None;
    }
    EXEC.try_with(|e| {
        Rc::clone(e.borrow_mut().get_or_insert_with(|| {
            Rc::new(Executor {
                remote: Arc::new(Remote::new()),
                slots: RefCell::new(Vec::with_capacity(64)),
                free: RefCell::new(Vec::with_capacity(64)),
                run: RefCell::new(VecDeque::with_capacity(256)),
                woken: RefCell::new(Vec::with_capacity(64)),
                dirty: RefCell::new(Vec::with_capacity(256)),
                timers: RefCell::new(Timers::new()),
                stopped: Cell::new(false),
                dropping_panicked: Cell::new(false),
                live: Cell::new(0),
                pool: std::cell::OnceCell::new(),
                connects: Connects::default(),
            })
        }))
    })
    .ok()
}

/// Queues `key` if `remote` is this thread's executor; `false` otherwise (the caller goes
/// through the remote queue).
pub(crate) fn wake_local(remote: &Arc<Remote>, key: TaskKey) -> bool {
    if !on_worker() {
        return false;
    }
    EXEC.try_with(|e| match e.try_borrow() {
        Ok(e) => match e.as_ref() {
            Some(ex) if Arc::ptr_eq(&ex.remote, remote) => {
                ex.run.borrow_mut().push_back(key);
                true
            }
            _ => false,
        },
        Err(_) => false,
    })
    .unwrap_or(false)
}

/// Spawns `fut` on the calling worker's executor.
///
/// # Errors
///
/// `Unsupported` off the engine's worker threads; `NotConnected` once the worker is
/// shutting down.
pub(crate) fn spawn_local<F>(fut: F) -> io::Result<JoinHandle<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let Some(ex) = current() else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "spawn_local: not on an engine worker thread",
        ));
    };
    if ex.stopped.get() {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "spawn_local: the engine worker is shutting down",
        ));
    }
    let state = JoinState::new();
    spawn_guarded(&ex, fut, state.guard());
    Ok(JoinHandle::new(state))
}

/// Spawns `fut` on `ex`; `guard` gets its output.
pub(crate) fn spawn_guarded<F>(ex: &Executor, fut: F, guard: JoinGuard<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let task = async move {
        let guard = guard;
        let out = fut.await;
        guard.complete(Ok(out));
    };
    ex.insert(Box::pin(task));
}

impl Executor {
    fn insert(&self, fut: LocalFuture) {
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(s) => s,
            None => {
                slots.push(Slot { gen: 0, task: None });
                slots.len() as u32 - 1
            }
        };
        let key = TaskKey {
            slot,
            gen: slots[slot as usize].gen,
        };
        let wref = Arc::new(TaskWaker {
            key,
            scheduled: std::sync::atomic::AtomicBool::new(true),
            remote: Arc::clone(&self.remote),
        });
        let waker = Waker::from(Arc::clone(&wref));
        slots[slot as usize].task = Some(Task {
            fut: Some(fut),
            waker,
            wref,
        });
        self.live.set(self.live.get() + 1);
        self.run.borrow_mut().push_back(key);
    }

    /// Queues `conn` to hand its requests to the core after the current poll.
    pub(crate) fn mark_dirty(&self, conn: Rc<dyn Flush>) {
        self.dirty.borrow_mut().push(conn);
    }

    /// Whether the worker is shutting down (no new tasks).
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.get()
    }

    fn poll_task(&self, key: TaskKey) {
        let (mut fut, waker) = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(key.slot as usize) else {
                return;
            };
            if slot.gen != key.gen {
                return; // a stale wake of a finished task
            }
            let Some(task) = slot.task.as_mut() else {
                return;
            };
            let Some(fut) = task.fut.take() else {
                return; // being polled (a wake during its own poll is queued again)
            };
            task.wref.scheduled.store(false, Ordering::Release);
            (fut, task.waker.clone())
        };
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => {
                let mut slots = self.slots.borrow_mut();
                if let Some(task) = slots[key.slot as usize].task.as_mut() {
                    task.fut = Some(fut);
                }
            }
            Ok(Poll::Ready(())) => {
                self.remove(key.slot);
                drop(fut);
            }
            Err(_) => {
                log::warn!("uring-vsock: a task on an engine worker panicked; it is dropped");
                self.remove(key.slot);
                self.dropping_panicked.set(true);
                // Its Drop is user code too.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(fut)));
                self.dropping_panicked.set(false);
            }
        }
    }

    fn remove(&self, slot: u32) {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[slot as usize];
        s.task = None;
        s.gen = s.gen.wrapping_add(1);
        self.free.borrow_mut().push(slot);
        self.live.set(self.live.get() - 1);
    }

    fn flush_dirty(&self, core: &mut Core) -> bool {
        let mut any = false;
        loop {
            let conn = self.dirty.borrow_mut().pop();
            let Some(conn) = conn else { return any };
            any = true;
            conn.flush(core);
        }
    }

    /// Drops every task (the worker is shutting down); their join handles get
    /// [`JoinError::Shutdown`](super::JoinError).
    fn stop(&self, core: &mut Core) {
        self.stopped.set(true);
        let n = self.slots.borrow().len();
        for slot in 0..n {
            let task = self.slots.borrow_mut()[slot].task.take();
            if let Some(task) = task {
                self.live.set(self.live.get() - 1);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(task)));
            }
            self.flush_dirty(core);
        }
        self.run.borrow_mut().clear();
        self.timers.borrow_mut().cancel_all(core);
        self.flush_dirty(core);
    }
}

/// The worker loop's hook, after each turn's completions (and so after each wake-up): runs
/// the tasks that are due, hands their requests to the core, fires due timers and asks the
/// core's ring timer for the next. `stopping`: the worker is shutting down, so every task is
/// dropped (once). Returns whether it did anything.
pub(crate) fn run(core: &mut Core, link: &WorkerLink, stopping: bool) -> bool {
    let Some(ex) = current() else { return false };
    if ex.remote.link.get().is_none() {
        let _ = ex.remote.link.set(link.clone());
        let _ = ex.pool.set(core.pool.clone());
    }
    if stopping {
        if !ex.stopped.get() {
            ex.stop(core);
            return true;
        }
        return ex.flush_dirty(core);
    }
    let mut did = false;
    {
        let mut woken = ex.woken.borrow_mut();
        ex.remote.take(&mut woken);
        if !woken.is_empty() {
            ex.run.borrow_mut().extend(woken.drain(..));
        }
    }
    let mut polls = 0;
    loop {
        ex.timers.borrow_mut().fire_due();
        loop {
            let key = ex.run.borrow_mut().pop_front();
            let Some(key) = key else { break };
            ex.poll_task(key);
            did = true;
            polls += 1;
            if polls >= BUDGET {
                break;
            }
        }
        did |= ex.flush_dirty(core);
        did |= ex.connects.start(core);
        if ex.run.borrow().is_empty() || polls >= BUDGET {
            break;
        }
    }
    if !ex.run.borrow().is_empty() {
        // Out of budget: come back after serving the ring, without sleeping in between.
        link.waker.wake();
    }
    ex.timers.borrow_mut().arm(core);
    did
}

/// Why a task's join handle resolved without its output: dropped by the executor.
pub(crate) fn cancelled_reason() -> JoinError {
    if std::thread::panicking() {
        return JoinError::Panicked; // dropped while the task's own panic unwinds
    }
    match current() {
        Some(ex) if ex.dropping_panicked.get() => JoinError::Panicked,
        Some(ex) if ex.stopped() => JoinError::Shutdown,
        _ => JoinError::Cancelled,
    }
}
