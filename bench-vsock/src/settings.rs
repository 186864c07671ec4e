//! Turns command-line options into the runs to make: defaults, the target, the backends,
//! and the interleaved order of a compare.

use std::path::PathBuf;
use std::time::Duration;

use uring_vsock::Endpoint;

use crate::backend::{self, BackendKind};
use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::limits::{self, MAX_CONNS, MAX_REPEAT, MAX_WORKERS};
use crate::proxy::{ProxyKind, Via};
use crate::runner::Target;
use crate::scaling::{BACKENDS as SCALING_BACKENDS, WORKERS as SCALING_WORKERS};
use crate::sockets::{SocketOpts, MAX_SEQPACKET_MESSAGE, MAX_VSOCK_BUFFER, MIN_VSOCK_BUFFER};
use crate::transport::{self, local_listen, require_loopback};
use crate::workload::{Length, RunSpec, Workload, DEFAULT_WORKERS};

/// What to run and where to put the results.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the server is.
    pub target: Target,
    /// The runs, in the order to make them.
    pub specs: Vec<RunSpec>,
    /// Whether this is a compare (summaries and ratios).
    pub compare: bool,
    /// The results folder.
    pub out: PathBuf,
    /// An extra path for the JSON report.
    pub json: Option<PathBuf>,
    /// Lines to tell the user before running (transport choice, missing backends).
    pub notes: Vec<String>,
}

/// What a command runs: one workload, or the compare suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// One workload over the sizes and backends.
    One(Workload),
    /// Every workload and backend, interleaved.
    Compare,
}

const KIB: usize = 1024;

fn target(args: &RunArgs, notes: &mut Vec<String>) -> Result<Target> {
    if let Some(ep) = &args.connect {
        if args.listen.is_some() || args.transport.is_some() {
            return Err(Error::new(
                "--connect runs against a remote server: it cannot be combined with --listen or --transport",
            ));
        }
        return Ok(Target::Remote(ep.clone()));
    }
    if let Some(ep) = &args.listen {
        if ep.is_vsock() {
            require_loopback()?;
        }
        return Ok(Target::Local(ep.clone()));
    }
    let t = match args.transport {
        Some(t) => t,
        None => {
            let (t, why) = transport::default_transport();
            notes.push(why);
            t
        }
    };
    Ok(Target::Local(local_listen(t)?))
}

/// The socket options of both ends, refused where they do not apply.
fn sockets(args: &RunArgs, target: &Target) -> Result<SocketOpts> {
    let ep = match target {
        Target::Local(ep) | Target::Remote(ep) => ep,
    };
    if let Some(n) = args.vsock_buffer_size {
        limits::within(
            "--vsock-buffer-size",
            n,
            MIN_VSOCK_BUFFER,
            MAX_VSOCK_BUFFER,
            "bytes",
        )?;
        if !ep.is_vsock() {
            return Err(Error::new(format!(
                "--vsock-buffer-size sets a vsock socket option, but this run's server is on {} \
                 ({ep}): use --transport vsock, or a vsock --listen or --connect",
                transport::report_name(ep)
            )));
        }
    }
    if args.seqpacket {
        let unix_or_vsock = matches!(
            ep,
            Endpoint::Vsock(_) | Endpoint::Unix(_) | Endpoint::UnixAbstract(_)
        );
        if !unix_or_vsock {
            return Err(Error::new(format!(
                "--seqpacket needs a unix or vsock endpoint: {} ({ep}) has no SOCK_SEQPACKET",
                transport::report_name(ep)
            )));
        }
        if args.via.is_some() {
            return Err(Error::new(
                "--seqpacket cannot be combined with --via: the proxies forward streams",
            ));
        }
        if let Some(big) = args
            .sizes
            .as_ref()
            .and_then(|s| s.0.iter().find(|&&n| n > MAX_SEQPACKET_MESSAGE))
        {
            return Err(Error::new(format!(
                "--seqpacket messages are at most 64 KiB (one receive buffer of every \
                 backend): --sizes has {}",
                crate::workload::human_size(*big as u64)
            )));
        }
    }
    Ok(SocketOpts {
        vsock_buffer: args.vsock_buffer_size,
        seqpacket: args.seqpacket,
    })
}

