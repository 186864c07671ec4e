//! Hand-written SVG plots (no scripts, no fonts to fetch), one panel per configuration:
//! latency-percentile curves per backend, throughput bars (GB/s for streams) and CPU per
//! message, each bar with its spread over repeats. Every picture is as wide as its labels.

mod bars;
mod canvas;
mod latency;

use std::io::{self, Write};

pub use bars::{write_cpu, write_throughput};
pub use latency::write_latency;

use crate::summary::Summary;

const COLORS: [&str; 8] = [
    "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

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
pub const PLOTS: [Plot; 3] = [
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
    Plot {
        title: "CPU per message",
        file: "cpu.svg",
        draw: write_cpu,
    },
];

/// Backend colors stay the same in every panel and plot.
fn color(backend: &str) -> &'static str {
    let i = crate::backend::BackendKind::ALL
        .iter()
        .position(|k| k.name() == backend)
        .unwrap_or(COLORS.len() - 1);
    COLORS[i.min(COLORS.len() - 1)]
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

#[cfg(test)]
mod tests {
    use super::canvas::{text_width, Anchor, FONT};
    use super::*;
    use crate::latency::{CurvePoint, CURVE_PERCENTILES};
    use crate::summary::Spread;
    use crate::workload::Workload;

    fn sum(backend: &str, config: &str, workload: Workload, rate: f64) -> Summary {
        let sp = |v: f64| Spread {
            median: v,
            min: v * 0.9,
            max: v * 1.1,
        };
        Summary {
            transport: "unix".into(),
            config: config.into(),
            workload,
            backend: backend.into(),
            repeats: 3,
            msgs_per_s: sp(rate),
            gbytes_per_s: sp(rate * 65536.0 / 1e9),
            p50_us: sp(10.0),
            p99_us: sp(30.0),
            p999_us: sp(50.0),
            max_us: sp(90.0),
            cpu_us_per_msg: sp(5.0 + rate / 1e5),
            harness_gbytes_per_s: (workload == Workload::Stream).then(|| sp(6.25)),
            engine: None,
            bytes_verified: 1000,
            curve: CURVE_PERCENTILES
                .iter()
                .map(|&p| CurvePoint {
                    percentile: p,
                    us: 10.0 + p * 1000.0,
                })
                .collect(),
        }
    }

    fn sums() -> Vec<Summary> {
        vec![
            sum("blocking <&>", "pingpong 64 B", Workload::Pingpong, 1000.0),
            sum(
                "uring-spin",
                "pingpong 64 B",
                Workload::Pingpong,
                1_234_567.0,
            ),
            sum("tokio", "stream 64 KiB", Workload::Stream, 98_765.0),
            sum(
                "epoll",
                "rr 64 B x4096 @1000000000/s",
                Workload::Rr,
                123_456_789.0,
            ),
        ]
    }

    fn attr(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_owned())
    }

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// A text and where it spans across.
    type Span = (String, f64, f64);

    /// The svg's visible range across (viewBox x and width) and every text's span.
    fn layout(svg: &str) -> ((f64, f64), Vec<Span>) {
        let head = &svg[..svg.find('>').unwrap()];
        let view: Vec<f64> = attr(head, "viewBox")
            .unwrap()
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        let texts = svg
            .split("<text")
            .skip(1)
            .map(|t| {
                let (tag, rest) = t.split_once('>').unwrap();
                let text = unescape(&rest[..rest.find("</text>").unwrap()]);
                let x: f64 = attr(tag, "x").unwrap().parse().unwrap();
                let size = attr(tag, "font-size").map_or(FONT, |s| s.parse().unwrap());
                let bold = tag.contains("font-weight=\"bold\"");
                let anchor = match attr(tag, "text-anchor").as_deref() {
                    Some("middle") => Anchor::Middle,
                    Some("end") => Anchor::End,
                    _ => Anchor::Start,
                };
                let (l, r) = anchor.span(x, text_width(&text, size, bold));
                (text, l, r)
            })
            .collect();
        ((view[0], view[0] + view[2]), texts)
    }

    #[test]
    fn plots_are_well_formed_svg_with_a_series_per_backend() {
        let sums = sums();
        for plot in PLOTS {
            let mut out = Vec::new();
            (plot.draw)(&mut out, &sums).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert!(text.trim_end().ends_with("</svg>"));
            assert!(text.contains("blocking &lt;&amp;&gt;"), "names are escaped");
            assert!(
                !text.contains("NaN") && !text.contains("inf"),
                "{}",
                plot.file
            );
        }
        let mut out = Vec::new();
        write_latency(&mut out, &sums).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap().matches("<polyline").count(),
            4
        );
    }

    #[test]
    fn no_label_reaches_past_the_picture() {
        let sums = sums();
        for plot in PLOTS {
            let mut out = Vec::new();
            (plot.draw)(&mut out, &sums).unwrap();
            let svg = String::from_utf8(out).unwrap();
            let ((left, right), texts) = layout(&svg);
            assert!(texts.len() > 8, "{}", plot.file);
            for (text, l, r) in texts {
                assert!(
                    l >= left && r <= right,
                    "{}: {text:?} spans {l:.0}..{r:.0}, the picture {left:.0}..{right:.0}",
                    plot.file
                );
            }
        }
    }

    #[test]
    fn stream_bars_are_in_gbytes_and_the_rest_in_messages() {
        let mut out = Vec::new();
        write_throughput(&mut out, &sums()).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.contains("unix — stream 64 KiB: GB/s (median"), "{svg}");
        assert!(
            svg.contains(">6.473 (5.825–7.120) GB/s (harness ceiling 6.250 GB/s)</text>"),
            "{svg}"
        );
        assert!(
            svg.contains("unix — pingpong 64 B: msgs/s (median"),
            "{svg}"
        );
        let mut out = Vec::new();
        write_cpu(&mut out, &sums()).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.contains("CPU µs per message (both ends)"), "{svg}");
        assert!(svg.contains(">5.01 (4.51–5.51) µs</text>"), "{svg}");
    }
}
