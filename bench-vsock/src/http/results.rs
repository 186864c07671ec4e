//! The results of `bench-vsock http`: one [`HttpRun`] per measured run and the
//! [`HttpReport`] that `--json` writes and `bench-vsock report` reads (marked by its
//! `kind`, so compare reports, which have none, still read as they did).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::latency::{CurvePoint, LatencySummary};
use crate::machine::Machine;
use crate::results::Ratio;

use super::plan::label;
use super::summary::HttpSummary;
use super::targets::HttpOutcome;

/// The `kind` of an http report.
pub const KIND: &str = "http";

/// The version of the http report's layout.
pub const HTTP_SCHEMA_VERSION: u32 = 1;

/// One measured run: a server on a configuration, in one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpRun {
    /// `engine`, `tokio-ours` or `tokio`.
    pub server: String,
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// `h1` (HTTP/1.1 keep-alive) or `h2` (HTTP/2, prior knowledge).
    pub proto: String,
    /// Response body, bytes.
    pub body_bytes: u64,
    /// Keep-alive connections, one request at a time on each.
    pub conns: u64,
    /// Worker threads of the server and of the load generator.
    pub workers: u64,
    /// Which repeat (0-based).
    pub repeat: u32,
    /// Open-loop rate in requests/s over all connections, or `null` for closed loop.
    pub rate: Option<u64>,
    /// Measured time, s.
    pub duration_s: f64,
    /// Requests answered and verified in the measured phase.
    pub requests: u64,
    /// Responses whose status, length and every body byte were checked: all of them (a
    /// response that fails a check fails the run).
    pub responses_verified: u64,
    /// Body bytes checked against the pattern.
    pub bytes_verified: u64,
    /// Connections the server ended with an error (hyper's), over the whole run.
    pub server_errors: u64,
    /// The first of those errors, as the server saw it; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_error: Option<String>,
    /// Requests per second.
    pub req_per_s: f64,
    /// Body GB/s (10^9 bytes).
    pub gbytes_per_s: f64,
    /// Latency percentiles, µs, from the intended send time (corrected in open loop).
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// The server's CPU time (process CPU minus the load generator's threads) per request,
    /// µs.
    pub server_cpu_us_per_req: f64,
    /// The load generator's CPU time (its engine's worker threads) per request, µs.
    pub client_cpu_us_per_req: f64,
    /// The load generator's CPU time over the measured wall time: 1.0 is one core busy; at
    /// `workers` it would be the bottleneck.
    pub client_cpu_cores: f64,
    /// The latency-percentile curve, µs.
    pub latency_curve: Vec<CurvePoint>,
    /// The same latencies from the actual send time (differs in open loop).
    pub uncorrected: LatencySummary,
    /// The latency histogram (ns); not in JSON.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl HttpRun {
    /// The configuration label: runs with the same one are compared.
    pub fn label(&self) -> String {
        label(
            &self.proto,
            self.body_bytes,
            self.conns,
            self.rate,
            self.workers,
        )
    }
}

/// A whole http report: what `http --json` writes and `report` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpReport {
    /// Always [`KIND`]: tells an http report from a compare one.
    pub kind: String,
    /// The layout's version, [`HTTP_SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// The tool and its version.
    pub tool: String,
    /// The command line that made it.
    pub command: String,
    /// Seconds since the Unix epoch when it started.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// Medians over repeats, one per server and configuration.
    #[serde(default)]
    pub summaries: Vec<HttpSummary>,
    /// engine / tokio-ours and engine / tokio, paired by repeat.
    #[serde(default)]
    pub ratios: Vec<Ratio>,
    /// The targets, judged on the medians of the paired ratios.
    #[serde(default)]
    pub targets: Vec<HttpOutcome>,
    /// Every measured run (each repeat), in the order run.
    pub runs: Vec<HttpRun>,
}

impl HttpReport {
    /// A report of `runs` for this command line, on this machine, with its medians,
    /// ratios and targets.
    pub fn new(command: String, started_unix: u64, runs: Vec<HttpRun>) -> HttpReport {
        let summaries = super::summary::summarize(&runs);
        let ratios = super::summary::ratios(&runs);
        let targets = super::targets::evaluate(&runs);
        HttpReport {
            kind: KIND.to_owned(),
            schema_version: HTTP_SCHEMA_VERSION,
            tool: format!("bench-vsock {}", env!("CARGO_PKG_VERSION")),
            command,
            started_unix,
            machine: Machine::current(),
            summaries,
            ratios,
            targets,
            runs,
        }
    }

    /// The transports of its runs, joined: `unix`, or `empty`.
    pub fn transport(&self) -> String {
        let mut ts: Vec<&str> = self.runs.iter().map(|r| r.transport.as_str()).collect();
        ts.dedup();
        if ts.is_empty() {
            "empty".to_owned()
        } else {
            ts.join("+")
        }
    }
}
