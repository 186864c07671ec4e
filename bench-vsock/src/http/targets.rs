//! Issue 9's HTTP targets, judged on one http run's medians of paired ratios, for each HTTP
//! version and body measured: at 256 connections hyper on the engine serves at least 1.5×
//! the requests/s of hyper on tokio, with a p99 no worse; at 1 connection its p50 is no
//! worse. Closed loop, default workers. Measured here, never asserted in a test.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::workload::DEFAULT_WORKERS;

use super::kinds::ServerKind;
use super::plan::label;
use super::results::HttpRun;
use super::summary::paired;

/// One target: the engine's `metric` over tokio's at `conns` connections.
#[derive(Debug, Clone, Copy)]
struct Aim {
    conns: u64,
    /// `req_per_s`, `p99_us` or `p50_us`.
    metric: &'static str,
    /// What the metric reads as in a table.
    shown: &'static str,
    bound: f64,
    higher_is_better: bool,
    value: fn(&HttpRun) -> f64,
}

const AIMS: [Aim; 3] = [
    Aim {
        conns: 256,
        metric: "req_per_s",
        shown: "req/s",
        bound: 1.5,
        higher_is_better: true,
        value: |r| r.req_per_s,
    },
    Aim {
        conns: 256,
        metric: "p99_us",
        shown: "p99",
        bound: 1.0,
        higher_is_better: false,
        value: |r| r.p99_us,
    },
    Aim {
        conns: 1,
        metric: "p50_us",
        shown: "p50",
        bound: 1.0,
        higher_is_better: false,
        value: |r| r.p50_us,
    },
];

/// One target measured on one transport, HTTP version and body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpOutcome {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// What it says, e.g. `h1 64 B x256: engine / tokio req/s ≥ 1.5×`.
    pub target: String,
    /// `req_per_s` (at least `bound`), `p99_us` or `p50_us` (at most `bound`).
    pub metric: String,
    /// The aim for the ratio.
    pub bound: f64,
    /// Median of the per-repeat ratios; `null` when not measured.
    pub median: Option<f64>,
    /// Smallest per-repeat ratio.
    pub min: Option<f64>,
    /// Largest per-repeat ratio.
    pub max: Option<f64>,
    /// Repeats paired.
    pub repeats: usize,
    /// Whether the median meets the aim; `null` when not measured.
    pub met: Option<bool>,
    /// `met`, `missed: 0.25× short of the aim`, `missed: 0.10× over the aim`, or `not
    /// measured in this run`.
    pub verdict: String,
}

