//! The project's performance targets, checked against a compare run: each target's measured
//! ratio (median and range over repeats, paired by repeat), whether it is met, and by how
//! much it is missed. Measured here, never asserted in a test.

use std::io::{self, Write};

use crate::results::RunResult;
use crate::summary::Spread;
use crate::workload::{Workload, DEFAULT_WORKERS};

/// What a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Median latency: lower is better.
    P50,
    /// Messages per second: higher is better.
    MsgsPerS,
    /// Process CPU time per message: lower is better.
    CpuPerMsg,
}

/// One target: `subject`'s metric divided by `baseline`'s, bounded by `bound`.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The workload.
    pub workload: Workload,
    /// Message or write size, bytes.
    pub msg_size: u64,
    /// Connections, when the target names a count.
    pub conns: Option<u64>,
    /// The backend measured.
    pub subject: &'static str,
    /// The backend it is measured against.
    pub baseline: &'static str,
    /// The metric.
    pub metric: Metric,
    /// For `P50` and `CpuPerMsg`, the ratio must be at most this; for `MsgsPerS`, at
    /// least.
    pub bound: f64,
}

const KIB: u64 = 1024;

/// The targets of issue 4 ("Targets"), in its order, then issue 7's: CPU per message in
/// default mode no more than epoll's on every workload; then issue 8's: the library's tokio
/// path no slower than tokio's own sockets (tokio-vsock on vsock) on any workload. All at
/// the default workers, on direct runs (not through a proxy).
pub const TARGETS: &[Target] = &[
    t(
        Workload::Pingpong,
        64,
        None,
        "uring-spin",
        "blocking",
        Metric::P50,
        0.3,
    ),
    t(
        Workload::Pingpong,
        64,
        None,
        "uring",
        "blocking",
        Metric::P50,
        1.0,
    ),
    t(
        Workload::Stream,
        64 * KIB,
        None,
        "uring",
        "blocking",
        Metric::MsgsPerS,
        1.5,
    ),
    t(
        Workload::Stream,
        64 * KIB,
        None,
        "uring",
        "epoll",
        Metric::MsgsPerS,
        1.5,
    ),
    t(
        Workload::Stream,
        1024 * KIB,
        None,
        "uring",
        "blocking",
        Metric::MsgsPerS,
        1.5,
    ),
    t(
        Workload::Stream,
        1024 * KIB,
        None,
        "uring",
        "epoll",
        Metric::MsgsPerS,
        1.5,
    ),
    t(
        Workload::Rr,
        64,
        Some(256),
        "uring",
        "epoll",
        Metric::MsgsPerS,
        1.5,
    ),
    t(
        Workload::Rr,
        64,
        Some(256),
        "uring",
        "tokio",
        Metric::MsgsPerS,
        1.5,
    ),
    cpu(Workload::Pingpong, 64, None),
    cpu(Workload::Stream, 64 * KIB, None),
    cpu(Workload::Stream, 1024 * KIB, None),
    cpu(Workload::Rr, 64, Some(256)),
    cpu(Workload::Connect, 64, None),
    t(
        Workload::Pingpong,
        64,
        None,
        "tokio-ours",
        "tokio",
        Metric::P50,
        1.0,
    ),
    ours_vs_tokio(Workload::Stream, 64 * KIB, None),
    ours_vs_tokio(Workload::Rr, 64, Some(256)),
    ours_vs_tokio(Workload::Connect, 64, None),
];

/// The library's tokio path's msgs/s at least tokio's on one workload.
const fn ours_vs_tokio(workload: Workload, msg_size: u64, conns: Option<u64>) -> Target {
    t(
        workload,
        msg_size,
        conns,
        "tokio-ours",
        "tokio",
        Metric::MsgsPerS,
        1.0,
    )
}

/// uring's CPU per message at most epoll's on one workload.
const fn cpu(workload: Workload, msg_size: u64, conns: Option<u64>) -> Target {
    t(
        workload,
        msg_size,
        conns,
        "uring",
        "epoll",
        Metric::CpuPerMsg,
        1.0,
    )
}

const fn t(
    workload: Workload,
    msg_size: u64,
    conns: Option<u64>,
    subject: &'static str,
    baseline: &'static str,
    metric: Metric,
    bound: f64,
) -> Target {
    Target {
        workload,
        msg_size,
        conns,
        subject,
        baseline,
        metric,
        bound,
    }
}

