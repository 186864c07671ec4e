//! [`TurnedAway`]: the warning for clients turned away (over `--max-conns`, or while
//! draining), at most one line a second: a flood of clients (the reason they are turned
//! away) must not become a flood of log lines. The lines left out are counted, and the next
//! line (or the one at exit) says how many.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use uring_vsock::Endpoint;

/// The least time between two lines.
const EVERY: Duration = Duration::from_secs(1);

/// Rate-limits the turned-away warning.
#[derive(Debug, Default)]
pub struct TurnedAway {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line went out.
    last: Option<Instant>,
    /// Clients turned away since then without a line.
    left_out: u64,
}

impl TurnedAway {
    /// Warns that `peer` was turned away (`why`), unless a line went out less than a second
    /// ago: then it is only counted.
    pub fn warn(&self, peer: &Endpoint, why: &str) {
        match self.admit(Instant::now()) {
            None => {}
            Some(0) => log::warn!("{peer}: turned away: {why}"),
            Some(n) => log::warn!(
                "{peer}: turned away: {why} (and {n} more turned away since the last such line)"
            ),
        }
    }

    /// Warns how many were turned away since the last line, if any (at exit).
    pub fn flush(&self) {
        let n = std::mem::take(&mut self.lock().left_out);
        if n > 0 {
            log::warn!("{n} more clients turned away since the last such line");
        }
    }

    /// At `now`: `Some(left out since the last line)` when a line is due, else `None` (and
    /// this one is counted).
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut st = self.lock();
        if st
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < EVERY)
        {
            st.left_out += 1;
            return None;
        }
        st.last = Some(now);
        Some(std::mem::take(&mut st.left_out))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_counting_the_rest() {
        let t = TurnedAway::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(t.admit(at(0)), Some(0));
        assert_eq!(t.admit(at(1)), None);
        assert_eq!(t.admit(at(999)), None);
        assert_eq!(t.admit(at(1000)), Some(2));
        assert_eq!(t.admit(at(1500)), None);
        // A clock that seems to go back (another thread's earlier Instant) counts as no
        // time passed.
        assert_eq!(t.admit(at(900)), None);
        assert_eq!(t.admit(at(5000)), Some(2));
        assert_eq!(t.admit(at(5001)), None);
        t.flush();
        assert_eq!(t.lock().left_out, 0);
        assert_eq!(t.admit(at(6001)), Some(0));
    }
}
