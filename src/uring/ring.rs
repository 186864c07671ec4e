//! Ring setup and feature probing. Workers want `SINGLE_ISSUER | DEFER_TASKRUN` (completions
//! are posted only when the owning thread asks, no inter-processor interrupts); kernels
//! without it get `COOP_TASKRUN`, and older ones the default. `TASKRUN_FLAG` is set in both so
//! a spinning worker sees pending completions in the SQ flags without a syscall. The choice
//! is made once, by probing on the builder's thread, and reported in [`RingFeatures`].

use std::fmt;
use std::io;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::buf_ring::BufRing;

/// How the kernel runs the ring's completion work, as chosen by probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRunMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (kernel 6.1+): completions are posted
    /// only when the worker enters the kernel to reap them.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (kernel 5.19+): no interrupting the worker, but work runs
    /// on any kernel entry.
    CoopTaskrun,
    /// Neither flag is available.
    Default,
}

/// What the engine's rings run with, decided by probing at build time.
///
/// ```
/// # fn main() -> uring_vsock::Result<()> {
/// let engine = uring_vsock::uring::Engine::builder().workers(1).build()?;
/// println!("{}", engine.features());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingFeatures {
    /// The task-run mode.
    pub task_run: TaskRunMode,
    /// Whether the kernel registers ring fds (`IORING_REGISTER_RING_FDS`, tried at probing),
    /// so each worker does, saving an fd lookup per `io_uring_enter`. A worker whose own
    /// registration fails anyway runs on without it and logs a warning.
    pub registered_ring_fd: bool,
    /// Whether `SEND_ZC` is supported (used above the zero-copy threshold on tcp and vsock).
    pub send_zc: bool,
    /// Whether the kernel keeps completions that overflow the completion queue
    /// (`IORING_FEAT_NODROP`) instead of dropping them.
    pub no_drop: bool,
    /// Whether a bundle receive fills several provided buffers in one completion
    /// (`IORING_FEAT_RECVSEND_BUNDLE`, 6.10+, tried for real at probing: some kernels with
    /// the flag fill one buffer per bundle on sockets other than tcp). Used, except on tcp,
    /// unless the builder's `recv_bundles(false)`.
    pub recv_bundle: bool,
    /// Whether one ring posts a completion into another (`IORING_OP_MSG_RING`, 5.18+, tried
    /// for real at probing between two rings of the chosen mode). The acceptor then hands
    /// each accepted connection to its worker as a ring message carrying the fd, which
    /// wakes that worker from its completion queue (no channel, no wake-up write); unless
    /// the builder's `ring_handoff(false)`.
    pub msg_ring: bool,
    /// Whether the kernel waits a minimum time for a batch of completions
    /// (`IORING_FEAT_MIN_TIMEOUT`, 6.12+), used when the builder's `min_wait` is set.
    pub min_wait: bool,
    /// Whether the kernel has sparse registered file tables and `FILES_UPDATE` (5.19+,
    /// a sparse table tried at probing): each worker then serves its connections' receives
    /// and sends through direct descriptors, unless the builder's `registered_files(false)`.
    pub registered_files: bool,
}

impl fmt::Display for RingFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task run {:?}, registered ring fd {}, send_zc {}, nodrop {}, recv bundles {}, \
             msg_ring {}, min wait {}, registered files {}",
            self.task_run,
            self.registered_ring_fd,
            self.send_zc,
            self.no_drop,
            self.recv_bundle,
            self.msg_ring,
            self.min_wait,
            self.registered_files
        )
    }
}

/// Builds a ring in `mode` with `sq` submission and `cq` completion entries.
pub(crate) fn build(mode: TaskRunMode, sq: u32, cq: u32) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(cq).setup_clamp();
    match mode {
        TaskRunMode::DeferTaskrun => {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag();
        }
        TaskRunMode::CoopTaskrun => {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        TaskRunMode::Default => {}
    }
    b.build(sq)
}

