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
                "2000",
            ],
        );
        assert_eq!(runs[0]["rate"], 2000);
        assert_eq!(runs[0]["messages"], 40);
        // Both histograms are kept; the corrected one counts from the intended send time.
        assert_eq!(runs[0]["uncorrected"]["count"], 40);
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
    let n = backends().len();
    // pingpong, stream, rr, connect; every backend; two repeats.
    assert_eq!(runs.len(), 4 * n * 2);
    if n > 1 {
        assert!(stdout.contains("Ratios"), "{stdout}");
        assert!(!report["ratios"].as_array().unwrap().is_empty());
    }
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
}
