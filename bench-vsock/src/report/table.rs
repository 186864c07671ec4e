//! The terminal table: aligned columns, one row per run, per backend summary, or ratio.

use std::io::{self, Write};

use super::cells;
use super::columns::{self, Grid};
use crate::results::{Ratio, RunResult, Scaling};
use crate::summary::Summary;

/// A table of text cells, printed with aligned columns (text left, numbers right).
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    /// A table with these headers; the first `left` columns are text, aligned left.
    pub fn new(headers: &[&str], left: usize) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            left,
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table.
    pub fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .chain([&self.headers[i]])
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if i < self.left {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            writeln!(w, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// One row per run.
pub fn write_runs(w: &mut dyn Write, runs: &[RunResult]) -> io::Result<()> {
    let mut t = Table::new(
        &[
            "backend",
            "transport",
            "config",
            "rep",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "msgs/s",
            "GB/s",
            "harness GB/s",
            "CPU µs/msg",
            "verified",
        ],
        3,
    );
    for r in runs {
        t.row(vec![
            r.backend.clone(),
            r.transport.clone(),
            r.label(),
            r.repeat.to_string(),
            cells::us(r.p50_us),
            cells::us(r.p90_us),
            cells::us(r.p99_us),
            cells::us(r.p999_us),
            cells::us(r.max_us),
            cells::rate(r.msgs_per_s),
            cells::gbps(r.gbytes_per_s),
            r.harness_gbytes_per_s
                .map_or_else(|| "-".to_owned(), cells::gbps),
            cells::us(r.cpu_us_per_msg),
            cells::bytes(r.bytes_verified),
        ]);
    }
    t.write(w)
}

/// One row per backend and configuration: medians over repeats, msgs/s with its range.
pub fn write_summaries(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    Table::from(columns::summaries(sums, true)).write(w)
}

/// One row per configuration and backend pair: throughput and p99 ratios with ranges.
pub fn write_ratios(w: &mut dyn Write, ratios: &[Ratio]) -> io::Result<()> {
    Table::from(columns::ratios(ratios, true)).write(w)
}

/// One row per backend whose rr throughput was measured at 1 and 2 workers.
pub fn write_scaling(w: &mut dyn Write, scaling: &[Scaling]) -> io::Result<()> {
    Table::from(columns::scaling(scaling, true)).write(w)
}

/// One row per proxied configuration beside its direct run.
pub fn write_proxy(w: &mut dyn Write, rows: &[crate::proxied::ProxyRow]) -> io::Result<()> {
    Table::from(super::proxy::rows(rows, true)).write(w)
}

/// One row per measured proxy target (ours against socat).
pub fn write_proxy_targets(
    w: &mut dyn Write,
    targets: &[crate::proxied::ProxyTarget],
) -> io::Result<()> {
    Table::from(super::proxy::targets(targets, true)).write(w)
}

/// One row per uring backend and configuration: what the engines did per message.
pub fn write_engine(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    Table::from(columns::engine(sums, true)).write(w)
}

impl From<Grid> for Table {
    fn from(g: Grid) -> Table {
        Table {
            headers: g.headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: g.rows,
            left: g.left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["name", "value"], 1);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "12345".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "name    value\na           1\nlonger  12345\n");
    }
}