/// Finds the best mode this kernel accepts (or tries only `forced`) and what it supports,
/// with a throwaway ring.
pub(crate) fn probe(sq: u32, cq: u32, forced: Option<TaskRunMode>) -> io::Result<RingFeatures> {
    let mut last_err = None;
    let modes = match forced {
        Some(m) => vec![m],
        None => vec![
            TaskRunMode::DeferTaskrun,
            TaskRunMode::CoopTaskrun,
            TaskRunMode::Default,
        ],
    };
    for mode in modes {
        match build(mode, sq, cq) {
            Ok(ring) => {
                let mut probe = Probe::new();
                ring.submitter().register_probe(&mut probe)?;
                let needed = [
                    (opcode::AcceptMulti::CODE, "ACCEPT"),
                    (opcode::RecvMulti::CODE, "RECV"),
                    (opcode::Send::CODE, "SEND"),
                    (opcode::Connect::CODE, "CONNECT"),
                    (opcode::LinkTimeout::CODE, "LINK_TIMEOUT"),
                    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
                    (opcode::Read::CODE, "READ"),
                ];
                for (code, name) in needed {
                    if !probe.is_supported(code) {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            format!("io_uring opcode {name} is not supported by this kernel"),
                        ));
                    }
                }
                // The real outcome on this kernel (5.18+), tried on the throwaway ring.
                let registered_ring_fd = ring.submitter().register_ring_fd().is_ok();
                return Ok(RingFeatures {
                    task_run: mode,
                    registered_ring_fd,
                    send_zc: probe.is_supported(opcode::SendZc::CODE),
                    no_drop: ring.params().is_feature_nodrop(),
                    recv_bundle: ring.params().is_feature_recvsend_bundle()
                        && bundles_fill_several(mode),
                    msg_ring: probe.is_supported(opcode::MsgRingData::CODE)
                        && msg_ring_delivers(mode),
                    min_wait: ring.params().is_feature_min_timeout(),
                    registered_files: probe.is_supported(opcode::FilesUpdate::CODE)
                        && ring.submitter().register_files_sparse(4).is_ok(),
                });
            }
            // EINVAL: this kernel does not know the flags; try the next mode.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no io_uring mode could be set up")))
}

/// Whether a bundle receive of 4 KiB queued on a unix socketpair fills more than one of a
/// ring's 1 KiB buffers. Tried on a small ring of a short-lived thread of its own: tearing
/// down a ring that ran a request can notify its thread later, which fails a blocking read
/// with a timeout on that thread with `EINTR` (seen on 6.18).
fn bundles_fill_several(mode: TaskRunMode) -> bool {
    let probe = move || -> io::Result<i32> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair()?;
        peer.write_all(&[0u8; 4096])?;
        let bufs = BufRing::new(4, 1024, 1)?;
        let mut ring = build(mode, 4, 8)?;
        bufs.register(&ring.submitter())?;
        bufs.fill();
        let entry = opcode::Recv::new(types::Fd(ours.as_raw_fd()), std::ptr::null_mut(), 4096)
            .ioprio(16) // IORING_RECVSEND_BUNDLE
            .buf_group(1)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(1);
        // SAFETY: the receive writes only into the ring's buffers, which `bufs` owns and which
        // outlive the ring (dropped after it, below).
        unsafe { ring.submission().push(&entry) }.map_err(io::Error::other)?;
        let ts = types::Timespec::new().sec(1);
        ring.submitter()
            .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))?;
        let res = ring.completion().next().map(|c| c.result());
        drop(ring);
        drop(bufs);
        res.ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    match std::thread::spawn(probe).join() {
        Ok(Ok(res)) => res > 1024,
        _ => false,
    }
}

/// Whether a ring message (`MSG_RING` with `IORING_MSG_DATA`) from one ring in `mode`
/// reaches another with the data it carries, on a short-lived thread of its own (as
/// [`bundles_fill_several`]).
fn msg_ring_delivers(mode: TaskRunMode) -> bool {
    const TAG: u64 = 0x5eed;
    let probe = move || -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut target = build(mode, 4, 8)?;
        let mut sender = build(mode, 4, 8)?;
        let entry = opcode::MsgRingData::new(types::Fd(target.as_raw_fd()), 7, TAG, None)
            .build()
            .user_data(1);
        // SAFETY: a ring message points to no memory of ours.
        unsafe { sender.submission().push(&entry) }.map_err(io::Error::other)?;
        sender.submit_and_wait(1)?;
        let sent = sender.completion().next().map(|c| c.result());
        let ts = types::Timespec::new().sec(1);
        let args = types::SubmitArgs::new().timespec(&ts);
        match target.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) => return Err(e),
        }
        let got = target.completion().next();
        Ok(sent == Some(0) && got.is_some_and(|c| c.user_data() == TAG && c.result() == 7))
    };
    matches!(std::thread::spawn(probe).join(), Ok(Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_a_mode_and_builds_it() {
        let f = probe(64, 256, None).unwrap();
        // The chosen mode builds, with the flags it stands for.
        let ring = build(f.task_run, 64, 256).unwrap();
        assert_eq!(
            ring.params().is_setup_single_issuer(),
            f.task_run == TaskRunMode::DeferTaskrun
        );
        assert!(ring.params().cq_entries() >= 256);
        // send_zc is what the kernel's opcode probe says.
        let mut p = Probe::new();
        ring.submitter().register_probe(&mut p).unwrap();
        assert_eq!(f.send_zc, p.is_supported(opcode::SendZc::CODE));
        // So is registered_files, with a sparse table this ring takes.
        let sparse = ring.submitter().register_files_sparse(8).is_ok();
        assert_eq!(
            f.registered_files,
            p.is_supported(opcode::FilesUpdate::CODE) && sparse
        );
        // A better mode than the one chosen must be refused by this kernel.
        if f.task_run != TaskRunMode::DeferTaskrun {
            assert!(build(TaskRunMode::DeferTaskrun, 64, 256).is_err());
            println!(
                "note: this kernel has no DEFER_TASKRUN; probed {:?}",
                f.task_run
            );
        }
    }
}