/// A `--seqpacket` run's configurations: pingpong and rr only (a stream has no messages, a
/// connect run measures setup), within [`MAX_SEQPACKET_MESSAGE`]. A single workload that
/// is neither is refused; a compare leaves the rest out and says so.
fn seqpacket_configs(
    suite: Suite,
    configs: Vec<Config>,
    notes: &mut Vec<String>,
) -> Result<Vec<Config>> {
    if let Suite::One(w) = suite {
        if !matches!(w, Workload::Pingpong | Workload::Rr) {
            return Err(Error::new(format!(
                "--seqpacket applies to pingpong and rr (one message per request), not {w}"
            )));
        }
    }
    let (keep, left): (Vec<Config>, Vec<Config>) = configs.into_iter().partition(|c| {
        matches!(c.0, Workload::Pingpong | Workload::Rr) && c.1 <= MAX_SEQPACKET_MESSAGE
    });
    if !left.is_empty() {
        notes.push(format!(
            "seqpacket: running pingpong and rr with messages up to 64 KiB; left out: {}",
            left.iter()
                .map(|c| crate::workload::config_label(c.0, c.1, c.2, c.3))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(keep)
}

fn backends(args: &RunArgs, notes: &mut Vec<String>) -> Result<Vec<BackendKind>> {
    let opts = SocketOpts {
        seqpacket: args.seqpacket,
        ..SocketOpts::default()
    };
    if let Some(list) = &args.backends {
        for &k in &list.0 {
            backend::open(k, opts)?;
        }
        return Ok(list.0.clone());
    }
    let (have, missing): (Vec<BackendKind>, Vec<BackendKind>) = BackendKind::ALL
        .into_iter()
        .filter(|k| k.in_default_run())
        .partition(|k| k.available());
    let (have, plain): (Vec<BackendKind>, Vec<BackendKind>) = have
        .into_iter()
        .partition(|k| !args.seqpacket || k.has_seqpacket());
    if !plain.is_empty() {
        let names: Vec<&str> = plain.iter().map(|k| k.name()).collect();
        notes.push(format!(
            "seqpacket: skipping backends without seqpacket sockets: {}",
            names.join(", ")
        ));
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|k| k.name()).collect();
        notes.push(format!(
            "backends not in this build (their library path has not landed): {}",
            names.join(", ")
        ));
    }
    Ok(have)
}

/// The ways each configuration runs: direct, then through each `--via` proxy (its program
/// found now, so a missing one fails before anything is measured).
fn vias(args: &RunArgs, target: &Target) -> Result<Vec<Option<Via>>> {
    let Some(list) = &args.via else {
        if args.via_bin.is_some() {
            return Err(Error::new(
                "--via-bin names the vsock-tool binary of --via ours: give --via ours too",
            ));
        }
        return Ok(vec![None]);
    };
    match target {
        Target::Remote(_) => return Err(Error::new(
            "--via runs a proxy in front of a local server: it cannot be combined with --connect",
        )),
        Target::Local(Endpoint::Hybrid(_)) => {
            return Err(Error::new(
                "--via runs a proxy on the server's transport: not on a hybrid endpoint",
            ))
        }
        Target::Local(_) => {}
    }
    if args.via_bin.is_some() && !list.0.contains(&ProxyKind::Ours) {
        return Err(Error::new(
            "--via-bin is the binary of --via ours, which is not in --via",
        ));
    }
    let mut out = vec![None];
    for &kind in &list.0 {
        out.push(Some(Via::find(kind, args.via_bin.as_deref())?));
    }
    Ok(out)
}

/// One configuration of a suite: workload, size, connections, rate.
type Config = (Workload, usize, usize, Option<u64>);

fn configs(suite: Suite, args: &RunArgs) -> Result<Vec<Config>> {
    let sizes = args.sizes.as_ref().map(|s| s.0.clone());
    let quick = args.quick;
    let conns = args.conns.map(|c| c as usize);
    match suite {
        Suite::Compare if args.reverse => Err(Error::new(
            "--reverse applies to stream (and client --workload stream), not compare",
        )),
        Suite::Compare => {
            let pp = sizes.clone().unwrap_or(if quick {
                vec![64]
            } else {
                vec![64, 4 * KIB, 64 * KIB, 1024 * KIB]
            });
            let st = sizes.unwrap_or(if quick {
                vec![64 * KIB]
            } else {
                vec![4 * KIB, 64 * KIB, 1024 * KIB]
            });
            let rr_conns = conns.unwrap_or(256);
            let mut out: Vec<Config> = Vec::new();
            out.extend(pp.iter().map(|&s| (Workload::Pingpong, s, 1, None)));
            out.extend(st.iter().map(|&s| (Workload::Stream, s, 1, None)));
            out.push((Workload::Rr, 64, rr_conns, None));
            // Open loop shows what closed loop hides (queueing under a fixed offered load),
            // so the full compare always has it; the quick one only when asked.
            let rate = args.rate.or((!quick).then_some(10_000));
            out.extend(rate.map(|r| (Workload::Rr, 64, rr_conns, Some(r))));
            out.push((Workload::Connect, 64, 1, None));
            Ok(out)
        }
        Suite::One(w) => {
            if args.rate.is_some() && w != Workload::Rr {
                return Err(Error::new("--rate applies to rr only (open loop)"));
            }
            if args.reverse && !w.is_stream() {
                return Err(Error::new(format!("--reverse applies to stream, not {w}")));
            }
            if conns.is_some() && w == Workload::Pingpong {
                return Err(Error::new(format!(
                    "{w} uses one connection: --conns applies to stream, rr and connect"
                )));
            }
            let default_sizes = match w {
                Workload::Pingpong if !quick => vec![64, 4 * KIB, 64 * KIB],
                w if w.is_stream() && !quick => vec![4 * KIB, 64 * KIB, 1024 * KIB],
                w if w.is_stream() => vec![64 * KIB],
                _ => vec![64],
            };
            let c = match w {
                Workload::Rr => conns.unwrap_or(256),
                Workload::Connect | Workload::Stream | Workload::StreamReverse => {
                    conns.unwrap_or(1)
                }
                Workload::Pingpong => 1,
            };
            Ok(sizes
                .unwrap_or(default_sizes)
                .into_iter()
                .map(|s| (w, s, c, args.rate))
                .collect())
        }
    }
}

/// Refuses counts past [`limits`] (the command line's parsers do too; this covers
/// [`RunArgs`] made in code) and makes sure the process may open the files the largest
/// configuration needs, before anything runs.
fn check_limits(args: &RunArgs, target: &Target, configs: &[Config]) -> Result<()> {
    let conns = args.conns.unwrap_or(1);
    limits::at_most("--conns", conns, MAX_CONNS, "connections")?;
    let workers = args.workers.unwrap_or(DEFAULT_WORKERS);
    limits::at_most("--workers", workers, MAX_WORKERS, "workers")?;
    limits::at_most("--repeat", args.repeat.unwrap_or(1), MAX_REPEAT, "repeats")?;
    let most = configs.iter().map(|c| c.2 as u64).max().unwrap_or(1);
    let ends = if matches!(target, Target::Local(_)) {
        2
    } else {
        1
    };
    limits::ensure_fds(limits::fds_needed(most, workers, ends), most)
}

/// The settings for running `suite` with `args`.
///
/// # Errors
///
/// Options that contradict each other or exceed their [`limits`], a backend not in this
/// build, or a vsock run without the loopback transport.
pub fn settings(suite: Suite, args: &RunArgs) -> Result<Settings> {
    let mut notes = Vec::new();
    let target = target(args, &mut notes)?;
    let sockets = sockets(args, &target)?;
    let backends = backends(args, &mut notes)?;
    let configs = configs(suite, args)?;
    let configs = if sockets.seqpacket {
        seqpacket_configs(suite, configs, &mut notes)?
    } else {
        configs
    };
    check_limits(args, &target, &configs)?;
    let vias = vias(args, &target)?;
    let direct = [None];
    let compare = suite == Suite::Compare;
    let (duration, warmup) = if args.quick {
        (Duration::from_millis(500), Duration::from_millis(100))
    } else {
        (Duration::from_secs(2), Duration::from_millis(500))
    };
    let length = match args.count {
        Some(n) => Length::Count(n),
        None => Length::Time(args.duration.unwrap_or(duration)),
    };
    let repeats = args.repeat.unwrap_or(if compare {
        if args.quick {
            3
        } else {
            5
        }
    } else {
        1
    });
    let workers = args.workers.unwrap_or(DEFAULT_WORKERS) as usize;
    // A compare's scaling runs: closed-loop rr of the scaling backends at each scaling
    // worker count the main runs do not already have.
    let scaling: Vec<(Config, usize)> = if compare && !args.no_scaling {
        configs
            .iter()
            .filter(|c| c.0 == Workload::Rr && c.3.is_none())
            .flat_map(|&c| {
                SCALING_WORKERS
                    .into_iter()
                    .filter(|&w| w as usize != workers)
                    .map(move |w| (c, w as usize))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut specs = Vec::new();
    for repeat in 0..repeats as u32 {
        // Rotating the backend order each repeat spreads slow drift of the machine
        // (thermal, other tenants) over all backends instead of charging one.
        let mut order = backends.clone();
        let n = order.len().max(1);
        order.rotate_left(repeat as usize % n);
        let scaling_order: Vec<BackendKind> = order
            .iter()
            .copied()
            .filter(|b| SCALING_BACKENDS.contains(b))
            .collect();
        // Scaling runs are direct only: they measure the backends, not a proxy.
        let main = configs.iter().map(|&c| (c, workers, &order[..], &vias[..]));
        let scaled = scaling
            .iter()
            .map(|&(c, w)| (c, w, &scaling_order[..], &direct[..]));
        for ((workload, size, conns, rate), workers, order, vias) in main.chain(scaled) {
            for &backend in order {
                for via in vias {
                    specs.push(RunSpec {
                        backend,
                        workload,
                        size,
                        conns,
                        workers,
                        rate,
                        length,
                        warmup: args.warmup.unwrap_or(warmup),
                        repeat,
                        via: via.clone(),
                        sockets,
                    });
                }
            }
        }
    }
    Ok(Settings {
        target,
        specs,
        compare,
        out: args.out.clone(),
        json: args.json.clone(),
        notes,
    })
}

impl Settings {
    /// Roughly how long the runs take, when they are timed.
    pub fn estimate(&self) -> Option<Duration> {
        self.specs
            .iter()
            .map(|s| match s.length {
                Length::Time(d) => Some(d + s.warmup),
                Length::Count(_) => None,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{BackendList, SizeList};

    fn quick() -> RunArgs {
        RunArgs {
            quick: true,
            transport: Some(crate::transport::Transport::Unix),
            backends: Some(BackendList(vec![BackendKind::Blocking, BackendKind::Tokio])),
            out: "results".into(),
            ..RunArgs::default()
        }
    }

    #[test]
    fn quick_compare_has_the_target_workloads_interleaved() {
        let s = settings(Suite::Compare, &quick()).unwrap();
        assert!(s.compare);
        let labels: Vec<String> = s.specs.iter().map(|r| r.label()).collect();
        assert!(labels.contains(&"pingpong 64 B".to_owned()));
        assert!(labels.contains(&"stream 64 KiB".to_owned()));
        assert!(labels.contains(&"rr 64 B x256".to_owned()));
        assert_eq!(s.specs.iter().filter(|r| r.repeat == 0).count(), 8);
        assert_eq!(s.specs.len(), 3 * 8);
        // The backend order rotates between repeats.
        assert_eq!(s.specs[0].backend, BackendKind::Blocking);
        assert_eq!(s.specs[8].backend, BackendKind::Tokio);
        assert_eq!(s.specs[0].workers, 2);
    }

    #[test]
    fn a_compare_adds_one_worker_rr_runs_of_uring_and_epoll_for_scaling() {
        let mut a = quick();
        a.backends = Some(BackendList(vec![
            BackendKind::Blocking,
            BackendKind::Uring,
            BackendKind::Epoll,
        ]));
        let s = settings(Suite::Compare, &a).unwrap();
        let one: Vec<&RunSpec> = s.specs.iter().filter(|r| r.workers == 1).collect();
        // Per repeat: closed-loop rr of uring and epoll, interleaved with the rest.
        assert_eq!(one.len(), 3 * 2, "{one:?}");
        assert!(one
            .iter()
            .all(|r| r.workload == Workload::Rr && r.rate.is_none()));
        assert!(one.iter().all(|r| r.backend != BackendKind::Blocking));
        assert_eq!(one[0].label(), "rr 64 B x256 (1 worker)");
        assert!(s.specs.iter().any(|r| r.repeat == 2 && r.workers == 1));
        // At --workers 4, both counts of the figure are added.
        a.workers = Some(4);
        let s = settings(Suite::Compare, &a).unwrap();
        let per_repeat: Vec<usize> = s
            .specs
            .iter()
            .filter(|r| r.repeat == 0 && r.workload == Workload::Rr)
            .map(|r| r.workers)
            .collect();
        assert_eq!(per_repeat, [4, 4, 4, 1, 1, 2, 2]);
        // --no-scaling, or a single workload: none.
        a.no_scaling = true;
        let s = settings(Suite::Compare, &a).unwrap();
        assert!(s.specs.iter().all(|r| r.workers == 4));
        a.no_scaling = false;
        let s = settings(Suite::One(Workload::Rr), &a).unwrap();
        assert!(s.specs.iter().all(|r| r.workers == 4));
    }

    #[test]
    fn contradictions_are_errors() {
        let mut a = quick();
        a.rate = Some(100);
        let e = settings(Suite::One(Workload::Pingpong), &a).unwrap_err();
        assert!(e.message().contains("--rate applies to rr only"), "{e}");
        let mut a = quick();
        a.conns = Some(4);
        let e = settings(Suite::One(Workload::Pingpong), &a).unwrap_err();
        assert!(e.message().contains("one connection"), "{e}");
        let s = settings(Suite::One(Workload::StreamReverse), &a).unwrap();
        assert!(s.specs.iter().all(|r| r.slots() == 4), "parallel streams");
        let mut a = quick();
        a.reverse = true;
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert!(e.message().contains("--reverse applies to stream"), "{e}");
        let e = settings(Suite::Compare, &a).unwrap_err();
        assert!(e.message().contains("--reverse applies to stream"), "{e}");
        let mut a = quick();
        a.connect = Some("unix:@x".parse().unwrap());
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert!(e.message().contains("cannot be combined"), "{e}");
    }

    #[test]
    fn counts_past_their_limits_are_refused_naming_the_flag() {
        let mut a = quick();
        a.conns = Some(200_000);
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert_eq!(
            e.message(),
            "--conns 200000 is above the limit of 4096 connections"
        );
        let mut a = quick();
        a.workers = Some(100_000);
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert!(e.message().starts_with("--workers 100000 is above"), "{e}");
        let mut a = quick();
        a.repeat = Some(u64::MAX);
        let e = settings(Suite::Compare, &a).unwrap_err();
        assert!(
            e.message().starts_with("--repeat 18446744073709551615"),
            "{e}"
        );
    }

    #[test]
    fn the_vsock_buffer_size_is_for_vsock_endpoints_and_bounded() {
        let mut a = quick();
        a.vsock_buffer_size = Some(1 << 20);
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert!(
            e.message()
                .contains("--vsock-buffer-size sets a vsock socket option"),
            "{e}"
        );
        assert!(e.message().contains("on unix"), "{e}");
        a.transport = Some(crate::transport::Transport::Tcp);
        let e = settings(Suite::Compare, &a).unwrap_err();
        assert!(e.message().contains("on tcp"), "{e}");
        a.transport = None;
        a.listen = Some("hybrid:/tmp/bench-vsock-none.sock:5000".parse().unwrap());
        let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
        assert!(e.message().contains("on hybrid"), "{e}");
        // Against a remote vsock server it is accepted (nothing connects here) and reaches
        // every run.
        a.listen = None;
        a.connect = Some("vsock:3:5000".parse().unwrap());
        let s = settings(Suite::One(Workload::Rr), &a).unwrap();
        assert!(s
            .specs
            .iter()
            .all(|r| r.sockets.vsock_buffer == Some(1 << 20)));
        // RunArgs made in code are bounded as the parser bounds them.
        for bad in [0, MIN_VSOCK_BUFFER - 1, MAX_VSOCK_BUFFER + 1, u64::MAX] {
            a.vsock_buffer_size = Some(bad);
            let e = settings(Suite::One(Workload::Rr), &a).unwrap_err();
            assert!(e.message().starts_with("--vsock-buffer-size"), "{e}");
        }
    }

    #[test]
    fn sizes_and_counts_carry_through() {
        let mut a = quick();
        a.sizes = Some(SizeList(vec![64, 4096]));
        a.count = Some(10);
        let s = settings(Suite::One(Workload::Pingpong), &a).unwrap();
        assert_eq!(s.specs.len(), 4);
        assert!(s.specs.iter().all(|r| r.length == Length::Count(10)));
        assert_eq!(s.estimate(), None);
    }
}
