//! [`Spin`]: how long an idle worker polls for completions before it sleeps in the kernel.
//! Adaptive: the window doubles while work keeps arriving inside it and halves each time it
//! runs out, between a sixteenth of the configured budget and the budget itself, so a busy
//! request/response flow gets low latency and an idle or bulk one does not burn a core.

use std::time::{Duration, Instant};

use super::stats::WorkerStats;

/// The spin window of one worker.
#[derive(Debug)]
pub(crate) struct Spin {
    max: Duration,
    min: Duration,
    window: Duration,
    /// When the current idle stretch began, while spinning.
    since: Option<Instant>,
}

impl Spin {
    /// A window of at most `max`, starting at a quarter of it.
    pub(crate) fn new(max: Duration) -> Spin {
        let min = (max / 16).max(Duration::from_nanos(1));
        Spin {
            max,
            min,
            window: (max / 4).max(min),
            since: None,
        }
    }

    /// Whether to poll once more: starts the window at the first idle turn.
    pub(crate) fn keep_spinning(&mut self) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        since.elapsed() < self.window
    }

    /// Work arrived. Inside a window: it paid off, so the window grows.
    pub(crate) fn hit(&mut self, stats: &WorkerStats) {
        if let Some(since) = self.since.take() {
            WorkerStats::add(&stats.spin_nanos, since.elapsed().as_nanos() as u64);
            self.window = self.window.saturating_mul(2).min(self.max);
        }
    }

    /// The window ran out with nothing: it shrinks, and the worker sleeps.
    pub(crate) fn miss(&mut self, stats: &WorkerStats) {
        if let Some(since) = self.since.take() {
            WorkerStats::add(&stats.spin_nanos, since.elapsed().as_nanos() as u64);
        }
        self.window = (self.window / 2).max(self.min);
    }

    /// The window now.
    #[cfg(test)]
    pub(crate) fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grows_on_hits_and_shrinks_on_misses_within_bounds() {
        let stats = WorkerStats::default();
        let mut s = Spin::new(Duration::from_micros(160));
        assert_eq!(s.window(), Duration::from_micros(40));
        for _ in 0..10 {
            assert!(s.keep_spinning() || s.window() < Duration::from_micros(1));
            s.hit(&stats);
        }
        assert_eq!(
            s.window(),
            Duration::from_micros(160),
            "capped at the budget"
        );
        for _ in 0..10 {
            s.miss(&stats);
        }
        assert_eq!(
            s.window(),
            Duration::from_micros(10),
            "floored at a sixteenth"
        );
        s.hit(&stats);
        assert_eq!(
            s.window(),
            Duration::from_micros(10),
            "a hit outside a window: no change"
        );
    }

    #[test]
    fn a_huge_budget_does_not_overflow() {
        let stats = WorkerStats::default();
        let mut s = Spin::new(Duration::MAX);
        for _ in 0..4 {
            assert!(s.keep_spinning());
            s.hit(&stats);
        }
        assert_eq!(
            s.window(),
            Duration::MAX,
            "doubling saturates at the budget"
        );
    }
}
