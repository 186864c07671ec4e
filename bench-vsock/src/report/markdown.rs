//! RESULTS.md from compare reports: machine, how to reproduce, a section per transport with
//! medians, ratios with their spread, and the plots (SVG files next to it). Produced, never
//! typed by hand.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{cells, json, svg, table};
use crate::error::{Context, Result};
use crate::results::Report;
use crate::summary::{summarize, Summary};

/// One report's section: the report and the names of its plot files.
pub struct Section<'a> {
    /// The compare report.
    pub report: &'a Report,
    /// The latency plot's file name, relative to RESULTS.md.
    pub latency_svg: String,
    /// The throughput plot's file name, relative to RESULTS.md.
    pub throughput_svg: String,
}

fn transport_of(r: &Report) -> String {
    let mut ts: Vec<&str> = r.runs.iter().map(|x| x.transport.as_str()).collect();
    ts.dedup();
    if ts.is_empty() {
        "empty".to_owned()
    } else {
        ts.join("+")
    }
}

fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

fn write_summary_table(w: &mut dyn Write, sums: &[Summary]) -> io::Result<()> {
    let head = [
        "config",
        "backend",
        "n",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "msgs/s (min–max)",
        "GB/s",
        "CPU µs/msg",
        "verified",
    ];
    writeln!(w, "| {} |", head.join(" | "))?;
    writeln!(w, "|{}", "---|".repeat(head.len()))?;
    for s in sums {
        writeln!(
            w,
            "{}",
            row(&[
                s.config.clone(),
                s.backend.clone(),
                s.repeats.to_string(),
                cells::us(s.p50_us.median),
                cells::us(s.p99_us.median),
                cells::us(s.p999_us.median),
                cells::spread(&s.msgs_per_s, cells::rate),
                cells::gbps(s.gbytes_per_s.median),
                cells::us(s.cpu_us_per_msg.median),
                cells::bytes(s.bytes_verified),
            ])
        )?;
    }
    Ok(())
}

fn write_ratio_table(w: &mut dyn Write, report: &Report) -> io::Result<()> {
    let head = [
        "config",
        "vs",
        "msgs/s ratio (min–max)",
        "p99 ratio (min–max)",
        "repeats",
    ];
    writeln!(w, "| {} |", head.join(" | "))?;
    writeln!(w, "|{}", "---|".repeat(head.len()))?;
    for r in report.ratios.iter().filter(|r| r.metric == "msgs_per_s") {
        let p99 = report.ratios.iter().find(|q| {
            q.metric == "p99_us"
                && q.config == r.config
                && q.subject == r.subject
                && q.baseline == r.baseline
                && q.transport == r.transport
        });
        writeln!(
            w,
            "{}",
            row(&[
                r.config.clone(),
                format!("{} / {}", r.subject, r.baseline),
                table::ratio_cell(r),
                p99.map_or_else(|| "-".to_owned(), table::ratio_cell),
                r.repeats.to_string(),
            ])
        )?;
    }
    Ok(())
}