/// Every target for every transport, HTTP version and body in `runs`.
pub fn evaluate(runs: &[HttpRun]) -> Vec<HttpOutcome> {
    let mut keys: Vec<(String, String, u64)> = Vec::new();
    for r in runs {
        let k = (r.transport.clone(), r.proto.clone(), r.body_bytes);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let subject = ServerKind::Engine.name();
    let baseline = ServerKind::Tokio.name();
    let mut out = Vec::new();
    for (transport, proto, body) in &keys {
        for aim in AIMS {
            let config = label(proto, *body, aim.conns, None, DEFAULT_WORKERS);
            let op = if aim.higher_is_better { "≥" } else { "≤" };
            let target = format!(
                "{config}: {subject} / {baseline} {} {op} {}×",
                aim.shown, aim.bound
            );
            let ratio = paired(runs, transport, &config, subject, baseline, aim.value);
            let (median, min, max, repeats, met, verdict) = match ratio {
                None => (
                    None,
                    None,
                    None,
                    0,
                    None,
                    "not measured in this run".to_owned(),
                ),
                Some((s, n)) => {
                    let met = if aim.higher_is_better {
                        s.median >= aim.bound
                    } else {
                        s.median <= aim.bound
                    };
                    let gap = (s.median - aim.bound).abs();
                    let verdict = match (met, aim.higher_is_better) {
                        (true, _) => "met".to_owned(),
                        (false, true) => format!("missed: {gap:.2}× short of the aim"),
                        (false, false) => format!("missed: {gap:.2}× over the aim"),
                    };
                    (
                        Some(s.median),
                        Some(s.min),
                        Some(s.max),
                        n,
                        Some(met),
                        verdict,
                    )
                }
            };
            out.push(HttpOutcome {
                transport: transport.clone(),
                target,
                metric: aim.metric.to_owned(),
                bound: aim.bound,
                median,
                min,
                max,
                repeats,
                met,
                verdict,
            });
        }
    }
    out
}

/// The targets as a Markdown table: target, measured median (range), verdict.
pub fn write_markdown(w: &mut dyn Write, outcomes: &[HttpOutcome]) -> io::Result<()> {
    writeln!(w, "| target | measured median (min–max) | verdict |")?;
    writeln!(w, "|---|---|---|")?;
    for o in outcomes {
        writeln!(w, "| {} | {} | {} |", o.target, measured(o), o.verdict)?;
    }
    Ok(())
}

/// The measured ratio as a cell: `1.62× (1.50×–1.70×)`, or `-`.
pub fn measured(o: &HttpOutcome) -> String {
    match (o.median, o.min, o.max) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.2}× ({lo:.2}×–{hi:.2}×)"),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::{new_histogram, LatencySummary};

    fn run(server: &str, conns: u64, repeat: u32, req_per_s: f64, p50: f64, p99: f64) -> HttpRun {
        HttpRun {
            server: server.to_owned(),
            transport: "unix".to_owned(),
            proto: "h1".to_owned(),
            body_bytes: 64,
            conns,
            workers: DEFAULT_WORKERS,
            repeat,
            rate: None,
            duration_s: 1.0,
            requests: 10,
            responses_verified: 10,
            bytes_verified: 640,
            server_errors: 0,
            server_error: None,
            req_per_s,
            gbytes_per_s: 0.0,
            p50_us: p50,
            p90_us: p99,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
            mean_us: p50,
            server_cpu_us_per_req: 1.0,
            client_cpu_us_per_req: 1.0,
            client_cpu_cores: 0.5,
            latency_curve: Vec::new(),
            uncorrected: LatencySummary::of(&new_histogram()),
            histogram: None,
        }
    }

    #[test]
    fn targets_pair_by_repeat_and_say_by_how_much_they_are_missed() {
        let runs = vec![
            run("engine", 256, 0, 300.0, 10.0, 90.0),
            run("tokio", 256, 0, 100.0, 10.0, 100.0),
            run("engine", 256, 1, 100.0, 10.0, 120.0),
            run("tokio", 256, 1, 100.0, 10.0, 100.0),
            // Another server and an open-loop run are not the targets' runs.
            run("tokio-ours", 256, 0, 1.0, 1.0, 1.0),
            HttpRun {
                rate: Some(100),
                ..run("engine", 1, 0, 1.0, 1.0, 1.0)
            },
        ];
        let out = evaluate(&runs);
        assert_eq!(out.len(), 3);
        let rps = &out[0];
        assert_eq!(rps.target, "h1 64 B x256: engine / tokio req/s ≥ 1.5×");
        assert_eq!(
            (rps.min, rps.median, rps.max),
            (Some(1.0), Some(2.0), Some(3.0))
        );
        assert_eq!((rps.met, rps.verdict.as_str()), (Some(true), "met"));
        let p99 = &out[1];
        assert!((p99.median.unwrap() - 1.05).abs() < 1e-9, "{p99:?}");
        assert_eq!(p99.met, Some(false));
        assert_eq!(p99.verdict, "missed: 0.05× over the aim");
        let p50 = &out[2];
        assert_eq!(p50.target, "h1 64 B x1: engine / tokio p50 ≤ 1×");
        assert_eq!((p50.met, p50.repeats), (None, 0));
        assert_eq!(p50.verdict, "not measured in this run");

        let slow = vec![
            run("engine", 256, 0, 120.0, 10.0, 90.0),
            run("tokio", 256, 0, 100.0, 10.0, 100.0),
        ];
        assert_eq!(evaluate(&slow)[0].verdict, "missed: 0.30× short of the aim");
        let mut md = Vec::new();
        write_markdown(&mut md, &evaluate(&slow)).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("| h1 64 B x256: engine / tokio req/s ≥ 1.5× | 1.20× (1.20×–1.20×) | missed: 0.30× short of the aim |"), "{md}");
    }
}
