//! Runs one [`RunSpec`]: starts the server (local runs), warms up, measures, verifies, and
//! turns what the sessions measured into a [`RunResult`].

use std::sync::Arc;
use std::time::Instant;

use uring_vsock::Endpoint;

use crate::backend::{self, Backend, Server, IO_TIMEOUT};
use crate::ceiling::{self, PROBE};
use crate::counters::{Counters, EngineReport};
use crate::error::{Context, Error, Result};
use crate::latency::LatencySummary;
use crate::proxy::{Proxy, Via};
use crate::results::RunResult;
use crate::rusage::process_cpu;
use crate::session::{Outcome, ServerCounts, SessionSource};
use crate::transport::{connect_to, report_name};
use crate::workload::{Length, RunSpec};

/// Where the server of a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Start a server of the run's backend here, in this process, for the run.
    Local(Endpoint),
    /// A `bench-vsock serve` is already listening there.
    Remote(Endpoint),
}

/// What one phase (warmup or measured) of a run measured.
struct Phase {
    outcome: Outcome,
    seconds: f64,
    cpu_seconds: f64,
    /// What the local server counted in this phase.
    server: Option<ServerCounts>,
    /// The engines' counters over this phase (uring backends).
    engine: Option<Counters>,
    /// Through a proxy: the proxy process's CPU time over this phase, s (also in
    /// `cpu_seconds`).
    proxy_cpu_seconds: Option<f64>,
}

fn run_phase(
    backend: &dyn Backend,
    ep: &Endpoint,
    spec: &RunSpec,
    length: Length,
) -> Result<Phase> {
    let start = Instant::now();
    let source = Arc::new(SessionSource::new(spec.plan(length, start)));
    let cpu0 = process_cpu();
    backend.run_clients(ep, source.clone(), spec.slots(), spec.workers);
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (process_cpu() - cpu0).as_secs_f64();
    Ok(Phase {
        outcome: source.finish()?,
        seconds,
        cpu_seconds,
        server: None,
        engine: None,
        proxy_cpu_seconds: None,
    })
}

/// The engines' counters now: the clients' engine and, in a local run, the server's,
/// added; `None` for backends without an engine.
fn engine_counters(
    backend: &dyn Backend,
    server: Option<&dyn Server>,
    workers: usize,
) -> Result<Option<Counters>> {
    let client = backend.engine_stats(workers)?.map(|s| Counters::of(&s));
    let served = server
        .and_then(|s| s.engine_stats())
        .map(|s| Counters::of(&s));
    Ok(match (client, served) {
        (Some(a), Some(b)) => Some(a.plus(&b)),
        (a, b) => a.or(b),
    })
}

/// Waits until a local server has ended `n` connections in all: a client's connection
/// ends on the server a little after the client is done with it.
fn settle(server: Option<&dyn Server>, n: u64, phase: &str) -> Result<()> {
    match server {
        Some(s) if !s.stats().wait_ended(n, IO_TIMEOUT) => Err(Error::new(format!(
            "{phase}: the server had not ended its {n} connections after {IO_TIMEOUT:?}"
        ))),
        _ => Ok(()),
    }
}

/// The warmup, then the measured phase, which starts once a local `server` has ended the
/// warmup's connections (and the `ended` it had ended before: a proxy's readiness probe).
/// The phase's engine counters are taken once the server has ended its connections too;
/// the server's counts from before the measured phase are returned with it (the server
/// has counted everything only once stopped). A `proxy`'s CPU time over the measured
/// phase is added to the phase's.
fn run_phases(
    backend: &dyn Backend,
    server: Option<&dyn Server>,
    mut proxy: Option<&mut Proxy>,
    mut ended: u64,
    ep: &Endpoint,
    spec: &RunSpec,
) -> Result<(Phase, ServerCounts)> {
    // Starts the clients' engine (uring backends) before any timed phase, so neither the
    // warmup nor the measured phase spends its time setting up a ring.
    engine_counters(backend, None, spec.workers)?;
    if !spec.warmup.is_zero() {
        let warm = run_phase(backend, ep, spec, Length::Time(spec.warmup)).context("warmup")?;
        ended += warm.outcome.sessions;
        settle(server, ended, "warmup")?;
    }
    let counts = server.map(|s| s.stats().counts()).unwrap_or_default();
    let engine = engine_counters(backend, server, spec.workers)?;
    let proxy_cpu0 = proxy.as_deref_mut().map(Proxy::cpu).transpose()?;
    let mut phase = run_phase(backend, ep, spec, spec.length)?;
    settle(server, ended + phase.outcome.sessions, "measured run")?;
    if let (Some(p), Some(cpu0)) = (proxy, proxy_cpu0) {
        let used = (p.cpu()? - cpu0).as_secs_f64();
        phase.proxy_cpu_seconds = Some(used);
        phase.cpu_seconds += used;
    }
    let engine_now = engine_counters(backend, server, spec.workers)?;
    phase.engine = engine_now.map(|now| now.since(&engine.unwrap_or_default()));
    Ok((phase, counts))
}

