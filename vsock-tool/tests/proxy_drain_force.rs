//! `vsock-tool proxy`: a second SIGTERM or SIGINT during the drain exits at once with status
//! 6, cutting what is open, and removes the unix socket file as a clean exit does.

mod support;

use std::io::{Read, Write};

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::Stream;
use uring_vsock::Endpoint;

/// A client through the proxy to a target that sent nothing and EOF, and that waits for the
/// client's EOF: the drain has it to wait for, for as long as the client stays.
fn open_client(proxy: &Proxy) -> Stream {
    let s = Stream::connect(&proxy.ep).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&s).write_all(&3u64.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    (&s).read_to_end(&mut rest).expect("the target's EOF");
    assert!(rest.is_empty());
    s
}

fn second_signal_forces_the_exit(first: libc::c_int, second: libc::c_int) {
    let dir = TempDir::new();
    let (target, _got) = support::duplex_server(&dir.unix("t"), 0);
    let listen = dir.unix("front");
    // A drain timeout far past the watchdog: only the second signal can end it in time.
    let opts = ["--drain-timeout", "1h", "--log-level", "info"];
    let mut proxy = Proxy::start(&listen, &target, &opts);
    let s = open_client(&proxy);
    proxy.signal(first);
    proxy.wait_line("draining 1 connections");
    proxy.signal(second);
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(6), "a forced exit: {status}");
    let lines = proxy.rest_of_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("second signal: exiting at once, cutting 1 connections")),
        "{lines:?}"
    );
    let Endpoint::Unix(path) = &listen else {
        unreachable!()
    };
    assert!(
        !path.exists(),
        "the socket file is left at {}",
        path.display()
    );
    // The proxy is gone, and the client's connection with it: its writes fail.
    let dead = (0..100).any(|_| (&s).write_all(&[0u8; 65536]).is_err());
    assert!(dead, "the cut connection still takes writes");
}

#[test]
fn proxy_exits_at_once_on_a_second_sigterm_during_the_drain() {
    second_signal_forces_the_exit(libc::SIGTERM, libc::SIGTERM);
}

#[test]
fn proxy_exits_at_once_on_sigint_after_sigterm() {
    second_signal_forces_the_exit(libc::SIGTERM, libc::SIGINT);
}
