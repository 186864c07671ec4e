//! How closed-loop rr throughput scales from one worker to two, per backend: the runs a
//! compare adds for it, and the figure (msgs/s at 2 workers ÷ at 1), paired by repeat.

use crate::backend::BackendKind;
use crate::results::{RunResult, Scaling};
use crate::summary::Spread;
use crate::workload::{config_label, Workload};

/// The backends a compare measures scaling for: the engine, and epoll for reference.
pub const BACKENDS: [BackendKind; 2] = [BackendKind::Uring, BackendKind::Epoll];
/// Worker counts per side: the figure is the second's msgs/s over the first's.
pub const WORKERS: [u64; 2] = [1, 2];

/// The scaling figures in `runs`: for each transport, closed-loop rr configuration and
/// backend that ran at both worker counts, msgs/s at 2 workers ÷ at 1, per repeat, as
/// median and range.
pub fn scaling(runs: &[RunResult]) -> Vec<Scaling> {
    let [base, more] = WORKERS;
    let rr = |r: &&RunResult| r.workload == Workload::Rr && r.rate.is_none();
    let mut keys: Vec<(&str, u64, u64, &str)> = Vec::new();
    for r in runs.iter().filter(rr) {
        let key = (
            r.transport.as_str(),
            r.msg_size,
            r.conns,
            r.backend.as_str(),
        );
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut out = Vec::new();
    for (transport, size, conns, backend) in keys {
        let of = |workers: u64| {
            runs.iter().filter(rr).filter(move |r| {
                r.transport == transport
                    && r.msg_size == size
                    && r.conns == conns
                    && r.backend == backend
                    && r.workers == workers
            })
        };
        let ratios: Vec<f64> = of(more)
            .filter_map(|m| {
                let b = of(base).find(|b| b.repeat == m.repeat)?;
                (b.msgs_per_s > 0.0).then(|| m.msgs_per_s / b.msgs_per_s)
            })
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let spread = Spread::of(ratios.iter().copied());
        out.push(Scaling {
            transport: transport.to_owned(),
            config: config_label(Workload::Rr, size as usize, conns as usize, None),
            backend: backend.to_owned(),
            workers: more,
            base_workers: base,
            median: spread.median,
            min: spread.min,
            max: spread.max,
            repeats: ratios.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencySummary;

    fn rr(backend: &str, workers: u64, repeat: u32, msgs_per_s: f64) -> RunResult {
        let none = LatencySummary::of(&hdrhistogram::Histogram::new(3).unwrap());
        RunResult {
            backend: backend.into(),
            transport: "unix".into(),
            workload: Workload::Rr,
            msg_size: 64,
            conns: 256,
            workers,
            repeat,
            rate: None,
            local_server: true,
            via: None,
            proxy_cpu_us_per_msg: None,
            vsock_buffer_size: None,
            seqpacket: false,
            duration_s: 1.0,
            messages: msgs_per_s as u64,
            payload_bytes: 0,
            bytes_verified: 1,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            mean_us: 0.0,
            msgs_per_s,
            gbytes_per_s: 0.0,
            cpu_us_per_msg: 0.0,
            harness_gbytes_per_s: None,
            latency_curve: Vec::new(),
            uncorrected: none,
            server: None,
            engine: None,
            hgrm: None,
            histogram: None,
        }
    }

    #[test]
    fn two_workers_over_one_pairs_by_repeat_per_backend() {
        let mut open_loop = rr("uring", 1, 0, 1.0);
        open_loop.rate = Some(1000);
        let runs = vec![
            rr("uring", 2, 0, 300.0),
            rr("uring", 1, 0, 200.0),
            rr("uring", 2, 1, 330.0),
            rr("uring", 1, 1, 150.0),
            rr("epoll", 2, 0, 100.0),
            rr("epoll", 1, 0, 100.0),
            // One worker count only: no figure.
            rr("tokio", 2, 0, 100.0),
            open_loop,
        ];
        let s = scaling(&runs);
        assert_eq!(s.len(), 2, "{s:?}");
        let uring = &s[0];
        assert_eq!(
            (uring.backend.as_str(), uring.config.as_str()),
            ("uring", "rr 64 B x256")
        );
        assert_eq!(
            (uring.workers, uring.base_workers, uring.repeats),
            (2, 1, 2)
        );
        assert_eq!((uring.min, uring.max), (1.5, 2.2));
        assert!((uring.median - 1.85).abs() < 1e-9, "{uring:?}");
        assert_eq!((s[1].backend.as_str(), s[1].median), ("epoll", 1.0));
    }
}
