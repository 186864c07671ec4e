//! A worker thread: creates its ring (on itself, as `SINGLE_ISSUER` requires), registers its
//! buffers, then loops: take commands, reap completions, submit, and when idle spin for the
//! budget or sleep in the kernel. The first worker also accepts: each accepted connection
//! goes to the least-loaded worker by ring message, or through its channel and wake-up
//! socket (`handoff.rs`).

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use io_uring::{cqueue, opcode, IoUring};

use super::buf_pool::BufferPool;
use super::buf_ring::BufRing;
use super::conn::CloseReason;
use super::core::{self, Core};
use super::handle::RequestSink;
use super::mailbox::{Command, ListenerTable, WorkerLink};
use super::on_worker::ON_WORKER;
use super::op::{Kind, Op};
use super::ring::{self, RingFeatures};
use super::settings::Settings;
use super::spin::Spin;
use super::stats::WorkerStats;
use crate::Error;

/// What a worker thread starts with.
pub(crate) struct WorkerInit {
    pub(crate) index: usize,
    pub(crate) cfg: Arc<Settings>,
    pub(crate) features: RingFeatures,
    pub(crate) rx: Receiver<Command>,
    pub(crate) wake_reader: std::os::unix::net::UnixStream,
    pub(crate) links: Arc<Vec<WorkerLink>>,
    pub(crate) loads: Arc<Vec<Arc<AtomicUsize>>>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) listeners: ListenerTable,
}

mod accept;
mod commands;
mod handoff;

use accept::ListenerState;
use handoff::PendingHandoffs;

struct Worker {
    index: usize,
    core: Core,
    rx: Receiver<Command>,
    links: Arc<Vec<WorkerLink>>,
    loads: Arc<Vec<Arc<AtomicUsize>>>,
    listeners: Vec<Option<ListenerState>>,
    /// The listeners by slot, as workers that connections are handed to see them.
    listener_table: ListenerTable,
    /// Hand-offs go by ring message (the kernel has it and the builder wants it).
    ring_handoff: bool,
    handoffs: PendingHandoffs,
    wake_reader: std::os::unix::net::UnixStream,
    /// The wake-up read's buffer: boxed so it stays put while the read is in flight.
    wake_buf: Box<[u8; 64]>,
    wake_armed: bool,
    stopping: bool,
    /// This worker's ring door is closed (it is leaving): no more wake-up reads.
    door_closed: bool,
    /// Whether probing found ring-fd registration to work.
    register_ring_fd: bool,
    /// Min-wait batching of sleeps, in microseconds (wanted, and the kernel has it).
    min_wait_us: Option<u32>,
    #[cfg(test)]
    fault: Option<super::mailbox::Fault>,
}

