//! Workloads through a proxy (`--via`) over unix on the host: socat's, and ours played by a
//! stand-in (`tests/support/standin-vsock-tool`, socat underneath with our command line and
//! readiness line) until `vsock-tool` is built beside bench-vsock. Every byte is verified
//! on both ends through the proxy, the proxied rows sit beside the direct ones, and the
//! report matches the schema. Needs `socat` (`.ci/run` and `tools/results` install it).

mod common;

use serde_json::Value;

use common::{fresh_dir, read_json, run, validate};

/// Whether socat is installed; says so when it is not (the tests then check nothing).
fn have_socat() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("socat").is_file()));
    if !found {
        eprintln!("SKIPPED: socat is not installed (apt-get install socat); .ci/run installs it");
    }
    found
}

fn standin() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/standin-vsock-tool"
    )
    .to_owned()
}

/// Runs `args` with `backend` into a fresh folder; returns the JSON report.
fn report_of(test: &str, backend: &str, args: &[&str]) -> Value {
    let dir = fresh_dir(test);
    let json = dir.join("r.json");
    let mut all = args.to_vec();
    all.extend(["--backends", backend, "--warmup", "0", "--out"]);
    all.extend([dir.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let (r, stdout, stderr) = run(&all);
    r.unwrap_or_else(|e| panic!("{all:?}: {e}\n{stderr}"));
    assert!(stdout.contains("Through a proxy"), "{stdout}");
    let report = read_json(&json);
    let errors = validate(&report);
    assert!(errors.is_empty(), "schema: {errors:#?}");
    report
}

/// Checks every run verified its bytes on both ends, and returns the runs through `via`.
fn runs_via<'a>(report: &'a Value, via: &str) -> Vec<&'a Value> {
    let runs = report["runs"].as_array().unwrap();
    for r in runs {
        let verified = r["bytes_verified"].as_u64().unwrap();
        assert!(verified > 0, "{r}");
        assert_eq!(r["server"]["bytes_verified"], r["bytes_verified"], "{r}");
    }
    runs.iter().filter(|r| r["via"] == via).collect()
}

#[test]
fn a_stream_through_socat_is_verified_and_counts_socats_cpu() {
    if !have_socat() {
        return;
    }
    let report = report_of(
        "proxy-socat-stream",
        "epoll",
        &[
            "stream",
            "--transport",
            "unix",
            "--sizes",
            "64k",
            "--count",
            "2000",
            "--via",
            "socat",
        ],
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "direct and through socat: {runs:?}");
    let direct = runs
        .iter()
        .find(|r| r["via"].is_null())
        .expect("a direct run");
    assert!(direct["proxy_cpu_us_per_msg"].is_null(), "{direct}");
    let via = runs_via(&report, "socat");
    assert_eq!(via.len(), 1);
    let r = via[0];
    assert_eq!(r["bytes_verified"], 2000 * 65536, "{r}");
    // 131 MB copied through socat's user space twice is far more than one clock tick.
    let proxy_cpu = r["proxy_cpu_us_per_msg"].as_f64().unwrap();
    assert!(proxy_cpu > 0.0, "socat's CPU counted: {r}");
    assert!(r["cpu_us_per_msg"].as_f64().unwrap() >= proxy_cpu, "{r}");
    let rows = report["proxy"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["config"], "stream 64 KiB");
    assert_eq!(rows[0]["via"], "socat");
    assert!(rows[0]["direct_gbytes_per_s"].as_f64().unwrap() > 0.0);
    assert!(rows[0]["via_gbytes_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn pingpong_and_rr_through_socat_over_tcp_are_verified() {
    if !have_socat() {
        return;
    }
    for (workload, extra) in [
        ("pingpong", ["--sizes", "64", "--count", "50"].as_slice()),
        ("rr", ["--conns", "256", "--count", "512"].as_slice()),
    ] {
        let mut args = vec![workload, "--transport", "tcp", "--via", "socat"];
        args.extend_from_slice(extra);
        let report = report_of(&format!("proxy-socat-tcp-{workload}"), "blocking", &args);
        let via = runs_via(&report, "socat");
        assert_eq!(via.len(), 1, "{workload}");
        assert_eq!(via[0]["transport"], "tcp");
        let messages = via[0]["messages"].as_u64().unwrap();
        assert!(messages >= 50, "{workload}: {}", via[0]);
        let row = &report["proxy"][0];
        assert!(row["added_p50_us"].is_number(), "{row}");
    }
}

#[test]
fn a_compare_through_both_proxies_reports_issue_11s_targets() {
    if !have_socat() {
        return;
    }
    let standin = standin();
    let report = report_of(
        "proxy-compare",
        "epoll",
        &[
            "compare",
            "--quick",
            "--no-scaling",
            "--transport",
            "unix",
            "--count",
            "300",
            "--repeat",
            "1",
            "--via",
            "ours,socat",
            "--via-bin",
            &standin,
        ],
    );
    for via in ["ours", "socat"] {
        let runs = runs_via(&report, via);
        for workload in ["pingpong", "stream", "rr", "connect"] {
            assert!(
                runs.iter().any(|r| r["workload"] == workload),
                "{workload} through {via}: {runs:?}"
            );
        }
    }
    let targets = report["proxy_targets"].as_array().unwrap();
    let metrics: Vec<&str> = targets
        .iter()
        .map(|t| t["metric"].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        ["gbytes_per_s", "added_p50_us", "msgs_per_s"],
        "{targets:?}"
    );
    for t in targets {
        assert_eq!(t["transport"], "unix");
        assert_eq!(t["backend"], "epoll");
        if let Some(ratio) = t["ratio"].as_f64() {
            let expect = t["ours"].as_f64().unwrap() / t["socat"].as_f64().unwrap();
            assert!((ratio - expect).abs() < 1e-9, "{t}");
        }
    }
    // RESULTS.md's section from this report.
    let dir = fresh_dir("proxy-compare-md");
    let json = dir.join("r.json");
    std::fs::write(&json, report.to_string()).unwrap();
    let text = common::results_md(&json);
    for want in [
        "## unix, through a proxy",
        "### Through a proxy",
        "| stream 64 KiB | epoll | socat |",
        "| stream 64 KiB: ours / socat GB/s ≥ 3× | epoll |",
        "| pingpong 64 B: ours / socat added p50 ≤ 0.5× | epoll |",
        "| rr 64 B x256: ours / socat msgs/s ≥ 3× | epoll |",
    ] {
        assert!(text.contains(want), "RESULTS.md lacks {want:?}:\n{text}");
    }
}
