//! Small real workloads over unix (and tcp) for every backend in this build: bytes are
//! verified end to end and the report has its fields.

mod common;

use bench_vsock::backend::BackendKind;
use common::{fresh_dir, read_json, run, runs_of};

fn backends() -> Vec<&'static str> {
    BackendKind::ALL
        .into_iter()
        .filter(|k| k.available())
        .map(|k| k.name())
        .collect()
}

/// The backends a compare without `--backends` runs (not the engine's A/B variants).
fn default_backends() -> Vec<&'static str> {
    BackendKind::ALL
        .into_iter()
        .filter(|k| k.available() && k.in_default_run())
        .map(|k| k.name())
        .collect()
}

#[test]
fn pingpong_echoes_every_byte() {
    for b in backends() {
        let runs = runs_of(
            "pingpong",
            b,
            &[
                "pingpong",
                "--transport",
                "unix",
                "--sizes",
                "64,70k",
                "--count",
                "20",
            ],
        );
        assert_eq!(runs.len(), 2);
        assert!(
            runs[0]["harness_gbytes_per_s"].is_null(),
            "{b}: only stream runs"
        );
        // 20 messages, each checked on its way back.
        assert_eq!(runs[0]["bytes_verified"], 20 * 64);
        assert_eq!(runs[0]["messages"], 20);
        assert_eq!(runs[1]["bytes_verified"], 20 * 70 * 1024);
    }
}

#[test]
fn stream_is_acked_whole() {
    for b in backends() {
        let runs = runs_of(
            "stream",
            b,
            &[
                "stream",
                "--transport",
                "unix",
                "--sizes",
                "1m",
                "--count",
                "8",
            ],
        );
        assert_eq!(runs[0]["bytes_verified"], 8 << 20);
        assert_eq!(runs[0]["workload"], "stream");
        assert_eq!(runs[0]["server"]["connections"], 1, "{b}");
        // The harness's own ceiling is measured beside every stream run.
        assert!(
            runs[0]["harness_gbytes_per_s"].as_f64().unwrap() > 0.0,
            "{b}"
        );
    }
}

#[test]
fn reverse_stream_is_checked_by_the_client() {
    for b in backends() {
        // 300 messages of 70 KiB: several requests (about 1 MiB each), odd-sized reads.
        let runs = runs_of(
            "stream-reverse",
            b,
            &[
                "stream",
                "--reverse",
                "--transport",
                "unix",
                "--sizes",
                "70k",
                "--count",
                "300",
            ],
        );
        assert_eq!(runs[0]["workload"], "stream-reverse", "{b}");
        assert_eq!(runs[0]["messages"], 300, "{b}");
        assert_eq!(runs[0]["bytes_verified"], 300 * 70 * 1024, "{b}");
        assert_eq!(runs[0]["payload_bytes"], 300 * 70 * 1024, "{b}");
        // The server checked nothing (it sent), and its connection ended cleanly.
        assert_eq!(runs[0]["server"]["connections"], 1, "{b}");
        assert_eq!(runs[0]["server"]["bytes_verified"], 0, "{b}");
        assert!(
            runs[0]["harness_gbytes_per_s"].as_f64().unwrap() > 0.0,
            "{b}"
        );
    }
}

#[test]
fn parallel_streams_both_ways_verify_every_connection() {
    for b in backends() {
        for reverse in [false, true] {
            let mut args = vec![
                "stream",
                "--transport",
                "unix",
                "--sizes",
                "64k",
                "--conns",
                "3",
                "--count",
                "30",
            ];
            if reverse {
                args.push("--reverse");
            }
            let runs = runs_of("stream-conns", b, &args);
            // 30 writes spread over 3 connections: 10 each, every one verified.
            assert_eq!(runs[0]["conns"], 3, "{b} reverse={reverse}");
            assert_eq!(runs[0]["messages"], 30, "{b} reverse={reverse}");
            assert_eq!(
                runs[0]["bytes_verified"],
                30 * 64 * 1024,
                "{b} reverse={reverse}"
            );
            assert_eq!(runs[0]["server"]["connections"], 3, "{b} reverse={reverse}");
            let server = if reverse { 0 } else { 30 * 64 * 1024 };
            assert_eq!(
                runs[0]["server"]["bytes_verified"], server,
                "{b} reverse={reverse}"
            );
        }
    }
}

