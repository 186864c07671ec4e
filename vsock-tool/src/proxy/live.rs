//! [`Live`]: how many proxied connections are open, for `--max-conns` and the drain.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Counts open client connections (each with its target); the drain waits on it.
#[derive(Debug, Default)]
pub struct Live {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Live {
    /// Takes a slot if fewer than `max` are open.
    pub fn try_enter(&self, max: usize) -> bool {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a slot back.
    pub fn leave(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until none is open or `timeout` has passed; returns how many are left.
    pub fn wait_empty(&self, timeout: Duration) -> usize {
        let deadline = Instant::now().checked_add(timeout);
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            n = self
                .changed
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_to_the_limit_and_waits() {
        let live = Live::default();
        assert!(live.try_enter(2) && live.try_enter(2));
        assert!(!live.try_enter(2));
        assert_eq!(live.wait_empty(Duration::from_millis(1)), 2);
        live.leave();
        live.leave();
        live.leave(); // never below zero
        assert_eq!(live.wait_empty(Duration::MAX), 0);
    }
}