/// Writes RESULTS.md's text for these sections.
pub fn write(w: &mut dyn Write, sections: &[Section<'_>]) -> io::Result<()> {
    writeln!(w, "# bench-vsock results\n")?;
    writeln!(w, "Produced by `bench-vsock report` from `bench-vsock compare` JSON reports (`tools/results`); do not edit by hand.\n")?;
    writeln!(w, "Each configuration runs every backend, interleaved (backend order rotated each repeat); tables show medians over repeats with the range (min–max). Ratios pair runs of the same repeat: a msgs/s ratio above 1 and a p99 ratio below 1 favour the first backend. Every byte moved is verified; `verified` is the total. CPU µs/msg is process CPU time (user + system, both ends when the server is local) per message.\n")?;
    writeln!(w, "## How to reproduce\n\n```sh\ntools/results --vm --profile   # compares on unix and tcp here, on vsock in the test VM, profiles, then this file\n```\n\nEach section below gives its exact compare command; extra options after `--` go to every compare.\n")?;
    for s in sections {
        let r = s.report;
        let t = transport_of(r);
        let m = &r.machine;
        writeln!(w, "## {t}\n")?;
        if t.contains("vsock") {
            writeln!(w, "> vsock numbers come from `vsock_loopback` inside a QEMU guest under software emulation (TCG, no KVM): emulated and indicative only, not a statement about real hardware.\n")?;
        }
        writeln!(
            w,
            "Machine: {} cores, {}, kernel {}, host `{}`.\n",
            m.cores, m.cpu_model, m.kernel, m.hostname
        )?;
        writeln!(w, "Command: `{}`\n", r.command)?;
        writeln!(w, "### Medians over repeats\n")?;
        write_summary_table(w, &summarize(&r.runs))?;
        if !r.ratios.is_empty() {
            writeln!(w, "\n### Ratios\n")?;
            write_ratio_table(w, r)?;
        }
        writeln!(w, "\n### Targets\n")?;
        writeln!(w, "The project's aims for one compare run (measured, never asserted in a test); a verdict compares the median ratio with the aim.\n")?;
        super::targets::write_markdown(w, &super::targets::evaluate(&r.runs))?;
        writeln!(w, "\n### Plots\n")?;
        writeln!(w, "![{t} latency by percentile]({})\n", s.latency_svg)?;
        writeln!(w, "![{t} throughput]({})\n", s.throughput_svg)?;
    }
    Ok(())
}

/// `bench-vsock report`: reads the JSON reports, writes their plots into `plots` (default:
/// next to `out`) and RESULTS.md to `out`, linking the plots relative to it.
///
/// # Errors
///
/// A report could not be read or a file written.
pub fn write_results(
    jsons: &[PathBuf],
    out: &Path,
    plots: Option<&Path>,
    notes: Option<&Path>,
    log: &mut dyn Write,
) -> Result<()> {
    let reports: Vec<Report> = jsons.iter().map(|p| json::read(p)).collect::<Result<_>>()?;
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = plots.unwrap_or(out_dir);
    // Links in RESULTS.md are relative to its folder.
    let link_dir = dir.strip_prefix(out_dir).unwrap_or(dir);
    for d in [out_dir, dir] {
        std::fs::create_dir_all(d).context(format!("creating {}", d.display()))?;
    }
    let mut sections = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let stem = format!("results-{i}-{}", transport_of(r));
        let sums = summarize(&r.runs);
        let latency_svg = format!("{stem}-latency.svg");
        let throughput_svg = format!("{stem}-throughput.svg");
        let mut f = BufWriter::new(File::create(dir.join(&latency_svg))?);
        svg::write_latency(&mut f, &sums)?;
        f.flush()?;
        let mut f = BufWriter::new(File::create(dir.join(&throughput_svg))?);
        svg::write_throughput(&mut f, &sums)?;
        f.flush()?;
        let link = |name: &str| link_dir.join(name).display().to_string();
        sections.push(Section {
            report: r,
            latency_svg: link(&latency_svg),
            throughput_svg: link(&throughput_svg),
        });
    }
    let mut f = BufWriter::new(File::create(out).context(format!("creating {}", out.display()))?);
    write(&mut f, &sections)?;
    if let Some(notes) = notes {
        let text =
            std::fs::read_to_string(notes).context(format!("reading {}", notes.display()))?;
        write_analysis(&mut f, &text, &profiles(dir, link_dir)?)?;
    }
    f.flush()?;
    writeln!(
        log,
        "wrote {} and {} plots in {}",
        out.display(),
        2 * sections.len(),
        dir.display()
    )?;
    Ok(())
}

/// The profile files (`profile-*.txt`) in `dir`, as links relative to RESULTS.md, sorted.
fn profiles(dir: &Path, link_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).context(format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("profile-") && name.ends_with(".txt") {
            out.push(link_dir.join(name).display().to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// The analysis section: the developers' notes, then links to the profiles they cite.
fn write_analysis(w: &mut dyn Write, notes: &str, profiles: &[String]) -> io::Result<()> {
    writeln!(w, "## Analysis\n")?;
    writeln!(w, "Written by the developers from the profiles below (`tools/profile`); the figures above are the measurements.\n")?;
    writeln!(w, "{}\n", notes.trim())?;
    if !profiles.is_empty() {
        writeln!(w, "Profiles:\n")?;
        for p in profiles {
            writeln!(w, "- [{p}]({p})")?;
        }
    }
    Ok(())
}
