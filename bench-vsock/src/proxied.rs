//! Runs through a proxy (`--via`) beside direct ones: per configuration and proxy, the
//! medians over repeats of both, the latency the proxy adds, its own CPU per message; and
//! issue 11's targets for our proxy against socat's.

use serde::{Deserialize, Serialize};

use crate::results::RunResult;
use crate::summary::Spread;
use crate::workload::{config_label, Workload, DEFAULT_WORKERS};

/// One backend's configuration through one proxy, beside the same direct (medians over
/// repeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyRow {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// The client's and server's backend.
    pub backend: String,
    /// The configuration label without the proxy, e.g. `pingpong 64 B`.
    pub config: String,
    /// The proxy: `ours` or `socat`.
    pub via: String,
    /// Proxied runs folded in.
    pub repeats: usize,
    /// Direct msgs/s (`null` without direct runs of this configuration).
    pub direct_msgs_per_s: Option<f64>,
    /// Proxied msgs/s.
    pub via_msgs_per_s: f64,
    /// Direct payload GB/s.
    pub direct_gbytes_per_s: Option<f64>,
    /// Proxied payload GB/s.
    pub via_gbytes_per_s: f64,
    /// Direct median latency, µs.
    pub direct_p50_us: Option<f64>,
    /// Proxied median latency, µs.
    pub via_p50_us: f64,
    /// What the proxy adds to the median latency: proxied p50 − direct p50, µs.
    pub added_p50_us: Option<f64>,
    /// Direct CPU per message (both ends), µs.
    pub direct_cpu_us_per_msg: Option<f64>,
    /// Proxied CPU per message: both ends and the proxy process, µs.
    pub via_cpu_us_per_msg: f64,
    /// The proxy process's share of that, µs.
    pub proxy_cpu_us_per_msg: f64,
}

/// What a proxy target compares, ours / socat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMetric {
    /// Payload GB/s through the proxy: higher is better.
    GbytesPerS,
    /// Latency the proxy adds (proxied p50 − direct p50): lower is better.
    AddedP50Us,
    /// Messages per second through the proxy: higher is better.
    MsgsPerS,
}

impl ProxyMetric {
    fn value(self, r: &ProxyRow) -> Option<f64> {
        match self {
            ProxyMetric::GbytesPerS => Some(r.via_gbytes_per_s),
            ProxyMetric::AddedP50Us => r.added_p50_us,
            ProxyMetric::MsgsPerS => Some(r.via_msgs_per_s),
        }
    }

    /// What the table calls it.
    pub fn describe(self) -> &'static str {
        match self {
            ProxyMetric::GbytesPerS => "GB/s",
            ProxyMetric::AddedP50Us => "added p50",
            ProxyMetric::MsgsPerS => "msgs/s",
        }
    }

    fn higher_is_better(self) -> bool {
        !matches!(self, ProxyMetric::AddedP50Us)
    }
}

/// One of issue 11's targets measured: ours / socat on one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyTarget {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// The backend of client and server.
    pub backend: String,
    /// The configuration, e.g. `stream 64 KiB`.
    pub config: String,
    /// The metric.
    pub metric: ProxyMetric,
    /// Ours (median over repeats).
    pub ours: f64,
    /// socat's.
    pub socat: f64,
    /// ours / socat; `null` when socat's value is not positive (an added latency within
    /// the noise).
    pub ratio: Option<f64>,
    /// The aim: the ratio at least this for GB/s and msgs/s, at most for added p50.
    pub bound: f64,
    /// Whether the ratio meets the aim (`null` without a ratio).
    pub met: Option<bool>,
}

/// Issue 11's targets: (workload, size, connections, metric, bound).
const TARGETS: [(Workload, usize, usize, ProxyMetric, f64); 3] = [
    (Workload::Stream, 64 * 1024, 1, ProxyMetric::GbytesPerS, 3.0),
    (Workload::Pingpong, 64, 1, ProxyMetric::AddedP50Us, 0.5),
    (Workload::Rr, 64, 256, ProxyMetric::MsgsPerS, 3.0),
];

fn median(runs: &[&RunResult], f: fn(&RunResult) -> f64) -> f64 {
    Spread::of(runs.iter().map(|r| f(r))).median
}

