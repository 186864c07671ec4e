//! The io_uring engine's own counters over a run (uring backends), so a report shows what
//! each message cost the engine: `io_uring_enter` calls, completions, bytes per completion,
//! time spent spinning.
//!
//! Counters are read from [`EngineStats`] by [`COUNTERS`], one line each, and reported by
//! name: a counter the engine gains is one more line there, and its total and per-message
//! value appear in every report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uring_vsock::uring::EngineStats;

/// A counter's name in reports and how to read it from the engine's stats.
type Counter = (&'static str, fn(&EngineStats) -> u64);

/// The counters every uring run reports.
pub const COUNTERS: [Counter; 14] = [
    ("enters", |s| s.enters),
    ("completions", |s| s.completions),
    ("recv_bytes", |s| s.recv_bytes),
    ("sent_bytes", |s| s.sent_bytes),
    ("spins", |s| s.spins),
    ("spin_time_ns", |s| s.spin_time_ns),
    ("sleeps", |s| s.sleeps),
    ("send_chains", |s| s.send_chains),
    ("zero_copy_sends", |s| s.zero_copy_sends),
    ("copy_sends", |s| s.copy_sends),
    ("enobufs", |s| s.enobufs),
    ("ring_handoffs", |s| s.ring_handoffs),
    ("channel_handoffs", |s| s.channel_handoffs),
    ("registered_files", |s| s.registered_files),
];

/// Counter values by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// The counters of one engine's stats.
    pub fn of(stats: &EngineStats) -> Counters {
        Counters(
            COUNTERS
                .iter()
                .map(|(name, read)| ((*name).to_owned(), read(stats)))
                .collect(),
        )
    }

    /// A counter's value (0 if absent).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// These counters plus `other`'s (two engines of one run).
    pub fn plus(mut self, other: &Counters) -> Counters {
        for (name, v) in &other.0 {
            let mine = self.0.entry(name.clone()).or_insert(0);
            *mine = mine.saturating_add(*v);
        }
        self
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .map(|(name, v)| (name.clone(), v.saturating_sub(earlier.get(name))))
                .collect(),
        )
    }
}

/// The engines' counters over a run's measured phase (both ends' engines of a local run
/// added), and what they make per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    /// Each counter's total.
    pub totals: Counters,
    /// Each counter divided by the messages (`enters` and `completions` per message,
    /// `spin_time_ns` per message: the spin's CPU cost, ...).
    pub per_msg: BTreeMap<String, f64>,
    /// Bytes received and sent per completion (of any kind).
    pub bytes_per_completion: f64,
    /// The share of the process's CPU time that went into spinning, 0 to 1.
    pub spin_cpu_share: f64,
}

impl EngineReport {
    /// The report of `totals` over `messages` messages that took `cpu_seconds` of CPU.
    pub fn new(totals: Counters, messages: u64, cpu_seconds: f64) -> EngineReport {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let per_msg = totals
            .0
            .iter()
            .map(|(name, v)| (name.clone(), ratio(*v as f64, messages as f64)))
            .collect();
        let bytes = totals
            .get("recv_bytes")
            .saturating_add(totals.get("sent_bytes"));
        EngineReport {
            bytes_per_completion: ratio(bytes as f64, totals.get("completions") as f64),
            spin_cpu_share: ratio(totals.get("spin_time_ns") as f64, cpu_seconds * 1e9).min(1.0),
            per_msg,
            totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Field by field, so the test builds even if the engine's stats become non-exhaustive.
    #[allow(clippy::field_reassign_with_default)]
    fn stats(completions: u64, recv: u64, sent: u64, spin_ns: u64) -> EngineStats {
        let mut s = EngineStats::default();
        s.enters = completions / 2;
        s.completions = completions;
        s.recv_bytes = recv;
        s.sent_bytes = sent;
        s.spin_time_ns = spin_ns;
        s.spins = 3;
        s.sleeps = 2;
        s
    }

    #[test]
    fn every_counter_is_read_by_name() {
        let c = Counters::of(&stats(10, 20, 30, 40));
        assert_eq!(c.0.len(), COUNTERS.len());
        assert_eq!(
            [
                c.get("completions"),
                c.get("recv_bytes"),
                c.get("sent_bytes")
            ],
            [10, 20, 30]
        );
        assert_eq!(
            [c.get("spin_time_ns"), c.get("spins"), c.get("sleeps")],
            [40, 3, 2]
        );
        assert_eq!(c.get("enters"), 5);
    }

    #[test]
    fn two_engines_add_and_a_phase_is_a_difference() {
        let before = Counters::of(&stats(10, 100, 100, 0));
        let after = Counters::of(&stats(50, 1100, 2100, 4000));
        let other_end = Counters::of(&stats(40, 2000, 1000, 0));
        let phase = after.since(&before).plus(&other_end);
        assert_eq!(phase.get("completions"), 80);
        assert_eq!(phase.get("recv_bytes"), 3000);
        // A counter that went backwards (a new engine) counts as nothing, not a wrap.
        assert_eq!(before.since(&after).get("completions"), 0);
        let r = EngineReport::new(phase, 20, 0.001);
        assert_eq!(r.per_msg["completions"], 4.0);
        assert_eq!(r.per_msg["enters"], 2.0);
        assert_eq!(r.per_msg["spin_time_ns"], 200.0);
        assert_eq!(r.bytes_per_completion, 6000.0 / 80.0);
        assert_eq!(r.spin_cpu_share, 4000.0 / 1e6);
        let empty = EngineReport::new(Counters::default(), 0, 0.0);
        assert_eq!(
            (empty.bytes_per_completion, empty.spin_cpu_share),
            (0.0, 0.0)
        );
    }
}
