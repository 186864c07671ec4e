//! A proxy process's CPU time from `/proc/PID/stat`: its own user + system time and that of
//! its children it has reaped (socat forks one per connection).

use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};

/// Clock ticks per second of `/proc`'s times.
fn ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory side; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// utime + stime + cutime + cstime of a `/proc/PID/stat` line, in ticks.
fn parse_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    let sum = field(14)? + field(15)? + field(16)? + field(17)?;
    u64::try_from(sum).ok()
}

/// The CPU time process `pid` and its reaped children have used.
///
/// # Errors
///
/// `/proc/PID/stat` could not be read or parsed (the process is gone).
pub(super) fn cpu_of(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).context(format!("reading {path}"))?;
    let ticks = parse_ticks(&stat)
        .ok_or_else(|| Error::new(format!("{path}: unexpected format: {stat}")))?;
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_s() as f64))
}

/// Waits until process `pid` has no children left (a forking proxy's connections have
/// ended and been reaped, so their CPU time is in the parent's), up to `limit`. Where the
/// kernel has no `children` file there is nothing to wait on.
///
/// # Errors
///
/// Children still running after `limit`.
pub(super) fn wait_childless(pid: u32, limit: Duration) -> Result<()> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    let give_up = Instant::now() + limit;
    loop {
        match std::fs::read_to_string(&path) {
            Ok(list) if !list.trim().is_empty() => {}
            _ => return Ok(()),
        }
        if Instant::now() >= give_up {
            return Err(Error::new(format!(
                "the proxy (pid {pid}) still had connection processes after {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_times_are_summed_after_a_name_with_spaces() {
        let stat = "4242 (so (c) at) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 5 1 20 0 1 0";
        assert_eq!(parse_ticks(stat), Some(7 + 3 + 5 + 1));
        assert_eq!(parse_ticks("garbage"), None);
        assert_eq!(parse_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_of(std::process::id()).unwrap() > Duration::ZERO);
    }
}
