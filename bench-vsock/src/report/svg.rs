//! Hand-written SVG plots (no scripts, no fonts to fetch): latency-percentile curves per
//! backend, and throughput bars with their spread over repeats, one panel per
//! configuration.

use std::io::{self, Write};

use super::cells;
use crate::summary::Summary;

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 220.0;
const MARGIN_L: f64 = 60.0;
const MARGIN_T: f64 = 28.0;
const MARGIN_B: f64 = 36.0;
const GAP: f64 = 24.0;
const COLORS: [&str; 6] = [
    "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b",
];
/// The curve's right end: 99.999%, five nines.
const MAX_NINES: f64 = 5.0;

/// A plot: what it shows, its file name, and how it is drawn from the summaries.
#[derive(Clone, Copy)]
pub struct Plot {
    /// What it shows, e.g. `latency by percentile`.
    pub title: &'static str,
    /// Its file name in a results folder.
    pub file: &'static str,
    /// Draws it.
    pub draw: fn(&mut dyn Write, &[Summary]) -> io::Result<()>,
}

/// Every plot of a results folder, the HTML page and RESULTS.md.
pub const PLOTS: [Plot; 2] = [
    Plot {
        title: "latency by percentile",
        file: "latency.svg",
        draw: write_latency,
    },
    Plot {
        title: "throughput",
        file: "throughput.svg",
        draw: write_throughput,
    },
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Backend colors stay the same in every panel and plot.
fn color(backend: &str) -> &'static str {
    let i = crate::backend::BackendKind::ALL
        .iter()
        .position(|k| k.name() == backend)
        .unwrap_or(5);
    COLORS[i]
}

/// Configurations in first-seen order, each with its backends' summaries.
fn panels(sums: &[Summary]) -> Vec<(String, Vec<&Summary>)> {
    let mut out: Vec<(String, Vec<&Summary>)> = Vec::new();
    for s in sums {
        let title = format!("{} — {}", s.transport, s.config);
        match out.iter_mut().find(|(t, _)| *t == title) {
            Some((_, v)) => v.push(s),
            None => out.push((title, vec![s])),
        }
    }
    out
}

fn header(w: &mut dyn Write, width: f64, height: f64, title: &str) -> io::Result<()> {
    writeln!(
        w,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    )?;
    writeln!(w, "<title>{}</title>", escape(title))?;
    writeln!(w, r#"<rect width="100%" height="100%" fill="white"/>"#)
}

/// Writes latency-percentile curves: x is the percentile on a "nines" scale (90%, 99%,
/// 99.9%...), y is latency in µs on a log scale; a line per backend.
pub fn write_latency(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    let panels = panels(sums);
    let height = panels.len() as f64 * (PANEL_H + GAP) + GAP;
    header(w, PANEL_W + 200.0, height, "latency by percentile")?;
    let plot_w = PANEL_W - MARGIN_L - 10.0;
    let plot_h = PANEL_H - MARGIN_T - MARGIN_B;
    for (i, (title, group)) in panels.iter().enumerate() {
        let top = GAP + i as f64 * (PANEL_H + GAP);
        let all: Vec<f64> = group
            .iter()
            .flat_map(|s| s.curve.iter().map(|p| p.us))
            .filter(|v| *v > 0.0)
            .collect();
        let lo = all
            .iter()
            .cloned()
            .fold(f64::MAX, f64::min)
            .max(0.01)
            .log10()
            .floor();
        let hi = all
            .iter()
            .cloned()
            .fold(0.0, f64::max)
            .max(0.02)
            .log10()
            .ceil()
            .max(lo + 1.0);
        let x = |p: f64| {
            let nines = if p >= 100.0 {
                MAX_NINES
            } else {
                (1.0 / (1.0 - p / 100.0)).log10().min(MAX_NINES)
            };
            MARGIN_L + nines / MAX_NINES * plot_w
        };
        let y =
            |us: f64| top + MARGIN_T + plot_h - (us.max(0.01).log10() - lo) / (hi - lo) * plot_h;
        writeln!(
            w,
            r#"<text x="{MARGIN_L}" y="{}" font-size="13" font-weight="bold">{} latency</text>"#,
            top + 16.0,
            escape(title)
        )?;
        writeln!(
            w,
            r##"<rect x="{MARGIN_L}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##,
            top + MARGIN_T
        )?;
        for (p, label) in [
            (0.0, "0%"),
            (90.0, "90%"),
            (99.0, "99%"),
            (99.9, "99.9%"),
            (99.99, "99.99%"),
            (99.999, "99.999%"),
        ] {
            let xp = x(p);
            writeln!(
                w,
                r##"<line x1="{xp:.1}" y1="{}" x2="{xp:.1}" y2="{}" stroke="#eee"/><text x="{xp:.1}" y="{}" text-anchor="middle">{label}</text>"##,
                top + MARGIN_T,
                top + MARGIN_T + plot_h,
                top + MARGIN_T + plot_h + 14.0
            )?;
        }
        for e in lo as i32..=hi as i32 {
            let v = 10f64.powi(e);
            let yp = y(v);
            writeln!(
                w,
                r##"<line x1="{MARGIN_L}" y1="{yp:.1}" x2="{}" y2="{yp:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{} µs</text>"##,
                MARGIN_L + plot_w,
                MARGIN_L - 4.0,
                yp + 4.0,
                cells::us(v)
            )?;
        }
        writeln!(
            w,
            r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
            MARGIN_L + plot_w / 2.0,
            top + PANEL_H - 6.0
        )?;
        for (j, s) in group.iter().enumerate() {
            let points: Vec<String> = s
                .curve
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.percentile), y(p.us)))
                .collect();
            let c = color(&s.backend);
            writeln!(
                w,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            )?;
            let ly = top + MARGIN_T + 12.0 + j as f64 * 16.0;
            writeln!(
                w,
                r#"<rect x="{}" y="{}" width="12" height="3" fill="{c}"/><text x="{}" y="{:.1}">{} (p99 {} µs)</text>"#,
                PANEL_W + 4.0,
                ly - 4.0,
                PANEL_W + 20.0,
                ly,
                escape(&s.backend),
                cells::us(s.p99_us.median)
            )?;
        }
    }
    writeln!(w, "</svg>")
}

