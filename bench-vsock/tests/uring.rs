//! The io_uring backends (`uring`, `uring-spin`) over unix: each workload verifies exactly
//! the bytes the epoll backend verifies for the same run, with many connections over few
//! workers, open-loop pacing, and a new connection per session; and a compare measures them
//! against every other backend.

mod common;

use bench_vsock::backend::BackendKind;
use common::{fresh_dir, read_json, run, runs_of};
use serde_json::Value;

const URING: [&str; 2] = ["uring", "uring-spin"];

/// Runs `args` with each uring backend and with epoll; asserts every run's message count
/// and verified bytes match epoll's; returns the uring backends' runs.
fn like_epoll(test: &str, args: &[&str]) -> Vec<(&'static str, Vec<serde_json::Value>)> {
    let reference = runs_of(test, "epoll", args);
    URING
        .into_iter()
        .map(|b| {
            let runs = runs_of(test, b, args);
            assert_eq!(runs.len(), reference.len(), "{b}");
            for (r, e) in runs.iter().zip(&reference) {
                assert_eq!(r["bytes_verified"], e["bytes_verified"], "{b}: {r}");
                assert_eq!(r["messages"], e["messages"], "{b}: {r}");
                assert_eq!(r["transport"], "unix");
                assert_eq!(r["local_server"], true);
                assert_engine_counted(r);
                assert!(e["engine"].is_null(), "epoll has no engine: {e}");
            }
            (b, runs)
        })
        .collect()
}

