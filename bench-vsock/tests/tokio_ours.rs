//! The `tokio-ours` backend (the library's tokio path) on every workload: over unix on the
//! host, over vsock in the test VM (ignored on the host), and its ratio against `tokio`
//! (tokio::net, tokio-vsock) in a compare.

mod common;

use common::{run_to_report, runs_of};

/// Each workload, briefly, on `transport`; bytes are verified on both ends by `runs_of`.
fn every_workload(test: &str, transport: &str) {
    let cases: [(&str, &[&str], u64); 4] = [
        ("pingpong", &["--sizes", "64,70k", "--count", "20"], 20),
        ("stream", &["--sizes", "64k", "--count", "64"], 64),
        ("rr", &["--conns", "8", "--count", "80"], 80),
        ("connect", &["--conns", "2", "--count", "10"], 10),
    ];
    for (workload, extra, messages) in cases {
        let mut args = vec![workload, "--transport", transport];
        args.extend_from_slice(extra);
        let runs = runs_of(&format!("{test}-{workload}"), "tokio-ours", &args);
        for r in &runs {
            assert_eq!(r["transport"], transport, "{r}");
            assert_eq!(r["workload"], workload, "{r}");
            assert_eq!(r["messages"], messages, "{workload}: {r}");
            // A round trip is checked once, on its way back; a stream write once, by the
            // server.
            let expected = messages * r["msg_size"].as_u64().unwrap();
            assert_eq!(r["bytes_verified"], expected, "{workload}: {r}");
        }
    }
}

#[test]
fn tokio_ours_runs_every_workload_over_unix() {
    every_workload("tokio-ours-unix", "unix");
}

#[test]
fn a_compare_reports_tokio_ours_against_tokio() {
    let ran = run_to_report(
        "tokio-ours-compare",
        &[
            "compare",
            "--transport",
            "unix",
            "--backends",
            "tokio,tokio-ours",
            "--sizes",
            "64",
            "--count",
            "40",
            "--conns",
            "4",
            "--repeat",
            "2",
            "--warmup",
            "0",
            "--no-scaling",
        ],
    );
    let ratios = ran.report["ratios"].as_array().unwrap();
    for workload in ["pingpong", "stream", "rr", "connect"] {
        let found = ratios.iter().find(|x| {
            x["subject"] == "tokio-ours"
                && x["baseline"] == "tokio"
                && x["metric"] == "msgs_per_s"
                && x["config"].as_str().unwrap().starts_with(workload)
        });
        let found = found.unwrap_or_else(|| panic!("no {workload} ratio: {ratios:?}"));
        assert_eq!(found["repeats"], 2, "{found}");
        assert!(found["median"].as_f64().unwrap() > 0.0, "{found}");
    }
    assert!(ran.stdout.contains("tokio-ours"), "{}", ran.stdout);
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn tokio_ours_runs_every_workload_over_vsock() {
    common::require_vm();
    every_workload("tokio-ours-vsock", "vsock");
}