/// The worker thread's body; reports setup success or failure on `ready` first.
pub(crate) fn run(init: WorkerInit, ready: Sender<io::Result<()>>) {
    ON_WORKER.with(|w| w.set(true));
    let cfg = Arc::clone(&init.cfg);
    if let Some(cpus) = cfg.pin.as_ref().filter(|c| !c.is_empty()) {
        let cpu = cpus[init.index % cpus.len()];
        if let Err(e) = pin_to(cpu) {
            log::warn!(
                "uring-vsock worker {}: pinning to CPU {cpu} failed: {e}",
                init.index
            );
        }
    }
    if let Some(hook) = &cfg.on_thread_start {
        // User code: a panic fails the build, it must not leave it waiting for this worker.
        if catch_unwind(AssertUnwindSafe(|| hook(init.index))).is_err() {
            let msg = format!("worker {}: the on_thread_start hook panicked", init.index);
            let _ = ready.send(Err(io::Error::other(msg)));
            return;
        }
    }
    // Buffers first, ring second: locals drop in reverse order, so the ring (and with it the
    // kernel's use of the registered memory) goes before the memory does.
    // Each step's error says which step, with its sizes, on which worker.
    let step = |e: io::Error, what: String| {
        io::Error::new(e.kind(), format!("worker {}: {what}: {e}", init.index))
    };
    let setup = || -> io::Result<(BufferPool, Rc<BufRing>, IoUring, u32)> {
        let (sends, send_size) = (cfg.send_buffers, cfg.send_buffer_size);
        let (recvs, recv_size) = (cfg.recv_buffers, cfg.recv_buffer_size);
        let pool = BufferPool::new(sends, send_size)
            .map_err(|e| step(e, format!("send pool ({sends} x {send_size} B)")))?;
        let bufs = BufRing::new(recvs as u16, recv_size as u32, 0)
            .map_err(|e| step(e, format!("receive ring ({recvs} x {recv_size} B)")))?;
        let ring = ring::build(init.features.task_run, cfg.sq_entries, cfg.cq_entries)
            .map_err(|e| step(e, format!("io_uring_setup ({} entries)", cfg.sq_entries)))?;
        let iovecs: Vec<libc::iovec> = pool.iovecs().chain(std::iter::once(bufs.iovec())).collect();
        // SAFETY: each iovec covers memory owned by `pool` or `bufs`, which outlive the ring
        // (dropped after it by `Exit`, or leaked with it if the ring cannot be drained).
        unsafe { ring.submitter().register_buffers(&iovecs) }.map_err(|e| {
            let what = format!(
                "register_buffers ({sends} send buffers of {send_size} B + the receive ring)"
            );
            step(e, what)
        })?;
        pool.set_fixed_base(0);
        bufs.set_fixed_index(pool.count() as u16);
        bufs.register(&ring.submitter())
            .map_err(|e| step(e, format!("register_buf_ring ({recvs} entries)")))?;
        bufs.fill();
        bufs.set_bundles(init.features.recv_bundle && cfg.recv_bundles);
        let files = register_files(&ring, &init.features, &cfg, init.index);
        Ok((pool, bufs, ring, files))
    };
    let (pool, bufs, ring, file_slots) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let index = init.index;
    // Ring messages may come in from here on (the engine starts once every worker is ready).
    init.links[index].door.publish(ring.as_raw_fd());
    // The connections' handles send their requests into this worker's mailbox.
    let requests: Arc<dyn RequestSink> = Arc::new(init.links[index].clone());
    let core = Core::new(
        index as u32,
        pool.clone(),
        Rc::clone(&bufs),
        Arc::clone(&init.stats),
        requests,
        Arc::clone(&init.loads[index]),
        Arc::clone(&cfg),
        init.features.send_zc,
        file_slots,
    );
    let worker = Worker {
        index,
        core,
        rx: init.rx,
        links: init.links,
        loads: init.loads,
        listeners: Vec::new(),
        listener_table: init.listeners,
        ring_handoff: init.features.msg_ring && cfg.ring_handoff,
        handoffs: PendingHandoffs::default(),
        wake_reader: init.wake_reader,
        wake_buf: Box::new([0; 64]),
        wake_armed: false,
        stopping: false,
        door_closed: false,
        register_ring_fd: init.features.registered_ring_fd,
        // At most 1 s (checked by the builder), so it fits.
        min_wait_us: cfg
            .min_wait
            .filter(|_| init.features.min_wait)
            .map(|w| w.as_micros().clamp(1, u32::MAX as u128) as u32),
        #[cfg(test)]
        fault: None,
    };
    // From here on the guard owns everything the kernel may touch, so that however this
    // function is left (a return, a ring error, a panic unwinding) it is freed only when the
    // ring is idle, and leaked otherwise.
    let mut exit = Exit {
        parts: Some(Parts {
            worker,
            ring,
            bufs,
            pool,
        }),
        failure: None,
    };
    let _ = ready.send(Ok(()));
    let Some(p) = exit.parts.as_mut() else { return };
    if let Err(e) = p.worker.run_loop(&mut p.ring, &cfg) {
        log::error!("uring-vsock worker {index}: ring failed: {e}");
        exit.failure = Some(e);
    }
}

/// A worker and the memory its ring shares with the kernel, in the order they must go: the
/// worker (its slots hold in-flight send buffers, connect addresses, the wake-up buffer), then
/// the ring, then the receive ring and the send pool the ring has registered.
struct Parts {
    worker: Worker,
    ring: IoUring,
    bufs: Rc<BufRing>,
    pool: BufferPool,
}

/// Ends a worker. After a clean exit (every op completed) it drops the [`Parts`] in order.
/// Otherwise (a panic unwinding through the loop, a ring error, ops still in flight) the
/// kernel may still write that memory, so it is leaked, ring included; what is not the
/// kernel's is settled: handles and pending connects get an error, the command channel is
/// dropped (later sends and connects fail), and the worker's load becomes `usize::MAX` so the
/// acceptor and `Engine::connect` pass it over.
struct Exit {
    parts: Option<Parts>,
    failure: Option<io::Error>,
}

