//! The checks [`EngineBuilder::build`](super::EngineBuilder::build) runs on its settings
//! before any worker starts (sizes the kernel would refuse, options that would overflow),
//! and the memory-lock budget that sizes defaults down: a bad setting is a typed error that
//! names it, never a panic or a bare errno from the kernel.

use std::io;
use std::time::Duration;

use super::buf_pool::BufferPool;
use super::buf_ring::BufRing;
use super::settings::Settings;
use crate::{Error, Result};

/// `IORING_MAX_REG_BUFFERS`: most buffers one ring registers.
const MAX_REG_BUFFERS: usize = 1 << 14;

/// Largest buffer the kernel registers.
const MAX_REG_BUFFER_BYTES: usize = 1 << 30;

/// Fewest submission entries: room for the largest group of linked SQEs the engine makes
/// besides send chains (which take at most a quarter of the ring).
const MIN_SQ_ENTRIES: u32 = 8;

/// `IORING_MAX_ENTRIES` and `IORING_MAX_CQ_ENTRIES`.
const MAX_SQ_ENTRIES: u32 = 1 << 15;
const MAX_CQ_ENTRIES: u32 = 1 << 16;

/// `CPU_SETSIZE`: CPUs a thread can be pinned to are numbered below it.
const MAX_CPUS: usize = 1024;

/// Most sends one connection may have queued (a bound, so the queue's memory is too).
const MAX_SENDS_PER_CONN: usize = 1 << 16;

/// Longest [`EngineBuilder::min_wait`](super::EngineBuilder::min_wait): a batching wait, not
/// a timer (and well inside the kernel's `u32` of microseconds).
pub(crate) const MAX_MIN_WAIT: Duration = Duration::from_secs(1);

/// Checks `s` (the builder's settings; `recv_share_asked` its per-connection receive share,
/// `buffers_explicit` whether the buffer counts were set) against `limit` (bytes of locked
/// memory, `None`: unlimited), sizing default buffer counts down when they do not fit.
pub(crate) fn validate(
    s: Settings,
    recv_share_asked: Option<usize>,
    buffers_explicit: bool,
    limit: Option<usize>,
) -> Result<Settings> {
    let invalid = |msg: String| {
        Error::new(
            "engine build",
            None,
            io::Error::new(io::ErrorKind::InvalidInput, msg),
        )
    };
    if s.workers == 0 || s.workers > 1024 {
        return Err(invalid(format!(
            "workers must be 1..=1024, not {}",
            s.workers
        )));
    }
    if let Some(cpu) = s.pin.iter().flatten().find(|&&c| c >= MAX_CPUS) {
        return Err(invalid(format!(
            "pin_to_cpus: CPU {cpu} is out of range (CPUs are numbered below {MAX_CPUS})"
        )));
    }
    // A connect and its linked timeout, and a chain of sends, enter the ring together:
    // a ring too small to hold such a group would wait for room forever.
    if s.sq_entries < MIN_SQ_ENTRIES || s.sq_entries > MAX_SQ_ENTRIES {
        return Err(invalid(format!(
            "ring_entries must be {MIN_SQ_ENTRIES}..={MAX_SQ_ENTRIES}, not {}",
            s.sq_entries
        )));
    }
    // The kernel rounds both up to powers of two and needs at least as many completion
    // entries as submission entries.
    let sq = s.sq_entries.next_power_of_two();
    if s.cq_entries < sq || s.cq_entries > MAX_CQ_ENTRIES {
        return Err(invalid(format!(
            "completion_entries must be {sq}..={MAX_CQ_ENTRIES} (at least ring_entries, \
             rounded up to a power of two), not {}",
            s.cq_entries
        )));
    }
    if s.sends_per_conn == 0 || s.sends_per_conn > MAX_SENDS_PER_CONN {
        return Err(invalid(format!(
            "sends_per_connection must be 1..={MAX_SENDS_PER_CONN}, not {}",
            s.sends_per_conn
        )));
    }
    if !s.recv_buffers.is_power_of_two() || s.recv_buffers > 32768 {
        return Err(invalid(format!(
            "recv buffer count must be a power of two up to 32768, not {}",
            s.recv_buffers
        )));
    }
    if s.recv_buffer_size == 0 || s.recv_buffer_size > u32::MAX as usize {
        return Err(invalid(format!(
            "recv buffer size {} is out of range",
            s.recv_buffer_size
        )));
    }
    let recv_share = recv_share_asked.unwrap_or((s.recv_buffers / 4).max(1));
    if recv_share == 0 || recv_share > MAX_SENDS_PER_CONN {
        return Err(invalid(format!(
            "recv_buffers_per_connection must be 1..={MAX_SENDS_PER_CONN}, not {recv_share}"
        )));
    }
    for (name, v) in [
        ("socket send buffer", s.socket.send_buffer),
        ("socket receive buffer", s.socket.recv_buffer),
    ] {
        if v.is_some_and(|n| n == 0 || n > i32::MAX as usize / 2) {
            return Err(invalid(format!(
                "socket_buffers: {name} must be 1..={} bytes, not {}",
                i32::MAX / 2,
                v.unwrap_or_default()
            )));
        }
    }
    // The ring registers the pool's buffers plus one for the receive ring, and takes at
    // most IORING_MAX_REG_BUFFERS (1 << 14), each at most 1 GiB.
    if s.send_buffers == 0
        || s.send_buffers > MAX_REG_BUFFERS - 1
        || s.send_buffer_size == 0
        || s.send_buffer_size > MAX_REG_BUFFER_BYTES
    {
        return Err(invalid(format!(
            "send pool of {} x {} bytes: count must be 1..={} (the kernel registers at most \
             {MAX_REG_BUFFERS} buffers, one is the receive ring's), size 1..=1 GiB",
            s.send_buffers,
            s.send_buffer_size,
            MAX_REG_BUFFERS - 1
        )));
    }
    let recv_bytes = s.recv_buffers.saturating_mul(s.recv_buffer_size);
    if recv_bytes > MAX_REG_BUFFER_BYTES {
        return Err(invalid(format!(
            "receive ring of {} x {} bytes is {recv_bytes} bytes: it is registered as one \
             buffer, which the kernel caps at 1 GiB",
            s.recv_buffers, s.recv_buffer_size
        )));
    }
    if let Some(w) = s.min_wait.filter(|w| *w > MAX_MIN_WAIT) {
        return Err(invalid(format!(
            "min_wait must be at most {MAX_MIN_WAIT:?}, not {w:?}"
        )));
    }
    let mut settings = fit_memlock(s, buffers_explicit, limit)?;
    settings.recv_share = recv_share as u32;
    Ok(settings)
}

