//! `--seqpacket` over unix on the host, for every backend that has seqpacket sockets: each
//! request and echo is one message, verified byte for byte; the sockets really are
//! seqpacket ones (a stream peer cannot connect); and what seqpacket cannot run is refused.

mod common;

use std::process::Command;
use std::time::Duration;

use bench_vsock::backend::BackendKind;
use common::{fresh_dir, run, run_to_report, runs_of, Serve};

fn seqpacket_backends() -> Vec<&'static str> {
    BackendKind::ALL
        .into_iter()
        // The engine's A/B variants run only when named: not part of a default run.
        .filter(|k| k.available() && k.has_seqpacket() && k.in_default_run())
        .map(|k| k.name())
        .collect()
}

#[test]
fn seqpacket_pingpong_and_rr_verify_every_message_on_each_backend() {
    let backends = seqpacket_backends();
    assert_eq!(backends, ["uring", "uring-spin", "epoll", "blocking"]);
    for b in backends {
        let runs = runs_of(
            "seqpacket-pingpong",
            b,
            &[
                "pingpong",
                "--seqpacket",
                "--transport",
                "unix",
                "--sizes",
                "64,64k",
                "--count",
                "20",
            ],
        );
        assert_eq!(runs.len(), 2, "{b}");
        assert!(runs.iter().all(|r| r["seqpacket"] == true), "{b}: {runs:?}");
        // 20 messages of each size, each checked on its way back (the largest message a
        // seqpacket run takes fills one receive buffer exactly, untruncated).
        assert_eq!(runs[0]["bytes_verified"], 20 * 64, "{b}");
        assert_eq!(runs[1]["bytes_verified"], 20 * 65536, "{b}");
        assert_eq!(runs[1]["messages"], 20, "{b}");

        let runs = runs_of(
            "seqpacket-rr",
            b,
            &[
                "rr",
                "--seqpacket",
                "--transport",
                "unix",
                "--conns",
                "4",
                "--count",
                "40",
            ],
        );
        assert_eq!(runs[0]["seqpacket"], true, "{b}");
        assert_eq!(runs[0]["bytes_verified"], 40 * 64, "{b}");
        assert_eq!(runs[0]["server"]["connections"], 4, "{b}");
    }
}

/// RESULTS.md, as `report` writes it from a blocking pingpong run with `extra` options.
fn results_md(test: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "pingpong",
        "--transport",
        "unix",
        "--backends",
        "blocking",
        "--sizes",
        "64",
        "--count",
        "10",
        "--warmup",
        "0",
    ];
    args.extend_from_slice(extra);
    common::results_md(&run_to_report(test, &args).dir.join("r.json"))
}

#[test]
fn a_report_of_seqpacket_runs_says_seqpacket_in_its_heading() {
    let text = results_md("seqpacket-report", &["--seqpacket"]);
    assert!(
        text.lines()
            .any(|l| l == "## unix seqpacket, blocking only"),
        "{text}"
    );
    // A stream run's does not.
    let text = results_md("stream-report", &[]);
    assert!(
        text.lines().any(|l| l == "## unix, blocking only"),
        "{text}"
    );
    assert!(!text.contains("seqpacket"), "{text}");
}

/// Runs `client --workload pingpong` against `serve`'s endpoint with `backend` and `extra`
/// options; whether it succeeded, and its stderr.
fn client(serve: &Serve, backend: &str, extra: &[&str]) -> (bool, String) {
    let dir = fresh_dir(&format!("seqpacket-client-{backend}"));
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_bench-vsock"))
            .args([
                "client",
                "--workload",
                "pingpong",
                "--connect",
                &serve.endpoint,
            ])
            .args(["--backends", backend, "--sizes", "4k", "--count", "10"])
            .args(["--warmup", "0", "--out"])
            .arg(&dir)
            .args(extra),
        Duration::from_secs(120),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn seqpacket_clients_of_every_backend_talk_to_a_seqpacket_server_and_streams_cannot() {
    let backends = seqpacket_backends();
    // One connection per client; the stream client's connect never reaches the server.
    let n = backends.len() as u32;
    let serve = Serve::start_with(
        format!("unix:@bench-vsock-seqpacket-serve-{}", std::process::id()),
        "epoll",
        n,
        &["--seqpacket"],
    );
    let (ok, stderr) = client(&serve, "blocking", &[]);
    assert!(
        !ok,
        "a stream client connected to a seqpacket server: {stderr}"
    );
    assert!(stderr.contains("connect"), "{stderr}");
    for b in &backends {
        let (ok, stderr) = client(&serve, b, &["--seqpacket"]);
        assert!(ok, "{b}: {stderr}");
    }
    assert!(serve.wait(), "the seqpacket server saw a failed connection");
}

#[test]
fn a_seqpacket_compare_runs_pingpong_and_rr_of_the_backends_that_have_it() {
    let ran = run_to_report(
        "seqpacket-compare",
        &[
            "compare",
            "--quick",
            "--seqpacket",
            "--transport",
            "unix",
            "--backends",
            "blocking,epoll",
            "--repeat",
            "1",
            "--count",
            "20",
            "--warmup",
            "0",
            "--no-scaling",
        ],
    );
    assert!(
        ran.stderr.contains("left out: stream 64 KiB, connect 64 B"),
        "{}",
        ran.stderr
    );
    let report = ran.report;
    assert!(
        common::validate(&report).is_empty(),
        "{:?}",
        common::validate(&report)
    );
    let runs = report["runs"].as_array().unwrap();
    // pingpong 64 B and closed-loop rr, for each of the two backends.
    assert_eq!(runs.len(), 4, "{runs:?}");
    for r in runs {
        assert_eq!(r["seqpacket"], true, "{r}");
        assert!(r["workload"] == "pingpong" || r["workload"] == "rr", "{r}");
        assert!(r["bytes_verified"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn what_seqpacket_cannot_run_is_refused_before_anything_runs() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["stream", "--seqpacket", "--transport", "unix"],
            "--seqpacket applies to pingpong and rr (one message per request), not stream",
        ),
        (
            &["connect", "--seqpacket", "--transport", "unix"],
            "not connect",
        ),
        (
            &["rr", "--seqpacket", "--transport", "tcp"],
            "--seqpacket needs a unix or vsock endpoint: tcp",
        ),
        (
            &["rr", "--seqpacket", "--listen", "hybrid:/tmp/bench-vsock-none.sock:5"],
            "needs a unix or vsock endpoint: hybrid",
        ),
        (
            &["rr", "--seqpacket", "--transport", "unix", "--backends", "tokio-ours"],
            "backend tokio-ours has no seqpacket sockets",
        ),
        (
            &["pingpong", "--seqpacket", "--transport", "unix", "--sizes", "64,1m"],
            "--seqpacket messages are at most 64 KiB (one receive buffer of every backend): --sizes has 1 MiB",
        ),
        (
            &["rr", "--seqpacket", "--transport", "unix", "--via", "socat"],
            "--seqpacket cannot be combined with --via",
        ),
    ];
    for (args, want) in cases {
        let (r, _, _) = run(args);
        let e = r.expect_err(&format!("{args:?} should be refused"));
        assert!(e.message().contains(want), "{args:?}: {e}");
    }
}