/// The fields of a run that the targets read.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// `unix`, `tcp` or `vsock`.
    pub transport: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// The workload.
    pub workload: Workload,
    /// Message or write size, bytes.
    pub msg_size: u64,
    /// Connections.
    pub conns: u64,
    /// Open-loop rate, if any.
    pub rate: Option<u64>,
    /// Worker threads per side.
    pub workers: u64,
    /// Which repeat.
    pub repeat: u32,
    /// Median latency, µs.
    pub p50_us: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Process CPU per message, µs.
    pub cpu_us_per_msg: f64,
    /// Whether the run went through a proxy (those are judged by issue 11's own targets).
    pub proxied: bool,
}

impl<'a> From<&'a RunResult> for Sample<'a> {
    fn from(r: &'a RunResult) -> Sample<'a> {
        Sample {
            transport: &r.transport,
            backend: &r.backend,
            workload: r.workload,
            msg_size: r.msg_size,
            conns: r.conns,
            rate: r.rate,
            workers: r.workers,
            repeat: r.repeat,
            p50_us: r.p50_us,
            msgs_per_s: r.msgs_per_s,
            cpu_us_per_msg: r.cpu_us_per_msg,
            proxied: r.via.is_some(),
        }
    }
}

impl Target {
    fn matches(&self, r: &Sample<'_>, transport: &str, backend: &str) -> bool {
        r.transport == transport
            && r.backend == backend
            && r.workload == self.workload
            && r.msg_size == self.msg_size
            && r.rate.is_none()
            && !r.proxied
            && r.workers == DEFAULT_WORKERS
            && self.conns.is_none_or(|c| r.conns == c)
    }

    fn value(&self, r: &Sample<'_>) -> f64 {
        match self.metric {
            Metric::P50 => r.p50_us,
            Metric::MsgsPerS => r.msgs_per_s,
            Metric::CpuPerMsg => r.cpu_us_per_msg,
        }
    }

    /// Whether a ratio meets the target.
    pub fn met_by(&self, ratio: f64) -> bool {
        match self.metric {
            Metric::P50 | Metric::CpuPerMsg => ratio <= self.bound,
            Metric::MsgsPerS => ratio >= self.bound,
        }
    }

    /// What the target says, e.g. `stream 64 KiB: uring / epoll msgs/s ≥ 1.5×`.
    pub fn describe(&self) -> String {
        let config = crate::workload::config_label(
            self.workload,
            self.msg_size as usize,
            self.conns.unwrap_or(1) as usize,
            None,
        );
        let (metric, op) = match self.metric {
            Metric::P50 => ("p50", "≤"),
            Metric::MsgsPerS => ("msgs/s", "≥"),
            Metric::CpuPerMsg => ("CPU µs/msg", "≤"),
        };
        format!(
            "{config}: {} / {} {metric} {op} {}×",
            self.subject, self.baseline, self.bound
        )
    }
}

/// One target measured on one transport.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The target.
    pub target: Target,
    /// The transport.
    pub transport: String,
    /// The ratio over repeats; `None` when the run lacks either backend or the config.
    pub ratio: Option<Spread>,
}

/// Every target on every transport in `runs`, paired by repeat.
pub fn evaluate(runs: &[RunResult]) -> Vec<Outcome> {
    evaluate_samples(&runs.iter().map(Sample::from).collect::<Vec<_>>())
}

