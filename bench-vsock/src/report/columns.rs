//! The columns of the summary and ratio tables, defined once: the terminal table and
//! RESULTS.md render the same [`Grid`], so their columns cannot drift apart.

use super::cells;
use crate::results::{Ratio, Scaling};
use crate::summary::{EngineSummary, Spread, Summary};

/// A table as text cells: headers, rows, and how many leading columns are text (aligned
/// left; the rest are numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// One row of cells per line, as many as headers.
    pub rows: Vec<Vec<String>>,
    /// Leading text columns.
    pub left: usize,
}

/// One column of the summary table.
struct Column {
    header: &'static str,
    cell: fn(&Summary) -> String,
}

/// The summary table's columns after transport, config and backend.
const SUMMARY: [Column; 9] = [
    Column {
        header: "n",
        cell: |s| s.repeats.to_string(),
    },
    Column {
        header: "p50 µs",
        cell: |s| cells::us(s.p50_us.median),
    },
    Column {
        header: "p99 µs",
        cell: |s| cells::us(s.p99_us.median),
    },
    Column {
        header: "p99.9 µs",
        cell: |s| cells::us(s.p999_us.median),
    },
    Column {
        header: "msgs/s (min–max)",
        cell: |s| cells::spread(&s.msgs_per_s, cells::rate),
    },
    Column {
        header: "GB/s",
        cell: |s| cells::gbps(s.gbytes_per_s.median),
    },
    Column {
        header: "harness GB/s",
        cell: |s| {
            s.harness_gbytes_per_s
                .map_or_else(|| "-".to_owned(), |h| cells::gbps(h.median))
        },
    },
    Column {
        header: "CPU µs/msg",
        cell: |s| cells::us(s.cpu_us_per_msg.median),
    },
    Column {
        header: "verified",
        cell: |s| cells::bytes(s.bytes_verified),
    },
];

/// The summary table: a row per backend and configuration, medians over repeats (msgs/s
/// with its range); with a transport column when `transport` (RESULTS.md has a section
/// per transport instead).
pub fn summaries(sums: &[Summary], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["config", "backend"]);
    let left = headers.len();
    headers.extend(SUMMARY.iter().map(|c| c.header));
    let rows = sums
        .iter()
        .map(|s| {
            let mut row = Vec::new();
            if transport {
                row.push(s.transport.clone());
            }
            row.extend([s.config.clone(), s.backend.clone()]);
            row.extend(SUMMARY.iter().map(|c| (c.cell)(s)));
            row
        })
        .collect();
    Grid {
        headers,
        rows,
        left,
    }
}

/// One column of the engine-counters table.
struct EngineColumn {
    header: &'static str,
    cell: fn(&EngineSummary) -> String,
}

/// The engine-counters table's columns after transport, config and backend: medians over
/// repeats.
const ENGINE: [EngineColumn; 5] = [
    EngineColumn {
        header: "enters/msg",
        cell: |e| per_msg(e.enters_per_msg.median),
    },
    EngineColumn {
        header: "completions/msg",
        cell: |e| per_msg(e.completions_per_msg.median),
    },
    EngineColumn {
        header: "bytes/completion",
        cell: |e| cells::bytes(e.bytes_per_completion.median.round() as u64),
    },
    EngineColumn {
        header: "spin µs/msg",
        cell: |e| cells::us(e.spin_us_per_msg.median),
    },
    EngineColumn {
        header: "spin CPU",
        cell: |e| format!("{:.0}%", e.spin_cpu_share.median * 100.0),
    },
];

/// A count per message: `0.031`, `2.05`, `18.4`.
fn per_msg(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// The engine-counters table: a row per uring backend and configuration (the others have no
/// engine), what the engines did per message; with a transport column when `transport`.
pub fn engine(sums: &[Summary], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["config", "backend"]);
    let left = headers.len();
    headers.extend(ENGINE.iter().map(|c| c.header));
    let rows = sums
        .iter()
        .filter_map(|s| {
            let e = s.engine.as_ref()?;
            let mut row = Vec::new();
            if transport {
                row.push(s.transport.clone());
            }
            row.extend([s.config.clone(), s.backend.clone()]);
            row.extend(ENGINE.iter().map(|c| (c.cell)(e)));
            Some(row)
        })
        .collect();
    Grid {
        headers,
        rows,
        left,
    }
}