/// Writes throughput bars: per configuration, a bar per backend at its median msgs/s,
/// with a line from the slowest to the fastest repeat.
pub fn write_throughput(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    let panels = panels(sums);
    let bar_h = 18.0;
    let rows: usize = panels.iter().map(|(_, g)| g.len()).sum();
    let height = panels.len() as f64 * (MARGIN_T + GAP) + rows as f64 * (bar_h + 6.0) + GAP;
    header(w, PANEL_W + 200.0, height, "throughput")?;
    let plot_w = PANEL_W - 100.0;
    let mut top = GAP;
    for (title, group) in &panels {
        let max = group
            .iter()
            .map(|s| s.msgs_per_s.max)
            .fold(0.0, f64::max)
            .max(1e-9);
        writeln!(
            w,
            r#"<text x="10" y="{}" font-size="13" font-weight="bold">{} msgs/s (median, range over repeats)</text>"#,
            top + 14.0,
            escape(title)
        )?;
        top += MARGIN_T;
        for s in group {
            let c = color(&s.backend);
            let x0 = 100.0;
            let wmed = s.msgs_per_s.median / max * plot_w;
            let (xmin, xmax) = (
                x0 + s.msgs_per_s.min / max * plot_w,
                x0 + s.msgs_per_s.max / max * plot_w,
            );
            let mid = top + bar_h / 2.0;
            writeln!(
                w,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 6.0,
                mid + 4.0,
                escape(&s.backend)
            )?;
            writeln!(
                w,
                r#"<rect x="{x0}" y="{top:.1}" width="{wmed:.1}" height="{bar_h}" fill="{c}" fill-opacity="0.8"/>"#
            )?;
            writeln!(
                w,
                r#"<line x1="{xmin:.1}" y1="{mid:.1}" x2="{xmax:.1}" y2="{mid:.1}" stroke="black"/><line x1="{xmin:.1}" y1="{:.1}" x2="{xmin:.1}" y2="{:.1}" stroke="black"/><line x1="{xmax:.1}" y1="{:.1}" x2="{xmax:.1}" y2="{:.1}" stroke="black"/>"#,
                mid - 4.0,
                mid + 4.0,
                mid - 4.0,
                mid + 4.0
            )?;
            writeln!(
                w,
                r#"<text x="{:.1}" y="{:.1}">{} ({} GB/s)</text>"#,
                xmax.max(x0 + wmed) + 6.0,
                mid + 4.0,
                cells::spread(&s.msgs_per_s, cells::rate),
                cells::gbps(s.gbytes_per_s.median)
            )?;
            top += bar_h + 6.0;
        }
        top += GAP;
    }
    writeln!(w, "</svg>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::{CurvePoint, CURVE_PERCENTILES};
    use crate::summary::Spread;
    use crate::workload::Workload;

    fn sum(backend: &str, rate: f64) -> Summary {
        let sp = |v: f64| Spread {
            median: v,
            min: v * 0.9,
            max: v * 1.1,
        };
        Summary {
            transport: "unix".into(),
            config: "pingpong 64 B".into(),
            workload: Workload::Pingpong,
            backend: backend.into(),
            repeats: 3,
            msgs_per_s: sp(rate),
            gbytes_per_s: sp(0.01),
            p50_us: sp(10.0),
            p99_us: sp(30.0),
            p999_us: sp(50.0),
            max_us: sp(90.0),
            cpu_us_per_msg: sp(5.0),
            harness_gbytes_per_s: None,
            bytes_verified: 1000,
            curve: CURVE_PERCENTILES
                .iter()
                .map(|&p| CurvePoint {
                    percentile: p,
                    us: 10.0 + p,
                })
                .collect(),
        }
    }

    #[test]
    fn plots_are_well_formed_svg_with_a_series_per_backend() {
        let sums = [sum("blocking <&>", 1000.0), sum("tokio", 2000.0)];
        for f in [write_latency, write_throughput] {
            let mut out = Vec::new();
            f(&mut out, &sums).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert!(text.trim_end().ends_with("</svg>"));
            assert!(text.contains("blocking &lt;&amp;&gt;"), "names are escaped");
            assert!(!text.contains("NaN") && !text.contains("inf"));
        }
        let mut out = Vec::new();
        write_latency(&mut out, &sums).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap().matches("<polyline").count(),
            2
        );
    }
}
