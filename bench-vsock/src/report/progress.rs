//! Progress on stderr: a plan line, then a line per finished run, so a long compare shows
//! where it is.

use std::io::{self, Write};
use std::time::Duration;

use super::cells;
use crate::results::RunResult;

/// Says how many runs there are and roughly how long they take.
pub fn write_plan(w: &mut dyn Write, runs: usize, estimate: Option<Duration>) -> io::Result<()> {
    match estimate {
        Some(d) => writeln!(w, "{runs} runs, about {:.0} s", d.as_secs_f64().ceil()),
        None => writeln!(w, "{runs} runs"),
    }
}

/// One line for a finished run: `[ 3/24] tokio  pingpong 64 B  p50 12.3 µs  81.2k msgs/s`.
pub fn write_run(w: &mut dyn Write, index: usize, total: usize, r: &RunResult) -> io::Result<()> {
    let digits = total.to_string().len();
    writeln!(
        w,
        "[{:>digits$}/{total}] {:<10} {:<5} {:<22} rep {}  p50 {:>7} µs  p99 {:>7} µs  {:>8} msgs/s  {} GB/s",
        index + 1,
        r.backend,
        r.transport,
        r.label(),
        r.repeat,
        cells::us(r.p50_us),
        cells::us(r.p99_us),
        cells::rate(r.msgs_per_s),
        cells::gbps(r.gbytes_per_s),
    )
}