/// The scaling table: a row per backend and rr configuration, msgs/s at 2 workers ÷ at 1,
/// with its range; with a transport column when `transport`.
pub fn scaling(scaling: &[Scaling], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["config", "backend"]);
    let left = headers.len();
    headers.extend(["workers", "msgs/s ratio (min–max)", "n"]);
    let rows = scaling
        .iter()
        .map(|s| {
            let mut row = Vec::new();
            if transport {
                row.push(s.transport.clone());
            }
            row.extend([
                s.config.clone(),
                s.backend.clone(),
                format!("{} / {}", s.workers, s.base_workers),
                cells::spread(
                    &Spread {
                        median: s.median,
                        min: s.min,
                        max: s.max,
                    },
                    cells::ratio,
                ),
                s.repeats.to_string(),
            ]);
            row
        })
        .collect();
    Grid {
        headers,
        rows,
        left,
    }
}

/// A ratio with its range over repeats: `1.23x (1.10x–1.31x)`.
pub fn ratio_cell(r: &Ratio) -> String {
    cells::spread(
        &Spread {
            median: r.median,
            min: r.min,
            max: r.max,
        },
        cells::ratio,
    )
}

/// The ratio table: a row per configuration and backend pair, the msgs/s, p99 and CPU per
/// message ratios with their ranges; with a transport column when `transport`.
pub fn ratios(ratios: &[Ratio], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["config", "vs"]);
    let left = headers.len();
    headers.extend([
        "msgs/s ratio (min–max)",
        "p99 ratio (min–max)",
        "CPU/msg ratio (min–max)",
        "n",
    ]);
    let rows = ratios
        .iter()
        .filter(|r| r.metric == "msgs_per_s")
        .map(|r| {
            let other = |metric: &str| {
                ratios
                    .iter()
                    .find(|q| {
                        q.metric == metric
                            && q.transport == r.transport
                            && q.config == r.config
                            && q.subject == r.subject
                            && q.baseline == r.baseline
                    })
                    .map_or_else(|| "-".to_owned(), ratio_cell)
            };
            let mut row = Vec::new();
            if transport {
                row.push(r.transport.clone());
            }
            row.extend([
                r.config.clone(),
                format!("{} / {}", r.subject, r.baseline),
                ratio_cell(r),
                other("p99_us"),
                other("cpu_us_per_msg"),
                r.repeats.to_string(),
            ]);
            row
        })
        .collect();
    Grid {
        headers,
        rows,
        left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_cell_per_header_with_or_without_transport() {
        let r = |metric: &str, median: f64| Ratio {
            transport: "unix".into(),
            config: "rr 64 B x256".into(),
            subject: "uring".into(),
            baseline: "epoll".into(),
            metric: metric.into(),
            median,
            min: median,
            max: median,
            repeats: 3,
        };
        let rs = [
            r("msgs_per_s", 1.5),
            r("p99_us", 0.5),
            r("cpu_us_per_msg", 0.75),
        ];
        for transport in [true, false] {
            let g = ratios(&rs, transport);
            assert_eq!(g.rows.len(), 1);
            assert_eq!(g.rows[0].len(), g.headers.len());
            assert_eq!(g.headers[g.left], "msgs/s ratio (min–max)");
            let cells = &g.rows[0][g.left..];
            assert_eq!(cells, ["1.50x", "0.50x", "0.75x", "3"]);
        }
        assert_eq!(ratios(&rs, true).rows[0][0], "unix");
        // A report from before the CPU ratio shows a dash there.
        let g = ratios(&rs[..2], false);
        assert_eq!(&g.rows[0][g.left..], ["1.50x", "0.50x", "-", "3"]);
    }
}