impl Drop for Exit {
    fn drop(&mut self) {
        let Some(mut p) = self.parts.take() else {
            return;
        };
        let panicking = std::thread::panicking();
        if !panicking && self.failure.is_none() && p.worker.core.sub.inflight() == 0 {
            p.worker.drain_commands_after_exit();
            let Parts {
                worker,
                ring,
                bufs,
                pool,
            } = p;
            drop(worker);
            drop(ring);
            drop(bufs);
            drop(pool);
            return;
        }
        let why = match &self.failure {
            Some(e) => format!("engine worker {} stopped: ring failed: {e}", p.worker.index),
            None if panicking => format!("engine worker {} stopped: it panicked", p.worker.index),
            None => format!(
                "engine worker {} stopped with {} operations in flight",
                p.worker.index,
                p.worker.core.sub.inflight()
            ),
        };
        p.worker.abandon(&why);
        std::mem::forget(p);
    }
}

/// Registers a sparse file table for the worker's connections if wanted and probed; its
/// slots, or 0 (none: a failure is logged, the worker runs on with fds).
fn register_files(ring: &IoUring, features: &RingFeatures, cfg: &Settings, index: usize) -> u32 {
    let slots = core::table_slots();
    if !(features.registered_files && cfg.registered_files) || slots == 0 {
        return 0;
    }
    match ring.submitter().register_files_sparse(slots) {
        Ok(()) => slots,
        Err(e) => {
            log::warn!(
                "uring-vsock worker {index}: register_files_sparse ({slots} slots) failed \
                 ({e}); running without registered files"
            );
            0
        }
    }
}

