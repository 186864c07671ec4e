//! The results of runs: one type read by the progress line, the table, and every exporter.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::counters::EngineReport;
use crate::latency::{CurvePoint, LatencySummary};
use crate::machine::Machine;
use crate::proxied::{ProxyRow, ProxyTarget};
use crate::session::ServerCounts;
use crate::workload::{config_label, via_suffix, workers_suffix, Workload};

/// The result of one measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Backend name (`uring`, `uring-spin`, `epoll`, `blocking`, `tokio`).
    pub backend: String,
    /// `unix`, `tcp`, `vsock`, or `hybrid` (a VMM's unix socket to a guest's vsock).
    pub transport: String,
    /// The workload.
    pub workload: Workload,
    /// Message or write size, bytes.
    pub msg_size: u64,
    /// Concurrent connections.
    pub conns: u64,
    /// Worker threads per side.
    pub workers: u64,
    /// Which repeat (0-based).
    pub repeat: u32,
    /// Open-loop rate in messages/s, or `null` for closed loop.
    pub rate: Option<u64>,
    /// Whether the server ran in this process (its CPU time is then in `cpu_us_per_msg`).
    pub local_server: bool,
    /// The proxy between client and server (`ours`, `socat`); `null` for a direct run.
    #[serde(default)]
    pub via: Option<String>,
    /// Through a proxy: the proxy process's CPU time per message, µs (also counted in
    /// `cpu_us_per_msg`); `null` for a direct run.
    #[serde(default)]
    pub proxy_cpu_us_per_msg: Option<f64>,
    /// `SO_VM_SOCKETS_BUFFER_SIZE` set on both ends' sockets (`--vsock-buffer-size`), bytes;
    /// `null` for the kernel's default.
    #[serde(default)]
    pub vsock_buffer_size: Option<u64>,
    /// Whether the connections were `SOCK_SEQPACKET` ones (`--seqpacket`), each request
    /// and echo one message.
    #[serde(default)]
    pub seqpacket: bool,
    /// Measured time, s.
    pub duration_s: f64,
    /// Messages completed (round trips, writes, or connections).
    pub messages: u64,
    /// Application payload bytes moved, both directions.
    pub payload_bytes: u64,
    /// Payload bytes checked against the pattern.
    pub bytes_verified: u64,
    /// Latency percentiles, µs (from the intended send time: corrected in open loop).
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
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Payload GB/s (10^9 bytes).
    pub gbytes_per_s: f64,
    /// Process CPU time (user + system) per message, µs.
    pub cpu_us_per_msg: f64,
    /// Stream runs: payload GB/s of the harness's own work per byte (making each frame and
    /// checking it) on one thread with no socket, measured after the run; `null` for the
    /// other workloads.
    #[serde(default)]
    pub harness_gbytes_per_s: Option<f64>,
    /// The latency-percentile curve, µs.
    pub latency_curve: Vec<CurvePoint>,
    /// The same latencies measured from the actual send time (differs in open loop).
    pub uncorrected: LatencySummary,
    /// What the local server counted over the measured phase (`null` against a remote
    /// server): its own view, to check the client's counts against.
    #[serde(default)]
    pub server: Option<ServerCounts>,
    /// uring backends: the engines' counters over the measured phase (both ends' engines of
    /// a local run added) and per message; `null` for the other backends.
    #[serde(default)]
    pub engine: Option<EngineReport>,
    /// The `.hgrm` file of this run, relative to the report's folder, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hgrm: Option<String>,
    /// The latency histogram (ns), for `.hgrm` files; not in JSON.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl RunResult {
    /// The configuration label: runs with the same one are compared.
    pub fn label(&self) -> String {
        self.direct_label() + &via_suffix(self.via.as_deref())
    }

    /// The label without the proxy: the direct configuration a proxied run is set beside.
    pub fn direct_label(&self) -> String {
        config_label(
            self.workload,
            self.msg_size as usize,
            self.conns as usize,
            self.rate,
        ) + &workers_suffix(self.workers)
    }

    /// A file-name-safe id: `000-blocking-pingpong-64-r0`.
    pub fn file_id(&self, index: usize) -> String {
        let mut id = format!(
            "{index:03}-{}-{}-{}-{}",
            self.transport, self.backend, self.workload, self.msg_size
        );
        if self.conns > 1 {
            id.push_str(&format!("-c{}", self.conns));
        }
        if let Some(r) = self.rate {
            id.push_str(&format!("-rate{r}"));
        }
        if let Some(v) = &self.via {
            id.push_str(&format!("-via-{v}"));
        }
        id.push_str(&format!("-r{}", self.repeat));
        id
    }
}

