//! `bench-vsock http`: every server × HTTP version over unix with every response verified,
//! open loop, the HTTP section `report` renders from its JSON, bad options refused naming
//! the option; and a vsock run in the test VM (ignored on the host).

mod common;

use bench_vsock::cli::Cli;
use clap::Parser;
use serde_json::Value;

const SERVERS: [&str; 3] = ["engine", "tokio-ours", "tokio"];

/// Runs `http` with `args` and a JSON report; returns the report and stdout.
fn http(test: &str, args: &[&str]) -> (Value, String, std::path::PathBuf) {
    let dir = common::fresh_dir(test);
    let json = dir.join("http.json");
    let mut all = vec!["http"];
    all.extend_from_slice(args);
    all.extend(["--json", json.to_str().unwrap()]);
    let (r, stdout, stderr) = common::run(&all);
    r.unwrap_or_else(|e| panic!("{all:?}: {e}\n{stderr}"));
    (common::read_json(&json), stdout, json)
}

/// Every error the committed http schema finds in `report`, with where it is.
fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(include_str!("../schema/http.schema.json")).expect("the schema");
    jsonschema::meta::validate(&schema).expect("a valid draft 2020-12 schema");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Checks the fields of one run and that every response it counts was verified.
fn assert_verified(r: &Value, count: u64) {
    let requests = r["requests"].as_u64().unwrap();
    assert_eq!(requests, count, "every request of the count measured: {r}");
    assert_eq!(r["responses_verified"], r["requests"], "{r}");
    let body = r["body_bytes"].as_u64().unwrap();
    assert_eq!(r["bytes_verified"].as_u64(), Some(requests * body), "{r}");
    assert_eq!(r["server_errors"], 0, "{r}");
    for f in ["p50_us", "p99_us", "p999_us", "req_per_s", "duration_s"] {
        assert!(r[f].as_f64().unwrap() > 0.0, "{f}: {r}");
    }
    assert!(r["p99_us"].as_f64() >= r["p50_us"].as_f64(), "{r}");
    for f in [
        "server_cpu_us_per_req",
        "client_cpu_us_per_req",
        "client_cpu_cores",
    ] {
        assert!(r[f].as_f64().unwrap() >= 0.0, "{f}: {r}");
    }
    assert!(!r["latency_curve"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["uncorrected"]["count"].as_u64(), Some(requests), "{r}");
}

#[test]
fn every_server_and_version_answers_every_request_verified() {
    let (report, stdout, _) = http(
        "all",
        &[
            "--transport",
            "unix",
            "--count",
            "48",
            "--conns",
            "1,8",
            "--bodies",
            "64,64k",
            "--warmup",
            "0",
            "--repeat",
            "1",
        ],
    );
    assert_eq!(report["kind"], "http");
    assert_eq!(report["schema_version"], 1);
    let errors = schema_errors(&report);
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema is strict enough to catch a run without its request count.
    let mut bad = report.clone();
    bad["runs"][3].as_object_mut().unwrap().remove("requests");
    assert!(
        schema_errors(&bad)
            .iter()
            .any(|e| e.starts_with("/runs/3: ")),
        "a missing requests was not caught"
    );
    let runs = report["runs"].as_array().unwrap();
    // 3 servers x 2 versions x 2 bodies x 2 connection counts.
    assert_eq!(runs.len(), 24);
    for server in SERVERS {
        for proto in ["h1", "h2"] {
            let of: Vec<&Value> = runs
                .iter()
                .filter(|r| r["server"] == server && r["proto"] == proto)
                .collect();
            assert_eq!(of.len(), 4, "{server} {proto}");
            for r in of {
                assert_eq!(r["transport"], "unix");
                assert_eq!(r["rate"], Value::Null);
                assert_verified(r, 48);
            }
        }
    }
    assert_eq!(report["summaries"].as_array().unwrap().len(), 24);
    let ratios = report["ratios"].as_array().unwrap();
    // engine / tokio-ours and engine / tokio on 8 configurations, for req/s and p99 (and
    // server CPU per request, where the baseline's is above zero).
    for metric in ["req_per_s", "p99_us"] {
        let n = ratios.iter().filter(|r| r["metric"] == metric).count();
        assert_eq!(n, 2 * 8, "{metric}: {ratios:?}");
    }
    let targets = report["targets"].as_array().unwrap();
    // 3 aims for each version and body.
    assert_eq!(targets.len(), 3 * 4);
    let one = targets
        .iter()
        .find(|t| t["target"] == "h2 64 KiB x1: engine / tokio p50 ≤ 1×")
        .expect("the 1-connection p50 target");
    assert!(one["median"].as_f64().unwrap() > 0.0, "{one}");
    assert!(one["met"].is_boolean(), "{one}");
    let wide = targets
        .iter()
        .find(|t| t["target"] == "h1 64 B x256: engine / tokio req/s ≥ 1.5×")
        .expect("the 256-connection req/s target");
    assert_eq!(wide["verdict"], "not measured in this run", "{wide}");
    assert!(stdout.contains("medians over repeats"), "{stdout}");
    assert!(stdout.contains("engine / tokio-ours"), "{stdout}");
    assert!(stdout.contains("Targets (issue 9"), "{stdout}");
}

#[test]
fn open_loop_runs_are_paced_and_corrected() {
    let (report, _, _) = http(
        "open",
        &[
            "--transport",
            "unix",
            "--servers",
            "engine,tokio",
            "--proto",
            "h1,h2",
            "--bodies",
            "4k",
            "--conns",
            "4",
            "--rate",
            "2000",
            "--count",
            "100",
            "--warmup",
            "20ms",
            "--repeat",
            "2",
        ],
    );
    let runs = report["runs"].as_array().unwrap();
    // 2 servers x 2 versions x (closed, open) x 2 repeats.
    assert_eq!(runs.len(), 16);
    let open: Vec<&Value> = runs.iter().filter(|r| r["rate"] == 2000).collect();
    assert_eq!(open.len(), 8);
    for r in open {
        assert_verified(r, 100);
        // 25 requests per connection, due every 4 / 2000 s: at least 24 intervals.
        let least = 24.0 * 4.0 / 2000.0;
        assert!(r["duration_s"].as_f64().unwrap() >= least, "not paced: {r}");
        // Each latency from the intended send time is at least the one from the actual
        // send, so every percentile is too.
        for p in ["p50_us", "p99_us", "max_us"] {
            assert!(
                r[p].as_f64().unwrap() >= r["uncorrected"][p].as_f64().unwrap(),
                "{p}: {r}"
            );
        }
    }
    let summaries = report["summaries"].as_array().unwrap();
    assert!(summaries
        .iter()
        .any(|s| s["config"] == "h2 4 KiB x4 @2000/s" && s["repeats"] == 2));
}

#[test]
fn a_timed_run_on_the_engine_measures_and_verifies() {
    let (report, _, _) = http(
        "timed",
        &[
            "--transport",
            "tcp",
            "--servers",
            "engine",
            "--proto",
            "h2",
            "--bodies",
            "100k",
            "--conns",
            "3",
            "--duration",
            "100ms",
            "--warmup",
            "50ms",
            "--repeat",
            "1",
            "--workers",
            "1",
        ],
    );
    let r = &report["runs"][0];
    assert_eq!(r["transport"], "tcp");
    assert_eq!(r["workers"], 1);
    let n = r["requests"].as_u64().unwrap();
    assert!(n > 0, "{r}");
    assert_verified(r, n);
    assert_eq!(report["summaries"][0]["config"], "h2 100 KiB x3 (1 worker)");
}

#[test]
fn report_renders_an_http_section_from_the_json() {
    let (_, _, json) = http(
        "report",
        &[
            "--transport",
            "unix",
            "--servers",
            "engine,tokio-ours,tokio",
            "--proto",
            "h1",
            "--bodies",
            "64",
            "--conns",
            "1",
            "--count",
            "20",
            "--warmup",
            "0",
            "--repeat",
            "2",
        ],
    );
    let dir = json.parent().unwrap();
    let text = common::results_md(&json);
    assert!(text.contains("\n## HTTP\n"), "{text}");
    assert!(text.contains("\n### HTTP on unix\n"), "{text}");
    assert!(text.contains("| h1 64 B x1 | engine | 2 |"), "{text}");
    assert!(
        text.contains("| h1 64 B x1 | engine / tokio-ours |"),
        "{text}"
    );
    let target = text
        .lines()
        .find(|l| l.starts_with("| h1 64 B x1: engine / tokio p50 ≤ 1× | "))
        .unwrap_or_else(|| panic!("the p50 target row: {text}"));
    assert!(
        target.ends_with("| met |") || target.contains("| missed: "),
        "{target}"
    );
    assert!(text
        .contains("| h1 64 B x256: engine / tokio req/s ≥ 1.5× | - | not measured in this run |"));
    // Only the http JSON was given: no compare section.
    assert!(
        !text.contains("## unix\n"),
        "no compare section without a compare JSON"
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"kind": "http", "runs": 3}"#).unwrap();
    let out = dir.join("BAD.md");
    let (r, _, _) = common::run(&[
        "report",
        "--json",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = r.unwrap_err();
    assert!(
        e.message().contains("is not a bench-vsock http report"),
        "{e}"
    );
}

/// The clap error for `args` (after `http`), as a string.
fn refused(args: &[&str]) -> String {
    let argv: Vec<&str> = ["bench-vsock", "http"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    Cli::try_parse_from(&argv)
        .err()
        .unwrap_or_else(|| panic!("{args:?} was accepted"))
        .to_string()
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    let cases: [(&[&str], &str); 12] = [
        (&["--servers", "uring"], "unknown server \"uring\""),
        (&["--servers", "engine,engine"], "given twice"),
        (&["--proto", "h3"], "unknown HTTP version \"h3\""),
        (&["--conns", "0"], "at least 1"),
        (&["--conns", "1,5000"], "limit of 4096"),
        (&["--bodies", "17m"], "limit of 16m"),
        (&["--bodies", "lots"], "bad size"),
        (&["--workers", "300"], "limit of 256"),
        (&["--repeat", "0"], "at least 1"),
        (&["--rate", "0"], "at least 1"),
        (&["--duration", "0s"], "out of range"),
        (&["--warmup", "soon"], "bad duration"),
    ];
    for (args, why) in cases {
        let e = refused(args);
        assert!(e.contains(args[0]), "{args:?}: names the option: {e}");
        assert!(e.contains(why), "{args:?}: {e}");
    }
    let e = refused(&["--count", "5", "--duration", "1s"]);
    assert!(e.contains("--count") && e.contains("--duration"), "{e}");
    let e = refused(&["--transport", "udp"]);
    assert!(e.contains("--transport"), "{e}");
}

// Sends nothing: without the loopback transport the command refuses before any socket (its
// name leaves out the word that marks tests for the VM).
#[test]
fn http_on_the_vm_transport_is_refused_without_its_loopback() {
    if uring_vsock::loopback_available() {
        return; // in the VM: the ignored test below runs it
    }
    let dir = common::fresh_dir("refuse-vsock");
    let json = dir.join("r.json");
    let (r, _, _) = common::run(&[
        "http",
        "--transport",
        "vsock",
        "--json",
        json.to_str().unwrap(),
    ]);
    let e = r.unwrap_err();
    assert!(e.message().contains("vsock loopback transport"), "{e}");
    assert!(!json.exists(), "refused before any file is made");
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn http_over_vsock_verifies_every_response() {
    common::require_vm();
    let (report, _, _) = http(
        "vsock",
        &[
            "--transport",
            "vsock",
            "--count",
            "40",
            "--conns",
            "1,4",
            "--bodies",
            "64,64k",
            "--warmup",
            "0",
            "--repeat",
            "1",
        ],
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3 * 2 * 2 * 2);
    for r in runs {
        assert_eq!(r["transport"], "vsock");
        assert_verified(r, 40);
    }
}
