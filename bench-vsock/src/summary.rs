//! Repeats of one configuration and backend folded into medians and spreads: what the
//! summary table, the plots and RESULTS.md show.

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::counters::EngineReport;
use crate::latency::CurvePoint;
use crate::results::RunResult;
use crate::workload::Workload;

/// The median of a set of values, with its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all zero when empty.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// One backend on one configuration, over its repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// Configuration label, e.g. `pingpong 64 B`.
    pub config: String,
    /// The workload.
    pub workload: Workload,
    /// Backend name.
    pub backend: String,
    /// Runs folded in.
    pub repeats: usize,
    /// Messages per second.
    pub msgs_per_s: Spread,
    /// Payload GB/s.
    pub gbytes_per_s: Spread,
    /// Median latency, µs.
    pub p50_us: Spread,
    /// 99th percentile, µs.
    pub p99_us: Spread,
    /// 99.9th percentile, µs.
    pub p999_us: Spread,
    /// Largest latency, µs.
    pub max_us: Spread,
    /// CPU per message, µs.
    pub cpu_us_per_msg: Spread,
    /// The harness's own ceiling, GB/s (stream runs only).
    pub harness_gbytes_per_s: Option<Spread>,
    /// uring backends: the engines' counters per message, over repeats.
    pub engine: Option<EngineSummary>,
    /// Bytes verified, summed over repeats.
    pub bytes_verified: u64,
    /// The latency curve: each percentile's median over repeats.
    pub curve: Vec<CurvePoint>,
}

/// What the io_uring engines did per message (uring backends), over repeats: the costs the
/// engine's targets are about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EngineSummary {
    /// `io_uring_enter` calls per message.
    pub enters_per_msg: Spread,
    /// Completions per message.
    pub completions_per_msg: Spread,
    /// Bytes received and sent per completion.
    pub bytes_per_completion: Spread,
    /// Time spent spinning per message, µs: the spin's CPU cost.
    pub spin_us_per_msg: Spread,
    /// Share of the process CPU time spent spinning, 0 to 1.
    pub spin_cpu_share: Spread,
}

impl EngineSummary {
    /// The summary of these runs' engine reports; `None` when no run has one.
    fn of(group: &[&RunResult]) -> Option<EngineSummary> {
        let reports: Vec<&EngineReport> = group.iter().filter_map(|r| r.engine.as_ref()).collect();
        if reports.is_empty() {
            return None;
        }
        let spread = |f: &dyn Fn(&EngineReport) -> f64| Spread::of(reports.iter().map(|e| f(e)));
        let per_msg = |name: &'static str| {
            move |e: &EngineReport| e.per_msg.get(name).copied().unwrap_or(0.0)
        };
        Some(EngineSummary {
            enters_per_msg: spread(&per_msg("enters")),
            completions_per_msg: spread(&per_msg("completions")),
            bytes_per_completion: spread(&|e| e.bytes_per_completion),
            spin_us_per_msg: spread(&|e| per_msg("spin_time_ns")(e) / 1e3),
            spin_cpu_share: spread(&|e| e.spin_cpu_share),
        })
    }
}

fn backend_rank(name: &str) -> usize {
    BackendKind::ALL
        .iter()
        .position(|k| k.name() == name)
        .unwrap_or(usize::MAX)
}

/// Folds runs by (transport, configuration, backend): configurations in the order first
/// run, backends in report order.
pub fn summarize(runs: &[RunResult]) -> Vec<Summary> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in runs {
        let key = (r.transport.clone(), r.label(), r.backend.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let config_order = |t: &str, c: &str| {
        keys.iter()
            .position(|(t2, c2, _)| t2 == t && c2 == c)
            .unwrap_or(0)
    };
    let mut sorted = keys.clone();
    sorted.sort_by_key(|(t, c, b)| (config_order(t, c), backend_rank(b)));
    sorted
        .into_iter()
        .map(|(transport, config, backend)| {
            let group: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.transport == transport && r.backend == backend && r.label() == config)
                .collect();
            let spread = |f: fn(&RunResult) -> f64| Spread::of(group.iter().map(|r| f(r)));
            let curve = group[0]
                .latency_curve
                .iter()
                .enumerate()
                .map(|(i, p)| CurvePoint {
                    percentile: p.percentile,
                    us: Spread::of(
                        group
                            .iter()
                            .filter_map(|r| r.latency_curve.get(i))
                            .map(|c| c.us),
                    )
                    .median,
                })
                .collect();
            Summary {
                workload: group[0].workload,
                repeats: group.len(),
                msgs_per_s: spread(|r| r.msgs_per_s),
                gbytes_per_s: spread(|r| r.gbytes_per_s),
                p50_us: spread(|r| r.p50_us),
                p99_us: spread(|r| r.p99_us),
                p999_us: spread(|r| r.p999_us),
                max_us: spread(|r| r.max_us),
                cpu_us_per_msg: spread(|r| r.cpu_us_per_msg),
                harness_gbytes_per_s: {
                    let h: Vec<f64> = group
                        .iter()
                        .filter_map(|r| r.harness_gbytes_per_s)
                        .collect();
                    (!h.is_empty()).then(|| Spread::of(h))
                },
                engine: EngineSummary::of(&group),
                bytes_verified: group.iter().map(|r| r.bytes_verified).sum(),
                curve,
                transport,
                config,
                backend,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!(Spread::of([]).median, 0.0);
    }
}
