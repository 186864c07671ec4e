//! RESULTS.md from compare reports: machine, how to reproduce, a section per transport with
//! medians, ratios with their spread, and the plots (SVG files next to it). Produced, never
//! typed by hand.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::columns::{self, Grid};
use super::files::write_file;
use super::{json, svg};
use crate::error::{Context, Result};
use crate::results::Report;
use crate::summary::{summarize, Summary};

/// One report's section: the report, its summaries and its plot files.
pub struct Section<'a> {
    /// The compare report.
    pub report: &'a Report,
    /// Its runs, summarized.
    pub summaries: Vec<Summary>,
    /// Its plots: what each shows and its file, relative to RESULTS.md.
    pub plots: Vec<(&'static str, String)>,
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

/// The heading of the host <-> guest section (`tools/bench-virtio`'s report).
pub const VIRTIO_TITLE: &str =
    "host ↔ guest, virtio-vsock through vhost-device-vsock (TCG, indicative)";

const VIRTIO_NOTE: &str = "> A QEMU guest (TCG, no KVM; Debian 6.1 cloud kernel) with a real virtio-vsock device, `vhost-user-vsock-pci` served on the host by `vhost-device-vsock` 0.3.0 (`tools/bench-virtio`): emulated and indicative only. The same backend runs on both ends. Rows with transport `hybrid` are a host client (the VMM's unix socket and its `CONNECT` handshake) to a guest server (`AF_VSOCK`); rows with transport `vsock` are a guest client (CID 2) to a host server (a unix listener at `<uds_path>_<port>`). `stream` sends from client to server and `stream-reverse` from server to client, so host → guest is `hybrid` `stream` and `vsock` `stream-reverse`, and guest → host the other two.";

/// What an A/B section shows.
const AB_NOTE: &str = "The engine with one feature turned off against the default engine, \
in one interleaved compare: `uring-nohandoff` hands accepted sockets to workers through a \
channel and a wake-up instead of the ring (`IORING_OP_MSG_RING`), `uring-nofiles` never \
registers connection sockets as fixed files. A uring / variant msgs/s ratio above 1 (or a \
p99 ratio below 1) is what the feature buys.";

/// Whether `backend` names one of the engine's A/B variants.
fn is_ab_variant(backend: &str) -> bool {
    backend
        .parse::<crate::backend::BackendKind>()
        .is_ok_and(|k| k.name().starts_with("uring") && !k.in_default_run())
}

/// The backends of `r`'s runs, named, when they are fewer than a default compare runs.
fn some_backends(r: &Report) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for x in &r.runs {
        if !names.contains(&x.backend.as_str()) {
            names.push(&x.backend);
        }
    }
    let defaults = crate::backend::BackendKind::ALL
        .iter()
        .filter(|k| k.in_default_run())
        .count();
    (names.len() < defaults).then(|| names.join(", "))
}

/// A [`Grid`] as a Markdown table.
pub(crate) fn write_grid(w: &mut dyn Write, g: &Grid) -> io::Result<()> {
    writeln!(w, "| {} |", g.headers.join(" | "))?;
    writeln!(w, "|{}", "---|".repeat(g.headers.len()))?;
    for r in &g.rows {
        writeln!(w, "| {} |", r.join(" | "))?;
    }
    Ok(())
}

