//! bench-vsock on real vsock, in the test VM (`tools/vm-test`; ignored on the host, where a
//! vsock connect would leave the machine): the README's main job on its vsock-loopback
//! default, the deployment roles over vsock, `--vsock-buffer-size` and `--seqpacket`.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Every path the main job compares.
const BACKENDS: [&str; 6] = [
    "uring",
    "uring-spin",
    "epoll",
    "blocking",
    "tokio",
    "tokio-ours",
];
/// Every workload the quick compare runs.
const WORKLOADS: [&str; 4] = ["pingpong", "stream", "rr", "connect"];
/// How long the main job may take under TCG before the test gives up on it.
const MAIN_JOB_LIMIT: Duration = Duration::from_secs(720);

/// Checks that one run verified its bytes on both ends.
fn assert_verified(r: &Value) {
    let verified = r["bytes_verified"].as_u64().unwrap_or(0);
    assert!(verified > 0, "nothing verified: {r}");
    assert!(r["messages"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["server"]["bytes_verified"], r["bytes_verified"], "{r}");
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn the_main_job_compares_every_path_on_its_vsock_loopback_default() {
    common::require_vm();
    let dir = common::fresh_dir("main-job");
    // Exactly the README's main job: no arguments (reports under ./results).
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_bench-vsock")).current_dir(&dir),
        MAIN_JOB_LIMIT,
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    // The tables, for a run with --nocapture.
    println!("{stderr}{stdout}");
    assert!(
        stderr.contains("transport: vsock (loopback transport loaded)"),
        "the default transport in the VM is vsock loopback: {stderr}"
    );
    assert!(stdout.contains("Medians over repeats"), "{stdout}");

    let report = common::read_json(&dir.join("results/report.json"));
    assert_eq!(report["machine"]["vsock_loopback"], true);
    let runs = report["runs"].as_array().expect("runs");
    for r in runs {
        assert_eq!(r["transport"], "vsock", "{r}");
        assert_verified(r);
        if r["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("uring"))
        {
            let enters = r["engine"]["per_msg"]["enters"].as_f64().unwrap_or(0.0);
            assert!(enters > 0.0, "a uring run entered the kernel: {r}");
        }
    }
    for backend in BACKENDS {
        for workload in WORKLOADS {
            assert!(
                runs.iter()
                    .any(|r| r["backend"] == backend && r["workload"] == workload),
                "the main job ran {backend} on {workload}: {stdout}"
            );
            assert!(
                stdout.contains(backend) && stdout.contains(workload),
                "{stdout}"
            );
        }
    }
    let ratios = report["ratios"].as_array().expect("ratios");
    assert!(
        ratios
            .iter()
            .any(|r| r["subject"] == "uring" && r["baseline"] == "epoll"),
        "{ratios:?}"
    );
    // Issue 8: the library's tokio path against tokio-vsock, on every workload.
    for workload in WORKLOADS {
        assert!(
            ratios.iter().any(|r| r["subject"] == "tokio-ours"
                && r["baseline"] == "tokio"
                && r["transport"] == "vsock"
                && r["config"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(workload))),
            "tokio-ours / tokio on {workload}: {ratios:?}"
        );
    }
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn client_and_serve_roles_over_vsock_verify_every_byte() {
    common::require_vm();
    // A port of this process's own: nothing else in the VM listens on vsock.
    let port = 20_000 + std::process::id() % 10_000;
    let serve = common::Serve::start_on(format!("vsock:any:{port}"), "uring", 1);
    let dir = common::fresh_dir("vsock-roles");
    let json = dir.join("client.json");
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_bench-vsock"))
            .args(["client", "--workload", "stream", "--connect"])
            .arg(format!("vsock:1:{port}"))
            .args(["--backends", "epoll", "--sizes", "64k", "--count", "64"])
            .args(["--warmup", "0", "--out"])
            .arg(&dir)
            .arg("--json")
            .arg(&json),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = common::read_json(&json);
    let run = &report["runs"][0];
    assert_eq!(run["transport"], "vsock", "{run}");
    assert_eq!(run["bytes_verified"], 64 * 65536, "{run}");
    assert_eq!(run["local_server"], false);
    assert!(serve.wait(), "the vsock server saw a failed connection");
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn uring_vsock_runs_report_the_engines_counters_per_message() {
    common::require_vm();
    let runs = common::runs_of(
        "vsock-counters",
        "uring",
        &[
            "stream",
            "--transport",
            "vsock",
            "--sizes",
            "64k",
            "--count",
            "64",
        ],
    );
    for r in &runs {
        assert_eq!(r["transport"], "vsock");
        let e = &r["engine"];
        let totals = &e["totals"];
        // Both ends' engines: each payload byte is sent once and received once.
        assert!(
            totals["sent_bytes"].as_u64().unwrap() >= r["payload_bytes"].as_u64().unwrap(),
            "{r}"
        );
        for counter in ["enters", "completions"] {
            assert!(
                e["per_msg"][counter].as_f64().unwrap() > 0.0,
                "{counter}: {r}"
            );
        }
        assert!(e["bytes_per_completion"].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn rr_with_a_vsock_buffer_size_runs_on_every_backend_over_vsock() {
    common::require_vm();
    for backend in BACKENDS {
        let runs = common::runs_of(
            "vsock-buffer",
            backend,
            &[
                "rr",
                "--transport",
                "vsock",
                "--vsock-buffer-size",
                "1m",
                "--conns",
                "4",
                "--count",
                "200",
            ],
        );
        assert_eq!(runs.len(), 1, "{backend}: {runs:?}");
        let r = &runs[0];
        assert_eq!(r["transport"], "vsock", "{r}");
        assert_eq!(r["vsock_buffer_size"], 1 << 20, "{r}");
        assert_eq!(r["messages"], 200, "{r}");
        // Each 64-byte echo checked by the client (and each request by the server).
        assert_eq!(r["bytes_verified"], 200 * 64, "{r}");
        assert_verified(r);
    }
}

#[test]
#[ignore = "sends vsock traffic: runs in the test VM (tools/vm-test)"]
fn seqpacket_pingpong_and_rr_verify_every_message_over_vsock() {
    common::require_vm();
    for backend in ["uring", "uring-spin", "epoll", "blocking"] {
        let runs = common::runs_of(
            "vsock-seqpacket-pingpong",
            backend,
            &[
                "pingpong",
                "--seqpacket",
                "--transport",
                "vsock",
                "--sizes",
                "64,64k",
                "--count",
                "20",
            ],
        );
        assert_eq!(runs.len(), 2, "{backend}: {runs:?}");
        for r in &runs {
            assert_eq!(r["transport"], "vsock", "{r}");
            assert_eq!(r["seqpacket"], true, "{r}");
            assert_verified(r);
        }
        assert_eq!(runs[0]["bytes_verified"], 20 * 64, "{backend}");
        assert_eq!(runs[1]["bytes_verified"], 20 * 65536, "{backend}");
        let runs = common::runs_of(
            "vsock-seqpacket-rr",
            backend,
            &[
                "rr",
                "--seqpacket",
                "--transport",
                "vsock",
                "--conns",
                "4",
                "--count",
                "200",
            ],
        );
        let r = &runs[0];
        assert_eq!(r["seqpacket"], true, "{r}");
        assert_eq!(r["bytes_verified"], 200 * 64, "{r}");
        assert_verified(r);
    }
}