/// Pins the calling thread to `cpu` (checked below `CPU_SETSIZE` by the builder).
fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; cpu < CPU_SETSIZE, so CPU_SET stays inside the set;
    // sched_setaffinity reads the set through a valid pointer of the size passed.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Worker {
    fn run_loop(&mut self, ring: &mut IoUring, cfg: &Settings) -> io::Result<()> {
        let (mut submitter, mut sq, mut cq) = ring.split();
        // Saves the fd lookup on every enter; fine to run without it.
        if self.register_ring_fd {
            if let Err(e) = submitter.register_ring_fd() {
                log::warn!(
                    "uring-vsock worker {}: register_ring_fd failed ({e}); running without",
                    self.index
                );
            }
        }
        self.arm_wake();
        let mut spin = cfg.spin.map(Spin::new);
        loop {
            let mut work = false;
            while let Ok(cmd) = self.rx.try_recv() {
                work = true;
                self.command(cmd);
            }
            #[cfg(test)]
            match self.fault.take() {
                Some(super::mailbox::Fault::RingError) => {
                    return Err(io::Error::from_raw_os_error(libc::EBADF))
                }
                Some(super::mailbox::Fault::Panic) => panic!("injected worker panic (test)"),
                None => {}
            }
            cq.sync();
            for cqe in &mut cq {
                work = true;
                self.dispatch(cqe.user_data(), cqe.result(), cqe.flags());
            }
            // The connections' deadlines that are due (before the tasks: a task spawned by a
            // handler runs in this turn), then the worker's async tasks, after the
            // completions (and wake-ups) that woke them.
            work |= self.core.fire_deadlines();
            let link = &self.links[self.index];
            work |= super::rt::run(&mut self.core, link, self.stopping);
            // Returned receive buffers go back into the ring once every completion the
            // kernel posted is seen (a bundle names its later buffers by ring position).
            cq.sync();
            if cq.is_empty() && !sq.cq_overflow() {
                self.core.bufs.publish();
            }
            self.core.rearm_resumed();
            // One ring timeout for the earliest timer (tasks' sleeps, deadlines).
            work |= self.core.arm_timer();
            if self.stopping {
                let closed = self.stop_step();
                if closed && self.core.sub.inflight() == 0 && self.core.sub.is_flushed() {
                    return Ok(());
                }
            }
            self.core.sub.flush(&mut sq, &submitter)?;
            work |= !self.core.sub.is_flushed();
            if work {
                if let Some(s) = spin.as_mut() {
                    s.hit(&self.core.stats);
                }
                if !sq.is_empty() || sq.taskrun() {
                    // Submit, and when nothing is visibly left to do, wait in the same enter
                    // (one syscall instead of two); a spinning worker polls instead.
                    cq.sync();
                    let idle = spin.is_none()
                        && self.core.sub.is_flushed()
                        && cq.is_empty()
                        && self.rx.is_empty();
                    if idle {
                        WorkerStats::add(&self.core.stats.sleeps, 1);
                        self.core
                            .sub
                            .sleep(&submitter, self.batch(cfg), self.min_wait_us)?;
                    } else {
                        self.core.sub.enter(&submitter, 0)?;
                    }
                }
                continue;
            }
            if let Some(s) = spin.as_mut() {
                if s.keep_spinning() {
                    WorkerStats::add(&self.core.stats.spins, 1);
                    // With TASKRUN_FLAG the kernel flags pending completion work in the SQ
                    // flags: enter only then, otherwise just poll memory.
                    if !sq.is_empty() || sq.taskrun() {
                        self.core.sub.enter(&submitter, 0)?;
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                s.miss(&self.core.stats);
            }
            WorkerStats::add(&self.core.stats.sleeps, 1);
            self.core
                .sub
                .sleep(&submitter, self.batch(cfg), self.min_wait_us)?;
        }
    }

    /// Completions a min-wait sleep waits for: one per open connection, within half the
    /// completion queue.
    fn batch(&self, cfg: &Settings) -> usize {
        self.core
            .live()
            .clamp(1, (cfg.cq_entries as usize / 2).max(1))
    }

    fn dispatch(&mut self, user_data: u64, res: i32, flags: u32) {
        WorkerStats::add(&self.core.stats.completions, 1);
        let last = !cqueue::more(flags);
        let counted = match Op::decode(user_data) {
            None => {
                // A ring timeout's (kind byte 0xEE): frees its timespec.
                self.core.ring_timer_completed(user_data);
                last
            }
            Some(op) => match op.kind {
                Kind::Wake => {
                    self.on_wake(res);
                    last
                }
                Kind::Accept => {
                    self.on_accept(op.index, res, flags);
                    last
                }
                Kind::AcceptBackoff => {
                    self.on_accept_backoff(op.index);
                    last
                }
                Kind::HandoffSent => {
                    self.on_handoff_sent(op.index, res);
                    last
                }
                // Another worker's message: no op of ours completed.
                Kind::Handoff => {
                    self.on_handoff(op.index, res);
                    false
                }
                _ => self.core.on_conn_cqe(op, res, flags),
            },
        };
        if counted {
            self.core.sub.completed();
        }
    }

    /// Settles what is not the kernel's before the worker is leaked (see [`Exit`]).
    fn abandon(&mut self, why: &str) {
        self.loads[self.index].store(usize::MAX, Ordering::Relaxed);
        // Messages already in transit land in a ring nobody reaps (their fds stay open, as
        // the leaked ring does); no more are admitted.
        self.links[self.index].door.force_close();
        self.abandon_handoffs();
        let reason = CloseReason::Error(Arc::new(Error::new(
            "engine worker",
            None,
            io::Error::other(why.to_string()),
        )));
        self.core.abandon(&reason);
        self.drain_commands_after_exit();
        // Disconnects the channel: senders get their command back instead of queueing it
        // for nobody.
        drop(std::mem::replace(&mut self.rx, crossbeam_channel::never()));
    }

    /// While stopping: once connections and listeners are gone and no hand-off is on its way
    /// to this ring, closes its door and cancels the wake-up read; returns whether the door
    /// is closed (the worker leaves once its ops are done). Until then the wake-up read stays
    /// armed, so that the sender of a refused hand-off can wake this worker.
    fn stop_step(&mut self) -> bool {
        if self.door_closed {
            return true;
        }
        if self.core.live() != 0 || !self.listeners.iter().all(Option::is_none) {
            return false;
        }
        if !self.links[self.index].door.try_close() {
            self.arm_wake();
            return false;
        }
        self.door_closed = true;
        if self.wake_armed {
            let entry = opcode::AsyncCancel::new(Op::new(Kind::Wake, 0, 0).encode()).build();
            self.core.stage(entry, Op::new(Kind::Cancel, 0, u32::MAX));
            // Not re-armed: the door is closed.
            self.wake_armed = false;
        }
        true
    }
}
