//! `bench-vsock http`: hyper servers on the engine, on the library's tokio path and on
//! tokio's own sockets ([`server`]), serving the same tiny service ([`service`]) to a load
//! generator of hyper client connections on an engine of its own ([`client`]), over
//! HTTP/1.1 and HTTP/2, closed and open loop, every response verified ([`verify`]). Runs
//! are interleaved and repeated ([`plan`]); the report ([`results`]) has every run, the
//! medians ([`summary`]), the engine's ratios to the others and issue 9's targets
//! ([`targets`]), on the terminal ([`columns`]), in JSON and in RESULTS.md
//! ([`markdown`]).

pub mod client;
pub mod columns;
pub mod kinds;
pub mod linger;
pub mod markdown;
pub mod plan;
pub mod results;
pub mod server;
pub mod service;
pub mod summary;
pub mod targets;
pub mod verify;

use std::io::Write;

use crate::cli::HttpArgs;
use crate::error::{Context, Result};
use crate::latency::LatencySummary;
use crate::report::cells;
use crate::report::files::Opened;
use crate::report::table::Table;
use crate::transport::{connect_to, local_listen};

use client::{Job, LoadGen};
use plan::{Plan, Spec};
use results::{HttpReport, HttpRun};

/// Runs `bench-vsock http`: tables on `out`, notes and progress on `log`, the JSON report
/// to `--json`.
///
/// # Errors
///
/// Bad options, a server that could not start, a failed or unverified request (the whole
/// command fails: no gaps in a comparison), or a report that could not be written.
pub fn execute(
    args: &HttpArgs,
    command_line: &str,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let plan = plan::plan(args)?;
    // Before measuring: a path that cannot be written fails now, not after the run.
    let json = plan.json.as_deref().map(Opened::open).transpose()?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let runs = match measure(&plan, log) {
        Ok(runs) => runs,
        Err(e) => {
            if let Some(j) = json {
                j.abandon();
            }
            return Err(e);
        }
    };
    let report = HttpReport::new(command_line.to_owned(), started, runs);
    write_tables(out, &report)?;
    if let Some(j) = json {
        let path = j.write(|w| crate::report::json::write_http(w, &report))?;
        writeln!(log, "report: {}", path.display())?;
    }
    Ok(())
}

/// Makes every run of `plan` in order, with a progress line per run.
///
/// # Errors
///
/// The first run that fails.
pub fn measure(plan: &Plan, log: &mut dyn Write) -> Result<Vec<HttpRun>> {
    for note in &plan.notes {
        writeln!(log, "{note}")?;
    }
    crate::report::progress::write_plan(log, plan.specs.len(), plan.estimate())?;
    let gen = LoadGen::new(plan.workers)?;
    let mut runs = Vec::with_capacity(plan.specs.len());
    let digits = plan.specs.len().to_string().len();
    for (i, spec) in plan.specs.iter().enumerate() {
        let label = plan::label(
            spec.config.proto.name(),
            spec.config.body as u64,
            spec.config.conns as u64,
            spec.config.rate,
            plan.workers as u64,
        );
        let run = run_one(&gen, plan, spec).context(format!(
            "{} {label} on {} (repeat {})",
            spec.server, plan.transport, spec.repeat
        ))?;
        writeln!(
            log,
            "[{:>digits$}/{}] {:<10} {:<5} {:<22} rep {}  p50 {:>7} µs  p99 {:>7} µs  {:>8} req/s",
            i + 1,
            plan.specs.len(),
            run.server,
            run.transport,
            label,
            run.repeat,
            cells::us(run.p50_us),
            cells::us(run.p99_us),
            cells::rate(run.req_per_s),
        )?;
        runs.push(run);
    }
    Ok(runs)
}

/// One run: its server on a fresh endpoint, the load, the server stopped.
fn run_one(gen: &LoadGen, plan: &Plan, spec: &Spec) -> Result<HttpRun> {
    let listen = local_listen(plan.transport)?;
    let server = server::start(spec.server, &listen, plan.workers)
        .context(format!("starting the {} server", spec.server))?;
    let job = Job {
        ep: connect_to(server.endpoint()),
        proto: spec.config.proto,
        body: spec.config.body,
        conns: spec.config.conns,
        rate: spec.config.rate,
        length: plan.length,
        warmup: plan.warmup,
    };
    let measured = gen.run(&job);
    let (server_errors, server_error) = server.stop();
    let m = measured?;
    if m.requests == 0 {
        return Err(crate::Error::new(
            "no request completed in the measured phase",
        ));
    }
    let lat = LatencySummary::of(&m.corrected);
    let per_s = |x: f64| if m.seconds > 0.0 { x / m.seconds } else { 0.0 };
    let per_req = |s: f64| s * 1e6 / m.requests as f64;
    Ok(HttpRun {
        server: spec.server.name().to_owned(),
        transport: plan.transport.name().to_owned(),
        proto: spec.config.proto.name().to_owned(),
        body_bytes: spec.config.body as u64,
        conns: spec.config.conns as u64,
        workers: plan.workers as u64,
        repeat: spec.repeat,
        rate: spec.config.rate,
        duration_s: m.seconds,
        requests: m.requests,
        responses_verified: m.requests,
        bytes_verified: m.bytes_verified,
        server_errors,
        server_error,
        req_per_s: per_s(m.requests as f64),
        gbytes_per_s: per_s(m.bytes_verified as f64) / 1e9,
        p50_us: lat.p50_us,
        p90_us: lat.p90_us,
        p99_us: lat.p99_us,
        p999_us: lat.p999_us,
        max_us: lat.max_us,
        mean_us: lat.mean_us,
        server_cpu_us_per_req: per_req((m.process_cpu_s - m.client_cpu_s).max(0.0)),
        client_cpu_us_per_req: per_req(m.client_cpu_s),
        client_cpu_cores: if m.seconds > 0.0 {
            m.client_cpu_s / m.seconds
        } else {
            0.0
        },
        latency_curve: lat.curve,
        uncorrected: LatencySummary::of(&m.uncorrected),
        histogram: Some(m.corrected),
    })
}

/// The medians, the ratios and the targets, as terminal tables.
///
/// # Errors
///
/// Writing failed.
pub fn write_tables(out: &mut dyn Write, report: &HttpReport) -> Result<()> {
    writeln!(
        out,
        "\nHTTP on {}, medians over repeats:",
        report.transport()
    )?;
    Table::from(columns::summaries(&report.summaries)).write(out)?;
    if !report.ratios.is_empty() {
        writeln!(
            out,
            "\nRatios (a higher req/s ratio, lower p99 and CPU/req ratios favour the engine):"
        )?;
        Table::from(columns::ratios(&report.ratios)).write(out)?;
    }
    writeln!(out, "\nTargets (issue 9, 2 workers, closed loop):")?;
    Table::from(columns::targets(&report.targets)).write(out)?;
    Ok(())
}
