//! Bar charts, a panel per configuration and a bar per backend at its median over
//! repeats, with a line from the lowest to the highest repeat: throughput (GB/s for
//! streams, whose point is bytes; msgs/s for the rest) and CPU time per message.

use std::io::{self, Write};

use super::canvas::{text_width, Anchor, Canvas, FONT};
use super::{color, panels};
use crate::report::cells;
use crate::summary::{Spread, Summary};
use crate::workload::Workload;

const BAR_H: f64 = 18.0;
const ROW: f64 = BAR_H + 6.0;
const TITLE_H: f64 = 28.0;
const GAP: f64 = 24.0;
/// The longest bar, px.
const BAR_W: f64 = 360.0;

/// What a panel's bars show of each summary.
struct Measure {
    /// What is measured, for the panel's title.
    what: &'static str,
    /// The value over repeats.
    value: fn(&Summary) -> Spread,
    /// The bar's label.
    label: fn(&Summary) -> String,
}

const GBYTES: Measure = Measure {
    what: "GB/s",
    value: |s| s.gbytes_per_s,
    label: |s| {
        let mut l = format!("{} GB/s", cells::spread(&s.gbytes_per_s, cells::gbps));
        if let Some(h) = s.harness_gbytes_per_s {
            l.push_str(&format!(
                " (harness ceiling {} GB/s)",
                cells::gbps(h.median)
            ));
        }
        l
    },
};

const MSGS: Measure = Measure {
    what: "msgs/s",
    value: |s| s.msgs_per_s,
    label: |s| format!("{} msgs/s", cells::spread(&s.msgs_per_s, cells::rate)),
};

const CPU: Measure = Measure {
    what: "CPU µs per message (both ends)",
    value: |s| s.cpu_us_per_msg,
    label: |s| format!("{} µs", cells::spread(&s.cpu_us_per_msg, cells::us)),
};

/// Writes throughput bars: GB/s for stream configurations, msgs/s for the rest.
pub fn write_throughput(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    write_bars(w, sums, "throughput", |workload| {
        if workload.is_stream() {
            &GBYTES
        } else {
            &MSGS
        }
    })
}

/// Writes CPU time per message: what each message cost the whole process.
pub fn write_cpu(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    write_bars(w, sums, "CPU per message", |_| &CPU)
}

fn write_bars(
    w: &mut dyn Write,
    sums: &[Summary],
    title: &str,
    measure: fn(Workload) -> &'static Measure,
) -> io::Result<()> {
    let panels = panels(sums);
    let rows: usize = panels.iter().map(|(_, g)| g.len()).sum();
    let height = panels.len() as f64 * (TITLE_H + GAP) + rows as f64 * ROW + GAP;
    // Bars start right of the longest backend name.
    let names = sums
        .iter()
        .map(|s| text_width(&s.backend, FONT, false))
        .fold(0.0, f64::max);
    let x0 = (names + 16.0).max(100.0);
    let mut c = Canvas::new(x0 + BAR_W, height);
    let mut top = GAP;
    for (name, group) in &panels {
        let m = measure(group[0].workload);
        let max = group
            .iter()
            .map(|s| (m.value)(s).max)
            .fold(0.0, f64::max)
            .max(1e-9);
        c.title(
            10.0,
            top + 14.0,
            &format!("{name}: {} (median, range over repeats)", m.what),
        );
        top += TITLE_H;
        for s in group {
            let v = (m.value)(s);
            let at = |x: f64| x0 + (x / max).clamp(0.0, 1.0) * BAR_W;
            let (xmed, xmin, xmax) = (at(v.median), at(v.min), at(v.max));
            let mid = top + BAR_H / 2.0;
            c.text(x0 - 6.0, mid + 4.0, Anchor::End, &s.backend);
            c.shape(
                &format!(
                    r#"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{BAR_H}" fill="{}" fill-opacity="0.8"/>"#,
                    xmed - x0,
                    color(&s.backend)
                ),
                x0,
                xmed,
            );
            c.shape(
                &format!(
                    r#"<line x1="{xmin:.1}" y1="{mid:.1}" x2="{xmax:.1}" y2="{mid:.1}" stroke="black"/><line x1="{xmin:.1}" y1="{:.1}" x2="{xmin:.1}" y2="{:.1}" stroke="black"/><line x1="{xmax:.1}" y1="{:.1}" x2="{xmax:.1}" y2="{:.1}" stroke="black"/>"#,
                    mid - 4.0,
                    mid + 4.0,
                    mid - 4.0,
                    mid + 4.0
                ),
                xmin,
                xmax,
            );
            c.text(
                xmax.max(xmed) + 6.0,
                mid + 4.0,
                Anchor::Start,
                &(m.label)(s),
            );
            top += ROW;
        }
        top += GAP;
    }
    c.finish(w, title)
}