/// A backend-vs-backend ratio over the repeats of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// The configuration label, e.g. `rr 64 B x256`.
    pub config: String,
    /// The backend measured (e.g. `uring`).
    pub subject: String,
    /// The backend it is measured against (e.g. `blocking`).
    pub baseline: String,
    /// `msgs_per_s` (higher is better), `p99_us` or `cpu_us_per_msg` (lower is better).
    pub metric: String,
    /// Median over repeats of subject / baseline, pairing runs of the same repeat.
    pub median: f64,
    /// Smallest per-repeat ratio.
    pub min: f64,
    /// Largest per-repeat ratio.
    pub max: f64,
    /// Repeats paired.
    pub repeats: usize,
}

/// The version of the JSON report's layout (`schema/report.schema.json`): 2 added the
/// `tokio-ours` backend, proxied runs (`via`, `proxy_cpu_us_per_msg`) and the `proxy` and
/// `proxy_targets` tables; 3 added runs' `vsock_buffer_size` and `seqpacket`. A report without the field is
/// version 1.
pub const SCHEMA_VERSION: u32 = 3;

fn version_1() -> u32 {
    1
}

/// A whole report: what `--json` writes and `report` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The layout's version, [`SCHEMA_VERSION`] when written.
    #[serde(default = "version_1")]
    pub schema_version: u32,
    /// The tool and its version.
    pub tool: String,
    /// The command line that made it.
    pub command: String,
    /// Seconds since the Unix epoch when it started.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// Every measured run, in the order run.
    pub runs: Vec<RunResult>,
    /// Ratios between backends (compare only).
    #[serde(default)]
    pub ratios: Vec<Ratio>,
    /// How rr throughput scales from 1 to 2 workers, per backend (compare only).
    #[serde(default)]
    pub scaling: Vec<Scaling>,
    /// Proxied runs beside direct ones (runs with `--via`).
    #[serde(default)]
    pub proxy: Vec<ProxyRow>,
    /// Issue 11's targets, our proxy against socat (runs with `--via ours,socat`).
    #[serde(default)]
    pub proxy_targets: Vec<ProxyTarget>,
}

/// How a backend's closed-loop rr throughput scales with workers: msgs/s at `workers`
/// divided by msgs/s at `base_workers`, over the repeats of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// `unix`, `tcp` or `vsock`.
    pub transport: String,
    /// The configuration, without workers, e.g. `rr 64 B x256`.
    pub config: String,
    /// Backend name.
    pub backend: String,
    /// Workers per side of the numerator (2).
    pub workers: u64,
    /// Workers per side of the denominator (1).
    pub base_workers: u64,
    /// Median over repeats of the msgs/s ratio, pairing runs of the same repeat.
    pub median: f64,
    /// Smallest per-repeat ratio.
    pub min: f64,
    /// Largest per-repeat ratio.
    pub max: f64,
    /// Repeats paired.
    pub repeats: usize,
}

impl Report {
    /// An empty report for this command line, on this machine.
    pub fn new(command: String) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("bench-vsock {}", env!("CARGO_PKG_VERSION")),
            command,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: Machine::current(),
            runs: Vec::new(),
            ratios: Vec::new(),
            scaling: Vec::new(),
            proxy: Vec::new(),
            proxy_targets: Vec::new(),
        }
    }
}