/// Writes RESULTS.md's text for these sections.
pub fn write(w: &mut dyn Write, sections: &[Section<'_>]) -> io::Result<()> {
    writeln!(w, "# bench-vsock results\n")?;
    writeln!(w, "Produced by `bench-vsock report` from `bench-vsock compare` JSON reports (`tools/results`); do not edit by hand.\n")?;
    writeln!(w, "Each configuration runs every backend, interleaved (backend order rotated each repeat); tables show medians over repeats with the range (min–max). Ratios pair runs of the same repeat: a msgs/s ratio above 1 and a p99 ratio below 1 favour the first backend. Every byte moved is verified; `verified` is the total. CPU µs/msg is process CPU time (user + system, both ends when the server is local) per message; the CPU/msg ratio compares it between backends. A label such as `(1 worker)` marks runs at other than the default 2 workers per side. `harness GB/s` (stream rows) is the harness's own ceiling: making and checking each byte as a stream run does, on one thread with no socket.\n")?;
    writeln!(w, "## How to reproduce\n\n```sh\ntools/results --vm --virtio --profile   # compares on unix and tcp here, on vsock in the test VM, host ↔ guest over virtio-vsock, profiles, then this file\n```\n\nEach section below gives its exact compare command; extra options after `--` go to every compare.\n")?;
    for s in sections {
        let r = s.report;
        let t = transport_of(r);
        // Seqpacket runs (`--seqpacket`) say so: each request and echo is one message.
        let t = if r.runs.iter().any(|x| x.seqpacket) {
            format!("{t} seqpacket")
        } else {
            t
        };
        let m = &r.machine;
        // Host <-> guest runs (a hybrid endpoint on the host) get a section of their own,
        // with a transport column: `hybrid` rows are host clients, `vsock` rows guest ones.
        let virtio = t.contains("hybrid");
        if virtio {
            writeln!(w, "## {VIRTIO_TITLE}\n")?;
            writeln!(w, "{VIRTIO_NOTE}\n")?;
        } else if r.runs.iter().any(|x| x.via.is_some()) {
            writeln!(w, "## {t}, through a proxy\n")?;
        } else if r.runs.iter().any(|x| is_ab_variant(&x.backend)) {
            writeln!(w, "## {t}, engine features A/B\n")?;
            writeln!(w, "{AB_NOTE}\n")?;
        } else if let Some(some) = some_backends(r) {
            // A compare of a few backends beside the full one of the same transport.
            writeln!(w, "## {t}, {some} only\n")?;
        } else {
            writeln!(w, "## {t}\n")?;
        }
        if t.contains("vsock") && !virtio {
            writeln!(w, "> vsock numbers come from `vsock_loopback` inside a QEMU guest under software emulation (TCG, no KVM): emulated and indicative only, not a statement about real hardware.\n")?;
        }
        writeln!(
            w,
            "Machine: {} cores, {}, kernel {}, host `{}`.\n",
            m.cores, m.cpu_model, m.kernel, m.hostname
        )?;
        writeln!(w, "Command: `{}`\n", r.command)?;
        writeln!(w, "### Medians over repeats\n")?;
        write_grid(w, &columns::summaries(&s.summaries, virtio))?;
        if !r.ratios.is_empty() {
            writeln!(w, "\n### Ratios\n")?;
            write_grid(w, &columns::ratios(&r.ratios, false))?;
        }
        if !r.scaling.is_empty() {
            writeln!(w, "\n### Scaling\n")?;
            writeln!(w, "Closed-loop rr msgs/s with 2 workers per side divided by 1 worker, paired by repeat (uring, and epoll for reference).\n")?;
            write_grid(w, &columns::scaling(&r.scaling, false))?;
        }
        let engine = columns::engine(&s.summaries, false);
        if !engine.rows.is_empty() {
            writeln!(w, "\n### Engine counters\n")?;
            writeln!(w, "What the io_uring engines did per message (both ends of a local run added), medians over repeats: `io_uring_enter` calls, completions, bytes per completion, time spent spinning and its share of the process CPU.\n")?;
            write_grid(w, &engine)?;
        }
        if !r.proxy.is_empty() {
            write_proxy_section(w, r)?;
        }
        // A section none of whose runs a target covers (a proxy or an A/B compare) gets no
        // table of "not measured" rows.
        let all = super::targets::evaluate(&r.runs);
        let measured: Vec<_> = all.iter().filter(|o| o.ratio.is_some()).cloned().collect();
        if !measured.is_empty() {
            writeln!(w, "\n### Targets\n")?;
            writeln!(w, "The project's aims for one compare run (measured, never asserted in a test); a verdict compares the median ratio with the aim.")?;
            if measured.len() < all.len() {
                writeln!(w, " The aims this run does not measure (a backend or configuration it leaves out) are not listed.")?;
            }
            writeln!(w)?;
            super::targets::write_markdown(w, &measured)?;
        }
        writeln!(w, "\n### Plots\n")?;
        for (title, link) in &s.plots {
            writeln!(w, "![{t} {title}]({link})\n")?;
        }
    }
    Ok(())
}

/// The "Through a proxy" part of a section: each proxied configuration beside its direct
/// run, then issue 11's targets.
fn write_proxy_section(w: &mut dyn Write, r: &Report) -> io::Result<()> {
    writeln!(w, "\n### Through a proxy\n")?;
    writeln!(w, "The server listens on its endpoint, a proxy listens on a second endpoint of the same transport and forwards to it, and the clients connect to the proxy: `ours` is `vsock-tool proxy LISTEN TARGET`, `socat` is Debian's `socat` as operators run it (`…-LISTEN:…,fork …-CONNECT:…`, a process per connection). Medians over repeats; `added p50` is the proxied p50 minus the direct one; CPU via is both ends plus the proxy process (its reaped connection processes included), and `of which proxy` its share.\n")?;
    write_grid(w, &super::proxy::rows(&r.proxy, false))?;
    if !r.proxy_targets.is_empty() {
        writeln!(w, "\nTargets (issue 11): through our proxy, 64 KiB stream GB/s at least 3× socat's, 64 B ping-pong added latency at most 0.5× socat's, rr with 256 connections msgs/s at least 3× socat's.\n")?;
        write_grid(w, &super::proxy::targets(&r.proxy_targets, false))?;
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
    let all: Vec<json::AnyReport> = jsons
        .iter()
        .map(|p| json::read_any(p))
        .collect::<Result<_>>()?;
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
    let mut http = Vec::new();
    for (i, any) in all.iter().enumerate() {
        let r = match any {
            json::AnyReport::Compare(r) => r,
            json::AnyReport::Http(h) => {
                http.push(h);
                continue;
            }
        };
        let stem = format!("results-{i}-{}", transport_of(r));
        let summaries = summarize(&r.runs);
        let mut plots = Vec::new();
        for plot in svg::PLOTS {
            let name = format!("{stem}-{}", plot.file);
            write_file(&dir.join(&name), |w| Ok((plot.draw)(w, &summaries)?))?;
            plots.push((plot.title, link_dir.join(name).display().to_string()));
        }
        sections.push(Section {
            report: r,
            summaries,
            plots,
        });
    }
    write_file(out, |w| {
        write(w, &sections)?;
        crate::http::markdown::write_section(w, &http)?;
        if let Some(notes) = notes {
            let text =
                std::fs::read_to_string(notes).context(format!("reading {}", notes.display()))?;
            write_analysis(w, &text, &profiles(dir, link_dir)?)?;
        }
        Ok(())
    })?;
    writeln!(
        log,
        "wrote {} and {} plots in {}",
        out.display(),
        svg::PLOTS.len() * sections.len(),
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

#[cfg(test)]
mod tests {
    use super::is_ab_variant;

    #[test]
    fn only_the_engines_ab_variants_are_ab_variants() {
        assert!(is_ab_variant("uring-nohandoff"));
        assert!(is_ab_variant("uring-nofiles"));
        for b in [
            "uring",
            "uring-spin",
            "epoll",
            "blocking",
            "tokio",
            "tokio-ours",
            "x",
        ] {
            assert!(!is_ab_variant(b), "{b}");
        }
    }
}
