//! [`Submission`]: the one owner of a worker's submission side: the SQEs staged since the
//! last flush, grouped so that a link chain always enters the kernel in one submission (a
//! chain split across two would not be linked), the count of final completions still due,
//! and the flush into the ring.

use std::io;
use std::sync::Arc;

use io_uring::squeue::{self, Entry};
use io_uring::{types, SubmissionQueue, Submitter};

use super::op::Op;
use super::stats::WorkerStats;

/// Staged SQEs and the completions due.
pub(crate) struct Submission {
    /// Entries in order, each with the size of the group it heads (0 inside a group).
    staged: Vec<(Entry, u32)>,
    /// Final completions still due from the kernel, over all ops of this worker.
    inflight: usize,
    stats: Arc<WorkerStats>,
}

impl Submission {
    pub(crate) fn new(capacity: usize, stats: Arc<WorkerStats>) -> Submission {
        Submission {
            staged: Vec::with_capacity(capacity),
            inflight: 0,
            stats,
        }
    }

    /// Stages one op.
    pub(crate) fn stage(&mut self, entry: Entry, op: Op) {
        self.staged.push((entry.user_data(op.encode()), 1));
        self.inflight += 1;
    }

    /// Stages entries (with their `user_data` and link flags set) that must enter the kernel
    /// together, each with one final completion.
    pub(crate) fn stage_group(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let start = self.staged.len();
        self.staged.extend(entries.into_iter().map(|e| (e, 0)));
        let n = (self.staged.len() - start) as u32;
        if let Some(head) = self.staged.get_mut(start) {
            head.1 = n;
        }
        self.inflight += n as usize;
    }

    /// Stages an op linked to a timeout (two final completions).
    pub(crate) fn stage_linked_timeout(&mut self, entry: Entry, timeout: Entry) {
        self.stage_group([entry.flags(squeue::Flags::IO_LINK), timeout]);
    }

    /// A final completion came in.
    pub(crate) fn completed(&mut self) {
        self.inflight -= 1;
    }

    /// Final completions due.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight
    }

    /// Whether everything staged has been pushed into the ring.
    pub(crate) fn is_flushed(&self) -> bool {
        self.staged.is_empty()
    }

    /// Pushes staged entries into the ring, entering the kernel to make room when it is full.
    /// When the kernel takes none (completions must be reaped first) the rest stays staged
    /// for the next turn, which reaps first: looping on enter here could livelock.
    pub(crate) fn flush(
        &mut self,
        sq: &mut SubmissionQueue<'_>,
        submitter: &Submitter<'_>,
    ) -> io::Result<()> {
        let mut pushed = 0;
        while pushed < self.staged.len() {
            let need = self.staged[pushed].1.max(1) as usize;
            if sq.capacity() - sq.len() < need {
                sq.sync();
                self.enter(submitter, 0)?;
                sq.sync();
                if sq.capacity() - sq.len() < need {
                    break;
                }
            }
            for (entry, _) in &self.staged[pushed..pushed + need] {
                // SAFETY: every pointer in an entry refers to memory held until the op's
                // final completion: send buffers in the connection's send queue, a receive's
                // own buffer in its receive state, connect address and timespec boxed in the
                // connection (a connect cancel's retry pause reads a static), an accept
                // backoff's timespec boxed in its listener, a ring timeout's timespec boxed
                // in the ring timer's pool, the wake buffer boxed in the worker; ring
                // receives use the provided-buffer ring; a file-table update reads the
                // core's table (allocated once) or a static.
                unsafe { sq.push(entry).expect("room checked above") };
            }
            pushed += need;
        }
        self.staged.drain(..pushed);
        sq.sync();
        Ok(())
    }

    /// `io_uring_enter`: submit, and wait for `want` completions; `EINTR` and `EBUSY`
    /// (completion backlog: the loop reaps first) are not errors.
    pub(crate) fn enter(&mut self, submitter: &Submitter<'_>, want: usize) -> io::Result<()> {
        WorkerStats::add(&self.stats.enters, 1);
        benign(submitter.submit_and_wait(want))
    }

    /// Submits and sleeps until a completion arrives. With `min_wait_us` (min-wait
    /// batching, `IORING_FEAT_MIN_TIMEOUT`, kernel 6.12+) and a `batch` above one, the
    /// kernel waits for `batch` completions, but no longer than `min_wait_us` once at least
    /// one has come (and without limit for the first).
    pub(crate) fn sleep(
        &mut self,
        submitter: &Submitter<'_>,
        batch: usize,
        min_wait_us: Option<u32>,
    ) -> io::Result<()> {
        match min_wait_us {
            Some(us) if batch > 1 => {
                WorkerStats::add(&self.stats.enters, 1);
                // With no overall timeout the kernel ends the whole wait when the min-wait
                // timer fires, events or not (io_cqring_min_timer_wakeup): an idle worker
                // would wake every `min_wait`. A long overall timeout makes the min-wait
                // apply only once a completion has come; its ETIME is benign.
                let forever = types::Timespec::new().sec(IDLE_WAIT_SECS);
                let args = types::SubmitArgs::new()
                    .timespec(&forever)
                    .min_wait_usec(us);
                benign(submitter.submit_with_args(batch, &args))
            }
            _ => self.enter(submitter, 1),
        }
    }
}

/// The overall timeout of a min-wait sleep: long enough that an idle worker sleeps on.
const IDLE_WAIT_SECS: u64 = 3600;

/// An enter's outcome with what the loop handles by itself (`EINTR`; `EBUSY` and `EAGAIN`:
/// completions to reap first; `ETIME`: a wait that timed out) taken as success.
fn benign(res: io::Result<usize>) -> io::Result<()> {
    match res {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ETIME)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::{opcode, IoUring};

    /// With min-wait, an enter that wants two completions returns once the wait has passed
    /// with one (without it, it would wait for the second forever).
    #[test]
    fn min_wait_returns_with_fewer_than_the_batch() {
        let ring = IoUring::new(8).unwrap();
        if !ring.params().is_feature_min_timeout() {
            println!("skipped: this kernel has no IORING_FEAT_MIN_TIMEOUT");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ring = ring;
            let nop = opcode::Nop::new().build().user_data(1);
            // SAFETY: a no-op points to no memory.
            unsafe { ring.submission().push(&nop) }.unwrap();
            let mut sub = Submission::new(1, Arc::default());
            let res = sub.sleep(&ring.submitter(), 2, Some(1000));
            let _ = tx.send((res.map_err(|e| e.to_string()), ring.completion().len()));
        });
        let (res, reaped) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a min-wait enter wanting 2 completions with 1 due did not return");
        res.unwrap();
        assert_eq!(reaped, 1);
    }
}