#[test]
fn rr_closed_and_open_loop() {
    for b in backends() {
        let runs = runs_of(
            "rr",
            b,
            &[
                "rr",
                "--transport",
                "unix",
                "--conns",
                "16",
                "--count",
                "160",
            ],
        );
        assert_eq!(runs[0]["conns"], 16);
        assert_eq!(runs[0]["messages"], 160);
        assert_eq!(runs[0]["server"]["connections"], 16, "{b}");
        let runs = runs_of(
            "rr-open",
            b,
            &[
                "rr",
                "--transport",
                "unix",
                "--conns",
                "4",
                "--count",
                "40",
                "--rate",
                "200",
            ],
        );
        assert_eq!(runs[0]["rate"], 200);
        assert_eq!(runs[0]["messages"], 40);
        // Both histograms are kept; the corrected one counts from the intended send time.
        assert_eq!(runs[0]["uncorrected"]["count"], 40);
        // 10 messages per connection, one every 4 / 200 s = 20 ms: at least 180 ms.
        common::assert_paced(&runs[0]);
    }
}

#[test]
fn connect_opens_one_connection_per_message() {
    for b in backends() {
        let runs = runs_of(
            "connect",
            b,
            &[
                "connect",
                "--transport",
                "tcp",
                "--count",
                "12",
                "--conns",
                "2",
            ],
        );
        assert_eq!(runs[0]["messages"], 12);
        assert_eq!(runs[0]["transport"], "tcp");
        // Counted on the server: each message had its own connection, ended cleanly.
        assert_eq!(runs[0]["server"]["connections"], 12, "{b}");
        assert_eq!(runs[0]["bytes_verified"], 12 * 64);
    }
}

#[test]
fn compare_reports_summaries_and_ratios() {
    let dir = fresh_dir("compare");
    let (r, stdout, stderr) = run(&[
        "compare",
        "--transport",
        "unix",
        "--quick",
        "--count",
        "40",
        "--conns",
        "8",
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    assert!(stdout.contains("Medians over repeats"), "{stdout}");
    let report = read_json(&dir.join("report.json"));
    let runs = report["runs"].as_array().unwrap();
    let n = default_backends().len();
    // pingpong, stream, rr, connect; every backend; two repeats; plus the scaling runs
    // (rr at 1 worker) of uring and epoll.
    let scaled = default_backends()
        .iter()
        .filter(|b| ["uring", "epoll"].contains(b))
        .count();
    assert_eq!(runs.len(), (4 * n + scaled) * 2);
    if n > 1 {
        assert!(stdout.contains("Ratios"), "{stdout}");
        assert!(!report["ratios"].as_array().unwrap().is_empty());
    }
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn the_server_counts_only_the_measured_phase_after_a_warmup() {
    for b in backends() {
        let dir = fresh_dir(&format!("warm-{b}"));
        let (r, _, stderr) = run(&[
            "rr",
            "--transport",
            "unix",
            "--backends",
            b,
            "--conns",
            "8",
            "--count",
            "32",
            "--warmup",
            "100ms",
            "--out",
            dir.to_str().unwrap(),
        ]);
        r.unwrap_or_else(|e| panic!("{b}: {e}\n{stderr}"));
        let report = read_json(&dir.join("report.json"));
        let run = &report["runs"][0];
        // The warmup's 8 connections ended before the measured phase began.
        assert_eq!(run["server"]["connections"], 8, "{b}: {run}");
        assert_eq!(run["server"]["bytes_verified"], 32 * 64, "{b}: {run}");
        assert_eq!(run["bytes_verified"], 32 * 64, "{b}: {run}");
    }
}
