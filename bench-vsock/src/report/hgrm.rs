//! `.hgrm` files: a histogram's percentile distribution in the text format of
//! HdrHistogram's `outputPercentileDistribution` (and wrk2's `--latency` output), which
//! HdrHistogram's plotter reads. Values are in microseconds.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Reporting points per halving of the distance to 100%, as HdrHistogram's default.
const TICKS_PER_HALF: u32 = 5;

/// Writes the percentile distribution of a histogram of nanoseconds, in microseconds.
pub fn write(w: &mut dyn Write, h: &Histogram<u64>) -> io::Result<()> {
    let scale = 1000.0;
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
        if q < 1.0 {
            writeln!(
                w,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(w, "{value:12.3} {q:2.12} {total:10}")?;
        }
    }
    let sub_buckets = 2u64.pow((2.0 * 10f64.powi(h.sigfig().into())).log2().ceil() as u32);
    writeln!(
        w,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    )?;
    writeln!(
        w,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    )?;
    writeln!(
        w,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;

    #[test]
    fn writes_the_hdrhistogram_percentile_format() {
        let mut h = new_histogram();
        for i in 1..=100u64 {
            h.record(i * 1000).unwrap();
        }
        let mut out = Vec::new();
        write(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First point: the smallest value (1 µs) at percentile 0 with one sample.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first[..3], ["1.000", "0.000000000000", "1"]);
        // The last data line reaches 100% with every sample counted.
        let last = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let last: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(last[1..], ["1.000000000000", "100"]);
        assert!(
            text.contains("#[Max     =      100.031, Total count    =          100]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"));
    }
}