/// Both ends' engines ran in this process, so over the measured phase they received
/// exactly what they sent: the payload plus the protocol's own bytes (a 32-byte header per
/// connection; for a stream, a 4-byte prefix per frame, the end marker and the 16-byte
/// ack). The per-message figures follow from the totals.
fn assert_engine_counted(r: &serde_json::Value) {
    let e = &r["engine"];
    let total = |k: &str| {
        e["totals"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {r}"))
    };
    let messages = r["messages"].as_u64().unwrap();
    let conns = r["server"]["connections"].as_u64().unwrap();
    let mut protocol = 32 * conns;
    if r["workload"] == "stream" {
        protocol += 4 * (messages + 1) + 16;
    }
    let payload = r["payload_bytes"].as_u64().unwrap();
    assert_eq!(total("sent_bytes"), payload + protocol, "{r}");
    assert_eq!(total("recv_bytes"), total("sent_bytes"), "{r}");
    let completions = total("completions");
    assert!(
        completions >= 2 * messages,
        "a send and a receive per message: {r}"
    );
    let per_msg = e["per_msg"]["completions"].as_f64().unwrap();
    assert!(
        (per_msg - completions as f64 / messages as f64).abs() < 1e-9,
        "{r}"
    );
    let bpc = e["bytes_per_completion"].as_f64().unwrap();
    let want = 2.0 * total("sent_bytes") as f64 / completions as f64;
    assert!((bpc - want).abs() < 1e-6, "{r}");
    let share = e["spin_cpu_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{r}");
}

#[test]
fn uring_backends_are_in_this_build() {
    assert!(BackendKind::Uring.available());
    assert!(BackendKind::UringSpin.available());
}

#[test]
fn uring_pingpong_64b_and_70kib() {
    let args = [
        "pingpong",
        "--transport",
        "unix",
        "--sizes",
        "64,70k",
        "--count",
        "20",
    ];
    for (b, runs) in like_epoll("uring-pingpong", &args) {
        assert_eq!(runs.len(), 2, "{b}");
        assert_eq!(runs[0]["msg_size"], 64);
        assert_eq!(runs[0]["messages"], 20);
        assert_eq!(runs[0]["bytes_verified"], 20 * 64);
        assert_eq!(runs[0]["payload_bytes"], 2 * 20 * 64);
        assert_eq!(runs[1]["msg_size"], 70 * 1024);
        assert_eq!(runs[1]["bytes_verified"], 20 * 70 * 1024);
        assert_eq!(runs[1]["workload"], "pingpong");
    }
}

#[test]
fn uring_stream_1mib_is_acked_whole() {
    let args = [
        "stream",
        "--transport",
        "unix",
        "--sizes",
        "1m",
        "--count",
        "8",
    ];
    for (b, runs) in like_epoll("uring-stream", &args) {
        assert_eq!(runs[0]["workload"], "stream", "{b}");
        assert_eq!(runs[0]["msg_size"], 1 << 20);
        assert_eq!(runs[0]["messages"], 8);
        assert_eq!(runs[0]["bytes_verified"], 8 << 20);
    }
}

#[test]
fn uring_rr_64_connections_on_2_workers() {
    let args = [
        "rr",
        "--transport",
        "unix",
        "--conns",
        "64",
        "--workers",
        "2",
        "--count",
        "640",
    ];
    for (b, runs) in like_epoll("uring-rr", &args) {
        assert_eq!(runs[0]["conns"], 64, "{b}");
        assert_eq!(runs[0]["workers"], 2);
        assert_eq!(runs[0]["messages"], 640);
        assert_eq!(runs[0]["bytes_verified"], 640 * 64);
        assert!(runs[0]["rate"].is_null());
        assert_eq!(runs[0]["uncorrected"]["count"], 640);
        assert_eq!(runs[0]["server"]["connections"], 64, "{b}");
    }
}

#[test]
fn uring_rr_open_loop_is_paced() {
    // 10 messages per connection, one every 8 / 400 s = 20 ms: at least 180 ms.
    let args = [
        "rr",
        "--transport",
        "unix",
        "--conns",
        "8",
        "--workers",
        "2",
        "--count",
        "80",
        "--rate",
        "400",
    ];
    for (b, runs) in like_epoll("uring-rr-open", &args) {
        assert_eq!(runs[0]["rate"], 400, "{b}");
        assert_eq!(runs[0]["messages"], 80);
        assert_eq!(runs[0]["bytes_verified"], 80 * 64);
        // Both histograms are kept; the corrected one counts from the intended send time.
        assert_eq!(runs[0]["uncorrected"]["count"], 80);
        assert_eq!(runs[0]["server"]["connections"], 8, "{b}");
        common::assert_paced(&runs[0]);
    }
}

#[test]
fn uring_connect_opens_one_connection_per_message() {
    let args = [
        "connect",
        "--transport",
        "unix",
        "--conns",
        "4",
        "--count",
        "40",
    ];
    for (b, runs) in like_epoll("uring-connect", &args) {
        assert_eq!(runs[0]["workload"], "connect", "{b}");
        assert_eq!(runs[0]["messages"], 40);
        assert_eq!(runs[0]["bytes_verified"], 40 * 64);
        // The server saw each of them as its own connection, ended cleanly.
        assert_eq!(runs[0]["server"]["connections"], 40, "{b}");
    }
}

#[test]
fn default_compare_measures_uring_against_every_other_backend() {
    let dir = fresh_dir("uring-compare");
    // The backends are left to the default: all in this build.
    let (r, stdout, stderr) = run(&[
        "compare",
        "--transport",
        "unix",
        "--quick",
        "--count",
        "20",
        "--conns",
        "4",
        "--warmup",
        "0",
        "--repeat",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    assert!(stdout.contains("Ratios"), "{stdout}");
    let report = read_json(&dir.join("report.json"));
    let runs = report["runs"].as_array().unwrap();
    // The runs at the default 2 workers; the compare's scaling runs are at 1.
    let (main, scaling): (Vec<&Value>, Vec<&Value>) = runs.iter().partition(|r| r["workers"] == 2);
    for b in BackendKind::ALL {
        let of_b: Vec<_> = main.iter().filter(|r| r["backend"] == b.name()).collect();
        if !b.in_default_run() {
            assert!(of_b.is_empty(), "A/B variant {b} run by default");
            continue;
        }
        assert_eq!(of_b.len(), 4, "pingpong, stream, rr, connect of {b}");
        // Every configuration verifies the same bytes, whichever backend moved them.
        for (r, first) in of_b
            .iter()
            .zip(main.iter().filter(|r| r["backend"] == "uring"))
        {
            assert_eq!(r["bytes_verified"], first["bytes_verified"], "{r}");
        }
    }
    let mut scaled: Vec<(&str, &str, u64)> = scaling
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap();
            (s("backend"), s("workload"), r["workers"].as_u64().unwrap())
        })
        .collect();
    scaled.sort();
    assert_eq!(scaled, [("epoll", "rr", 1), ("uring", "rr", 1)]);
    let mut pairs: Vec<(String, String)> = report["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            (s("subject"), s("baseline"))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut expected = Vec::new();
    for s in URING {
        for b in ["blocking", "epoll", "tokio", "tokio-ours"] {
            expected.push((s.to_owned(), b.to_owned()));
        }
    }
    // And the library's tokio path against tokio's own sockets.
    expected.push(("tokio-ours".to_owned(), "tokio".to_owned()));
    expected.sort();
    assert_eq!(pairs, expected);
}

/// The engine's A/B variants move the same verified bytes as `uring`, with their feature
/// off: its counter stays at zero where `uring`'s is not.
#[test]
fn ab_variants_turn_one_engine_feature_off() {
    let args = [
        "rr",
        "--transport",
        "unix",
        "--conns",
        "8",
        "--workers",
        "2",
        "--count",
        "400",
    ];
    let of = |b: &str| -> Value {
        let runs = runs_of("uring-ab", b, &args);
        assert_eq!(runs.len(), 1, "{b}: {runs:?}");
        runs[0].clone()
    };
    let total = |r: &Value, k: &str| {
        r["engine"]["totals"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {r}"))
    };
    let (uring, nohandoff, nofiles) = (of("uring"), of("uring-nohandoff"), of("uring-nofiles"));
    for r in [&uring, &nohandoff, &nofiles] {
        assert_eq!(r["messages"], 400, "{r}");
        assert_eq!(r["bytes_verified"], 400 * 64, "{r}");
        assert_eq!(r["server"]["connections"], 8, "{r}");
        assert_engine_counted(r);
    }
    // 8 connections accepted on 2 workers: some go to the worker that did not accept them.
    assert!(total(&uring, "ring_handoffs") > 0, "{uring}");
    assert_eq!(total(&nohandoff, "ring_handoffs"), 0, "{nohandoff}");
    assert!(total(&nohandoff, "channel_handoffs") > 0, "{nohandoff}");
    // 50 round trips a connection: past the 16 operations after which a socket is
    // registered.
    assert!(total(&uring, "registered_files") > 0, "{uring}");
    assert_eq!(total(&nofiles, "registered_files"), 0, "{nofiles}");
}
