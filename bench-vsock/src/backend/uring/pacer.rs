//! The timer of open-loop runs. The engine has none, so one thread keeps the connections'
//! pacing deadlines and, when one comes, fires it: the connection's session moves on from
//! this thread, its bytes go out through the connection's
//! [`ConnHandle`](uring_vsock::uring::ConnHandle) (which can send, but cannot call back into
//! the handler on its worker).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::error::{Context, Result};

/// Something with a pacing deadline.
pub(super) trait Timed: Send + Sync {
    /// The deadline came: act, and return the next deadline if there is one.
    fn fire(&self) -> Option<Instant>;
}

enum Msg {
    At(Instant, Arc<dyn Timed>),
    Stop,
}

/// Sets deadlines on the pacer's thread; cheap to clone.
#[derive(Clone)]
pub(super) struct Timers(Sender<Msg>);

impl Timers {
    /// Fires `what` at `at` (at once if that has passed).
    pub(super) fn at(&self, at: Instant, what: Arc<dyn Timed>) {
        // Fails only once the pacer has stopped, after every session has ended.
        let _ = self.0.send(Msg::At(at, what));
    }
}

/// The pacing thread.
pub(super) struct Pacer {
    timers: Timers,
    thread: JoinHandle<()>,
}

impl Pacer {
    /// Starts the thread.
    pub(super) fn start() -> Result<Pacer> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("uring-pacer".into())
            .spawn(move || run(&rx))
            .context("spawning the uring pacing thread")?;
        Ok(Pacer {
            timers: Timers(tx),
            thread,
        })
    }

    /// Where to set deadlines.
    pub(super) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Stops the thread, dropping deadlines not yet due (their sessions have ended).
    pub(super) fn stop(self) {
        let _ = self.timers.0.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

/// A deadline in the heap: earliest first, then in the order set.
struct Due {
    at: Instant,
    seq: u64,
    what: Arc<dyn Timed>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        // Reversed: `BinaryHeap` pops the greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

fn run(rx: &mpsc::Receiver<Msg>) {
    let mut heap: BinaryHeap<Due> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Due>, at: Instant, what: Arc<dyn Timed>| {
        seq += 1;
        heap.push(Due { at, seq, what });
    };
    loop {
        let msg = match heap.peek() {
            Some(due) => rx.recv_timeout(due.at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Msg::At(at, what)) => push(&mut heap, at, what),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        while heap.peek().is_some_and(|due| due.at <= Instant::now()) {
            let due = heap.pop().expect("peeked");
            if let Some(next) = due.what.fire() {
                push(&mut heap, next, due.what);
            }
        }
    }
}
