//! The deployment roles over unix: `serve` in one process, `client` in another, then
//! `report` from the client's JSON.

mod common;

use std::process::Command;

#[test]
fn client_runs_against_serve_and_report_writes_results() {
    let bin = env!("CARGO_BIN_EXE_bench-vsock");
    let serve = common::Serve::start("roles", "epoll", 1);
    let name = serve.endpoint.clone();

    let dir = common::fresh_dir("roles");
    let json = dir.join("client.json");
    let out = Command::new(bin)
        .args([
            "client",
            "--workload",
            "pingpong",
            "--connect",
            &name,
            "--backends",
            "blocking",
            "--sizes",
            "4k",
            "--count",
            "50",
            "--warmup",
            "0",
            "--out",
            dir.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = common::read_json(&json);
    assert_eq!(report["runs"][0]["bytes_verified"], 50 * 4096);
    assert_eq!(report["runs"][0]["local_server"], false);
    assert!(report["runs"][0]["server"].is_null());
    // The server saw one clean connection and exits by itself.
    assert!(serve.wait(), "the server saw a failed connection");

    let md = dir.join("RESULTS.md");
    let out = Command::new(bin)
        .args([
            "report",
            "--json",
            json.to_str().unwrap(),
            "--out",
            md.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("# bench-vsock results"));
    assert!(text.contains("| pingpong 4 KiB | blocking |"), "{text}");
    // One backend of the six a default compare runs: the heading names it.
    assert!(text.contains("## unix, blocking only\n"), "{text}");
    assert!(text.contains("](results-0-unix-latency.svg)"));
    assert!(dir.join("results-0-unix-throughput.svg").exists());
    assert!(
        text.contains("![unix CPU per message](results-0-unix-cpu.svg)"),
        "{text}"
    );
    assert!(dir.join("results-0-unix-cpu.svg").exists());

    // Plots in their own folder, linked relative to RESULTS.md; notes and profiles appended.
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).unwrap();
    std::fs::write(plots.join("profile-x.txt"), "10% memcpy\n").unwrap();
    let notes = dir.join("notes.md");
    std::fs::write(&notes, "The copy dominates.\n").unwrap();
    let out = Command::new(bin)
        .args(["report", "--json", json.to_str().unwrap(), "--out"])
        .arg(&md)
        .arg("--plots")
        .arg(&plots)
        .arg("--notes")
        .arg(&notes)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("](plots/results-0-unix-latency.svg)"),
        "{text}"
    );
    assert!(plots.join("results-0-unix-latency.svg").exists());
    assert!(text.contains("## Analysis\n"), "{text}");
    assert!(text.contains("The copy dominates."), "{text}");
    assert!(
        text.contains("- [plots/profile-x.txt](plots/profile-x.txt)"),
        "{text}"
    );
    // A blocking-only pingpong 4 KiB run is covered by no target: no table of "not
    // measured" rows.
    assert!(!text.contains("### Targets"), "{text}");
    assert!(!text.contains("not measured in this run"), "{text}");
}
