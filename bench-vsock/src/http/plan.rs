//! `bench-vsock http`'s options turned into the runs to make: defaults, limits, the
//! transport (vsock refused without the loopback transport, before anything connects) and
//! the interleaved order of the repeats.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::HttpArgs;
use crate::error::Result;
use crate::limits::{self, MAX_CONNS, MAX_REPEAT, MAX_WORKERS};
use crate::transport::{self, local_listen, Transport};
use crate::workload::{human_size, workers_suffix, Length, DEFAULT_WORKERS};

use super::kinds::{Proto, ServerKind};

/// One configuration: what every server is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The HTTP version.
    pub proto: Proto,
    /// Response body, bytes.
    pub body: usize,
    /// Keep-alive connections.
    pub conns: usize,
    /// Open loop: requests per second over all connections; `None` for closed loop.
    pub rate: Option<u64>,
}

/// A configuration's label, e.g. `h1 64 B x256 @10000/s`, with ` (1 worker)` away from the
/// default workers: runs with the same label are compared.
pub fn label(proto: &str, body: u64, conns: u64, rate: Option<u64>, workers: u64) -> String {
    let mut s = format!("{proto} {} x{conns}", human_size(body));
    if let Some(r) = rate {
        s.push_str(&format!(" @{r}/s"));
    }
    s + &workers_suffix(workers)
}

/// One run: a server on a configuration, in one repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The server.
    pub server: ServerKind,
    /// The configuration.
    pub config: Config,
    /// Which repeat (0-based).
    pub repeat: u32,
}

/// What `http` runs, and where its report goes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The servers' transport.
    pub transport: Transport,
    /// The runs, in the order to make them.
    pub specs: Vec<Spec>,
    /// Worker threads of each server and of the load generator.
    pub workers: usize,
    /// How long each run measures.
    pub length: Length,
    /// Unmeasured requests before each run measures.
    pub warmup: Duration,
    /// The JSON report file.
    pub json: Option<PathBuf>,
    /// Lines for the user before running (the transport's choice).
    pub notes: Vec<String>,
}

const KIB: usize = 1024;

/// The plan for `args`.
///
/// # Errors
///
/// Counts past their [`limits`] (named by their option; the parsers check them too, this
/// covers [`HttpArgs`] made in code), empty lists, bodies past the service's largest, or a
/// vsock run without the loopback transport.
pub fn plan(args: &HttpArgs) -> Result<Plan> {
    let mut notes = Vec::new();
    let transport = match args.transport {
        Some(t) => t,
        None => {
            let (t, why) = transport::default_transport();
            notes.push(why);
            t
        }
    };
    // As compare: a vsock server needs the loopback transport, checked here, so nothing
    // ever connects on AF_VSOCK without it.
    local_listen(transport)?;
    let servers = args
        .servers
        .as_ref()
        .map_or_else(|| ServerKind::ALL.to_vec(), |l| l.0.clone());
    let protos = args
        .proto
        .as_ref()
        .map_or_else(|| Proto::ALL.to_vec(), |l| l.0.clone());
    let conns = args
        .conns
        .as_ref()
        .map_or_else(|| vec![1, 256], |l| l.0.clone());
    let bodies = args
        .bodies
        .as_ref()
        .map_or_else(|| vec![64, 64 * KIB], |l| l.0.clone());
    for (flag, empty) in [
        ("--servers", servers.is_empty()),
        ("--proto", protos.is_empty()),
        ("--conns", conns.is_empty()),
        ("--bodies", bodies.is_empty()),
    ] {
        if empty {
            return Err(crate::Error::new(format!("{flag}: an empty list")));
        }
    }
    for &c in &conns {
        limits::within("--conns", c, 1, MAX_CONNS, "connections")?;
    }
    for &b in &bodies {
        limits::within(
            "--bodies",
            b as u64,
            1,
            super::service::MAX_BODY as u64,
            "bytes",
        )?;
    }
    let workers = args.workers.unwrap_or(DEFAULT_WORKERS);
    limits::within("--workers", workers, 1, MAX_WORKERS, "workers")?;
    let repeats = args.repeat.unwrap_or(if args.quick { 3 } else { 5 });
    limits::within("--repeat", repeats, 1, MAX_REPEAT, "repeats")?;
    if let Some(r) = args.rate {
        limits::within("--rate", r, 1, u64::MAX, "requests per second")?;
    }
    if let Some(n) = args.count {
        limits::within("--count", n, 1, u64::MAX, "requests")?;
    }
    let most = conns.iter().copied().max().unwrap_or(1);
    limits::ensure_fds(limits::fds_needed(most, workers, 2), most)?;
    let (duration, warmup) = if args.quick {
        (Duration::from_millis(500), Duration::from_millis(100))
    } else {
        (Duration::from_secs(2), Duration::from_millis(500))
    };
    let length = match args.count {
        Some(n) => Length::Count(n),
        None => Length::Time(args.duration.unwrap_or(duration)),
    };
    let mut configs = Vec::new();
    for &proto in &protos {
        for &body in &bodies {
            for &c in &conns {
                for rate in std::iter::once(None).chain(args.rate.map(Some)) {
                    configs.push(Config {
                        proto,
                        body,
                        conns: c as usize,
                        rate,
                    });
                }
            }
        }
    }
    let mut specs = Vec::new();
    for repeat in 0..repeats as u32 {
        // Rotating the server order each repeat spreads slow drift of the machine over all
        // servers instead of charging one.
        let mut order = servers.clone();
        let n = order.len();
        order.rotate_left(repeat as usize % n);
        for &config in &configs {
            for &server in &order {
                specs.push(Spec {
                    server,
                    config,
                    repeat,
                });
            }
        }
    }
    Ok(Plan {
        transport,
        specs,
        workers: workers as usize,
        length,
        warmup: args.warmup.unwrap_or(warmup),
        json: args.json.clone(),
        notes,
    })
}

