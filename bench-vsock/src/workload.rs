//! The workloads and one run's full description.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::proxy::Via;
use crate::session::SessionPlan;
use crate::sockets::SocketOpts;
use crate::wire::Mode;

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// One connection, request/response.
    Pingpong,
    /// One-way bulk, client to server (`--conns` streams at once).
    Stream,
    /// One-way bulk, server to client (`stream --reverse`).
    #[serde(rename = "stream-reverse")]
    StreamReverse,
    /// Many connections, request/response, closed or open loop.
    Rr,
    /// Connection setup: connect, one round trip, close.
    Connect,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Pingpong => "pingpong",
            Workload::Stream => "stream",
            Workload::StreamReverse => "stream-reverse",
            Workload::Rr => "rr",
            Workload::Connect => "connect",
        }
    }
}

impl Workload {
    /// Whether it is a one-way bulk stream (either direction).
    pub fn is_stream(self) -> bool {
        matches!(self, Workload::Stream | Workload::StreamReverse)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Until this much time has passed (messages in flight finish, and each connection
    /// completes at least one).
    Time(Duration),
    /// This many messages (connections for `connect`), spread over the connections.
    Count(u64),
}

/// One run: a backend on a workload with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The backend under test (both ends of a local run).
    pub backend: BackendKind,
    /// The workload.
    pub workload: Workload,
    /// Message (or stream write) size in bytes.
    pub size: usize,
    /// Concurrent connections.
    pub conns: usize,
    /// Worker threads per side, for backends that have them.
    pub workers: usize,
    /// Open loop rate over all connections (rr only); `None` is closed loop.
    pub rate: Option<u64>,
    /// How long the measured run lasts.
    pub length: Length,
    /// How long the unmeasured warmup run before it lasts (zero: none).
    pub warmup: Duration,
    /// Which repeat of this configuration (0-based).
    pub repeat: u32,
    /// The proxy between client and server (`--via`); `None` connects directly.
    pub via: Option<Via>,
    /// Socket options of both ends (`--vsock-buffer-size`).
    pub sockets: SocketOpts,
}

impl RunSpec {
    /// The session plan for a run of `length` starting now-ish at `start`.
    pub fn plan(&self, length: Length, start: Instant) -> SessionPlan {
        let (per_total, deadline) = match length {
            Length::Time(d) => (None, Some(start + d)),
            Length::Count(n) => (Some(n), None),
        };
        let conns = self.conns.max(1) as u64;
        let per_conn = per_total.map(|n| n.div_ceil(conns).max(1));
        match self.workload {
            Workload::Pingpong => SessionPlan {
                mode: Mode::Echo,
                size: self.size,
                sessions: 1,
                per_session: per_total,
                deadline,
                interval: None,
                from_connect: false,
            },
            Workload::Stream | Workload::StreamReverse => SessionPlan {
                mode: if self.workload == Workload::Stream {
                    Mode::Sink
                } else {
                    Mode::Source
                },
                size: self.size,
                sessions: conns,
                per_session: per_conn,
                deadline,
                interval: None,
                from_connect: false,
            },
            Workload::Rr => SessionPlan {
                mode: Mode::Echo,
                size: self.size,
                sessions: conns,
                per_session: per_conn,
                deadline,
                interval: self
                    .rate
                    .map(|r| Duration::from_secs_f64(conns as f64 / r as f64)),
                from_connect: false,
            },
            Workload::Connect => SessionPlan {
                mode: Mode::Echo,
                size: self.size,
                sessions: per_total.unwrap_or(u64::MAX),
                per_session: Some(1),
                deadline,
                interval: None,
                from_connect: true,
            },
        }
    }

    /// Connections run at once.
    pub fn slots(&self) -> usize {
        match self.workload {
            Workload::Pingpong => 1,
            Workload::Stream | Workload::StreamReverse | Workload::Rr | Workload::Connect => {
                self.conns.max(1)
            }
        }
    }

    /// The configuration without the backend and repeat, e.g. `rr 64 B x256 @20000/s`, or
    /// `rr 64 B x256 (1 worker)` away from [`DEFAULT_WORKERS`]: runs with the same label are
    /// compared with each other.
    pub fn label(&self) -> String {
        config_label(self.workload, self.size, self.slots(), self.rate)
            + &workers_suffix(self.workers as u64)
            + &via_suffix(self.via.as_ref().map(|v| v.kind.name()))
    }
}

/// Worker threads per side when `--workers` is not given.
pub const DEFAULT_WORKERS: u64 = 2;

/// What a label adds for a run's workers: nothing at [`DEFAULT_WORKERS`], else
/// ` (1 worker)`, ` (4 workers)`, so runs at other counts (a compare's scaling runs) are
/// never folded in with the others.
pub fn workers_suffix(workers: u64) -> String {
    match workers {
        DEFAULT_WORKERS => String::new(),
        1 => " (1 worker)".to_owned(),
        n => format!(" ({n} workers)"),
    }
}

/// What a label adds for a run through a proxy: ` via socat`, ` via ours`; nothing for a
/// direct run. Proxied runs are compared with each other, never folded in with direct ones.
pub fn via_suffix(via: Option<&str>) -> String {
    via.map(|v| format!(" via {v}")).unwrap_or_default()
}

/// A configuration's label, as [`RunSpec::label`] and reports show it.
pub fn config_label(workload: Workload, size: usize, conns: usize, rate: Option<u64>) -> String {
    let mut s = format!("{workload} {}", human_size(size as u64));
    if conns > 1 {
        s.push_str(&format!(" x{conns}"));
    }
    if let Some(r) = rate {
        s.push_str(&format!(" @{r}/s"));
    }
    s
}

/// A byte count as people write it: `64 B`, `4 KiB`, `1 MiB`, `1.5 KiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (scale, unit) in UNITS {
        if n >= scale {
            return if n % scale == 0 {
                format!("{} {unit}", n / scale)
            } else {
                format!("{:.1} {unit}", n as f64 / scale as f64)
            };
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(workload: Workload) -> RunSpec {
        RunSpec {
            backend: BackendKind::Blocking,
            workload,
            size: 64,
            conns: 256,
            workers: 2,
            rate: None,
            length: Length::Count(1000),
            warmup: Duration::ZERO,
            repeat: 0,
            via: None,
            sockets: SocketOpts::default(),
        }
    }

    #[test]
    fn rr_spreads_the_count_and_the_rate_over_connections() {
        let mut s = spec(Workload::Rr);
        s.rate = Some(25_600);
        let plan = s.plan(Length::Count(1000), Instant::now());
        assert_eq!(plan.sessions, 256);
        assert_eq!(plan.per_session, Some(4));
        assert_eq!(plan.interval, Some(Duration::from_millis(10)));
        assert_eq!(s.slots(), 256);
        assert_eq!(s.label(), "rr 64 B x256 @25600/s");
        s.workers = 1;
        assert_eq!(s.label(), "rr 64 B x256 @25600/s (1 worker)");
        s.workers = 4;
        assert!(s.label().ends_with(" (4 workers)"));
    }

    #[test]
    fn single_connection_workloads_ignore_conns() {
        let s = spec(Workload::Pingpong);
        assert_eq!(s.slots(), 1);
        assert_eq!(s.plan(Length::Count(10), Instant::now()).sessions, 1);
        assert_eq!(s.label(), "pingpong 64 B");
        let c = spec(Workload::Connect);
        let plan = c.plan(Length::Count(10), Instant::now());
        assert_eq!((plan.sessions, plan.per_session), (10, Some(1)));
        assert!(plan.from_connect);
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_size(64), "64 B");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(1 << 20), "1 MiB");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
