//! Repeats of one server on one configuration folded into medians and spreads, and the
//! engine's ratios to the other servers, paired by repeat.

use serde::{Deserialize, Serialize};

use crate::results::Ratio;
use crate::summary::Spread;

use super::kinds::ServerKind;
use super::results::HttpRun;

/// One server on one configuration, over its repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpSummary {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// The configuration label, e.g. `h1 64 B x256`.
    pub config: String,
    /// The server.
    pub server: String,
    /// `h1` or `h2`.
    pub proto: String,
    /// Response body, bytes.
    pub body_bytes: u64,
    /// Connections.
    pub conns: u64,
    /// Open-loop rate, or `null` for closed loop.
    pub rate: Option<u64>,
    /// Worker threads of the server and the load generator.
    pub workers: u64,
    /// Runs folded in.
    pub repeats: usize,
    /// Requests per second.
    pub req_per_s: Spread,
    /// Median latency, µs.
    pub p50_us: Spread,
    /// 99th percentile, µs.
    pub p99_us: Spread,
    /// 99.9th percentile, µs.
    pub p999_us: Spread,
    /// Server CPU per request, µs.
    pub server_cpu_us_per_req: Spread,
    /// Load generator CPU per request, µs.
    pub client_cpu_us_per_req: Spread,
    /// Load generator CPU over wall time, cores.
    pub client_cpu_cores: Spread,
    /// Responses verified, summed over repeats.
    pub responses_verified: u64,
    /// Server connection errors, summed over repeats.
    pub server_errors: u64,
}

/// The runs' (transport, label, server) groups in first-seen order.
fn groups(runs: &[HttpRun]) -> Vec<(String, String, String)> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in runs {
        let k = (r.transport.clone(), r.label(), r.server.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// Every server on every configuration, over its repeats, in the order first run.
pub fn summarize(runs: &[HttpRun]) -> Vec<HttpSummary> {
    groups(runs)
        .into_iter()
        .map(|(transport, config, server)| {
            let of: Vec<&HttpRun> = runs
                .iter()
                .filter(|r| r.transport == transport && r.label() == config && r.server == server)
                .collect();
            let first = of[0];
            let spread = |f: fn(&HttpRun) -> f64| Spread::of(of.iter().map(|r| f(r)));
            HttpSummary {
                proto: first.proto.clone(),
                body_bytes: first.body_bytes,
                conns: first.conns,
                rate: first.rate,
                workers: first.workers,
                repeats: of.len(),
                req_per_s: spread(|r| r.req_per_s),
                p50_us: spread(|r| r.p50_us),
                p99_us: spread(|r| r.p99_us),
                p999_us: spread(|r| r.p999_us),
                server_cpu_us_per_req: spread(|r| r.server_cpu_us_per_req),
                client_cpu_us_per_req: spread(|r| r.client_cpu_us_per_req),
                client_cpu_cores: spread(|r| r.client_cpu_cores),
                responses_verified: of.iter().map(|r| r.responses_verified).sum(),
                server_errors: of.iter().map(|r| r.server_errors).sum(),
                transport,
                config,
                server,
            }
        })
        .collect()
}

/// A run's value of one metric.
pub type MetricOf = fn(&HttpRun) -> f64;

/// The metrics a ratio is taken of: requests/s (higher is better), p99 and server CPU per
/// request (lower is better).
pub const METRICS: [(&str, MetricOf); 3] = [
    ("req_per_s", |r| r.req_per_s),
    ("p99_us", |r| r.p99_us),
    ("server_cpu_us_per_req", |r| r.server_cpu_us_per_req),
];

/// The ratio of `subject`'s `metric` to `baseline`'s on one configuration, paired by
/// repeat; `None` when no repeat has both.
pub fn paired(
    runs: &[HttpRun],
    transport: &str,
    config: &str,
    subject: &str,
    baseline: &str,
    metric: MetricOf,
) -> Option<(Spread, usize)> {
    let of = |server: &str| -> Vec<&HttpRun> {
        runs.iter()
            .filter(|r| r.transport == transport && r.server == server && r.label() == config)
            .collect()
    };
    let base = of(baseline);
    let values: Vec<f64> = of(subject)
        .into_iter()
        .filter_map(|s| {
            let b = base.iter().find(|b| b.repeat == s.repeat)?;
            (metric(b) > 0.0).then(|| metric(s) / metric(b))
        })
        .collect();
    (!values.is_empty()).then(|| (Spread::of(values.iter().copied()), values.len()))
}

/// The engine against tokio-ours and tokio on every configuration that has both.
pub fn ratios(runs: &[HttpRun]) -> Vec<Ratio> {
    let mut configs: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.transport.clone(), r.label());
        if !configs.contains(&k) {
            configs.push(k);
        }
    }
    let subject = ServerKind::Engine.name();
    let mut out = Vec::new();
    for (transport, config) in &configs {
        for baseline in [ServerKind::TokioOurs.name(), ServerKind::Tokio.name()] {
            for (metric, f) in METRICS {
                if let Some((s, n)) = paired(runs, transport, config, subject, baseline, f) {
                    out.push(Ratio {
                        transport: transport.clone(),
                        config: config.clone(),
                        subject: subject.to_owned(),
                        baseline: baseline.to_owned(),
                        metric: metric.to_owned(),
                        median: s.median,
                        min: s.min,
                        max: s.max,
                        repeats: n,
                    });
                }
            }
        }
    }
    out
}
