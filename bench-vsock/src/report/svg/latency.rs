//! Latency-percentile curves: a panel per configuration, x the percentile on a "nines"
//! scale (90%, 99%, 99.9%...), y the latency in µs on a log scale, a line per backend.

use std::io::{self, Write};

use super::canvas::{Anchor, Canvas};
use super::{color, panels};
use crate::report::cells;
use crate::summary::Summary;

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 220.0;
const MARGIN_L: f64 = 60.0;
const MARGIN_T: f64 = 28.0;
const MARGIN_B: f64 = 36.0;
const GAP: f64 = 24.0;
/// The curve's right end: 99.999%, five nines.
const MAX_NINES: f64 = 5.0;

/// Writes the curves of `sums`.
pub fn write_latency(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    let panels = panels(sums);
    let height = panels.len() as f64 * (PANEL_H + GAP) + GAP;
    let mut c = Canvas::new(PANEL_W, height);
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
            .copied()
            .fold(f64::MAX, f64::min)
            .max(0.01)
            .log10()
            .floor();
        let hi = all
            .iter()
            .copied()
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
        c.title(MARGIN_L, top + 16.0, &format!("{title} latency"));
        c.shape(
            &format!(
                r##"<rect x="{MARGIN_L}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##,
                top + MARGIN_T
            ),
            MARGIN_L,
            MARGIN_L + plot_w,
        );
        for (p, label) in [
            (0.0, "0%"),
            (90.0, "90%"),
            (99.0, "99%"),
            (99.9, "99.9%"),
            (99.99, "99.99%"),
            (99.999, "99.999%"),
        ] {
            let xp = x(p);
            c.shape(
                &format!(
                    r##"<line x1="{xp:.1}" y1="{}" x2="{xp:.1}" y2="{}" stroke="#eee"/>"##,
                    top + MARGIN_T,
                    top + MARGIN_T + plot_h
                ),
                xp,
                xp,
            );
            c.text(xp, top + MARGIN_T + plot_h + 14.0, Anchor::Middle, label);
        }
        for e in lo as i32..=hi as i32 {
            let v = 10f64.powi(e);
            let yp = y(v);
            c.shape(
                &format!(
                    r##"<line x1="{MARGIN_L}" y1="{yp:.1}" x2="{}" y2="{yp:.1}" stroke="#eee"/>"##,
                    MARGIN_L + plot_w
                ),
                MARGIN_L,
                MARGIN_L + plot_w,
            );
            let label = format!("{} µs", cells::us(v));
            c.text(MARGIN_L - 4.0, yp + 4.0, Anchor::End, &label);
        }
        c.text(
            MARGIN_L + plot_w / 2.0,
            top + PANEL_H - 6.0,
            Anchor::Middle,
            "percentile",
        );
        for (j, s) in group.iter().enumerate() {
            let points: Vec<String> = s
                .curve
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.percentile), y(p.us)))
                .collect();
            let col = color(&s.backend);
            c.shape(
                &format!(
                    r#"<polyline fill="none" stroke="{col}" stroke-width="2" points="{}"/>"#,
                    points.join(" ")
                ),
                MARGIN_L,
                MARGIN_L + plot_w,
            );
            let ly = top + MARGIN_T + 12.0 + j as f64 * 16.0;
            c.shape(
                &format!(
                    r#"<rect x="{}" y="{}" width="12" height="3" fill="{col}"/>"#,
                    PANEL_W + 4.0,
                    ly - 4.0
                ),
                PANEL_W + 4.0,
                PANEL_W + 16.0,
            );
            let label = format!("{} (p99 {} µs)", s.backend, cells::us(s.p99_us.median));
            c.text(PANEL_W + 20.0, ly, Anchor::Start, &label);
        }
    }
    c.finish(w, "latency by percentile")
}
