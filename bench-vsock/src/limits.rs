//! Upper bounds on the options that size a run, checked before anything runs: a value past
//! them would start more threads or sockets than a machine has, or run far past its
//! `--duration` while connecting, rather than measure anything.

use crate::error::{Error, Result};

/// The most concurrent connections (`--conns`): each is a socket on both ends of a local
/// run, and a thread on each end for `blocking`.
pub const MAX_CONNS: u64 = 4096;
/// The most worker threads per side (`--workers`).
pub const MAX_WORKERS: u64 = 256;
/// The most runs of each backend and workload (`--repeat`).
pub const MAX_REPEAT: u64 = 1000;

/// Open files a run needs beyond its connections: listeners, rings, event fds, stdio,
/// report files.
const FD_SLACK: u64 = 64;
/// Open files per worker (a ring, its event fds, a poll instance).
const FDS_PER_WORKER: u64 = 4;

/// `value` of `flag` if it is at most `max`.
///
/// # Errors
///
/// Above the limit: the error names the flag, the value and the limit.
pub fn at_most(flag: &str, value: u64, max: u64, what: &str) -> Result<u64> {
    if value > max {
        return Err(Error::new(format!(
            "{flag} {value} is above the limit of {max} {what}"
        )));
    }
    Ok(value)
}

/// `value` of `flag` if it is in `min..=max`.
///
/// # Errors
///
/// Outside the range: the error names the flag, the value and the range.
pub fn within(flag: &str, value: u64, min: u64, max: u64, what: &str) -> Result<u64> {
    if !(min..=max).contains(&value) {
        return Err(Error::new(format!(
            "{flag} {value} is outside {min} to {max} {what}"
        )));
    }
    Ok(value)
}

/// Open files a run of `conns` connections on `workers` workers per side needs, with
/// `ends` sides in this process (2 for a local server, 1 against a remote one).
pub fn fds_needed(conns: u64, workers: u64, ends: u64) -> u64 {
    conns
        .saturating_add(workers.saturating_mul(FDS_PER_WORKER))
        .saturating_mul(ends)
        .saturating_add(FD_SLACK)
}

/// Makes sure this process may open `needed` files, raising its soft limit toward the hard
/// one if it must (as a shell's `ulimit -n` would).
///
/// # Errors
///
/// The hard limit is lower: the error says what `--conns` needs and what the limit is.
pub fn ensure_fds(needed: u64, conns: u64) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        // Without the limit we cannot check; the run reports EMFILE if it hits it.
        return Ok(());
    }
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max >= needed {
        let raised = libc::rlimit {
            rlim_cur: needed,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard
        // one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
    }
    Err(Error::new(format!(
        "--conns {conns} needs about {needed} open files, but this process may open only {} \
         (ulimit -n, hard limit {}): lower --conns or raise the limit",
        lim.rlim_cur, lim.rlim_max
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_a_limit_name_the_flag_and_the_limit() {
        assert_eq!(at_most("--conns", 4096, MAX_CONNS, "connections"), Ok(4096));
        let e = at_most("--conns", 200_000, MAX_CONNS, "connections").unwrap_err();
        assert_eq!(
            e.message(),
            "--conns 200000 is above the limit of 4096 connections"
        );
    }

    #[test]
    fn fds_needed_counts_both_ends_and_never_overflows() {
        assert_eq!(fds_needed(256, 2, 2), (256 + 8) * 2 + FD_SLACK);
        assert_eq!(fds_needed(256, 2, 1), 256 + 8 + FD_SLACK);
        assert_eq!(fds_needed(u64::MAX, u64::MAX, 2), u64::MAX);
    }

    #[test]
    fn an_impossible_fd_count_is_refused_with_the_limit() {
        let e = ensure_fds(u64::MAX, 7).unwrap_err();
        assert!(e.message().starts_with("--conns 7 needs about"), "{e}");
        assert!(e.message().contains("ulimit -n"), "{e}");
        // What the process may open already is accepted as is.
        ensure_fds(16, 1).unwrap();
    }
}
