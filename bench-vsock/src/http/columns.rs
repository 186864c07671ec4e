//! The HTTP tables as [`Grid`]s, defined once: the terminal and RESULTS.md render the same
//! ones.

use crate::report::cells;
use crate::report::columns::{ratio_cell, Grid};
use crate::results::Ratio;

use super::summary::HttpSummary;
use super::targets::{measured, HttpOutcome};

fn cpu(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// Medians over repeats: a row per configuration and server.
pub fn summaries(sums: &[HttpSummary]) -> Grid {
    let rows = sums
        .iter()
        .map(|s| {
            vec![
                s.config.clone(),
                s.server.clone(),
                s.repeats.to_string(),
                cells::spread(&s.req_per_s, cells::rate),
                cells::us(s.p50_us.median),
                cells::us(s.p99_us.median),
                cells::us(s.p999_us.median),
                cpu(s.server_cpu_us_per_req.median),
                cpu(s.client_cpu_us_per_req.median),
                format!("{:.2}", s.client_cpu_cores.median),
                s.responses_verified.to_string(),
            ]
        })
        .collect();
    Grid {
        headers: vec![
            "config",
            "server",
            "n",
            "req/s (min–max)",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "server CPU µs/req",
            "client CPU µs/req",
            "client cores",
            "verified",
        ],
        rows,
        left: 2,
    }
}

/// engine / tokio-ours and engine / tokio: req/s, p99 and server CPU per request.
pub fn ratios(ratios: &[Ratio]) -> Grid {
    let rows = ratios
        .iter()
        .filter(|r| r.metric == "req_per_s")
        .map(|r| {
            let other = |metric: &str| {
                ratios
                    .iter()
                    .find(|q| {
                        q.metric == metric
                            && q.transport == r.transport
                            && q.config == r.config
                            && q.baseline == r.baseline
                    })
                    .map_or_else(|| "-".to_owned(), ratio_cell)
            };
            vec![
                r.config.clone(),
                format!("{} / {}", r.subject, r.baseline),
                ratio_cell(r),
                other("p99_us"),
                other("server_cpu_us_per_req"),
                r.repeats.to_string(),
            ]
        })
        .collect();
    Grid {
        headers: vec![
            "config",
            "vs",
            "req/s ratio (min–max)",
            "p99 ratio (min–max)",
            "server CPU/req ratio (min–max)",
            "n",
        ],
        rows,
        left: 2,
    }
}

/// The targets: what each says, the measured median (range), the verdict.
pub fn targets(outcomes: &[HttpOutcome]) -> Grid {
    Grid {
        headers: vec!["target", "measured median (min–max)", "verdict"],
        rows: outcomes
            .iter()
            .map(|o| vec![o.target.clone(), measured(o), o.verdict.clone()])
            .collect(),
        left: 3,
    }
}
