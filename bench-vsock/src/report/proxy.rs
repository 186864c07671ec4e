//! The "through a proxy" tables, defined once for the terminal and RESULTS.md: each proxied
//! configuration beside its direct run, and issue 11's targets (ours against socat).

use super::cells;
use super::columns::Grid;
use crate::proxied::{describe, ProxyRow, ProxyTarget};

fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or_else(|| "-".to_owned(), f)
}

/// A signed latency difference in µs: `+12.3`, `-0.4`.
fn added(x: f64) -> String {
    let sign = if x < 0.0 { "-" } else { "+" };
    format!("{sign}{}", cells::us(x.abs()))
}

/// A row per backend, configuration and proxy: direct and proxied msgs/s, GB/s, p50, the
/// p50 the proxy adds, CPU per message (the proxied one with the proxy process's CPU) and
/// the proxy's own share; with a transport column when `transport`.
pub fn rows(rows: &[ProxyRow], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["config", "backend", "via"]);
    let left = headers.len();
    headers.extend([
        "n",
        "msgs/s direct",
        "msgs/s via",
        "GB/s direct",
        "GB/s via",
        "p50 µs direct",
        "p50 µs via",
        "added p50 µs",
        "CPU µs/msg direct",
        "CPU µs/msg via",
        "of which proxy",
    ]);
    let rows = rows
        .iter()
        .map(|r| {
            let mut row = Vec::new();
            if transport {
                row.push(r.transport.clone());
            }
            row.extend([
                r.config.clone(),
                r.backend.clone(),
                r.via.clone(),
                r.repeats.to_string(),
                opt(r.direct_msgs_per_s, cells::rate),
                cells::rate(r.via_msgs_per_s),
                opt(r.direct_gbytes_per_s, cells::gbps),
                cells::gbps(r.via_gbytes_per_s),
                opt(r.direct_p50_us, cells::us),
                cells::us(r.via_p50_us),
                opt(r.added_p50_us, added),
                opt(r.direct_cpu_us_per_msg, cells::us),
                cells::us(r.via_cpu_us_per_msg),
                cells::us(r.proxy_cpu_us_per_msg),
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

/// A row per measured target: what it asks, ours, socat's, the ratio and the verdict.
pub fn targets(targets: &[ProxyTarget], transport: bool) -> Grid {
    let mut headers = Vec::new();
    if transport {
        headers.push("transport");
    }
    headers.extend(["target", "backend"]);
    let left = headers.len();
    headers.extend(["ours", "socat", "ratio", "verdict"]);
    let rows = targets
        .iter()
        .map(|t| {
            let mut row = Vec::new();
            if transport {
                row.push(t.transport.clone());
            }
            let value = |x: f64| match t.metric {
                crate::proxied::ProxyMetric::GbytesPerS => cells::gbps(x),
                crate::proxied::ProxyMetric::AddedP50Us => added(x),
                crate::proxied::ProxyMetric::MsgsPerS => cells::rate(x),
            };
            row.extend([
                describe(t),
                t.backend.clone(),
                value(t.ours),
                value(t.socat),
                opt(t.ratio, cells::ratio),
                match t.met {
                    Some(true) => "met".to_owned(),
                    Some(false) => "missed".to_owned(),
                    None => "not measurable (socat adds no latency within the noise)".to_owned(),
                },
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