impl Plan {
    /// Roughly how long the runs take, when they are timed.
    pub fn estimate(&self) -> Option<Duration> {
        match self.length {
            Length::Time(d) => Some((d + self.warmup) * self.specs.len() as u32),
            Length::Count(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{ConnsList, ProtoList, ServerList};

    fn unix() -> HttpArgs {
        HttpArgs {
            transport: Some(Transport::Unix),
            ..HttpArgs::default()
        }
    }

    #[test]
    fn the_default_plan_covers_every_server_proto_body_and_count_interleaved() {
        let p = plan(&unix()).unwrap();
        // 3 servers x 2 protos x 2 bodies x 2 connection counts, 5 repeats.
        assert_eq!(p.specs.len(), 3 * 2 * 2 * 2 * 5);
        assert_eq!(p.length, Length::Time(Duration::from_secs(2)));
        assert_eq!(p.workers, 2);
        assert_eq!(p.specs[0].server, ServerKind::Engine);
        assert_eq!(p.specs[1].server, ServerKind::TokioOurs);
        // The second repeat starts with the next server.
        assert_eq!(p.specs[24].server, ServerKind::TokioOurs);
        assert!(p.specs.iter().all(|s| s.config.rate.is_none()));
        assert_eq!(p.estimate(), Some(Duration::from_millis(2500) * 120));
    }

    #[test]
    fn rate_adds_open_loop_runs_and_lists_narrow_the_plan() {
        let mut a = unix();
        a.quick = true;
        a.rate = Some(1000);
        a.servers = Some(ServerList(vec![ServerKind::Engine]));
        a.proto = Some(ProtoList(vec![Proto::H2]));
        a.conns = Some(ConnsList(vec![4]));
        let p = plan(&a).unwrap();
        let rates: Vec<Option<u64>> = p.specs.iter().map(|s| s.config.rate).collect();
        // 2 bodies x (closed, open) x 3 repeats.
        assert_eq!(rates.len(), 12);
        assert_eq!(rates.iter().filter(|r| r.is_some()).count(), 6);
        assert!(p.specs.iter().all(|s| s.config.proto == Proto::H2));
        assert_eq!(label("h2", 65536, 4, Some(1000), 2), "h2 64 KiB x4 @1000/s");
        assert_eq!(label("h1", 64, 1, None, 1), "h1 64 B x1 (1 worker)");
    }

    #[test]
    fn values_past_their_limits_name_the_option() {
        let mut a = unix();
        a.conns = Some(ConnsList(vec![1, 5000]));
        let e = plan(&a).unwrap_err();
        assert!(e.message().starts_with("--conns 5000"), "{e}");
        let mut a = unix();
        a.workers = Some(0);
        assert!(plan(&a).unwrap_err().message().starts_with("--workers 0"));
        let mut a = unix();
        a.repeat = Some(1001);
        assert!(plan(&a).unwrap_err().message().starts_with("--repeat 1001"));
        let mut a = unix();
        a.bodies = Some(crate::cli::SizeList(vec![17 << 20]));
        assert!(plan(&a).unwrap_err().message().starts_with("--bodies"));
        let mut a = unix();
        a.servers = Some(ServerList(vec![]));
        assert!(plan(&a).unwrap_err().message().starts_with("--servers"));
        let mut a = unix();
        a.rate = Some(0);
        assert!(plan(&a).unwrap_err().message().starts_with("--rate 0"));
    }

    // Sends nothing: on a host without the loopback transport the plan itself refuses.
    #[test]
    fn a_vsock_plan_needs_the_loopback_transport() {
        let mut a = unix();
        a.transport = Some(Transport::Vsock);
        match plan(&a) {
            Ok(p) => assert!(uring_vsock::loopback_available(), "{p:?}"),
            Err(e) => {
                assert!(!uring_vsock::loopback_available());
                assert!(e.message().contains("vsock loopback transport"), "{e}");
            }
        }
    }
}
