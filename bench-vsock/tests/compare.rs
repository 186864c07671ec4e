//! A tiny compare over unix reports what the project's targets read: the uring/epoll CPU
//! per message ratio on every workload, rr scaling from 1 to 2 workers, and the engines'
//! counters per message, in the terminal tables, the JSON and RESULTS.md alike.

mod common;

use serde_json::Value;

/// The runs of `backend` at `workers` on closed-loop rr, by repeat.
fn rr_rates(runs: &[Value], backend: &str, workers: u64) -> Vec<(u64, f64)> {
    runs.iter()
        .filter(|r| {
            r["workload"] == "rr"
                && r["rate"].is_null()
                && r["backend"] == backend
                && r["workers"] == workers
        })
        .map(|r| {
            (
                r["repeat"].as_u64().unwrap(),
                r["msgs_per_s"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[test]
fn a_compare_reports_cpu_ratios_scaling_and_engine_counters() {
    let dir = common::fresh_dir("compare-figures");
    let json = dir.join("compare.json");
    let (r, stdout, stderr) = common::run(&[
        "compare",
        "--transport",
        "unix",
        "--quick",
        "--backends",
        "uring,epoll,blocking",
        "--count",
        "40",
        "--conns",
        "4",
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let report = common::read_json(&json);
    let runs = report["runs"].as_array().unwrap();

    // CPU per message, uring / epoll, on every workload's configuration.
    let ratios = report["ratios"].as_array().unwrap();
    for config in [
        "pingpong 64 B",
        "stream 64 KiB",
        "rr 64 B x4",
        "connect 64 B",
    ] {
        let cpu = ratios
            .iter()
            .find(|q| {
                q["metric"] == "cpu_us_per_msg"
                    && q["config"] == config
                    && q["subject"] == "uring"
                    && q["baseline"] == "epoll"
            })
            .unwrap_or_else(|| panic!("no uring/epoll CPU ratio on {config}: {ratios:?}"));
        assert!(cpu["median"].as_f64().unwrap() > 0.0, "{cpu}");
        assert_eq!(cpu["repeats"], 2, "{cpu}");
    }

    // Scaling: uring and epoll only, 2 workers over 1, the median of the paired repeats.
    let scaling = report["scaling"].as_array().unwrap();
    assert_eq!(scaling.len(), 2, "{scaling:?}");
    for backend in ["uring", "epoll"] {
        let s = scaling
            .iter()
            .find(|s| s["backend"] == backend)
            .unwrap_or_else(|| panic!("no {backend} scaling: {scaling:?}"));
        assert_eq!(s["config"], "rr 64 B x4");
        assert_eq!((&s["workers"], &s["base_workers"]), (&2.into(), &1.into()));
        let (two, one) = (rr_rates(runs, backend, 2), rr_rates(runs, backend, 1));
        assert_eq!((two.len(), one.len()), (2, 2), "one run per repeat each");
        let paired: Vec<f64> = two
            .iter()
            .map(|(rep, x)| x / one.iter().find(|(r, _)| r == rep).unwrap().1)
            .collect();
        let m = s["median"].as_f64().unwrap();
        assert!(
            (m - median(paired.clone())).abs() < 1e-9,
            "{s} vs {paired:?}"
        );
    }
    assert!(
        rr_rates(runs, "blocking", 1).is_empty(),
        "no scaling runs of blocking"
    );

    // Engine counters per message on every uring run, consistent with the totals.
    for r in runs.iter().filter(|r| r["backend"] == "uring") {
        let e = &r["engine"];
        let messages = r["messages"].as_f64().unwrap();
        for name in ["enters", "completions"] {
            let total = e["totals"][name].as_f64().unwrap();
            let per_msg = e["per_msg"][name].as_f64().unwrap();
            assert!(per_msg > 0.0, "{name}: {r}");
            assert!(
                (per_msg * messages - total).abs() < 1e-6 * total.max(1.0),
                "{r}"
            );
        }
        let bytes = e["totals"]["recv_bytes"].as_f64().unwrap()
            + e["totals"]["sent_bytes"].as_f64().unwrap();
        let per_completion = bytes / e["totals"]["completions"].as_f64().unwrap();
        assert!((e["bytes_per_completion"].as_f64().unwrap() - per_completion).abs() < 1e-6);
    }

    // The terminal tables.
    assert!(stdout.contains("CPU/msg ratio (min–max)"), "{stdout}");
    assert!(
        stdout.contains("Scaling (closed-loop rr msgs/s, 2 workers / 1 worker per side):"),
        "{stdout}"
    );
    assert!(stdout.contains("rr 64 B x4 (1 worker)"), "{stdout}");
    assert!(stdout.contains("enters/msg"), "{stdout}");
    let engine_table = stdout
        .split("Engine counters per message")
        .nth(1)
        .expect("an engine counters table");
    assert!(engine_table.contains("uring"), "{engine_table}");
    assert!(
        !engine_table.contains("epoll"),
        "no engine, no row: {engine_table}"
    );

    // The HTML page has them too.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Scaling (rr msgs/s"), "{html}");
    assert!(html.contains("enters/msg"), "{html}");

    // RESULTS.md from the same report.
    let text = common::results_md(&json);
    for needle in [
        "### Scaling",
        "| rr 64 B x4 | uring | 2 / 1 |",
        "| rr 64 B x4 | epoll | 2 / 1 |",
        "### Engine counters",
        "| config | backend | enters/msg | completions/msg |",
        "CPU/msg ratio (min–max)",
        "### Targets",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    // The CPU target is measured on pingpong (rr's target names 256 connections).
    let line = text
        .lines()
        .find(|l| l.starts_with("| pingpong 64 B: uring / epoll CPU µs/msg ≤ 1× |"))
        .unwrap_or_else(|| panic!("no pingpong CPU target:\n{text}"));
    assert!(!line.contains("not measured"), "{line}");
}
