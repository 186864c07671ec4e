//! Bad command lines: a clear message on stderr and a non-zero exit, before anything runs.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bench-vsock"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run bench-vsock");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fails_with(args: &[&str], want: &str) {
    let (code, stderr) = run(args);
    assert_ne!(code, 0, "{args:?} should fail; stderr: {stderr}");
    assert!(
        stderr.contains(want),
        "{args:?}: stderr should mention {want:?}, got: {stderr}"
    );
}

#[test]
fn bad_values_are_named() {
    fails_with(&["pingpong", "--sizes", "4x"], "bad size \"4x\"");
    fails_with(&["pingpong", "--sizes", "0"], "out of range");
    fails_with(
        &["compare", "--backends", "nope"],
        "unknown backend \"nope\"",
    );
    fails_with(&["stream", "--duration", "0s"], "out of range");
    fails_with(&["rr", "--conns", "0"], "at least 1");
    // Counts that size a run are bounded, and the error names the flag and the limit.
    fails_with(
        &["rr", "--conns", "200000", "--duration", "1s"],
        "'--conns <N>': 200000 is above the limit of 4096 connections",
    );
    fails_with(
        &["rr", "--workers", "100000", "--backends", "epoll"],
        "'--workers <N>': 100000 is above the limit of 256 workers",
    );
    fails_with(
        &["serve", "--listen", "unix:@x", "--workers", "100000"],
        "'--workers <N>': 100000 is above the limit of 256 workers",
    );
    fails_with(
        &["compare", "--repeat", "18446744073709551615"],
        "'--repeat <N>': 18446744073709551615 is above the limit of 1000 repeats",
    );
    fails_with(&["rr", "--connect", "udp:1:2"], "unknown scheme");
    fails_with(
        &["pingpong", "--transport", "carrier-pigeon"],
        "carrier-pigeon",
    );
    fails_with(&["frobnicate"], "frobnicate");
}

#[test]
fn vsock_buffer_sizes_are_bounded_and_for_vsock_only() {
    for bad in ["0", "127", "2g", "1025m"] {
        fails_with(
            &["rr", "--vsock-buffer-size", bad],
            "out of range: must be 128 bytes (the kernel's minimum) to 1g",
        );
    }
    fails_with(&["rr", "--vsock-buffer-size", "big"], "bad size \"big\"");
    // On the host's default transport (unix, without vsock loopback) or an explicit one
    // that is not vsock: refused before anything runs.
    for transport in ["unix", "tcp"] {
        fails_with(
            &["rr", "--transport", transport, "--vsock-buffer-size", "1m"],
            &format!("--vsock-buffer-size sets a vsock socket option, but this run's server is on {transport}"),
        );
    }
    fails_with(
        &["serve", "--listen", "unix:@x", "--vsock-buffer-size", "1m"],
        "--vsock-buffer-size applies to vsock endpoints, not unix:@x",
    );
}

#[test]
fn contradictions_are_run_errors() {
    fails_with(
        &["pingpong", "--rate", "100", "--transport", "unix"],
        "Error: --rate applies to rr only",
    );
    fails_with(
        &["pingpong", "--conns", "4", "--transport", "unix"],
        "Error: pingpong uses one connection",
    );
    fails_with(
        &["rr", "--reverse", "--transport", "unix"],
        "Error: --reverse applies to stream, not rr",
    );
    fails_with(
        &["rr", "--count", "5", "--duration", "1s"],
        "cannot be used with",
    );
    fails_with(
        &["client", "--workload", "pingpong"],
        "Error: client needs --connect",
    );
    fails_with(&["report"], "--json");
}

// A host check (without loopback, a local run would leave the machine), so its name leaves
// out the word that sends tests to the VM.
#[test]
fn a_local_run_without_the_loopback_transport_is_refused() {
    if !uring_vsock::loopback_available() {
        // Refused before any vsock socket is made: without loopback it would leave the host.
        fails_with(
            &["pingpong", "--transport", "vsock", "--count", "1"],
            "Error: local vsock runs need the vsock loopback transport",
        );
        fails_with(
            &["pingpong", "--listen", "vsock:any:5000", "--count", "1"],
            "Error: local vsock runs need the vsock loopback transport",
        );
    }
}

#[test]
fn bad_proxy_options_fail_before_measuring() {
    // Before anything runs: no plan line ("N runs, about ...") and no run line.
    let before = |args: &[&str], want: &str| {
        let (code, stderr) = run(args);
        assert_ne!(code, 0, "{args:?} should fail; stderr: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: want {want:?}, got: {stderr}"
        );
        let planned = stderr
            .lines()
            .any(|l| l.ends_with(" runs") || l.contains(" runs, about "));
        assert!(
            !planned && !stderr.contains("[1/"),
            "{args:?} measured before failing: {stderr}"
        );
    };
    before(
        &["pingpong", "--transport", "unix", "--via", "nginx"],
        "unknown proxy \"nginx\": expected ours (vsock-tool proxy) or socat",
    );
    before(
        &["pingpong", "--via", "socat,socat"],
        "proxy \"socat\" given twice",
    );
    before(&["pingpong", "--via", ""], "empty proxy list");
    before(
        &[
            "pingpong",
            "--transport",
            "unix",
            "--via",
            "ours",
            "--via-bin",
            "/nonexistent/vsock-tool",
        ],
        "--via-bin /nonexistent/vsock-tool: no executable there",
    );
    before(
        &["pingpong", "--transport", "unix", "--via-bin", "/bin/true"],
        "give --via ours too",
    );
    before(
        &[
            "pingpong",
            "--transport",
            "unix",
            "--via",
            "socat",
            "--via-bin",
            "/bin/true",
        ],
        "--via-bin is the binary of --via ours",
    );
    before(
        &[
            "client",
            "--workload",
            "rr",
            "--connect",
            "unix:@x",
            "--via",
            "socat",
        ],
        "cannot be combined with --connect",
    );
}

#[test]
fn a_missing_socat_is_named_before_measuring() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench-vsock"))
        .args(["pingpong", "--transport", "unix", "--via", "socat"])
        .env("PATH", "/nonexistent")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run bench-vsock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--via socat: socat is not installed"),
        "{stderr}"
    );
    assert!(!stderr.contains("[1/"), "measured before failing: {stderr}");
}

#[test]
fn a_proxy_that_exits_at_once_is_a_clear_error() {
    // `false` stands for a vsock-tool that cannot start: it exits before listening.
    let (code, stderr) = run(&[
        "pingpong",
        "--transport",
        "unix",
        "--count",
        "5",
        "--backends",
        "blocking",
        "--via",
        "ours",
        "--via-bin",
        "/bin/false",
    ]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("proxy `/bin/false proxy unix:@") && stderr.contains("exited"),
        "{stderr}"
    );
}
