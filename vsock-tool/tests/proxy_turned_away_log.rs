//! `vsock-tool proxy`: the WARN line for clients turned away over `--max-conns` comes at
//! most once a second, and the lines together count every client turned away.

mod support;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::Stream;

/// Clients turned away in the test.
const TURNED_AWAY: u64 = 200;

/// The count of clients a turned-away line stands for: its own client (unless it is the
/// exit's summary) plus those it says were left out.
fn counted(line: &str) -> u64 {
    let number = |s: Option<&str>| -> u64 {
        s.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a count in {line:?}"))
    };
    if let Some((_, tail)) = line.split_once("(and ") {
        1 + number(tail.split_whitespace().next())
    } else if line.contains(": turned away: ") {
        1
    } else if let Some((head, _)) = line.split_once(" more clients turned away") {
        // The summary at exit: "N more clients turned away since the last such line".
        number(head.split_whitespace().last())
    } else {
        panic!("unexpected line {line:?}")
    }
}

#[test]
fn proxy_rate_limits_the_turned_away_warning_and_counts_every_client() {
    let dir = TempDir::new();
    let (target, _got) = support::duplex_server(&dir.unix("t"), 0);
    let mut proxy = Proxy::start(
        &"tcp:127.0.0.1:0".parse().unwrap(),
        &target,
        &["--max-conns", "1", "--workers", "1"],
    );
    // The one client let in is through (the target's EOF says so) and stays.
    let first = Stream::connect(&proxy.ep).unwrap();
    first.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&first).write_all(&1u64.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    (&first).read_to_end(&mut rest).expect("the target's EOF");
    let start = Instant::now();
    for i in 0..TURNED_AWAY {
        let c = Stream::connect(&proxy.ep).unwrap();
        c.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut buf = [0u8; 8];
        match (&c).read(&mut buf) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "client {i}: {e}"),
            Ok(n) => panic!("client {i} over --max-conns read {n} bytes instead of a reset"),
        }
    }
    // Every turned-away line came within this time (each client's line before its reset).
    let elapsed = start.elapsed();
    first.shutdown(Shutdown::Write).unwrap();
    drop(first);
    proxy.terminate();
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    let lines: Vec<String> = proxy
        .rest_of_lines()
        .into_iter()
        .filter(|l| l.contains("turned away"))
        .collect();
    let per_client = lines
        .iter()
        .filter(|l| l.contains(": turned away: "))
        .count() as u64;
    assert!(per_client >= 1, "no turned-away line: {lines:?}");
    assert!(
        per_client <= elapsed.as_secs() + 1,
        "{per_client} lines in {elapsed:?}, more than one a second: {lines:?}"
    );
    let total: u64 = lines.iter().map(|l| counted(l)).sum();
    assert_eq!(
        total, TURNED_AWAY,
        "the lines count every client: {lines:?}"
    );
}