/// The proxy rows of `runs`, in the order their configurations first ran.
pub fn rows(runs: &[RunResult]) -> Vec<ProxyRow> {
    let mut keys: Vec<(String, String, String, String)> = Vec::new();
    for r in runs {
        if let Some(v) = &r.via {
            let key = (
                r.transport.clone(),
                r.backend.clone(),
                r.direct_label(),
                v.clone(),
            );
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.into_iter()
        .map(|(transport, backend, config, via)| {
            let of = |v: Option<&str>| -> Vec<&RunResult> {
                runs.iter()
                    .filter(|r| {
                        r.transport == transport
                            && r.backend == backend
                            && r.direct_label() == config
                            && r.via.as_deref() == v
                    })
                    .collect()
            };
            let (direct, through) = (of(None), of(Some(&via)));
            let d = |f: fn(&RunResult) -> f64| (!direct.is_empty()).then(|| median(&direct, f));
            let via_p50 = median(&through, |r| r.p50_us);
            let direct_p50 = d(|r| r.p50_us);
            ProxyRow {
                repeats: through.len(),
                direct_msgs_per_s: d(|r| r.msgs_per_s),
                via_msgs_per_s: median(&through, |r| r.msgs_per_s),
                direct_gbytes_per_s: d(|r| r.gbytes_per_s),
                via_gbytes_per_s: median(&through, |r| r.gbytes_per_s),
                direct_p50_us: direct_p50,
                via_p50_us: via_p50,
                added_p50_us: direct_p50.map(|p| via_p50 - p),
                direct_cpu_us_per_msg: d(|r| r.cpu_us_per_msg),
                via_cpu_us_per_msg: median(&through, |r| r.cpu_us_per_msg),
                proxy_cpu_us_per_msg: median(&through, |r| r.proxy_cpu_us_per_msg.unwrap_or(0.0)),
                transport,
                backend,
                config,
                via,
            }
        })
        .collect()
}

/// Issue 11's targets over `rows`, for every transport and backend that ran both proxies
/// on a target's configuration (at the default workers, closed loop).
pub fn targets(rows: &[ProxyRow]) -> Vec<ProxyTarget> {
    let mut out = Vec::new();
    let mut pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.transport.as_str(), r.backend.as_str()))
        .collect();
    pairs.dedup();
    for (transport, backend) in pairs {
        for (workload, size, conns, metric, bound) in TARGETS {
            let config = config_label(workload, size, conns, None);
            debug_assert_eq!(crate::workload::workers_suffix(DEFAULT_WORKERS), "");
            let find = |via: &str| {
                rows.iter().find(|r| {
                    r.transport == transport
                        && r.backend == backend
                        && r.config == config
                        && r.via == via
                })
            };
            let (Some(ours), Some(socat)) = (find("ours"), find("socat")) else {
                continue;
            };
            let (Some(o), Some(s)) = (metric.value(ours), metric.value(socat)) else {
                continue;
            };
            let ratio = (s > 0.0).then(|| o / s);
            out.push(ProxyTarget {
                transport: transport.to_owned(),
                backend: backend.to_owned(),
                config,
                metric,
                ours: o,
                socat: s,
                ratio,
                bound,
                met: ratio.map(|x| {
                    if metric.higher_is_better() {
                        x >= bound
                    } else {
                        x <= bound
                    }
                }),
            });
        }
    }
    out
}

/// How a target reads, e.g. `stream 64 KiB: ours / socat GB/s ≥ 3×`.
pub fn describe(t: &ProxyTarget) -> String {
    let op = if t.metric.higher_is_better() {
        "≥"
    } else {
        "≤"
    };
    format!(
        "{}: ours / socat {} {op} {}×",
        t.config,
        t.metric.describe(),
        t.bound
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workload: Workload, size: u64, conns: u64, via: Option<&str>, v: f64) -> RunResult {
        let mut r: RunResult = serde_json::from_value(serde_json::json!({
            "backend": "uring", "transport": "unix", "workload": workload,
            "msg_size": size, "conns": conns, "workers": DEFAULT_WORKERS, "repeat": 0,
            "rate": null, "local_server": true, "duration_s": 1.0, "messages": 10,
            "payload_bytes": 10, "bytes_verified": 10, "p50_us": v, "p90_us": v,
            "p99_us": v, "p999_us": v, "max_us": v, "mean_us": v, "msgs_per_s": v,
            "gbytes_per_s": v, "cpu_us_per_msg": v, "latency_curve": [],
            "uncorrected": {"count": 0, "p50_us": 0.0, "p90_us": 0.0, "p99_us": 0.0, "p999_us": 0.0,
                            "max_us": 0.0, "mean_us": 0.0, "curve": []}
        }))
        .unwrap();
        r.via = via.map(str::to_owned);
        r.proxy_cpu_us_per_msg = via.map(|_| v / 2.0);
        r
    }

    #[test]
    fn rows_put_each_proxy_beside_direct_and_targets_judge_ours_against_socat() {
        let runs = vec![
            run(Workload::Pingpong, 64, 1, None, 10.0),
            run(Workload::Pingpong, 64, 1, Some("ours"), 12.0),
            run(Workload::Pingpong, 64, 1, Some("socat"), 30.0),
            run(Workload::Stream, 65536, 1, None, 5.0),
            run(Workload::Stream, 65536, 1, Some("ours"), 3.0),
            run(Workload::Stream, 65536, 1, Some("socat"), 1.5),
        ];
        let rows = rows(&runs);
        assert_eq!(rows.len(), 4);
        let ours_pp = &rows[0];
        assert_eq!(
            (ours_pp.config.as_str(), ours_pp.via.as_str()),
            ("pingpong 64 B", "ours")
        );
        assert_eq!(ours_pp.added_p50_us, Some(2.0));
        assert_eq!(ours_pp.direct_p50_us, Some(10.0));
        assert_eq!(ours_pp.proxy_cpu_us_per_msg, 6.0);
        let t = targets(&rows);
        assert_eq!(t.len(), 2, "no rr runs: {t:?}");
        let stream = t
            .iter()
            .find(|t| t.metric == ProxyMetric::GbytesPerS)
            .unwrap();
        assert_eq!(stream.ratio, Some(2.0));
        assert_eq!(stream.met, Some(false), "2× < 3×");
        assert_eq!(describe(stream), "stream 64 KiB: ours / socat GB/s ≥ 3×");
        let pp = t
            .iter()
            .find(|t| t.metric == ProxyMetric::AddedP50Us)
            .unwrap();
        assert_eq!(pp.ratio, Some(0.1), "2 µs added against 20");
        assert_eq!(pp.met, Some(true));
    }
}
