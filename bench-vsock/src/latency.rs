//! Latency histograms (ns) and their summaries (µs) as reports show them.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency a histogram holds exactly: 100 s. Longer ones saturate at it.
const HIGHEST_NS: u64 = 100_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid histogram bounds")
}

/// The percentiles every curve in a report has: dense in the tail, where backends differ.
pub const CURVE_PERCENTILES: [f64; 13] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// A point of a latency-percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency at it, µs.
    pub us: f64,
}

/// A histogram's summary, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// The latency at each of [`CURVE_PERCENTILES`], for plots made from the JSON alone.
    pub curve: Vec<CurvePoint>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl LatencySummary {
    /// The summary of a histogram of nanoseconds (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary {
                count: 0,
                p50_us: 0.0,
                p90_us: 0.0,
                p99_us: 0.0,
                p999_us: 0.0,
                max_us: 0.0,
                mean_us: 0.0,
                curve: Vec::new(),
            };
        }
        let at = |p: f64| us(h.value_at_percentile(p));
        LatencySummary {
            count: h.len(),
            p50_us: at(50.0),
            p90_us: at(90.0),
            p99_us: at(99.0),
            p999_us: at(99.9),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            curve: CURVE_PERCENTILES
                .iter()
                .map(|&p| CurvePoint {
                    percentile: p,
                    us: if p >= 100.0 { us(h.max()) } else { at(p) },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_the_percentiles_in_microseconds() {
        let mut h = new_histogram();
        // 1..=1000 µs, one sample each.
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(s.p50_us, 500.0), "p50 {}", s.p50_us);
        assert!(near(s.p90_us, 900.0), "p90 {}", s.p90_us);
        assert!(near(s.p99_us, 990.0), "p99 {}", s.p99_us);
        // 99.9% of 1000 lands on the 999th or (by float rounding) the 1000th sample.
        assert!((999.0..=1001.0).contains(&s.p999_us), "p999 {}", s.p999_us);
        assert!(near(s.max_us, 1000.0), "max {}", s.max_us);
        assert!(near(s.mean_us, 500.5), "mean {}", s.mean_us);
        assert_eq!(s.curve.len(), CURVE_PERCENTILES.len());
        assert!(s.curve.windows(2).all(|w| w[0].us <= w[1].us));
    }

    #[test]
    fn empty_histogram_summarises_to_zero() {
        let s = LatencySummary::of(&new_histogram());
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_us, 0.0);
        assert!(s.curve.is_empty());
    }
}
