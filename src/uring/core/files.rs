//! Registered files (direct descriptors): a worker's sparse file table holds one slot per
//! connection, numbered as the connection's slab slot, so the kernel looks a socket up in the
//! ring's own table instead of the process's fd table (and takes no file reference) for
//! each receive and send it is given.
//!
//! Where it pays: putting a socket in and taking it out costs two table updates (an SQE and
//! a completion each, in enters the worker makes anyway), and saves a lookup per SQE after.
//! So a connection's socket goes in once it has been named by [`REGISTER_AFTER`] SQEs:
//! connections that exchange a message or two and close (connection-rate loads) never pay
//! for it; busy ones do from then on. Connects and handshakes always use the real fd, and it
//! stays for socket options, `shutdown` and `SO_ERROR`.
//!
//! The update is staged just ahead of the SQEs that name the slot: the kernel issues
//! unlinked SQEs in order, each update synchronously, so the ops after it find the slot
//! filled (ops already in flight hold their own reference to the socket).
//!
//! The table holds a reference to each socket it has: the socket closes (the peer sees its
//! FIN or reset) only once its slot is cleared too. So whenever the engine lets a socket go
//! (the final close, or the early reset of a connection whose zero-copy notifications are
//! all that is left), it stages the clearing update as well; the slot's next connection is
//! registered only after it (the slab slot is reused only once freed).

use std::os::fd::RawFd;

use io_uring::opcode;

use super::super::op::{Kind, Op};
use super::super::stats::WorkerStats;
use super::super::submit::Submission;
use super::{ConnState, Core};

/// SQEs on a connection's socket before it goes into the table (see the module docs).
const REGISTER_AFTER: u32 = 16;

/// What a `FILES_UPDATE` that clears a slot reads: -1, no file.
static NO_FILE: [RawFd; 1] = [-1];

/// Most slots of a worker's table (the kernel's memory for it is 8 bytes a slot);
/// connections in slab slots past the table use their fd.
const MAX_SLOTS: u32 = 1 << 14;

/// The size of a worker's table: [`MAX_SLOTS`], within `RLIMIT_NOFILE` (the kernel refuses a
/// larger table with `EMFILE`).
pub(crate) fn table_slots() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through the valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur.min(u64::from(MAX_SLOTS)) as u32
}

/// The worker's registered file table, as the engine fills it.
pub(crate) struct FileTable {
    /// The fd each slot was last given, read by the kernel when its update runs; allocated
    /// once, so an update's pointer into it stays valid until its completion (the core
    /// outlives the ring's ops: the worker frees it only once none is in flight).
    fds: Box<[RawFd]>,
}

impl FileTable {
    /// A table of `slots` (0: registered files are off; the kernel's table has that many
    /// sparse slots).
    pub(crate) fn new(slots: u32) -> FileTable {
        FileTable {
            fds: vec![-1; slots as usize].into_boxed_slice(),
        }
    }
}

/// The file an op on a connection's socket names: its registered slot, or its fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketFile {
    Fixed(u32),
    Fd(RawFd),
}

/// Builds an op on a connection's socket: `$make` is called with `types::Fixed` for a
/// registered socket and `types::Fd` otherwise (the crate takes either, as its own types).
macro_rules! on_socket {
    ($file:expr, |$fd:ident| $make:expr) => {
        match $file {
            super::files::SocketFile::Fixed(slot) => {
                let $fd = io_uring::types::Fixed(slot);
                $make
            }
            super::files::SocketFile::Fd(raw) => {
                let $fd = io_uring::types::Fd(raw);
                $make
            }
        }
    };
}
pub(super) use on_socket;

impl FileTable {
    /// The file `n` SQEs about to be made on connection `index`'s socket name: its slot once
    /// the connection has been named by [`REGISTER_AFTER`] SQEs (the update that puts it in
    /// staged here, ahead of them), its fd before that, and for connections past the table.
    pub(super) fn file_for(
        &mut self,
        c: &mut ConnState,
        index: u32,
        n: u32,
        sub: &mut Submission,
        stats: &WorkerStats,
    ) -> SocketFile {
        c.sqes = c.sqes.saturating_add(n);
        if c.file.is_none() && c.sqes >= REGISTER_AFTER && c.socket.is_some() {
            if let Some(entry) = self.fds.get_mut(index as usize) {
                *entry = c.fd;
                c.file = Some(index);
                WorkerStats::add(&stats.registered_files, 1);
                let update = opcode::FilesUpdate::new(entry as *const RawFd, 1)
                    .offset(index as i32)
                    .build();
                sub.stage(update, Op::new(Kind::FilesUpdate, 1, index));
            }
        }
        match c.file {
            Some(slot) => SocketFile::Fixed(slot),
            None => SocketFile::Fd(c.fd),
        }
    }
}

impl Core {
    /// Clears the slot of connection `index` (if it has one) before its socket is let go,
    /// so the socket really closes.
    pub(super) fn release_file(&mut self, index: u32) {
        let Some(slot) = self.conn_mut(index).and_then(|c| c.file.take()) else {
            return;
        };
        let update = opcode::FilesUpdate::new(NO_FILE.as_ptr(), 1)
            .offset(slot as i32)
            .build();
        self.sub.stage(update, Op::new(Kind::FilesUpdate, 0, index));
    }

    /// A file-table update completed: `res` is the count of slots updated (1), or an error.
    /// A failed registration fails the connection's ops (`EBADF` on their slot): counted
    /// and logged here, the connection closes with its ops' error.
    pub(super) fn on_files_update_cqe(&mut self, op: Op, res: i32) {
        if res < 0 {
            WorkerStats::add(&self.stats.file_update_errors, 1);
            let what = if op.tag == 1 { "register" } else { "clear" };
            log::warn!(
                "uring-vsock worker {}: {what} of registered file slot {} failed: {}",
                self.worker,
                op.index,
                std::io::Error::from_raw_os_error(-res)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_fits_the_fd_limit_and_the_cap() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit through the valid pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let n = table_slots();
        assert!(n <= MAX_SLOTS && u64::from(n) <= lim.rlim_cur, "{n}");
        assert_eq!(u64::from(n), lim.rlim_cur.min(u64::from(MAX_SLOTS)));
        assert!(FileTable::new(0).fds.is_empty());
    }
}