/// Sizes defaults down to fit `limit` (bytes of locked memory; `None`: unlimited), or
/// fails saying what was asked and the limit.
fn fit_memlock(mut s: Settings, buffers_explicit: bool, limit: Option<usize>) -> Result<Settings> {
    loop {
        let asked = locked_bytes(&s);
        match limit {
            Some(limit) if asked > limit => {
                if !buffers_explicit && (s.recv_buffers > 8 || s.send_buffers > 8) {
                    s.recv_buffers = (s.recv_buffers / 2).max(8);
                    s.send_buffers = (s.send_buffers / 2).max(8);
                    continue;
                }
                return Err(Error::new(
                    "engine build",
                    None,
                    io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        memlock_message(&s, asked, limit),
                    ),
                ));
            }
            _ => return Ok(s),
        }
    }
}

/// Registered (pinned) bytes for all workers.
pub(crate) fn locked_bytes(s: &Settings) -> usize {
    s.workers.saturating_mul(
        BufRing::locked_bytes(s.recv_buffers, s.recv_buffer_size)
            .saturating_add(BufferPool::locked_bytes(s.send_buffers, s.send_buffer_size)),
    )
}

pub(crate) fn memlock_message(s: &Settings, asked: usize, limit: usize) -> String {
    format!(
        "registered buffers need {} KiB ({} workers x ({} recv x {} B + {} send x {} B)) but \
         RLIMIT_MEMLOCK is {} KiB; use fewer workers or buffers, or raise the limit",
        asked / 1024,
        s.workers,
        s.recv_buffers,
        s.recv_buffer_size,
        s.send_buffers,
        s.send_buffer_size,
        limit / 1024
    )
}

/// The memory-lock limit that applies to registered buffers, or `None` when unlimited (an
/// infinite limit, or `CAP_IPC_LOCK`, which exempts the process from accounting).
pub(crate) fn memlock_limit() -> Option<usize> {
    if has_cap_ipc_lock() {
        return None;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through the valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return None;
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as usize)
}

/// Whether the effective capabilities include `CAP_IPC_LOCK` (bit 14), from /proc.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}