fn evaluate_samples(runs: &[Sample<'_>]) -> Vec<Outcome> {
    let mut transports: Vec<&str> = runs.iter().map(|r| r.transport).collect();
    transports.sort();
    transports.dedup();
    let mut out = Vec::new();
    for transport in transports {
        for target in TARGETS {
            let of = |backend| {
                runs.iter()
                    .filter(move |r| target.matches(r, transport, backend))
            };
            let ratios: Vec<f64> = of(target.subject)
                .filter_map(|s| {
                    let b = of(target.baseline).find(|b| b.repeat == s.repeat)?;
                    (target.value(b) > 0.0).then(|| target.value(s) / target.value(b))
                })
                .collect();
            out.push(Outcome {
                target: *target,
                transport: transport.to_owned(),
                ratio: (!ratios.is_empty()).then(|| Spread::of(ratios)),
            });
        }
    }
    out
}

/// The targets table in Markdown: target, measured median (range), and the verdict with the
/// gap between the median and the aim.
pub fn write_markdown(w: &mut dyn Write, outcomes: &[Outcome]) -> io::Result<()> {
    writeln!(w, "| target | measured median (min–max) | verdict |")?;
    writeln!(w, "|---|---|---|")?;
    for o in outcomes {
        let (measured, verdict) = match &o.ratio {
            None => ("-".to_owned(), "not measured in this run".to_owned()),
            Some(s) => {
                let measured = format!("{:.2}× ({:.2}×–{:.2}×)", s.median, s.min, s.max);
                let verdict = if o.target.met_by(s.median) {
                    "met".to_owned()
                } else {
                    let gap = (s.median - o.target.bound).abs();
                    match o.target.metric {
                        Metric::P50 | Metric::CpuPerMsg => {
                            format!("missed: {gap:.2}× over the aim")
                        }
                        Metric::MsgsPerS => format!("missed: {gap:.2}× short of the aim"),
                    }
                };
                (measured, verdict)
            }
        };
        writeln!(w, "| {} | {measured} | {verdict} |", o.target.describe())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        backend: &'static str,
        workload: Workload,
        msg_size: u64,
        repeat: u32,
        p50_us: f64,
        msgs_per_s: f64,
    ) -> Sample<'static> {
        Sample {
            transport: "unix",
            backend,
            workload,
            msg_size,
            conns: 1,
            rate: None,
            workers: DEFAULT_WORKERS,
            repeat,
            p50_us,
            msgs_per_s,
            cpu_us_per_msg: p50_us / 2.0,
            proxied: false,
        }
    }

    #[test]
    fn pairs_by_repeat_and_judges_each_direction() {
        let runs = vec![
            run("uring-spin", Workload::Pingpong, 64, 0, 10.0, 0.0),
            run("blocking", Workload::Pingpong, 64, 0, 50.0, 0.0),
            run("uring-spin", Workload::Pingpong, 64, 1, 20.0, 0.0),
            run("blocking", Workload::Pingpong, 64, 1, 40.0, 0.0),
            run("uring", Workload::Stream, 64 * KIB, 0, 0.0, 100.0),
            run("epoll", Workload::Stream, 64 * KIB, 0, 0.0, 80.0),
        ];
        let out = evaluate_samples(&runs);
        let spin = &out[0];
        assert_eq!(spin.target.subject, "uring-spin");
        let s = spin.ratio.as_ref().unwrap();
        assert_eq!((s.min, s.max), (0.2, 0.5));
        assert!(!spin.target.met_by(s.median), "0.35 > 0.3");
        let vs_epoll = &out[3];
        assert_eq!(vs_epoll.target.baseline, "epoll");
        assert_eq!(vs_epoll.ratio.as_ref().unwrap().median, 1.25);
        assert!(
            out[1].ratio.is_none(),
            "no plain uring pingpong in these runs"
        );

        let mut md = Vec::new();
        write_markdown(&mut md, &out).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("| stream 64 KiB: uring / epoll msgs/s ≥ 1.5× | 1.25× (1.25×–1.25×) | missed: 0.25× short of the aim |"), "{md}");
        assert!(
            md.contains(
                "| pingpong 64 B: uring / blocking p50 ≤ 1× | - | not measured in this run |"
            ),
            "{md}"
        );
        assert!(md.contains("| pingpong 64 B: uring-spin / blocking p50 ≤ 0.3× | 0.35× (0.20×–0.50×) | missed: 0.05× over the aim |"), "{md}");
    }

    #[test]
    fn cpu_per_message_is_lower_is_better_and_judged_at_the_default_workers() {
        let mut u = run("uring", Workload::Rr, 64, 0, 0.0, 1.0);
        u.conns = 256;
        u.cpu_us_per_msg = 3.0;
        let mut e = run("epoll", Workload::Rr, 64, 0, 0.0, 1.0);
        e.conns = 256;
        e.cpu_us_per_msg = 4.0;
        // A compare's scaling run at 1 worker is not one of the targets' runs.
        let mut one_worker = u.clone();
        one_worker.workers = 1;
        one_worker.cpu_us_per_msg = 100.0;
        let out = evaluate_samples(&[one_worker, u, e]);
        let cpu = out
            .iter()
            .find(|o| o.target.metric == Metric::CpuPerMsg && o.target.workload == Workload::Rr)
            .expect("an rr CPU target");
        assert_eq!(
            cpu.target.describe(),
            "rr 64 B x256: uring / epoll CPU µs/msg ≤ 1×"
        );
        let ratio = cpu.ratio.expect("measured").median;
        assert_eq!(ratio, 0.75);
        assert!(cpu.target.met_by(ratio));
        assert!(!cpu.target.met_by(1.2));
        let workloads: Vec<Workload> = TARGETS
            .iter()
            .filter(|t| t.metric == Metric::CpuPerMsg)
            .map(|t| t.workload)
            .collect();
        for w in [
            Workload::Pingpong,
            Workload::Stream,
            Workload::Rr,
            Workload::Connect,
        ] {
            assert!(workloads.contains(&w), "a CPU target on {w}");
        }
    }
}
