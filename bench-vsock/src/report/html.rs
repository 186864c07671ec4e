//! A self-contained HTML page: the machine, the summary table and both plots inline, so it
//! opens anywhere with no network.

use std::io::{self, Write};

use super::{svg, table};
use crate::results::Report;
use crate::summary::Summary;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes the page for `report`, whose runs `sums` summarize.
pub fn write(w: &mut dyn Write, report: &Report, sums: &[Summary]) -> io::Result<()> {
    let m = &report.machine;
    writeln!(
        w,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>bench-vsock report</title>"
    )?;
    writeln!(w, "<style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style></head><body>")?;
    writeln!(w, "<h1>bench-vsock report</h1>")?;
    writeln!(
        w,
        "<p>{} · {} cores · {} · kernel {}</p><p><code>{}</code></p>",
        escape(&m.hostname),
        m.cores,
        escape(&m.cpu_model),
        escape(&m.kernel),
        escape(&report.command)
    )?;
    let mut text = Vec::new();
    table::write_summaries(&mut text, sums)?;
    if !report.ratios.is_empty() {
        writeln!(text)?;
        table::write_ratios(&mut text, &report.ratios)?;
    }
    if !report.scaling.is_empty() {
        writeln!(text, "\nScaling (rr msgs/s, 2 workers / 1 worker):")?;
        table::write_scaling(&mut text, &report.scaling)?;
    }
    if sums.iter().any(|s| s.engine.is_some()) {
        writeln!(text, "\nEngine counters per message:")?;
        table::write_engine(&mut text, sums)?;
    }
    writeln!(
        w,
        "<h2>Medians over repeats</h2><pre>{}</pre>",
        escape(&String::from_utf8_lossy(&text))
    )?;
    for plot in svg::PLOTS {
        writeln!(w, "<h2>{}</h2>", escape(plot.title))?;
        (plot.draw)(w, sums)?;
    }
    writeln!(w, "</body></html>")
}