/// Runs `spec` against `target`.
///
/// # Errors
///
/// The backend is not in this build, the server could not start, a connection failed, a
/// byte did not verify (on either end), or nothing was verified.
pub fn run(spec: &RunSpec, target: &Target) -> Result<RunResult> {
    let backend = backend::open(spec.backend, spec.sockets)?;
    let what = format!("{} {} on {}", spec.backend, spec.label(), target_ep(target));
    let (phase, transport) = match target {
        Target::Remote(ep) => (
            run_phases(&*backend, None, None, 0, ep, spec).map(|(p, _)| p),
            report_name(ep),
        ),
        Target::Local(listen) => {
            let server = backend
                .serve(listen, spec.workers)
                .context(format!("starting the {} server on {listen}", spec.backend))?;
            let ep = connect_to(server.endpoint());
            let stats = server.stats().clone();
            let phase = match &spec.via {
                None => run_phases(&*backend, Some(&*server), None, 0, &ep, spec),
                Some(via) => through(via, &*backend, &*server, &ep, spec),
            };
            // Stop the server whatever happened, but report its errors only if the client
            // side had none: a client error usually explains the server's. Once stopped,
            // it has counted every connection.
            let stopped = server.stop();
            let phase = phase.and_then(|(mut p, before)| {
                stopped.map(|()| {
                    p.server = Some(stats.counts().since(before));
                    p
                })
            });
            (phase, report_name(&ep))
        }
    };
    let phase = phase.context(what)?;
    let mut result = result_of(spec, transport, matches!(target, Target::Local(_)), phase);
    if spec.workload.is_stream() {
        // After the run, so it takes nothing from it.
        result.harness_gbytes_per_s = Some(ceiling::stream_gbytes_per_s(spec.size, PROBE));
    }
    Ok(result)
}

/// The phases through `via`'s proxy in front of `server` (at `ep`); the proxy is killed
/// when they end, before the server stops.
fn through(
    via: &Via,
    backend: &dyn Backend,
    server: &dyn Server,
    ep: &Endpoint,
    spec: &RunSpec,
) -> Result<(Phase, ServerCounts)> {
    let mut proxy = Proxy::start(via, ep)?;
    // A readiness probe reaches the server as an empty connection: let it end first.
    let probes = proxy.probes();
    settle(Some(server), probes, "the proxy's readiness probe")?;
    let front = proxy.endpoint().clone();
    run_phases(
        backend,
        Some(server),
        Some(&mut proxy),
        probes,
        &front,
        spec,
    )
    .context(format!("through the {} proxy at {front}", via.kind))
}

fn target_ep(target: &Target) -> &Endpoint {
    match target {
        Target::Local(ep) | Target::Remote(ep) => ep,
    }
}

fn result_of(spec: &RunSpec, transport: &str, local: bool, p: Phase) -> RunResult {
    let o = p.outcome;
    let lat = LatencySummary::of(&o.corrected);
    let per_s = |x: f64| if p.seconds > 0.0 { x / p.seconds } else { 0.0 };
    RunResult {
        backend: spec.backend.name().to_owned(),
        transport: transport.to_owned(),
        workload: spec.workload,
        msg_size: spec.size as u64,
        conns: spec.slots() as u64,
        workers: spec.workers as u64,
        repeat: spec.repeat,
        rate: spec.rate,
        local_server: local,
        via: spec.via.as_ref().map(|v| v.kind.name().to_owned()),
        vsock_buffer_size: spec.sockets.vsock_buffer,
        seqpacket: spec.sockets.seqpacket,
        proxy_cpu_us_per_msg: p.proxy_cpu_seconds.map(|s| {
            if o.messages > 0 {
                s * 1e6 / o.messages as f64
            } else {
                0.0
            }
        }),
        duration_s: p.seconds,
        messages: o.messages,
        payload_bytes: o.payload_bytes,
        bytes_verified: o.bytes_verified,
        p50_us: lat.p50_us,
        p90_us: lat.p90_us,
        p99_us: lat.p99_us,
        p999_us: lat.p999_us,
        max_us: lat.max_us,
        mean_us: lat.mean_us,
        msgs_per_s: per_s(o.messages as f64),
        gbytes_per_s: per_s(o.payload_bytes as f64) / 1e9,
        cpu_us_per_msg: if o.messages > 0 {
            p.cpu_seconds * 1e6 / o.messages as f64
        } else {
            0.0
        },
        harness_gbytes_per_s: None,
        latency_curve: lat.curve,
        uncorrected: LatencySummary::of(&o.uncorrected),
        server: p.server,
        engine: p
            .engine
            .map(|c| EngineReport::new(c, o.messages, p.cpu_seconds)),
        hgrm: None,
        histogram: Some(o.corrected),
    }
}
