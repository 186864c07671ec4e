//! RESULTS.md's "HTTP" section from http reports: per transport, the medians, the engine's
//! ratios to the other servers and issue 9's targets (met, or missed by how much).

use std::io::{self, Write};

use crate::report::markdown::write_grid;

use super::results::HttpReport;
use super::{columns, summary, targets};

const INTRO: &str = "`bench-vsock http` (`tools/results`): hyper 1.x servers answering `GET /bytes/N` with N bytes of the pattern, each server with the same settings and the same number of workers: `engine` is hyper on the io_uring engine (`rt::HttpServer` on `Engine::listen_async`), `tokio-ours` hyper on the library's tokio path, `tokio` hyper on tokio::net (tokio-vsock on vsock), both through hyper-util's auto builder. The load generator is hyper's client on an engine of its own (`client cores` is its CPU time over the wall time: it is not the bottleneck while that stays below its workers). `h1 64 B x256` is HTTP/1.1 keep-alive (`h2`: HTTP/2 with prior knowledge), a 64-byte body, 256 connections with one request at a time on each; `@R/s` is open loop at R requests/s over all connections, latency from each request's intended send time. Every response's status, length and body bytes are verified (`verified` counts them); a bad one fails the run. Server CPU µs/req is the process's CPU time less the load generator's threads', per request. Medians over interleaved repeats; ratios pair runs of the same repeat.";

/// Writes the HTTP section for `reports` (nothing when there are none).
pub fn write_section(w: &mut dyn Write, reports: &[&HttpReport]) -> io::Result<()> {
    if reports.is_empty() {
        return Ok(());
    }
    writeln!(w, "## HTTP\n")?;
    writeln!(w, "{INTRO}\n")?;
    for r in reports {
        let t = r.transport();
        let m = &r.machine;
        writeln!(w, "### HTTP on {t}\n")?;
        if t.contains("vsock") {
            writeln!(w, "> vsock numbers come from `vsock_loopback` inside a QEMU guest under software emulation (TCG, no KVM): emulated and indicative only, not a statement about real hardware.\n")?;
        }
        writeln!(
            w,
            "Machine: {} cores, {}, kernel {}, host `{}`.\n",
            m.cores, m.cpu_model, m.kernel, m.hostname
        )?;
        writeln!(w, "Command: `{}`\n", r.command)?;
        writeln!(w, "#### Medians over repeats\n")?;
        write_grid(w, &columns::summaries(&summary::summarize(&r.runs)))?;
        let ratios = summary::ratios(&r.runs);
        if !ratios.is_empty() {
            writeln!(w, "\n#### Ratios\n")?;
            writeln!(
                w,
                "A req/s ratio above 1 and p99 and CPU ratios below 1 favour the engine.\n"
            )?;
            write_grid(w, &columns::ratios(&ratios))?;
        }
        writeln!(w, "\n#### Targets\n")?;
        writeln!(w, "Issue 9's aims for one run with 2 workers, closed loop: at 256 connections hyper on the engine serves at least 1.5× the requests/s of hyper on tokio with a p99 no worse; at 1 connection its p50 is no worse. A verdict compares the median of the paired ratios with the aim.\n")?;
        targets::write_markdown(w, &targets::evaluate(&r.runs))?;
        writeln!(w)?;
    }
    Ok(())
}
