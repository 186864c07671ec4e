//! Registered files (direct descriptors): a worker's sparse file table holds one slot per
//! connection, numbered as the connection's slab slot, so the kernel looks a socket up in the
//! ring's own table instead of the process's fd table (and takes no file reference) for
//! every receive and send.
//!
//! A connection's socket enters its slot when it opens (after any connect and handshake,
//! which use the real fd) by a `FILES_UPDATE` staged ahead of its first receive or send: the
//! kernel issues unlinked SQEs in order, each update synchronously, so the ops after it find
//! the slot filled. The real fd stays for socket options, `shutdown` and `SO_ERROR`.
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
use super::Core;

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

impl Core {
    /// Puts the socket of connection `index` into its slot of the file table, when the
    /// table has one for it (connections past the table's size use their fd).
    pub(super) fn register_file(&mut self, index: u32) {
        let Some(entry) = self.files.fds.get_mut(index as usize) else {
            return;
        };
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        if c.file.is_some() || c.socket.is_none() {
            return;
        }
        *entry = c.fd;
        c.file = Some(index);
        WorkerStats::add(&self.stats.registered_files, 1);
        let update = opcode::FilesUpdate::new(entry as *const RawFd, 1)
            .offset(index as i32)
            .build();
        self.sub.stage(update, Op::new(Kind::FilesUpdate, 1, index));
    }

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

    /// The file ops on connection `index`'s socket name.
    pub(super) fn socket_file(c: &super::ConnState) -> SocketFile {
        match c.file {
            Some(slot) => SocketFile::Fixed(slot),
            None => SocketFile::Fd(c.fd),
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
