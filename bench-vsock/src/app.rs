//! Runs a parsed command line: the glue between options, runs and printers.

use std::io::Write;

use crate::cli::{Cli, ClientArgs, Command, RunArgs, WorkloadArg};
use crate::error::{Error, Result};
use crate::proxied;
use crate::ratios::ratios;
use crate::report::files::Outputs;
use crate::report::{progress, table};
use crate::results::Report;
use crate::runner;
use crate::scaling::scaling;
use crate::settings::{settings, Settings, Suite};
use crate::summary::summarize;
use crate::workload::Workload;

/// Runs `cli`: tables and results on `out`, notes and progress on `log`.
///
/// # Errors
///
/// Bad options, a failed or unverified run, or a report that could not be written.
pub fn execute(
    cli: Cli,
    command_line: &str,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let command = cli.command.unwrap_or_else(|| {
        Command::Compare(RunArgs {
            quick: true,
            out: "results".into(),
            ..RunArgs::default()
        })
    });
    match command {
        Command::Pingpong(a) => {
            run_suite(Suite::One(Workload::Pingpong), &a, command_line, out, log)
        }
        Command::Stream(a) => run_suite(Suite::One(stream(&a)), &a, command_line, out, log),
        Command::Rr(a) => run_suite(Suite::One(Workload::Rr), &a, command_line, out, log),
        Command::Connect(a) => run_suite(Suite::One(Workload::Connect), &a, command_line, out, log),
        Command::Compare(a) => run_suite(Suite::Compare, &a, command_line, out, log),
        Command::Client(c) => client(&c, command_line, out, log),
        Command::Serve(s) => crate::roles::serve(&s, log),
        Command::Http(h) => crate::http::execute(&h, command_line, out, log),
        Command::Report(r) => crate::report::markdown::write_results(
            &r.jsons,
            &r.out,
            r.plots.as_deref(),
            r.notes.as_deref(),
            log,
        ),
    }
}

fn client(
    c: &ClientArgs,
    command_line: &str,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    if c.run.connect.is_none() {
        return Err(Error::new(
            "client needs --connect ENDPOINT: where `bench-vsock serve` listens",
        ));
    }
    let w = match c.workload {
        WorkloadArg::Pingpong => Workload::Pingpong,
        WorkloadArg::Stream => stream(&c.run),
        WorkloadArg::Rr => Workload::Rr,
        WorkloadArg::Connect => Workload::Connect,
    };
    run_suite(Suite::One(w), &c.run, command_line, out, log)
}

/// The stream workload in the direction `args` asks for.
fn stream(args: &RunArgs) -> Workload {
    if args.reverse {
        Workload::StreamReverse
    } else {
        Workload::Stream
    }
}

fn run_suite(
    suite: Suite,
    args: &RunArgs,
    command_line: &str,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let s = settings(suite, args)?;
    // Before measuring: a path that cannot be written fails now, not after the run.
    let outputs = Outputs::open(&s.out, s.json.as_deref())?;
    match measure(&s, command_line, log) {
        Ok(report) => finish(&s, outputs, report, out, log),
        Err(e) => {
            outputs.abandon();
            Err(e)
        }
    }
}

/// Makes every run of `s` in order, with a progress line per run.
///
/// # Errors
///
/// The first run that fails: a backend that loses or corrupts data fails the whole command
/// rather than leaving a gap in a comparison.
pub fn measure(s: &Settings, command_line: &str, log: &mut dyn Write) -> Result<Report> {
    for note in &s.notes {
        writeln!(log, "{note}")?;
    }
    progress::write_plan(log, s.specs.len(), s.estimate())?;
    let mut report = Report::new(command_line.to_owned());
    for (i, spec) in s.specs.iter().enumerate() {
        let result = runner::run(spec, &s.target)?;
        progress::write_run(log, i, s.specs.len(), &result)?;
        report.runs.push(result);
    }
    if s.compare {
        report.ratios = ratios(&report.runs);
        report.scaling = scaling(&report.runs);
    }
    report.proxy = proxied::rows(&report.runs);
    report.proxy_targets = proxied::targets(&report.proxy);
    Ok(report)
}

/// Prints the tables, then writes the report files into `outputs` (opened before the run).
///
/// # Errors
///
/// A file could not be written: the error names it (the tables are out already).
pub fn finish(
    s: &Settings,
    outputs: Outputs,
    mut report: Report,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let sums = summarize(&report.runs);
    if s.compare {
        writeln!(out, "\nMedians over repeats:")?;
        table::write_summaries(out, &sums)?;
        if !report.ratios.is_empty() {
            writeln!(
                out,
                "\nRatios (a higher msgs/s ratio, lower p99 and CPU/msg ratios favour the first):"
            )?;
            table::write_ratios(out, &report.ratios)?;
        }
        if !report.scaling.is_empty() {
            writeln!(
                out,
                "\nScaling (closed-loop rr msgs/s, 2 workers / 1 worker per side):"
            )?;
            table::write_scaling(out, &report.scaling)?;
        }
    } else {
        table::write_runs(out, &report.runs)?;
    }
    if sums.iter().any(|s| s.engine.is_some()) {
        writeln!(
            out,
            "\nEngine counters per message (uring backends, both ends, medians over repeats):"
        )?;
        table::write_engine(out, &sums)?;
    }
    if !report.proxy.is_empty() {
        writeln!(
            out,
            "\nThrough a proxy (medians over repeats; CPU via includes the proxy process):"
        )?;
        table::write_proxy(out, &report.proxy)?;
    }
    if !report.proxy_targets.is_empty() {
        writeln!(out, "\nProxy targets (issue 11, ours / socat):")?;
        table::write_proxy_targets(out, &report.proxy_targets)?;
    }
    let written = outputs.write(&mut report, &sums)?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    writeln!(log, "reports: {}", names.join(", "))?;
    Ok(())
}
